//go:build cgo && amd64

package ops

/*
#include <stdint.h>

void mica_nf_scores_blk(const float *q, long R, long d, const void *k, int kf16, long krow,
	const int32_t *cells, long n, float *s, long ss);
void mica_nf_output_g(const float *w, long ws, int G, const void *v, int vf16, long dv, long vrow,
	const int32_t *idx, long n, float *acc, float *out, const long *ooff);
float mica_nf_softmax_row(float *w, long lo, long hi, const int32_t *idx, long n, float scale,
	const float *mr, int f16v, int *redo);
double mica_nf_softmax_exp(float *w, long n, float mx);
void mica_nf_round_f16(const float *src, float *dst, long n);
void mica_nf_normalize(float *w, long n, float inv, int f16);
*/
import "C"

import (
	"math"
	"unsafe"
)

// The wrappers below run the AVX2 kernels of attention_ggml_amd64.c, or
// their plain-Go references when the fast paths are off.

// nfScoresBlk is nfScoresBlkRef: the R queries share each K vector.
func nfScoresBlk(q []float32, R int, k KV, off int, idx []int32, s []float32, ss int) {
	if !useFast || len(idx) == 0 || R == 0 {
		nfScoresBlkRef(q, R, k, off, idx, s, ss)
		return
	}
	d := len(q) / R
	_ = s[(R-1)*ss+int(idx[len(idx)-1])]
	kp, kf16 := kvPtrAt(k, off)
	C.mica_nf_scores_blk(fptr(q), C.long(R), C.long(d), kp, kf16, C.long(k.RowStride),
		(*C.int32_t)(unsafe.Pointer(&idx[0])), C.long(len(idx)), fptr(s), C.long(ss))
}

// nfOutputBlk is nfOutputBlkRef (acc: nfOutRows·16·dv floats of scratch):
// up to nfOutRows rows at a time share each V vector's load and
// conversion.
func nfOutputBlk(w []float32, ws, R int, v KV, off int, idx []int32, acc, out []float32, ooff []int, dv int) {
	if !useFast || len(idx) == 0 || R == 0 || dv == 0 {
		nfOutputBlkRef(w, ws, R, v, off, idx, acc, out, ooff, dv)
		return
	}
	_ = w[(R-1)*ws+int(idx[len(idx)-1])]
	_ = acc[nfOutRows*16*dv-1]
	vp, vf16 := kvPtrAt(v, off)
	var co [nfOutRows]C.long
	for r := 0; r < R; {
		// groups of at most nfOutRows rows, of similar sizes (4 rows: 2+2)
		groups := (R - r + nfOutRows - 1) / nfOutRows
		G := (R - r + groups - 1) / groups
		for h := range G {
			_ = out[ooff[r+h]+dv-1]
			co[h] = C.long(ooff[r+h])
		}
		C.mica_nf_output_g(fptr(w[r*ws:]), C.long(ws), C.int(G), vp, vf16, C.long(dv), C.long(v.RowStride),
			(*C.int32_t)(unsafe.Pointer(&idx[0])), C.long(len(idx)), fptr(acc), fptr(out), &co[0])
		r += G
	}
}

// nfSoftmaxRow is nfSoftmaxRowRef. The C kernel leaves the maximum to Go
// when the order of the fold matters (a NaN, or a maximum of 0), and a
// softcap (math.Tanh) to Go.
func nfSoftmaxRow(w []float32, lo, hi int, idx []int32, mr []float32, scale, softcap, capScale float32,
	f16v bool) float32 {
	if !useFast || softcap != 0 || len(idx) == 0 {
		return nfSoftmaxRowRef(w, lo, hi, idx, mr, scale, softcap, capScale, f16v)
	}
	_ = w[hi-1]
	if mr != nil {
		_ = mr[hi-1]
	}
	var redo C.int
	f := C.int(0)
	if f16v {
		f = 1
	}
	mx := float32(C.mica_nf_softmax_row(fptr(w), C.long(lo), C.long(hi), (*C.int32_t)(unsafe.Pointer(&idx[0])),
		C.long(len(idx)), C.float(scale), fptr(mr), f, &redo))
	if redo != 0 {
		mx = maxAt(w, idx)
		if mx != float32(math.Inf(-1)) {
			nfExpNormalize(w[lo:hi], mx, f16v)
		}
	}
	return mx
}

func nfSoftmaxExp(w []float32, mx float32) float64 {
	if !useFast || len(w) == 0 {
		return nfSoftmaxExpRef(w, mx)
	}
	return float64(C.mica_nf_softmax_exp(fptr(w), C.long(len(w)), C.float(mx)))
}

// nfNormalize is nfNormalizeRef.
func nfNormalize(w []float32, inv float32, f16v bool) {
	if !useFast || len(w) == 0 {
		nfNormalizeRef(w, inv, f16v)
		return
	}
	f := C.int(0)
	if f16v {
		f = 1
	}
	C.mica_nf_normalize(fptr(w), C.long(len(w)), C.float(inv), f)
}

// nfRoundF16 is nfRoundF16Ref; len(dst) >= len(src).
func nfRoundF16(src, dst []float32) {
	if !useFast || len(src) == 0 {
		nfRoundF16Ref(src, dst)
		return
	}
	_ = dst[len(src)-1]
	C.mica_nf_round_f16(fptr(src), fptr(dst), C.long(len(src)))
}

// kvPtrAt points at element off of kv's storage.
func kvPtrAt(kv KV, off int) (unsafe.Pointer, C.int) {
	if kv.F16 != nil {
		return unsafe.Pointer(&kv.F16[off]), 1
	}
	return unsafe.Pointer(&kv.F32[off]), 0
}
