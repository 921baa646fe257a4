package ops

import (
	"math"

	"mica/internal/kernels/quant"
)

// attentionGGML reproduces, step for step, ggml's CPU flash-attention
// "one chunk" kernel, which llama.cpp runs for batches of fewer than 64
// queries (token generation, short prompts): q is rounded to F16 when K is
// F16; each key's score is a dot product summed like ggml's AVX2
// ggml_vec_dot_f16/f32 (four 8-lane FMA accumulators over blocks of 32,
// the same reduction, leftovers in double); the online softmax advances one
// key at a time with expf; and with F16 V the running output is kept in F16,
// rounded after every key (ggml's VKQ16). This costs accuracy (about 1e-3
// relative with F16 V) but lets mica match llama.cpp's logits. Plain Go, no
// fast path: meant for parity runs. Multiply-adds are fused where ggml's
// -march=native build fuses them (the FMA intrinsics and, by GCC's default
// contraction, S = S*ms + vs); a product is exact in float64, so
// float32(a*b + c) computed in float64 equals a fused float32 multiply-add
// except for rare double-rounding cases.
func attentionGGML(a *attnArgs, r0, r1 int) {
	p := a.p
	d, dv := p.HeadDim, a.dv
	group := p.NHead / p.NKVHead
	scale := p.Scale
	if p.Softcap != 0 {
		scale /= p.Softcap
	}
	qbuf := make([]float32, d)
	kbuf := make([]float32, d)
	acc := make([]float32, dv)
	negInf := float32(math.Inf(-1))
	f16v := a.v.F16 != nil
	for r := r0; r < r1; r++ {
		i, h := r/p.NHead, r%p.NHead
		g := h / group
		q := a.q[i*a.qRow+h*d : i*a.qRow+h*d+d]
		if a.k.F16 != nil {
			for e, v := range q {
				qbuf[e] = quant.FP16ToFP32(quant.FP32ToFP16(v))
			}
		} else {
			copy(qbuf, q)
		}
		var qp int32
		if a.qPos != nil {
			qp = a.qPos[i]
		}
		clear(acc)
		m, sum := negInf, float32(0)
		for j := 0; j < a.nkv; j++ {
			var mv float32
			if a.kPos != nil {
				kp := a.kPos[j]
				if kp < 0 || (p.Causal && kp > qp) || (p.Window > 0 && int(qp)-int(kp) >= p.Window) {
					continue
				}
			}
			if a.mask != nil {
				mv = a.mask[i*a.nkv+j]
				if math.IsInf(float64(mv), -1) {
					continue
				}
			}
			koff := j*a.k.RowStride + g*a.k.HeadStride
			if a.k.F16 != nil {
				for e := range kbuf {
					kbuf[e] = f16to32(a.k.F16[koff+e])
				}
			} else {
				copy(kbuf, a.k.F32[koff:koff+d])
			}
			s := ggmlDot(qbuf, kbuf, a.k.F16 != nil) * scale
			if p.Softcap != 0 {
				s = p.Softcap * float32(math.Tanh(float64(s)))
			}
			s += mv
			ms, vs := float32(1), float32(1)
			if s > m {
				mold := m
				m = s
				ms = float32(math.Exp(float64(mold - m)))
				for e := range acc {
					acc[e] *= ms
					if f16v {
						acc[e] = roundF16(acc[e])
					}
				}
			} else {
				vs = float32(math.Exp(float64(s - m)))
			}
			voff := j*a.v.RowStride + g*a.v.HeadStride
			for e := range acc {
				var v float32
				if f16v {
					v = f16to32(a.v.F16[voff+e])
				} else {
					v = a.v.F32[voff+e]
				}
				acc[e] = fma32(v, vs, acc[e])
				if f16v {
					acc[e] = roundF16(acc[e])
				}
			}
			sum = fma32(sum, ms, vs)
		}
		o := a.out[i*a.oRow+h*dv : i*a.oRow+h*dv+dv]
		var inv float32
		if sum != 0 {
			inv = 1 / sum
		}
		for e := range o {
			o[e] = acc[e] * inv
		}
	}
}

// ggmlDot sums x·y like ggml's AVX2 vec_dot: four 8-lane accumulators
// over blocks of 32 with fused multiply-adds, reduced (acc0+acc2)+(acc1+acc3)
// lane-wise, then the 8 lanes as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)); the
// leftover elements are added in double (F16) or float (F32).
func ggmlDot(x, y []float32, f16 bool) float32 {
	var acc [4][8]float32
	n := len(x)
	np := n &^ 31
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for l := 0; l < 8; l++ {
				k := i + 8*j + l
				acc[j][l] = fma32(x[k], y[k], acc[j][l])
			}
		}
	}
	var t [8]float32
	for l := range t {
		t[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
	}
	r := ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]))
	if f16 {
		s := float64(r)
		for k := np; k < n; k++ {
			s += float64(x[k] * y[k])
		}
		return float32(s)
	}
	for k := np; k < n; k++ {
		r = fma32(x[k], y[k], r)
	}
	return r
}

// fma32 is a*b + c rounded once to float32, exactly (IEEE fusedMultiplyAdd
// in binary32, what vfmadd...ps computes). The product is exact in float64;
// the float64 sum s is rounded once and its error recovered by TwoSum; to
// avoid double rounding, an inexact s with an even last bit is moved to its
// neighbour on the error's side (round to odd), which then rounds to
// float32 correctly (53 >= 24+2 bits). That is only needed when s lies
// exactly halfway between two float32 values (its 29 low bits 1 followed by
// zeros): otherwise s is on the same side of every float32 midpoint as the
// exact sum, and rounds like it (checked for results in float32's normal
// range, where the midpoints have that bit pattern).
func fma32(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b))
	cc := float64(c)
	s := p + cc
	if math.Float64bits(s)&(1<<29-1) != 1<<28 && math.Abs(s) >= 0x1p-126 {
		return float32(s)
	}
	bv := s - p
	e := (p - (s - bv)) + (cc - bv)
	if bits := math.Float64bits(s); e != 0 && bits&1 == 0 && bits&(0x7ff<<52) != 0x7ff<<52 {
		s = math.Float64frombits(bits + 1 - (math.Float64bits(e)^bits)>>63<<1)
	}
	return float32(s)
}

func roundF16(x float32) float32 { return quant.FP16ToFP32(quant.FP32ToFP16(x)) }

// attentionNoFlash is NumericsGGMLNoFlash: llama.cpp's attention without
// flash attention, as ggml's CPU backend computes it on an AVX-512 machine
// for a batch of at least two queries (llama.cpp's build_attn_mha):
//
//  1. kq = ggml_mul_mat(k, q): q is converted to K's vec-dot type (F16
//     with round to nearest even when K is F16, kept F32 when K is F32);
//     each score is a dot product summed like llamafile's tinyBLAS<16>:
//     16 lanes, lane l taking elements l, l+16, … by fused multiply-adds,
//     then _mm512_reduce_add_ps (lanes l+8 onto l, l+4 onto l, then
//     (l0+l2)+(l1+l3)). Head dimensions that are not a multiple of 16
//     (tinyBLAS declines them) add their last elements after the
//     reduction, in order, by fused multiply-adds.
//  2. With a softcap c: s = c*tanh(s*(Scale/c)) (ggml_scale, ggml_tanh,
//     ggml_scale), and the softmax scale is 1; otherwise s*Scale.
//  3. ggml_soft_max_ext: w = s*scale + mask (masked cells -Inf); max; per
//     group of 16 cells e = ggml_v_expf(w - max) (the AVX-512 polynomial,
//     reproduced exactly by expGGML), the group's 16 values reduced like
//     _mm512_reduce_add_ps and added to a double sum; then each e is
//     multiplied by float(1/sum).
//  4. kqv = ggml_mul_mat(v, kq): ggml converts kq to F16 when V is F16
//     (kept F32 when V is F32), then each output element is a tinyBLAS<16>
//     dot over the cache cells of the transposed V: lane j mod 16 for
//     cell j, reduced as above. Masked cells have weight 0 and add
//     exactly nothing, so they are skipped. Visible cells whose weight
//     is 0 (underflow in the exponential or the F16 rounding) are not:
//     fma(v, 0, acc) = acc for finite v (acc starts at +0 and is never
//     -0), and keeping them keeps runs of consecutive cells whole for the
//     fast kernel.
//
// This reproduces llama.cpp bit for bit when cell j here is llama.cpp's
// cell j (for a fresh sequence, position j) and llama.cpp's n_kv (its
// number of cells, padded to 256 or the cache size) is a multiple of 16 —
// both needed for tinyBLAS to take the products and for every cell's
// exponential to go through the vectorised expf. ggml runs its own
// vec_dot_f16 (a different summation order) instead of tinyBLAS for a
// single query (decode), and mica does not follow that: it uses this one
// order for every batch size, so decode equals prefill bit for bit.
// Work is done in blocks: a few consecutive queries (up to nfBlockRows
// rows of one K/V head) whose visible cells nearly coincide, as in a
// causal prompt. The block's cells are the union of theirs; every row's
// scores come from one pass over K, and its outputs from one pass over V,
// summed over all the union's cells. A cell a query cannot see has weight
// +0 there, and adds exactly nothing: fma(v, +0, acc) = acc for finite v
// (acc starts at +0 and is never -0); a block whose extra cells hold a
// non-finite V value is done one query at a time. The softmax's groups of
// 16 run over the union's span only: the groups outside it add +0 to the
// sum. Memory: nfBlockRows (or the group size, if larger) score rows of
// NKV floats and as many int32 lists of visible cells, whatever the number
// of rows.
// The scores, the softmax (scale, mask, max, exponentials, normalisation
// with the weights' F16 rounding), q's F16 rounding and the output sums run
// in C with AVX2+FMA+F16C (attention_ggml_amd64.c) when the fast paths are
// on, performing the same operations as nfScoresRef, nfScale, maxAt,
// nfSoftmaxExpRef, nfNormalizeRef, nfRoundF16Ref and nfOutputRef; the
// rest (visibility, softcap, blocks) is Go.
func attentionNoFlash(a *attnArgs, r0, r1 int) {
	p := a.p
	group := p.NHead / p.NKVHead
	maxRows := max(group, nfBlockRows)
	sc := nfScratchPool.Get().(*nfScratch)
	defer nfScratchPool.Put(sc)
	b := sc.block(a, maxRows, maxRows/group+2)
	b.ordered = nfOrdered(a.kPos, a.nkv)
	for g := 0; g < p.NKVHead; g++ {
		b.g = g
		for i := r0 / p.NHead; i <= (r1-1)/p.NHead; i++ {
			ha, hb := max(g*group, r0-i*p.NHead), min((g+1)*group, r1-i*p.NHead)
			if ha < hb {
				b.add(i, ha, hb)
			}
		}
		b.flush()
	}
}

// nfSoftmaxRowRef turns row w's raw scores into weights over the cells
// [lo, hi) (lo a multiple of 16, covering idx): the visible cells idx by
// nfScale, the others -Inf, then the exponentials and the normalisation.
// It returns the maximum (-Inf: no visible cell, nothing more done).
func nfSoftmaxRowRef(w []float32, lo, hi int, idx []int32, mr []float32, scale, softcap, capScale float32,
	f16v bool) float32 {
	negInf := float32(math.Inf(-1))
	k := 0
	for j := lo; j < hi; j++ {
		if k < len(idx) && int(idx[k]) == j {
			k++
			continue
		}
		w[j] = negInf
	}
	mx := nfScale(w, idx, mr, scale, softcap, capScale)
	if mx != negInf {
		nfExpNormalize(w[lo:hi], mx, f16v)
	}
	return mx
}

// nfExpNormalize is the softmax's second half: the exponentials, their sum,
// each weight times float(1/sum).
func nfExpNormalize(w []float32, mx float32, f16v bool) {
	sum := nfSoftmaxExp(w, mx)
	nfNormalize(w, float32(1/sum), f16v)
}

// nfOrdered says whether kPos (of nkv cells) increases strictly from ≥ 0:
// then a query's visible cells are one range, found by binary search.
func nfOrdered(kPos []int32, nkv int) bool {
	if kPos == nil || nkv == 0 || kPos[0] < 0 {
		return false
	}
	for j := 1; j < nkv; j++ {
		if kPos[j] <= kPos[j-1] {
			return false
		}
	}
	return true
}

// nfPosRange is the positions lo ≤ kp ≤ hi a query at qp sees.
func nfPosRange(qp int32, causal bool, window int) (lo, hi int32) {
	lo, hi = 0, int32(math.MaxInt32)
	if causal {
		hi = qp
	}
	if window > 0 {
		lo = max(lo, int32(max(int64(qp)-int64(window)+1, 0)))
	}
	return lo, hi
}

// nfVisible appends to idx the cells among the first nkv that the query at
// position qp sees: filled (kPos ≥ 0), not after it when causal, within
// the window, and not masked to -Inf.
func nfVisible(idx []int32, kPos []int32, mr []float32, qp int32, causal bool, window, nkv int) []int32 {
	negInf := float32(math.Inf(-1))
	if kPos == nil {
		for j := 0; j < nkv; j++ {
			if mr == nil || mr[j] != negInf {
				idx = append(idx, int32(j))
			}
		}
		return idx
	}
	kPos = kPos[:nkv]
	lo, hi := nfPosRange(qp, causal, window)
	for j, kp := range kPos {
		if kp < lo || kp > hi || (mr != nil && mr[j] == negInf) {
			continue
		}
		idx = append(idx, int32(j))
	}
	return idx
}

// nfScale turns the scores of cells idx into logits: s·scale, or
// softcap·tanh(s·scale/softcap), plus the mask row mr when there is one;
// it returns their maximum. (One loop per case: the per-cell tests cost
// as much as the arithmetic.)
func nfScale(w []float32, idx []int32, mr []float32, scale, softcap, capScale float32) float32 {
	switch {
	case softcap != 0:
		for _, j := range idx {
			s := float32(softcap * float32(math.Tanh(float64(float32(w[j]*capScale)))))
			if mr != nil {
				s += mr[j]
			}
			w[j] = s
		}
	case mr != nil:
		mr = mr[:len(w)]
		for _, j := range idx {
			w[j] = float32(w[j]*scale) + mr[j]
		}
	default:
		for _, j := range idx {
			w[j] = float32(w[j] * scale)
		}
	}
	return maxAt(w, idx)
}

// maxAt returns max(-Inf, w[idx[0]], w[idx[1]], …) folded in order with
// the built-in max, whose NaN- and zero-aware sequence costs more than the
// rest of nfScale: four running maxima by plain comparison instead, which
// give the same bits unless the maximum is a zero (the built-in prefers
// +0) or a value is NaN (which NaN the fold returns): then the fold is
// redone in order.
func maxAt(w []float32, idx []int32) float32 {
	negInf := float32(math.Inf(-1))
	m0, m1, m2, m3 := negInf, negInf, negInf, negInf
	nan := false
	i := 0
	for ; i+4 <= len(idx); i += 4 {
		v0, v1, v2, v3 := w[idx[i]], w[idx[i+1]], w[idx[i+2]], w[idx[i+3]]
		if !(v0 <= m0) {
			m0, nan = v0, nan || v0 != v0
		}
		if !(v1 <= m1) {
			m1, nan = v1, nan || v1 != v1
		}
		if !(v2 <= m2) {
			m2, nan = v2, nan || v2 != v2
		}
		if !(v3 <= m3) {
			m3, nan = v3, nan || v3 != v3
		}
	}
	for ; i < len(idx); i++ {
		if v := w[idx[i]]; !(v <= m0) {
			m0, nan = v, nan || v != v
		}
	}
	mx := max(max(m0, m1), max(m2, m3))
	if nan || mx == 0 {
		mx = negInf
		for _, j := range idx {
			mx = max(mx, w[j])
		}
	}
	return mx
}

// nfNormalizeRef multiplies each nonzero w[j] by inv and rounds it to F16
// and back when f16v.
func nfNormalizeRef(w []float32, inv float32, f16v bool) {
	for j, e := range w {
		if e != 0 {
			e = float32(e * inv)
			if f16v {
				e = roundF16(e)
			}
			w[j] = e
		}
	}
}

// nfRoundF16Ref sets dst[e] to src[e] rounded to F16 and back.
func nfRoundF16Ref(src, dst []float32) {
	for e, v := range src {
		dst[e] = roundF16(v)
	}
}

// nfSoftmaxExpRef replaces each w[j] by expGGML(w[j]-mx), masked cells
// (-Inf) by 0, and returns their sum: per group of 16 cells from cell 0,
// reduced like _mm512_reduce_add_ps and added to a float64 (ggml's
// ggml_vec_soft_max_f32 on AVX-512).
func nfSoftmaxExpRef(w []float32, mx float32) float64 {
	negInf := float32(math.Inf(-1))
	var sum float64
	for j0 := 0; j0 < len(w); j0 += 16 {
		var ex [16]float32
		for l := 0; l < 16 && j0+l < len(w); l++ {
			if w[j0+l] != negInf {
				ex[l] = expGGML(w[j0+l] - mx)
			}
			w[j0+l] = ex[l]
		}
		sum += float64(reduce16(&ex))
	}
	return sum
}

// nfScoresRef sets s[j] = dot16(q, key j) for the cells j in idx; k's
// element off is the head's first.
func nfScoresRef(q []float32, k KV, off int, idx []int32, s []float32) {
	d := len(q)
	kbuf := make([]float32, d)
	for _, j := range idx {
		koff := int(j)*k.RowStride + off
		if k.F16 != nil {
			for e := range kbuf {
				kbuf[e] = f16to32(k.F16[koff+e])
			}
		} else {
			copy(kbuf, k.F32[koff:koff+d])
		}
		s[j] = dot16(q, kbuf)
	}
}

// nfScoresBlkRef is nfScoresRef for each of the R queries of q (rows of
// len(q)/R), query r's scores in s[r·ss:].
func nfScoresBlkRef(q []float32, R int, k KV, off int, idx []int32, s []float32, ss int) {
	d := len(q) / R
	for r := 0; r < R; r++ {
		nfScoresRef(q[r*d:r*d+d], k, off, idx, s[r*ss:])
	}
}

// nfOutputRef sets out[e] to the 16-lane sum over the cells j in idx (in
// increasing order) of v[j][e]·w[j], lane j mod 16 (tinyBLAS<16> over the
// transposed V), reduced like _mm512_reduce_add_ps. acc is scratch of
// 16·len(out) floats.
func nfOutputRef(w []float32, v KV, off int, idx []int32, acc, out []float32) {
	dv := len(out)
	clear(acc)
	for _, j := range idx {
		lane := acc[int(j&15)*dv : int(j&15)*dv+dv]
		voff := int(j)*v.RowStride + off
		wj := w[j]
		if v.F16 != nil {
			vr := v.F16[voff : voff+dv]
			for e := range lane {
				lane[e] = fma32(f16to32(vr[e]), wj, lane[e])
			}
		} else {
			vr := v.F32[voff : voff+dv]
			for e := range lane {
				lane[e] = fma32(vr[e], wj, lane[e])
			}
		}
	}
	var t [16]float32
	for e := range out {
		for l := range t {
			t[l] = acc[l*dv+e]
		}
		out[e] = reduce16(&t)
	}
}

// nfOutputBlkRef is nfOutputRef for each of R weight rows (row r at
// w[r·ws:]), row r's output at out[ooff[r] : ooff[r]+dv]; acc has room for
// 16·dv floats.
func nfOutputBlkRef(w []float32, ws, R int, v KV, off int, idx []int32, acc, out []float32, ooff []int, dv int) {
	for r := 0; r < R; r++ {
		nfOutputRef(w[r*ws:], v, off, idx, acc[:16*dv], out[ooff[r]:ooff[r]+dv])
	}
}

// dot16 is tinyBLAS<16>'s dot product (see attentionNoFlash); elements past
// the last multiple of 16 are added after the reduction.
func dot16(x, y []float32) float32 {
	var acc [16]float32
	n := len(x)
	main := n &^ 15
	for k0 := 0; k0 < main; k0 += 16 {
		xb, yb := x[k0:k0+16], y[k0:k0+16]
		for l := range acc {
			acc[l] = fma32(yb[l], xb[l], acc[l])
		}
	}
	s := reduce16(&acc)
	for k := main; k < n; k++ {
		s = fma32(y[k], x[k], s)
	}
	return s
}

// reduce16 is _mm512_reduce_add_ps: lanes l+8 onto l, l+4 onto l, then
// (l0+l2)+(l1+l3). It modifies acc.
func reduce16(acc *[16]float32) float32 {
	for l := 0; l < 8; l++ {
		acc[l] += acc[l+8]
	}
	for l := 0; l < 4; l++ {
		acc[l] += acc[l+4]
	}
	return (acc[0] + acc[2]) + (acc[1] + acc[3])
}

// expGGML is ggml's AVX-512 ggml_v_expf for one lane: n = round(x/ln2) by
// the 1.5·2²³ trick, b = x - n·ln2 in two fused steps, a degree-5
// polynomial j ≈ e^b, and vscalefps: j·2ⁿ rounded once. |n| > 192 gives
// 0 (x < 0) or +Inf.
func expGGML(x float32) float32 {
	const r = float32(0x1.8p23)
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	if n > 192 || n < -192 {
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	u := float32(b * b)
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u,
		fma32(0x1.ffffecp-1, b, 1))
	return float32(math.Ldexp(float64(j), int(n)))
}
