//go:build !cgo || !amd64

package matmul

import (
	"errors"

	"mica/internal/tensor"
)

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

func packedBytes(vt tensor.DType, n, cols int) int { return 0 }

func gemmBlockRows(wt tensor.DType, n, cols int) int { return 0 }

func fastMulBlock(w []byte, rb, cols int, p *Prepared, y []float32, ldy, r0, r1, j0, j1 int) error {
	return errors.New("matmul: packed activations without the AVX2 kernels") // Packed is false here
}

func fastPack(vt tensor.DType, x []float32, cols, j0, j1 int, pk []byte) {
	panic("matmul: packed activations without the AVX2 kernels") // packedBytes is 0 here
}

func fastRound(vt tensor.DType, x, out, kern []float32, cols int) bool { return false }
