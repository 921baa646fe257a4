//go:build cgo && amd64

package ops

/*
#include <stdint.h>

void mica_nf_scores(const float *q, const void *k, int kf16, long d, long krow,
	const int32_t *idx, long n, float *s);
void mica_nf_scores_g(const float *q, long qs, int G, const void *k, int kf16, long d, long krow,
	const int32_t *idx, long n, float *s, long ss);
void mica_nf_output_g(const float *w, long ws, int G, const void *v, int vf16, long dv, long vrow,
	const int32_t *idx, long n, float *acc, float *out, long os);
double mica_nf_softmax_exp(float *w, long n, float mx);
void mica_nf_round_f16(const float *src, float *dst, long n);
void mica_nf_normalize(float *w, long n, float inv, int f16);
*/
import "C"

import "unsafe"

// nfScores, nfSoftmaxExp and nfOutput run the AVX2 kernels of attention_ggml_amd64.c, or
// the plain-Go reference when the fast paths are off.
func nfScores(q []float32, k KV, off int, idx []int32, s []float32) {
	if !useFast || len(idx) == 0 {
		nfScoresRef(q, k, off, idx, s)
		return
	}
	kp, kf16 := kvPtrAt(k, off)
	C.mica_nf_scores(fptr(q), kp, kf16, C.long(len(q)), C.long(k.RowStride),
		(*C.int32_t)(unsafe.Pointer(&idx[0])), C.long(len(idx)), fptr(s))
}

// nfScoresGroup is nfScores for the G queries of q (rows of len(q)/G) that
// see the same cells idx: the scores of query g go to s[g·ss:]. Up to four
// queries share one pass over K.
func nfScoresGroup(q []float32, G int, k KV, off int, idx []int32, s []float32, ss int) {
	d := len(q) / G
	if !useFast || len(idx) == 0 {
		nfScoresGroupRef(q, G, k, off, idx, s, ss)
		return
	}
	kp, kf16 := kvPtrAt(k, off)
	for g0 := 0; g0 < G; g0 += 4 {
		n := min(4, G-g0)
		if n == 1 {
			nfScores(q[g0*d:g0*d+d], k, off, idx, s[g0*ss:])
			continue
		}
		C.mica_nf_scores_g(fptr(q[g0*d:]), C.long(d), C.int(n), kp, kf16, C.long(d), C.long(k.RowStride),
			(*C.int32_t)(unsafe.Pointer(&idx[0])), C.long(len(idx)), fptr(s[g0*ss:]), C.long(ss))
	}
}

// nfOutputGroup is nfOutputGroupRef: two heads at a time share each V
// vector's load and conversion.
func nfOutputGroup(w []float32, G, ws int, v KV, off int, idx []int32, acc, out []float32, dv, os int) {
	if !useFast || len(idx) == 0 || dv == 0 {
		nfOutputGroupRef(w, G, ws, v, off, idx, acc, out, dv, os)
		return
	}
	_ = out[(G-1)*os+dv-1]
	_ = acc[min(G, 2)*16*dv-1]
	_ = w[(G-1)*ws+int(idx[len(idx)-1])]
	vp, vf16 := kvPtrAt(v, off)
	for g0 := 0; g0 < G; g0 += 2 {
		n := min(2, G-g0)
		C.mica_nf_output_g(fptr(w[g0*ws:]), C.long(ws), C.int(n), vp, vf16, C.long(dv), C.long(v.RowStride),
			(*C.int32_t)(unsafe.Pointer(&idx[0])), C.long(len(idx)), fptr(acc), fptr(out[g0*os:]), C.long(os))
	}
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
