package ops

import (
	"math"
	"testing"
)

// Softmax fast vs reference: the fast exp is within 1 ulp of the correctly
// rounded one and sums are in double, so outputs agree to a few ulps.
// Tolerance 5e-7 relative + 1e-12 absolute (tiny probabilities).
func TestSoftmaxFastVsRef(t *testing.T) {
	needFast(t)
	r := newRand(6)
	inf := float32(math.Inf(-1))
	for _, n := range awkward {
		rows := 4
		x := randVec(r, rows*n, 5)
		mask := randVec(r, 2*n, 1)
		mask[0] = inf
		mask[n+n/2] = inf
		for _, p := range []SoftmaxParams{{N: n, Scale: 1}, {N: n, Scale: 0.125, Mask: mask, MaskRows: 2}} {
			got, want := make([]float32, rows*n), make([]float32, rows*n)
			SoftmaxExt(x, got, p, 0, rows)
			withRef(func() { SoftmaxExt(x, want, p, 0, rows) })
			closeEnough(t, "softmax", got, want, 1e-12, 5e-7)
			for _, parts := range splits(rows) {
				y := append([]float32(nil), x...)
				for _, s := range parts {
					SoftmaxExt(y, y, p, s[0], s[1])
				}
				sameBits(t, "softmax split/in place", y, got)
			}
			// against float64 maths
			for row := 0; row < rows; row++ {
				var mr []float32
				if p.Mask != nil {
					mr = p.Mask[(row%2)*n : (row%2)*n+n]
				}
				w := make([]float64, n)
				mx := math.Inf(-1)
				for i := range w {
					w[i] = float64(x[row*n+i] * p.Scale)
					if mr != nil {
						w[i] += float64(mr[i])
					}
					mx = math.Max(mx, w[i])
				}
				var sum float64
				for i := range w {
					w[i] = math.Exp(w[i] - mx)
					sum += w[i]
				}
				for i := range w {
					if d := math.Abs(float64(want[row*n+i]) - w[i]/sum); d > 1e-6*w[i]/sum+1e-12 {
						t.Fatalf("softmax n=%d [%d,%d] = %g, want %g", n, row, i, want[row*n+i], w[i]/sum)
					}
				}
			}
		}
	}
	// an all-masked row gives zeros on both paths
	x := []float32{1, 2, 3}
	m := []float32{inf, inf, inf}
	for _, fast := range []bool{true, false} {
		out := []float32{9, 9, 9}
		f := func() { SoftmaxExt(x, out, SoftmaxParams{N: 3, Scale: 1, Mask: m}, 0, 1) }
		if fast {
			f()
		} else {
			withRef(f)
		}
		if out[0] != 0 || out[1] != 0 || out[2] != 0 {
			t.Fatalf("all-masked softmax (fast=%v) = %v", fast, out)
		}
	}
}
