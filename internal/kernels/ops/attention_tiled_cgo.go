//go:build cgo && amd64

package ops

/*
#include <stdint.h>

typedef struct {
	long nhead, nkvhead, d, dv, nkv, nq, bq;
	long q_row, k_row, k_head, v_row, v_head, o_row;
	float scale, softcap;
	int causal, window, kf16, vf16;
} mica_tattn_cfg;

long mica_tattn_scratch(long bq, long d, long dv);
void mica_tattn_tiles_avx2(const mica_tattn_cfg *c, const float *q, const void *k, const void *v,
	const int32_t *qpos, const int32_t *kpos, const float *mask, float *out, float *scratch,
	long t0, long t1);
void mica_tattn_tiles_emu16(const mica_tattn_cfg *c, const float *q, const void *k, const void *v,
	const int32_t *qpos, const int32_t *kpos, const float *mask, float *out, float *scratch,
	long t0, long t1);
void mica_tattn_tiles_avx512(const mica_tattn_cfg *c, const float *q, const void *k, const void *v,
	const int32_t *qpos, const int32_t *kpos, const float *mask, float *out, float *scratch,
	long t0, long t1);
*/
import "C"

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAVX512 is whether the CPU can run the AVX-512F tiled kernel (it also
// uses AVX2, FMA and F16C for its packing and conversions), or the
// avx512emu test build emulates it (emu512.go).
var hasAVX512 = hasAVX2 && (cpu.X86.HasAVX512F || avx512Emulated)

// tiledAVX512 selects the AVX-512F tiled kernel where the CPU has it; tests
// switch it off to compare with the AVX2 kernel. The two give the same bits
// (every lane runs the same operations). Where the CPU lacks AVX-512 the
// avx512emu test build runs it through SIMDe.
var tiledAVX512 = hasAVX512

// tiledEmu16 (tests only) runs the kernel's body with 16 lanes emulated by
// pairs of AVX2 vectors: the AVX-512 kernel's layout, on any AVX2 machine.
var tiledEmu16 = false

// attentionTiledFast runs tiles [t0, t1) with the AVX-512 or AVX2 kernel
// of attention_tiled_amd64.c; a.nkv > 0.
func attentionTiledFast(a *attnArgs, nQ, t0, t1 int) {
	p := a.p
	cfg := C.mica_tattn_cfg{
		nhead: C.long(p.NHead), nkvhead: C.long(p.NKVHead), d: C.long(p.HeadDim), dv: C.long(a.dv),
		nkv: C.long(a.nkv), nq: C.long(nQ), bq: attnTileRows,
		q_row: C.long(a.qRow), k_row: C.long(a.k.RowStride), k_head: C.long(a.k.HeadStride),
		v_row: C.long(a.v.RowStride), v_head: C.long(a.v.HeadStride), o_row: C.long(a.oRow),
		scale: C.float(p.Scale), softcap: C.float(p.Softcap), window: C.int(p.Window),
	}
	if p.Causal {
		cfg.causal = 1
	}
	kp, kf16 := kvPtr(a.k)
	vp, vf16 := kvPtr(a.v)
	cfg.kf16, cfg.vf16 = kf16, vf16
	var qpos, kpos *C.int32_t
	if (p.Causal || p.Window > 0) && len(a.qPos) > 0 {
		// only masking reads query positions (Validate checked their length)
		qpos = (*C.int32_t)(unsafe.Pointer(&a.qPos[0]))
	}
	if len(a.kPos) > 0 {
		kpos = (*C.int32_t)(unsafe.Pointer(&a.kPos[0]))
	}
	need := int(C.mica_tattn_scratch(attnTileRows, C.long(p.HeadDim), C.long(a.dv)))
	sp := attnScratch.Get().(*[]float32)
	if cap(*sp) < need {
		*sp = make([]float32, need)
	}
	switch {
	case tiledEmu16:
		C.mica_tattn_tiles_emu16(&cfg, fptr(a.q), kp, vp, qpos, kpos, fptr(a.mask), fptr(a.out),
			fptr((*sp)[:need]), C.long(t0), C.long(t1))
	case tiledAVX512:
		C.mica_tattn_tiles_avx512(&cfg, fptr(a.q), kp, vp, qpos, kpos, fptr(a.mask), fptr(a.out),
			fptr((*sp)[:need]), C.long(t0), C.long(t1))
	default:
		C.mica_tattn_tiles_avx2(&cfg, fptr(a.q), kp, vp, qpos, kpos, fptr(a.mask), fptr(a.out),
			fptr((*sp)[:need]), C.long(t0), C.long(t1))
	}
	attnScratch.Put(sp)
}
