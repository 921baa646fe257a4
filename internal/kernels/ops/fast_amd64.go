//go:build cgo && amd64

package ops

/*
#cgo CFLAGS: -O2
#include <stdint.h>

typedef struct {
	long nhead, nkvhead, d, dv, nkv;
	long q_row, q_head;
	long k_row, k_head;
	long v_row, v_head;
	long o_row, o_head;
	long mask_row;
	float scale, softcap;
	int causal, window, kf16, vf16;
} mica_attn_cfg;

void mica_exp(const float *x, float *y, long n);
void mica_to_f16(const float *x, uint16_t *y, long n);
void mica_f16_table(const float *x, const float *g, float *y, long n, const uint16_t *table, int clamp);
void mica_softcap(const float *x, float *y, long n, float inv, float cap);
void mica_silu(const float *x, const float *g, float *y, long n);
void mica_softmax_rows(const float *x, float *y, long n, float scale, const float *mask, long maskRows, long r0, long r1);
void mica_rmsnorm_rows(const float *x, const float *w, float *y, long n, float eps, long r0, long r1);
void mica_binary(const float *a, const float *b, float *y, long n, long nb, int mul);
void mica_rope_neox(float *x, const float *cs, long r0, long r1, long ld, long per, long h);
void mica_attn_rows(const mica_attn_cfg *c, const float *q, const void *k, const void *v,
	const int32_t *qpos, const int32_t *kpos, const float *mask, float *out,
	float *acc, float *blk, long r0, long r1);
*/
import "C"

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAVX2 is whether this CPU can run the C fast paths.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// useFast selects the fast paths; tests switch it off to reach the reference.
var useFast = hasAVX2

func fastName() string { return "avx2" }

func fptr(x []float32) *C.float {
	if len(x) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&x[0]))
}

func expFast(x, y []float32) {
	C.mica_exp(fptr(x), fptr(y), C.long(len(x)))
}

func toF16Fast(x []float32, y []byte) {
	if len(x) > 0 {
		C.mica_to_f16(fptr(x), (*C.uint16_t)(unsafe.Pointer(&y[0])), C.long(len(x)))
	}
}

func f16TableFast(x, g, y []float32, table *[1 << 16]uint16, clamp bool) {
	cl := C.int(0)
	if clamp {
		cl = 1
	}
	C.mica_f16_table(fptr(x), fptr(g), fptr(y), C.long(len(x)), (*C.uint16_t)(unsafe.Pointer(&table[0])), cl)
}

func softcapFast(x, y []float32, inv, cap float32) {
	C.mica_softcap(fptr(x), fptr(y), C.long(len(x)), C.float(inv), C.float(cap))
}

func siluFast(x, g, y []float32) {
	C.mica_silu(fptr(x), fptr(g), fptr(y), C.long(len(x)))
}

func softmaxFast(x, out []float32, n int, scale float32, mask []float32, maskRows, r0, r1 int) {
	C.mica_softmax_rows(fptr(x), fptr(out), C.long(n), C.float(scale), fptr(mask), C.long(maskRows), C.long(r0), C.long(r1))
}

func rmsNormFast(x, w, out []float32, n int, eps float32, r0, r1 int) {
	C.mica_rmsnorm_rows(fptr(x), fptr(w), fptr(out), C.long(n), C.float(eps), C.long(r0), C.long(r1))
}

// binaryFast is out = a + b (mul: a ⊙ b) over len(out) values, b of length
// nb (len(out), or one row broadcast over rows of nb values).
func binaryFast(a, b, out []float32, nb int, mul bool) {
	m := C.int(0)
	if mul {
		m = 1
	}
	C.mica_binary(fptr(a), fptr(b), fptr(out), C.long(len(out)), C.long(nb), m)
}

// ropeNeoXFast is RoPEApply's NeoX rotation for rows [r0, r1) of x.
func ropeNeoXFast(x, cs []float32, nHeads, headDim, nRot, r0, r1 int) {
	// the C loop trusts these bounds: check them here (a panic, as the Go
	// loop's slicing would)
	if nHeads <= 0 || nRot > headDim || r0 < 0 {
		panic("ops: RoPEApply: bad heads, rotation or rows")
	}
	_, _ = x[r1*headDim-1], cs[((r1-1)/nHeads+1)*nRot-1]
	C.mica_rope_neox(fptr(x), fptr(cs), C.long(r0), C.long(r1), C.long(headDim), C.long(nHeads), C.long(nRot/2))
}

func attentionFast(a *attnArgs, r0, r1 int) {
	p := a.p
	cfg := C.mica_attn_cfg{
		nhead: C.long(p.NHead), nkvhead: C.long(p.NKVHead), d: C.long(p.HeadDim), dv: C.long(a.dv), nkv: C.long(a.nkv),
		q_row: C.long(a.qRow), q_head: C.long(p.HeadDim),
		k_row: C.long(a.k.RowStride), k_head: C.long(a.k.HeadStride),
		v_row: C.long(a.v.RowStride), v_head: C.long(a.v.HeadStride),
		o_row: C.long(a.oRow), o_head: C.long(a.dv),
		mask_row: C.long(a.nkv),
		scale:    C.float(p.Scale), softcap: C.float(p.Softcap),
		window: C.int(p.Window),
	}
	if p.Causal {
		cfg.causal = 1
	}
	kp, kf16 := kvPtr(a.k)
	vp, vf16 := kvPtr(a.v)
	cfg.kf16, cfg.vf16 = kf16, vf16
	var qpos, kpos *C.int32_t
	if len(a.qPos) > 0 {
		qpos = (*C.int32_t)(unsafe.Pointer(&a.qPos[0]))
	}
	if len(a.kPos) > 0 {
		kpos = (*C.int32_t)(unsafe.Pointer(&a.kPos[0]))
	}
	group := p.NHead / p.NKVHead
	need := group*a.dv + attnBlock*(p.HeadDim+a.dv)
	sp := attnScratch.Get().(*[]float32)
	if cap(*sp) < need {
		*sp = make([]float32, need)
	}
	scratch := (*sp)[:need]
	acc, blk := scratch[:group*a.dv], scratch[group*a.dv:]
	C.mica_attn_rows(&cfg, fptr(a.q), kp, vp, qpos, kpos, fptr(a.mask), fptr(a.out),
		fptr(acc), fptr(blk), C.long(r0), C.long(r1))
	attnScratch.Put(sp)
}

// attnScratch recycles the fast kernel's per-call scratch.
var attnScratch = sync.Pool{New: func() any { return new([]float32) }}

func kvPtr(kv KV) (unsafe.Pointer, C.int) {
	if kv.F16 != nil {
		return unsafe.Pointer(&kv.F16[0]), 1
	}
	return unsafe.Pointer(&kv.F32[0]), 0
}
