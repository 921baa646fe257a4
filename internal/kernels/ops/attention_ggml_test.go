package ops

import (
	"fmt"
	"math"
	"testing"

	"mica/internal/kernels/quant"
)

// TestOutputBlkFast: the P·V sums of several rows at a time
// (mica_nf_output_blk) equal the plain-Go reference bit for bit: F16 and
// F32 V, head dimensions with and without tails of fewer than 16 and 8
// elements, 1 to 13 rows (tiles of 1 to 6 rows), cell lists that are
// whole ranges, start off a multiple of 16, have gaps or one cell, zero
// weights, output rows out of order with gaps between them (left as they
// were), V rows wider than one head.
func TestOutputBlkFast(t *testing.T) {
	needFast(t)
	r := newRand(21)
	const nkv = 300
	for _, dv := range []int{256, 72, 24, 13, 9} {
		for _, f16 := range []bool{true, false} {
			rowStride, off := dv+24, 8
			vals := randVec(r, nkv*rowStride, 1)
			v := kvOf(vals, rowStride, 0, f16)
			for name, idx := range cellLists(r, nkv) {
				for _, R := range []int{1, 2, 4, 5, 7, 12, 13} {
					w := make([]float32, R*nkv)
					for i := range w {
						if r.IntN(9) == 0 {
							w[i] = 0
						} else {
							w[i] = quant.FP16ToFP32(quant.FP32ToFP16(float32(r.Float64()) * 0.01))
						}
					}
					ooff := make([]int, R)
					for k, x := range r.Perm(R) {
						ooff[k] = x * (dv + 3)
					}
					fast := make([]float32, R*(dv+3))
					ref := make([]float32, len(fast))
					for i := range fast {
						fast[i], ref[i] = 7, 7
					}
					acc := make([]float32, nfOutRows*16*dv)
					nfOutputBlk(w, nkv, R, v, off, idx, acc, fast, ooff, dv)
					nfOutputBlkRef(w, nkv, R, v, off, idx, acc, ref, ooff, dv)
					sameBits(t, fmt.Sprintf("dv=%d f16=%v %s R=%d", dv, f16, name, R), fast, ref)
				}
			}
		}
	}
}

// cellLists are increasing cell lists of the kinds attention meets.
func cellLists(r interface{ IntN(int) int }, nkv int) map[string][]int32 {
	a := nkv / 3
	all := make([]int32, nkv)
	for i := range all {
		all[i] = int32(i)
	}
	var gaps []int32
	for _, j := range all {
		if r.IntN(5) != 0 {
			gaps = append(gaps, j)
		}
	}
	return map[string][]int32{
		"all":           all,
		"from 5":        all[5:],
		"window":        all[nkv/8 : nkv*5/6],
		"one":           all[nkv/3 : nkv/3+1],
		"gaps":          gaps,
		"runs and gaps": append(append(append([]int32{}, all[:a]...), all[a+3:a+7]...), all[a+28:nkv-10]...),
	}
}

// TestScoresBlkFast: the scores of several query rows at a time
// (mica_nf_scores_blk: tiles of 3 rows × 4 cells, 4 × 2, 2 × 4, 1 × 4 and
// single cells) equal nfScoresRef's bit for bit, F16 and F32 K, head
// dimensions with and without a tail past the last multiple of 16, cell
// counts of every remainder; the other cells are left as they were.
func TestScoresBlkFast(t *testing.T) {
	needFast(t)
	r := newRand(22)
	const nkv = 130
	for _, d := range []int{256, 72, 40, 16, 13, 7} {
		for _, f16 := range []bool{true, false} {
			rowStride, off := d+8, 4
			vals := randVec(r, nkv*rowStride, 1)
			k := kvOf(vals, rowStride, 0, f16)
			lists := cellLists(r, nkv)
			lists["7 cells"] = lists["all"][60:67]
			for name, idx := range lists {
				for _, R := range []int{1, 2, 3, 4, 5, 6, 7, 12, 13} {
					q := randVec(r, R*d, 1)
					fast := make([]float32, R*nkv+5)
					ref := make([]float32, len(fast))
					for i := range fast {
						fast[i], ref[i] = 7, 7
					}
					nfScoresBlk(q, R, k, off, idx, fast, nkv)
					nfScoresBlkRef(q, R, k, off, idx, ref, nkv)
					sameBits(t, fmt.Sprintf("d=%d f16=%v %s R=%d", d, f16, name, R), fast, ref)
				}
			}
		}
	}
}

// TestSoftmaxRowFast: mica_nf_softmax_row (scale, mask, the -Inf fill,
// the vectorised maximum, exponentials, normalisation) equals the
// plain-Go row bit for bit, including the rows it hands back to Go: a
// maximum of exactly 0 (whose sign the in-order fold decides) and NaN
// scores; and -Inf scores at visible cells, underflowing weights, masks.
func TestSoftmaxRowFast(t *testing.T) {
	needFast(t)
	r := newRand(23)
	const nkv = 200
	negInf := float32(math.Inf(-1))
	for name, idx := range cellLists(r, nkv) {
		lo, hi := int(idx[0])&^15, int(idx[len(idx)-1])+1+r.IntN(3)
		hi = min(hi, nkv)
		for trial := 0; trial < 12; trial++ {
			w := randVec(r, nkv, 4)
			var mr []float32
			if trial%3 == 1 {
				mr = randVec(r, nkv, 2)
			}
			switch trial % 4 {
			case 1: // maximum exactly 0 after scaling
				for _, j := range idx {
					w[j] = -float32(math.Abs(float64(w[j])))
				}
				w[idx[len(idx)/2]] = 0
				if mr != nil {
					for _, j := range idx {
						mr[j] = 0
					}
				}
			case 2: // a NaN and a -Inf among the visible scores
				w[idx[len(idx)/3]] = float32(math.NaN())
				w[idx[0]] = negInf
			case 3: // weights that underflow
				w[idx[len(idx)-1]] = 200
			}
			for _, f16v := range []bool{true, false} {
				for _, scale := range []float32{0.0625, 1} {
					fast, ref := append([]float32(nil), w...), append([]float32(nil), w...)
					mf := nfSoftmaxRow(fast, lo, hi, idx, mr, scale, 0, 0, f16v)
					var mref float32
					withRef(func() { mref = nfSoftmaxRow(ref, lo, hi, idx, mr, scale, 0, 0, f16v) })
					what := fmt.Sprintf("%s trial %d f16=%v scale=%g", name, trial, f16v, scale)
					if trial%4 == 2 {
						// A NaN maximum makes every weight NaN; the
						// exponential's NaN is not reproduced bit for bit
						// (its sign differs), only that it is NaN.
						sameNaNs(t, what, fast[lo:hi], ref[lo:hi])
						continue
					}
					sameBits(t, what, fast[lo:hi], ref[lo:hi])
					sameBits(t, what+" max", []float32{mf}, []float32{mref})
				}
			}
		}
	}
}

// sameNaNs is sameBits, except that any NaN matches any NaN.
func sameNaNs(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s: [%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

// nfRowsOracle is NumericsGGMLNoFlash one row at a time with the plain-Go
// kernels over full rows of nKV cells (no blocks, no ranges): q's F16
// rounding, nfScoresRef, nfScale, nfSoftmaxExpRef over the whole row,
// nfNormalizeRef, nfOutputRef over the row's own visible cells.
func nfRowsOracle(p AttentionParams, a *AttentionArgs, nQ int) []float32 {
	dv := p.HeadDimV
	d, nkv := p.HeadDim, a.NKV
	out := make([]float32, nQ*p.NHead*dv)
	capScale := float32(0)
	if p.Softcap != 0 {
		capScale = p.Scale / p.Softcap
	}
	for i := 0; i < nQ; i++ {
		var qp int32
		if a.QPos != nil {
			qp = a.QPos[i]
		}
		var mr []float32
		if a.Mask != nil {
			mr = a.Mask[i*nkv : i*nkv+nkv]
		}
		idx := nfVisible(nil, a.KPos, mr, qp, p.Causal, p.Window, nkv)
		for h := 0; h < p.NHead; h++ {
			g := h / (p.NHead / p.NKVHead)
			q := append([]float32(nil), a.Q[(i*p.NHead+h)*d:(i*p.NHead+h+1)*d]...)
			if a.K.F16 != nil {
				nfRoundF16Ref(q, q)
			}
			w := make([]float32, nkv)
			for j := range w {
				w[j] = float32(math.Inf(-1))
			}
			nfScoresRef(q, a.K, g*a.K.HeadStride, idx, w)
			mx := nfScale(w, idx, mr, p.Scale, p.Softcap, capScale)
			if mx == float32(math.Inf(-1)) {
				continue
			}
			sum := nfSoftmaxExpRef(w, mx)
			nfNormalizeRef(w, float32(1/sum), a.V.F16 != nil)
			nfOutputRef(w, a.V, g*a.V.HeadStride, idx, make([]float32, 16*dv), out[(i*p.NHead+h)*dv:(i*p.NHead+h+1)*dv])
		}
	}
	return out
}

// TestNoFlashBlocks: attentionNoFlash's blocks of several queries (union
// of cells, weights 0 at cells a query cannot see, the softmax over the
// union's span, the fallback to one query at a time) give every row the
// bits of nfRowsOracle, with the fast kernels and with the plain-Go ones,
// for any split of the rows (threads) and one query at a time (decode):
// Gemma 3 shapes, windows (the last queries' cells shift), empty cells,
// masks, positions out of order (a ring buffer), a non-finite V value in a
// cell only the last query sees, softcap, group sizes 1 to 16, head
// dimensions not multiples of 16.
func TestNoFlashBlocks(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		c    attnCase
		ring bool    // positions rotated: kPos not increasing
		vInf float32 // put this in V at the last query's cell
	}{
		{c: attnCase{name: "gemma3", nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: 19, nKV: 67, causal: true, kf16: true, vf16: true}},
		{c: attnCase{name: "gemma3 window", nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: 21, nKV: 90, causal: true, window: 40, kf16: true, vf16: true}},
		{c: attnCase{name: "ring", nHead: 4, nKVHead: 1, d: 64, dv: 64, nQ: 11, nKV: 50, causal: true, window: 30, kf16: true, vf16: true}, ring: true},
		{c: attnCase{name: "v inf", nHead: 4, nKVHead: 1, d: 32, dv: 48, nQ: 9, nKV: 40, causal: true, kf16: true, vf16: true}, vInf: inf},
		{c: attnCase{name: "v nan f32", nHead: 2, nKVHead: 1, d: 32, dv: 40, nQ: 9, nKV: 40, causal: true}, vInf: float32(math.NaN())},
		{c: attnCase{name: "holes mask", nHead: 4, nKVHead: 2, d: 40, dv: 24, nQ: 17, nKV: 70, causal: true, mask: true, holes: true, vf16: true}},
		{c: attnCase{name: "holes", nHead: 6, nKVHead: 2, d: 13, dv: 9, nQ: 13, nKV: 45, causal: true, holes: true, kf16: true, vf16: true}},
		{c: attnCase{name: "softcap", nHead: 2, nKVHead: 2, d: 33, dv: 17, nQ: 15, nKV: 50, causal: true, softcap: 5, kf16: true}},
		{c: attnCase{name: "group 8", nHead: 8, nKVHead: 1, d: 24, dv: 40, nQ: 7, nKV: 40, causal: true, kf16: true, vf16: true}},
		{c: attnCase{name: "group 16", nHead: 16, nKVHead: 1, d: 16, dv: 8, nQ: 5, nKV: 33, causal: true, vf16: true}},
		{c: attnCase{name: "group 1 no positions", nHead: 3, nKVHead: 3, d: 20, dv: 20, nQ: 6, nKV: 35, kf16: true}},
	}
	for ci, tc := range cases {
		c := tc.c
		t.Run(c.name, func(t *testing.T) {
			p, a := makeAttn(c, uint64(300+ci))
			p.Numerics = NumericsGGMLNoFlash
			if tc.ring {
				for j := range a.KPos {
					a.KPos[j] = int32((j + 17) % c.nKV)
				}
			}
			if tc.vInf != 0 || tc.vInf != tc.vInf {
				j := int(a.QPos[c.nQ-1]) // the last query's own cell: the others cannot see it
				if a.V.F16 != nil {
					a.V.F16[j*a.V.RowStride+2] = quant.FP32ToFP16(tc.vInf)
				} else {
					a.V.F32[j*a.V.RowStride+2] = tc.vInf
				}
			}
			rows := c.nQ * c.nHead
			want := nfRowsOracle(p, a, c.nQ)
			for _, ref := range []bool{false, true} {
				run := func(f func()) {
					if ref {
						withRef(f)
					} else {
						f()
					}
				}
				for _, parts := range splits(rows) {
					clear(a.Out)
					run(func() {
						for _, s := range parts {
							if err := Attention(p, a, c.nQ, s[0], s[1]); err != nil {
								t.Fatal(err)
							}
						}
					})
					sameBits(t, fmt.Sprintf("ref=%v split %d", ref, len(parts)), a.Out, want)
				}
				for i := 0; i < c.nQ; i++ {
					ai := oneQuery(c, a, i)
					run(func() {
						if err := Attention(p, &ai, 1, 0, c.nHead); err != nil {
							t.Fatal(err)
						}
					})
					sameBits(t, fmt.Sprintf("ref=%v one query %d", ref, i), ai.Out, want[i*c.nHead*c.dv:(i+1)*c.nHead*c.dv])
				}
			}
			if c.d <= 64 && tc.vInf == 0 && tc.vInf == tc.vInf {
				sameBits(t, "oracle vs spec", want, noFlashSpec(c, p, a))
			}
		})
	}
}

// TestMaxAt: the four-way maximum equals the in-order fold with the
// built-in max bit for bit: signed zeros, infinities, NaNs with different
// payloads (the fold's NaN is the one it returns), lists of every length
// mod 4.
func TestMaxAt(t *testing.T) {
	nan1 := math.Float32frombits(0x7fc00001)
	nan2 := math.Float32frombits(0xffc00002)
	negZero := float32(math.Copysign(0, -1))
	inf := float32(math.Inf(1))
	r := newRand(5)
	pool := []float32{0, negZero, -1, 2.5, -inf, inf, nan1, nan2, 1e-40, -3}
	for trial := 0; trial < 3000; trial++ {
		n := r.IntN(11)
		w := make([]float32, 16)
		var idx []int32
		for j := 0; j < 16 && len(idx) < n; j++ {
			if r.IntN(3) != 0 {
				w[j] = pool[r.IntN(len(pool))]
				if trial%2 == 0 && w[j] != w[j] { // half the trials without NaNs
					w[j] = negZero
				}
				idx = append(idx, int32(j))
			}
		}
		want := float32(math.Inf(-1))
		for _, j := range idx {
			want = max(want, w[j])
		}
		if got := maxAt(w, idx); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("maxAt(%v at %v) = %v (%#x), in-order fold %v (%#x)", w, idx, got, math.Float32bits(got), want,
				math.Float32bits(want))
		}
	}
}

// TestSoftmaxExpNormalRange: the exponentials of whole vectors of 8 whose
// results are normal floats (mica_nf_softmax_exp's shortcut: j·2^n by
// adding n to j's exponent) equal expGGML's bit for bit: a dense sweep of
// [-90, 89] (the shortcut's edges n = -125 and 127 and the values just
// past them, where the double path takes over) in order and shuffled, so
// vectors mix both paths.
func TestSoftmaxExpNormalRange(t *testing.T) {
	needFast(t)
	var xs []float32
	for x := -90.0; x < 89; x += 0.0137 {
		xs = append(xs, float32(x))
	}
	ln2 := math.Ln2
	for _, n := range []float64{-126, -125, -124, 126, 127, 128} {
		for _, d := range []float64{-0.5, -0.4999, 0, 0.4999, 0.5} {
			xs = append(xs, float32((n+d)*ln2))
		}
	}
	r := newRand(31)
	shuffled := append([]float32(nil), xs...)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, w := range [][]float32{xs, shuffled} {
		for _, mx := range []float32{0, 1.5} {
			fast, ref := append([]float32(nil), w...), append([]float32(nil), w...)
			sf := nfSoftmaxExp(fast, mx)
			var sr float64
			withRef(func() { sr = nfSoftmaxExpRef(ref, mx) })
			sameBits(t, fmt.Sprintf("mx=%g exponentials", mx), fast, ref)
			if math.Float64bits(sf) != math.Float64bits(sr) {
				t.Fatalf("mx=%g: sum %v, reference %v", mx, sf, sr)
			}
		}
	}
}
