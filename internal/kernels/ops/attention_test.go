package ops

import (
	"fmt"
	"math"
	"math/big"
	"testing"

	"mica/internal/kernels/quant"
)

type attnCase struct {
	name                    string
	nHead, nKVHead, d, dv   int
	nQ, nKV                 int
	causal                  bool
	window                  int
	softcap                 float32
	kf16, vf16, mask, holes bool
}

// naiveAttention is the O(n²) oracle: full score rows in float64, the
// plain softmax, visibility from positions/mask exactly as documented.
func naiveAttention(c attnCase, p AttentionParams, a *AttentionArgs) []float64 {
	dv := c.dv
	out := make([]float64, c.nQ*c.nHead*dv)
	kval := func(kv KV, j, g, e int) float64 {
		off := j*kv.RowStride + g*kv.HeadStride + e
		if kv.F16 != nil {
			return float64(quant.FP16ToFP32(kv.F16[off]))
		}
		return float64(kv.F32[off])
	}
	for i := 0; i < c.nQ; i++ {
		for h := 0; h < c.nHead; h++ {
			g := h / (c.nHead / c.nKVHead)
			s := make([]float64, c.nKV)
			mx := math.Inf(-1)
			for j := range s {
				s[j] = math.Inf(-1)
				if a.KPos != nil {
					kp, qp := a.KPos[j], a.QPos[i]
					if kp < 0 || c.causal && kp > qp || c.window > 0 && qp-kp >= int32(c.window) {
						continue
					}
				}
				if a.Mask != nil && math.IsInf(float64(a.Mask[i*c.nKV+j]), -1) {
					continue
				}
				var dot float64
				for e := 0; e < c.d; e++ {
					dot += float64(a.Q[(i*c.nHead+h)*c.d+e]) * kval(a.K, j, g, e)
				}
				v := dot * float64(p.Scale)
				if c.softcap != 0 {
					v = float64(c.softcap) * math.Tanh(v/float64(c.softcap))
				}
				if a.Mask != nil {
					v += float64(a.Mask[i*c.nKV+j])
				}
				s[j] = v
				mx = math.Max(mx, v)
			}
			if math.IsInf(mx, -1) {
				continue
			}
			var sum float64
			for j := range s {
				s[j] = math.Exp(s[j] - mx)
				sum += s[j]
			}
			o := out[(i*c.nHead+h)*dv : (i*c.nHead+h)*dv+dv]
			for j := range s {
				if s[j] == 0 {
					continue
				}
				for e := range o {
					o[e] += s[j] / sum * kval(a.V, j, g, e)
				}
			}
		}
	}
	return out
}

func makeAttn(c attnCase, seed uint64) (AttentionParams, *AttentionArgs) {
	r := newRand(seed)
	p := AttentionParams{NHead: c.nHead, NKVHead: c.nKVHead, HeadDim: c.d, HeadDimV: c.dv,
		Scale: float32(1 / math.Sqrt(float64(c.d))), Softcap: c.softcap, Causal: c.causal, Window: c.window}
	a := &AttentionArgs{Q: randVec(r, c.nQ*c.nHead*c.d, 1.5), NKV: c.nKV, Out: make([]float32, c.nQ*c.nHead*c.dv)}
	kv := func(d int, f16 bool) KV {
		// llama.cpp layout: one row of all kv heads per cell
		return kvOf(randVec(r, c.nKV*c.nKVHead*d, 1.5), c.nKVHead*d, d, f16)
	}
	a.K, a.V = kv(c.d, c.kf16), kv(c.dv, c.vf16)
	if c.causal || c.window > 0 || c.holes {
		// queries are the last nQ positions of the sequence
		a.KPos = make([]int32, c.nKV)
		for j := range a.KPos {
			a.KPos[j] = int32(j)
			if c.holes && j%5 == 2 {
				a.KPos[j] = -1 // empty cell
			}
		}
		a.QPos = make([]int32, c.nQ)
		for i := range a.QPos {
			a.QPos[i] = int32(c.nKV - c.nQ + i)
		}
	}
	if c.mask {
		a.Mask = randVec(r, c.nQ*c.nKV, 0.5)
		for i := range a.Mask {
			if i%7 == 3 {
				a.Mask[i] = float32(math.Inf(-1))
			}
		}
	}
	return p, a
}

var attnCases = []attnCase{
	{name: "plain", nHead: 2, nKVHead: 2, d: 64, dv: 64, nQ: 3, nKV: 70},
	{name: "one key", nHead: 1, nKVHead: 1, d: 8, dv: 8, nQ: 1, nKV: 1},
	{name: "causal gqa", nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: 5, nKV: 130, causal: true},
	{name: "window", nHead: 4, nKVHead: 2, d: 40, dv: 40, nQ: 9, nKV: 200, causal: true, window: 70},
	{name: "softcap", nHead: 2, nKVHead: 1, d: 33, dv: 17, nQ: 4, nKV: 65, causal: true, softcap: 5},
	{name: "f16 kv", nHead: 8, nKVHead: 2, d: 128, dv: 128, nQ: 3, nKV: 129, causal: true, kf16: true, vf16: true},
	{name: "f16 k f32 v odd", nHead: 3, nKVHead: 3, d: 7, dv: 9, nQ: 2, nKV: 3, kf16: true},
	{name: "mask holes", nHead: 2, nKVHead: 1, d: 32, dv: 32, nQ: 6, nKV: 100, causal: true, mask: true, holes: true, vf16: true},
	{name: "window 1", nHead: 2, nKVHead: 2, d: 16, dv: 16, nQ: 4, nKV: 10, causal: true, window: 1},
	{name: "gqa 3 f16", nHead: 6, nKVHead: 2, d: 72, dv: 48, nQ: 5, nKV: 90, causal: true, kf16: true, vf16: true},
	{name: "runs of 32 and 48", nHead: 2, nKVHead: 1, d: 32, dv: 24, nQ: 24, nKV: 112, causal: true, vf16: true},
	{name: "gqa 8", nHead: 8, nKVHead: 1, d: 40, dv: 24, nQ: 3, nKV: 37, causal: true, mask: true, holes: true},
}

// Tolerances: outputs are convex combinations of v entries (|v| ≲ 6).
// float32 dot products of length ≤ 256 and the float32 online softmax give
// score errors ~1e-6 and probability errors of the same relative size, so
// the float32 kernels must be within 1e-4 absolute of the float64 oracle;
// fast and reference (same algorithm, different summation order and exp)
// within 2e-5.
func TestAttention(t *testing.T) {
	for ci, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			p, a := makeAttn(c, uint64(100+ci))
			rows := c.nQ * c.nHead
			want := naiveAttention(c, p, a)
			if err := Attention(p, a, c.nQ, 0, rows); err != nil {
				t.Fatal(err)
			}
			fast := append([]float32(nil), a.Out...)
			var ref []float32
			withRef(func() {
				clear(a.Out)
				if err := Attention(p, a, c.nQ, 0, rows); err != nil {
					t.Fatal(err)
				}
				ref = append([]float32(nil), a.Out...)
			})
			for i, w := range want {
				if d := math.Abs(float64(ref[i]) - w); d > 1e-4 {
					t.Fatalf("reference [%d] = %g, oracle %g", i, ref[i], w)
				}
			}
			closeEnough(t, "fast vs reference", fast, ref, 2e-5, 0)
			for _, parts := range splits(rows) {
				clear(a.Out)
				for _, s := range parts {
					if err := Attention(p, a, c.nQ, s[0], s[1]); err != nil {
						t.Fatal(err)
					}
				}
				sameBits(t, fmt.Sprintf("split %d", len(parts)), a.Out, fast)
			}
			// ggml small-batch emulation: q rounded to F16 for F16 keys
			// (score error ~|q||k|·2^-11 ≈ 1e-2 absolute at these sizes,
			// scaled by 1/sqrt(d)) and the F16 accumulator for F16 values
			// (2^-11 relative per step): 2e-2 absolute bounds both; with
			// F32 keys and values the bound is the F32 one, 1e-4.
			pg := p
			pg.GGMLSmallBatch = true
			clear(a.Out)
			if err := Attention(pg, a, c.nQ, 0, rows); err != nil {
				t.Fatal(err)
			}
			tol := 1e-4
			if c.kf16 || c.vf16 {
				tol = 2e-2
			}
			emu := append([]float32(nil), a.Out...)
			for i, w := range want {
				if d := math.Abs(float64(emu[i]) - w); d > tol {
					t.Fatalf("GGMLSmallBatch [%d] = %g, oracle %g", i, emu[i], w)
				}
			}
			for _, parts := range splits(rows) {
				clear(a.Out)
				for _, s := range parts {
					if err := Attention(pg, a, c.nQ, s[0], s[1]); err != nil {
						t.Fatal(err)
					}
				}
				sameBits(t, "GGMLSmallBatch split", a.Out, emu)
			}
			// llama.cpp's non-flash path: q and the weights rounded to F16
			// for F16 K and V, the same 2e-2 bound (the weights' rounding,
			// 2^-11 relative, moves outputs by at most 2^-11·Σ|v| ≈ 3e-3);
			// 1e-4 with F32 K and V (F32 sums and softmax only).
			pn := p
			pn.Numerics = NumericsGGMLNoFlash
			clear(a.Out)
			if err := Attention(pn, a, c.nQ, 0, rows); err != nil {
				t.Fatal(err)
			}
			nf := append([]float32(nil), a.Out...)
			for i, w := range want {
				if d := math.Abs(float64(nf[i]) - w); d > tol {
					t.Fatalf("NumericsGGMLNoFlash [%d] = %g, oracle %g", i, nf[i], w)
				}
			}
			sameBits(t, "NumericsGGMLNoFlash vs its spec", nf, noFlashSpec(c, pn, a))
			withRef(func() {
				clear(a.Out)
				if err := Attention(pn, a, c.nQ, 0, rows); err != nil {
					t.Fatal(err)
				}
			})
			sameBits(t, "NumericsGGMLNoFlash fast vs reference", a.Out, nf)
			for _, parts := range splits(rows) {
				clear(a.Out)
				for _, s := range parts {
					if err := Attention(pn, a, c.nQ, s[0], s[1]); err != nil {
						t.Fatal(err)
					}
				}
				sameBits(t, "NumericsGGMLNoFlash split", a.Out, nf)
			}
			// One query at a time (decode) gives the batch's bits.
			for i := 0; i < c.nQ; i++ {
				ai := oneQuery(c, a, i)
				if err := Attention(pn, &ai, 1, 0, c.nHead); err != nil {
					t.Fatal(err)
				}
				sameBits(t, "NumericsGGMLNoFlash one query", ai.Out, nf[i*c.nHead*c.dv:(i+1)*c.nHead*c.dv])
			}
		})
	}
}

// oneQuery is a's query i alone (its q rows, position and mask row), with
// an output of its own: a decode step of the same attention.
func oneQuery(c attnCase, a *AttentionArgs, i int) AttentionArgs {
	ai := *a
	ai.Q = a.Q[i*c.nHead*c.d : (i+1)*c.nHead*c.d]
	ai.Out = make([]float32, c.nHead*c.dv)
	if a.QPos != nil {
		ai.QPos = a.QPos[i : i+1]
	}
	if a.Mask != nil {
		ai.Mask = a.Mask[i*c.nKV : (i+1)*c.nKV]
	}
	return ai
}

// exactFMA is a·b + c rounded once to float32, computed with math/big (an
// oracle independent of fma32's round-to-odd trick; normal range only).
func exactFMA(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(256).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(256).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(256).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

// noFlashSpec evaluates the documented NumericsGGMLNoFlash arithmetic
// directly, in its own code: the full score matrix, explicit 16-lane sums
// with exactFMA, the lane reduction written out, ggml's soft_max.
func noFlashSpec(c attnCase, p AttentionParams, a *AttentionArgs) []float32 {
	val := func(kv KV, j, g, e int) float32 {
		off := j*kv.RowStride + g*kv.HeadStride + e
		if kv.F16 != nil {
			return quant.FP16ToFP32(kv.F16[off])
		}
		return kv.F32[off]
	}
	r16 := func(x float32) float32 { return quant.FP16ToFP32(quant.FP32ToFP16(x)) }
	hsum := func(l [16]float32) float32 {
		var a8 [8]float32
		for i := range a8 {
			a8[i] = l[i] + l[i+8]
		}
		var a4 [4]float32
		for i := range a4 {
			a4[i] = a8[i] + a8[i+4]
		}
		return (a4[0] + a4[2]) + (a4[1] + a4[3])
	}
	out := make([]float32, c.nQ*c.nHead*c.dv)
	for i := 0; i < c.nQ; i++ {
		for h := 0; h < c.nHead; h++ {
			g := h / (c.nHead / c.nKVHead)
			q := make([]float32, c.d)
			for e := range q {
				q[e] = a.Q[(i*c.nHead+h)*c.d+e]
				if a.K.F16 != nil {
					q[e] = r16(q[e])
				}
			}
			w := make([]float32, c.nKV)
			mx := float32(math.Inf(-1))
			for j := range w {
				w[j] = float32(math.Inf(-1))
				if a.KPos != nil {
					kp, qp := a.KPos[j], a.QPos[i]
					if kp < 0 || c.causal && kp > qp || c.window > 0 && qp-kp >= int32(c.window) {
						continue
					}
				}
				if a.Mask != nil && math.IsInf(float64(a.Mask[i*c.nKV+j]), -1) {
					continue
				}
				var lanes [16]float32
				main := c.d / 16 * 16
				for e := 0; e < main; e++ {
					lanes[e%16] = exactFMA(val(a.K, j, g, e), q[e], lanes[e%16])
				}
				s := hsum(lanes)
				for e := main; e < c.d; e++ {
					s = exactFMA(val(a.K, j, g, e), q[e], s)
				}
				if c.softcap != 0 {
					s = c.softcap * float32(math.Tanh(float64(s*(p.Scale/c.softcap))))
				} else {
					s *= p.Scale
				}
				if a.Mask != nil {
					s += a.Mask[i*c.nKV+j]
				}
				w[j] = s
				mx = max(mx, s)
			}
			o := out[(i*c.nHead+h)*c.dv : (i*c.nHead+h+1)*c.dv]
			if math.IsInf(float64(mx), -1) {
				continue
			}
			var sum float64
			for j0 := 0; j0 < c.nKV; j0 += 16 {
				var grp [16]float32
				for l := 0; l < 16 && j0+l < c.nKV; l++ {
					if !math.IsInf(float64(w[j0+l]), -1) {
						grp[l] = expGGML(w[j0+l] - mx)
					}
					w[j0+l] = grp[l]
				}
				sum += float64(hsum(grp))
			}
			inv := float32(1 / sum)
			for j := range w {
				w[j] *= inv
				if a.V.F16 != nil {
					w[j] = r16(w[j])
				}
			}
			for e := range o {
				var lanes [16]float32
				for j := range w {
					if w[j] != 0 {
						lanes[j%16] = exactFMA(val(a.V, j, g, e), w[j], lanes[j%16])
					}
				}
				o[e] = hsum(lanes)
			}
		}
	}
	return out
}

// TestExpGGML checks the emulated ggml_v_expf against e^x: within 3 ulp
// (ggml states 1.45 ulp plus 0.5 for its AVX2 variant; the AVX-512 one
// folds the 1 into the polynomial with one more rounding, and measures 2.2
// here), 0 for -Inf and far below, +Inf far above, exactly 1 at 0. A gross
// error in the emulation (a wrong constant or step) breaks these bounds;
// bit equality with ggml is checked end to end by the gemma parity test.
func TestExpGGML(t *testing.T) {
	if got := expGGML(0); got != 1 {
		t.Fatalf("exp(0) = %g", got)
	}
	for _, x := range []float32{float32(math.Inf(-1)), -200, -134} {
		if got := expGGML(x); got != 0 {
			t.Errorf("exp(%g) = %g, want 0", x, got)
		}
	}
	if got := expGGML(140); !math.IsInf(float64(got), 1) {
		t.Errorf("exp(140) = %g, want +Inf", got)
	}
	r := newRand(5)
	worst := 0.0
	for range 200000 {
		x := float32(-87 + 90*r.Float64()) // the normal range of results
		got, want := float64(expGGML(x)), math.Exp(float64(x))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		worst = max(worst, math.Abs(got-want)/ulp)
	}
	t.Logf("expGGML: max error %.2f ulp", worst)
	if worst > 3 {
		t.Errorf("expGGML: max error %.2f ulp > 3", worst)
	}
}

// TestFMA32 checks the round-to-odd fused multiply-add against math/big on
// random operands and on ties, where a double-rounding implementation
// fails.
func TestFMA32(t *testing.T) {
	r := newRand(6)
	for i := range 200000 {
		a := float32(r.NormFloat64())
		b := float32(r.NormFloat64())
		c := float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-20)))
		if i%2 == 0 { // make a·b + c land near a float32 tie
			c = -float32(float64(a) * float64(b))
		}
		if got, want := fma32(a, b, c), exactFMA(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
	// a·b = 2^-24 - 2^-60, c = 1 + 2^-23: the exact sum is just below the
	// tie between 1+2^-23 and 1+2^-22, so it rounds down to 1+2^-23;
	// rounding to float64 first lands on the tie, which rounds to even,
	// 1+2^-22.
	a, b, c := float32(1+0x1p-18), float32(0x1p-24-0x1p-42), float32(1+0x1p-23)
	if got, want := fma32(a, b, c), exactFMA(a, b, c); got != want || got != 1+0x1p-23 {
		t.Fatalf("tie case: fma32 = %.10g, big = %.10g, want %.10g", got, want, 1+0x1p-23)
	}
}

func TestAttentionNoVisibleKey(t *testing.T) {
	c := attnCase{nHead: 1, nKVHead: 1, d: 8, dv: 8, nQ: 1, nKV: 4, causal: true}
	p, a := makeAttn(c, 9)
	a.QPos[0] = -5 // before every key
	for i := range a.Out {
		a.Out[i] = 7
	}
	for _, fast := range []bool{true, false} {
		f := func() {
			if err := Attention(p, a, 1, 0, 1); err != nil {
				t.Fatal(err)
			}
		}
		if fast {
			f()
		} else {
			withRef(f)
		}
		for _, v := range a.Out {
			if v != 0 {
				t.Fatalf("fast=%v: no visible key gave %v, want zeros", fast, a.Out)
			}
		}
	}
}

func TestAttentionValidate(t *testing.T) {
	c := attnCase{nHead: 4, nKVHead: 2, d: 8, dv: 8, nQ: 2, nKV: 5, causal: true}
	p, a := makeAttn(c, 10)
	bad := []func(p *AttentionParams, a *AttentionArgs){
		func(p *AttentionParams, a *AttentionArgs) { p.NKVHead = 3 },
		func(p *AttentionParams, a *AttentionArgs) { a.Q = a.Q[:10] },
		func(p *AttentionParams, a *AttentionArgs) { a.K.F32 = a.K.F32[:len(a.K.F32)-1] },
		func(p *AttentionParams, a *AttentionArgs) { a.V.F16 = []uint16{1} },
		func(p *AttentionParams, a *AttentionArgs) { a.KPos = nil },
		func(p *AttentionParams, a *AttentionArgs) { a.Out = a.Out[:3] },
		func(p *AttentionParams, a *AttentionArgs) { p.Window = -1 },
		func(p *AttentionParams, a *AttentionArgs) { p.Numerics = NumericsGGMLNoFlash + 1 },
		func(p *AttentionParams, a *AttentionArgs) { p.Numerics, p.GGMLSmallBatch = NumericsGGMLNoFlash, true },
	}
	for i, f := range bad {
		pp, aa := p, *a
		f(&pp, &aa)
		if err := Attention(pp, &aa, c.nQ, 0, c.nQ*c.nHead); err == nil {
			t.Errorf("bad case %d accepted", i)
		}
	}
	if err := Attention(p, a, c.nQ, 0, c.nQ*c.nHead+1); err == nil {
		t.Error("row range past the end accepted")
	}
}

func TestF16To32(t *testing.T) {
	for h := range 1 << 16 {
		got, want := f16to32(uint16(h)), quant.FP16ToFP32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("f16to32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

// TestSoftmaxExpFast: the vectorised exponentials and sums of the
// non-flash softmax equal the plain-Go ones bit for bit over the whole
// range: masked cells, results that underflow to 0 or to subnormals,
// overflow to +Inf, and a tail that is not a whole group of 16.
func TestSoftmaxExpFast(t *testing.T) {
	needFast(t)
	r := newRand(9)
	for _, n := range []int{1, 15, 16, 17, 64, 333} {
		w := make([]float32, n)
		for i := range w {
			switch i % 7 {
			case 0:
				w[i] = float32(math.Inf(-1))
			case 1:
				w[i] = float32(-80 - 70*r.Float64()) // subnormal results and underflow
			case 2:
				w[i] = float32(-300 * r.Float64())
			case 3:
				w[i] = float32(150 * r.Float64()) // up to overflow
			default:
				w[i] = float32(-20 + 25*r.Float64())
			}
		}
		for _, mx := range []float32{0, 3.5, -10} {
			fast, ref := append([]float32(nil), w...), append([]float32(nil), w...)
			sf := nfSoftmaxExp(fast, mx)
			var sr float64
			withRef(func() { sr = nfSoftmaxExp(ref, mx) })
			sameBits(t, fmt.Sprintf("n=%d mx=%g exponentials", n, mx), fast, ref)
			if math.Float64bits(sf) != math.Float64bits(sr) {
				t.Fatalf("n=%d mx=%g: sum %v, reference %v", n, mx, sf, sr)
			}
		}
	}
}

// TestNormalizeFast: the vectorised normalisation (multiply, F16 rounding)
// equals the plain-Go one, with zeros,
// weights that round to zero in F16, NaN and infinite inverses.
func TestNormalizeFast(t *testing.T) {
	needFast(t)
	r := newRand(11)
	for _, n := range []int{3, 8, 29, 64} {
		w := make([]float32, n)
		for i := range w {
			switch i % 5 {
			case 0:
				w[i] = 0
			case 1:
				w[i] = float32(1e-9 * r.Float64()) // F16 underflow after scaling
			default:
				w[i] = float32(r.Float64())
			}
		}
		for _, inv := range []float32{0.37, 1e-3, float32(math.NaN()), float32(math.Inf(1)), 0} {
			for _, f16 := range []bool{false, true} {
				fast, ref := append([]float32(nil), w...), append([]float32(nil), w...)
				nfNormalize(fast, inv, f16)
				withRef(func() { nfNormalize(ref, inv, f16) })
				sameBits(t, fmt.Sprintf("n=%d inv=%g f16=%v", n, inv, f16), fast, ref)
			}
		}
	}
}

// toF16 rounds v to F16 values (round to nearest even).
// kvOf is a cache holding vals (as F16 when f16), rows rowStride and heads
// headStride elements apart.
func kvOf(vals []float32, rowStride, headStride int, f16 bool) KV {
	kv := KV{RowStride: rowStride, HeadStride: headStride}
	if f16 {
		kv.F16 = toF16(vals)
	} else {
		kv.F32 = vals
	}
	return kv
}

func toF16(v []float32) []uint16 {
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = quant.FP32ToFP16(x)
	}
	return out
}
