//go:build cgo && amd64

package matmul

/*
#cgo CFLAGS: -O2 -std=c11 -fno-strict-aliasing
#include <stdint.h>
#include <stddef.h>
#include "streams.h"
void mica_qmul_avx2(int T, const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb, int n, int nb, float *y, size_t ldy, int r0, int r1);
void mica_qmul_vnni(int T, const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb, int n, int nb, float *y, size_t ldy, int r0, int r1);
int mica_fmul_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y, size_t ldy, int r0, int r1, const void *xpk);
int mica_fmul_avx512(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y, size_t ldy, int r0, int r1, const void *xpk);
size_t mica_fpack_bytes_avx2(int T, int n, int cols);
void mica_fpack_avx2(int T, const float *x, int cols, int j0, int j1, void *pk);
int mica_fgemm_rows_avx2(int T, int cols);
int mica_fk_jb_avx2(void);
int mica_fgemm_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int cols, float *y, size_t ldy, int r0, int r1, const void *pk, int j0, int j1);
void mica_fround_avx2(int T, const float *x, int n, int cols, float *out, float *kern);
void mica_quant_q8_0_avx2(const float *x, int n, uint8_t *dst);
void mica_quant_q8_1_avx2(const float *x, int n, uint8_t *dst);
void mica_quant_q8_k_avx2(const float *x, int n, uint8_t *dst);
*/
import "C"

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/cpu"

	"mica/internal/tensor"
)

// Instruction-set levels of the fast paths.
const (
	isaGo         = 0 // plain Go only
	isaAVX2       = 1 // AVX2 + FMA + F16C
	isaAVX512     = 2 // + AVX-512 F/BW/VL: 512-bit F32/F16/BF16 kernels
	isaAVX512VNNI = 3 // + AVX-512 VNNI: vpdpbusd quantized kernels
)

// detectISA is the best level this CPU supports.
func detectISA() int {
	x := cpu.X86
	switch {
	case !(x.HasAVX2 && x.HasFMA && x.HasF16C):
		return isaGo
	case avx512Emulated:
		return isaAVX512VNNI
	case !(x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL):
		return isaAVX2
	case !x.HasAVX512VNNI:
		return isaAVX512
	}
	return isaAVX512VNNI
}

// isa is the level MulRows uses; tests lower it to compare levels.
var isa = detectISA()

// maxISA is the best level available, for tests.
var maxISA = isa

func fastMul(wt tensor.DType, w []byte, rb, cols int, p *Prepared, y []float32, ldy, r0, r1 int) bool {
	level := isa
	if level == isaGo {
		return false
	}
	wp := (*C.uint8_t)(unsafe.Pointer(&w[0]))
	yp := (*C.float)(unsafe.Pointer(&y[0]))
	switch wt {
	case tensor.F32, tensor.F16, tensor.BF16:
		xs := p.F32
		if wt == tensor.BF16 {
			xs = p.kern
		}
		xp := (*C.float)(unsafe.Pointer(&xs[0]))
		var rc C.int
		if level >= isaAVX512 {
			rc = C.mica_fmul_avx512(C.int(wt), wp, C.size_t(rb), xp, C.int(p.N), C.int(cols), yp, C.size_t(ldy), C.int(r0), C.int(r1), nil)
		} else {
			var pk unsafe.Pointer
			if len(p.pk) > 0 {
				pk = unsafe.Pointer(&p.pk[0])
			}
			rc = C.mica_fmul_avx2(C.int(wt), wp, C.size_t(rb), xp, C.int(p.N), C.int(cols), yp, C.size_t(ldy), C.int(r0), C.int(r1), pk)
		}
		return rc == 0
	}
	xp := (*C.uint8_t)(unsafe.Pointer(&p.Q[0]))
	nb := C.int(cols / wt.BlockSize())
	if level >= isaAVX512VNNI {
		C.mica_qmul_vnni(C.int(wt), wp, C.size_t(rb), xp, C.size_t(p.RowBytes), C.int(p.N), nb, yp, C.size_t(ldy), C.int(r0), C.int(r1))
	} else {
		C.mica_qmul_avx2(C.int(wt), wp, C.size_t(rb), xp, C.size_t(p.RowBytes), C.int(p.N), nb, yp, C.size_t(ldy), C.int(r0), C.int(r1))
	}
	return true
}

// streamLen is the matrix-vector kernels' rows per stream (streams.h).
func streamLen(rows, streams, wrb int) int {
	return int(C.mica_stream_len(C.int(rows), C.int(streams), C.size_t(wrb)))
}

// fkJB is fkern.h's FK_JB: products of more activation rows run the AVX2
// GEMM.
var fkJB = int(C.mica_fk_jb_avx2())

// packedBytes is the size of the activations packed once for the AVX2
// GEMM (n > 48 rows, F16 or F32 weights: vt F16 or F32, at most
// maxPacked bytes), or 0 where the kernels do not take them.
func packedBytes(vt tensor.DType, n, cols int) int {
	if isa != isaAVX2 || vt != tensor.F16 && vt != tensor.F32 || n <= fkJB {
		return 0
	}
	if b := int(C.mica_fpack_bytes_avx2(C.int(vt), C.int(n), C.int(cols))); b <= maxPacked {
		return b
	}
	return 0
}

// maxPacked is the most bytes of activations packed once for all threads:
// packed ahead they must still be in the last-level cache when the threads
// read them. Larger ones (an SD convolution's 4096 rows × 2880 columns:
// 24 MB as F16) are packed by each thread block by block as it goes, which
// keeps them in L2 (packing those ahead measured 5–12% slower).
const maxPacked = 8 << 20

// fastPack packs activation rows [j0, j1) of x into pk (packedBytes' layout
// for vt).
func fastPack(vt tensor.DType, x []float32, cols, j0, j1 int, pk []byte) {
	C.mica_fpack_avx2(C.int(vt), (*C.float)(unsafe.Pointer(&x[0])), C.int(cols), C.int(j0), C.int(j1), unsafe.Pointer(&pk[0]))
}

// gemmBlockRows is the AVX2 GEMM's activation rows per block for n×cols
// activations and wt weights, 0 where the GEMM does not run.
func gemmBlockRows(wt tensor.DType, n, cols int) int {
	if isa != isaAVX2 || n <= fkJB || wt != tensor.F16 && wt != tensor.F32 && wt != tensor.BF16 {
		return 0
	}
	return int(C.mica_fgemm_rows_avx2(C.int(wt), C.int(cols)))
}

// fastMulBlock is MulBlock's kernel call (packed activations).
func fastMulBlock(w []byte, rb, cols int, p *Prepared, y []float32, ldy, r0, r1, j0, j1 int) error {
	rc := C.mica_fgemm_avx2(C.int(p.VecType), (*C.uint8_t)(unsafe.Pointer(&w[0])), C.size_t(rb), (*C.float)(unsafe.Pointer(&p.F32[0])),
		C.int(cols), (*C.float)(unsafe.Pointer(&y[0])), C.size_t(ldy), C.int(r0), C.int(r1), unsafe.Pointer(&p.pk[0]),
		C.int(j0), C.int(j1))
	if rc != 0 {
		return errors.New("matmul: no memory for the GEMM's scratch")
	}
	return nil
}

// fastQuantize converts one activation row to Q8_0/Q8_1/Q8_K with the AVX2
// quantizers (bit-identical to the quant package's for finite values).
func fastQuantize(vt tensor.DType, src []float32, dst []byte) bool {
	if isa < isaAVX2 || len(src) == 0 {
		return false
	}
	xp := (*C.float)(unsafe.Pointer(&src[0]))
	dp := (*C.uint8_t)(unsafe.Pointer(&dst[0]))
	switch vt {
	case tensor.Q8_0:
		C.mica_quant_q8_0_avx2(xp, C.int(len(src)), dp)
	case tensor.Q8_1:
		C.mica_quant_q8_1_avx2(xp, C.int(len(src)), dp)
	case tensor.Q8_K:
		C.mica_quant_q8_k_avx2(xp, C.int(len(src)), dp)
	default:
		return false
	}
	return true
}

// fastRound is roundActivations' AVX2 version (bit-identical to the quant
// package's conversions).
func fastRound(vt tensor.DType, x, out, kern []float32, cols int) bool {
	if isa < isaAVX2 || len(x) == 0 {
		return false
	}
	var kp *C.float
	if vt == tensor.BF16 {
		kp = (*C.float)(unsafe.Pointer(&kern[0]))
	}
	C.mica_fround_avx2(C.int(vt), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)/cols), C.int(cols),
		(*C.float)(unsafe.Pointer(&out[0])), kp)
	return true
}
