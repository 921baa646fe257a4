//go:build !cgo || !amd64

package matmul

import "mica/internal/tensor"

const (
	isaGo         = 0
	isaAVX2       = 1
	isaAVX512     = 2
	isaAVX512VNNI = 3
)

var isa, maxISA = isaGo, isaGo

// fastMul has no fast path without cgo on amd64: MulRows uses the reference.
func fastMul(wt tensor.DType, w []byte, rb, cols int, p *Prepared, y []float32, ldy, r0, r1 int) bool {
	return false
}

func fastQuantize(vt tensor.DType, src []float32, dst []byte) bool { return false }

func fastRound(vt tensor.DType, x, out, kern []float32, cols int) bool { return false }
