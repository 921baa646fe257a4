package ops

import (
	"fmt"
	"math"
	"testing"

	"mica/internal/kernels/quant"
)

// TestOutputGroupFast: the P·V sums of one or two heads at a time
// (mica_nf_output_g) equal the plain-Go reference bit for bit: F16 and F32
// V, head dimensions with and without a tail of fewer than 8 elements,
// cell lists that are whole runs of 32…96+ consecutive cells (the run
// paths, runs starting off a multiple of 16), lists with gaps (the
// one-cell path), zero weights, head strides that skip a head, and one
// head after a group of two (G = 3).
func TestOutputGroupFast(t *testing.T) {
	needFast(t)
	r := newRand(21)
	const nkv = 300
	for _, dv := range []int{256, 72, 13} {
		for _, f16 := range []bool{true, false} {
			rowStride, off := dv+24, 8 // V rows wider than one head
			vals := randVec(r, nkv*rowStride, 1)
			v := KV{RowStride: rowStride}
			if f16 {
				v.F16 = toF16(vals)
			} else {
				v.F32 = vals
			}
			lists := map[string][]int32{}
			all := make([]int32, nkv)
			for i := range all {
				all[i] = int32(i)
			}
			lists["all"] = all
			lists["from 5"] = all[5:]
			lists["window"] = all[37:250]
			var gaps []int32
			for _, j := range all {
				if r.IntN(5) != 0 {
					gaps = append(gaps, j)
				}
			}
			lists["gaps"] = gaps
			lists["runs and gaps"] = append(append(append([]int32{}, all[:100]...), all[103:107]...), all[128:290]...)
			for name, idx := range lists {
				for _, G := range []int{1, 2, 3} {
					for _, skip := range []int{1, 2} { // head h's weights at h·skip·nkv
						ws := skip * nkv
						w := make([]float32, (G-1)*ws+nkv)
						for i := range w {
							if r.IntN(9) == 0 {
								w[i] = 0
							} else {
								w[i] = quant.FP16ToFP32(quant.FP32ToFP16(float32(r.Float64()) * 0.01))
							}
						}
						os := skip * dv
						fast := make([]float32, (G-1)*os+dv)
						ref := make([]float32, len(fast))
						for i := range fast {
							fast[i], ref[i] = 7, 7 // untouched between heads
						}
						acc := make([]float32, 2*16*dv)
						nfOutputGroup(w, G, ws, v, off, idx, acc, fast, dv, os)
						withRef(func() { nfOutputGroup(w, G, ws, v, off, idx, acc, ref, dv, os) })
						what := fmt.Sprintf("dv=%d f16=%v %s G=%d skip=%d", dv, f16, name, G, skip)
						sameBits(t, what, fast, ref)
						for h := 0; h < G; h++ {
							one := make([]float32, dv)
							nfOutputRef(w[h*ws:], v, off, idx, acc[:16*dv], one)
							sameBits(t, what+" vs one head", fast[h*os:h*os+dv], one)
						}
					}
				}
			}
		}
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
