package sample

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExp32Accuracy(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 200000; i++ {
		x := float32(-87.3 * float64(i) / 200000)
		got := float64(exp32(x))
		want := math.Exp(float64(x))
		worst = max(worst, math.Abs(got-want)/want)
	}
	// Taylor degree 6 on |r| <= ln2/2 (1.3e-7) plus float32 rounding of
	// the reduction and Horner steps: 3e-7 relative.
	if worst > 3e-7 {
		t.Errorf("exp32 worst relative error %g > 3e-7", worst)
	}
	if exp32(0) != 1 {
		t.Errorf("exp32(0) = %v", exp32(0))
	}
	for _, x := range []float32{-87.4, -100, -1e30, float32(math.Inf(-1)), float32(math.NaN())} {
		if exp32(x) != 0 {
			t.Errorf("exp32(%v) = %v, want 0", x, exp32(x))
		}
	}
	// Monotone on a fine grid near 0 and at the bottom of the range.
	for _, lo := range []float32{-1, -87.3} {
		prev := float32(0)
		for x := lo; x < lo+0.01; x = math.Nextafter32(x, 1) {
			if y := exp32(x); y < prev {
				t.Fatalf("exp32 not monotone at %v", x)
			} else {
				prev = y
			}
		}
	}
}

// TestExpFastBitIdentical: the AVX2 weights and block masses equal the Go
// ones bit for bit, which is what makes cgo and pure-Go draws identical.
func TestExpFastBitIdentical(t *testing.T) {
	if !useFast {
		t.Skip("no fast exp on this build/CPU (the plain-Go exp is the only one)")
	}
	r := rand.New(rand.NewPCG(2, 3))
	for _, n := range []int{8, 9, 15, 16, 255, 256, 257, 513, 1000, 4097} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 20)
			if r.IntN(40) == 0 {
				x[i] = float32(math.Inf(-1))
			}
		}
		m := float32(0)
		for _, v := range x {
			m = max(m, v)
		}
		for _, scale := range []float32{1, 1.25, 1e30} {
			a, b := make([]float32, n), make([]float32, n)
			expShiftFast(x, m, scale, a)
			expShiftGo(x, m, scale, b)
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("n=%d scale=%v: weight %d: fast %v go %v (x=%v)", n, scale, i, a[i], b[i], x[i])
				}
			}
			nb := (n + pickBlock - 1) / pickBlock
			sa, sb := make([]float64, nb), make([]float64, nb)
			ta := sumExpBlocksFast(x, m, scale, sa)
			tb := sumExpBlocksGo(x, m, scale, sb)
			if ta != tb {
				t.Fatalf("n=%d scale=%v: total fast %v go %v", n, scale, ta, tb)
			}
			for i := range sa {
				if sa[i] != sb[i] || sb[i] != blockMass(b[i*pickBlock:min(n, (i+1)*pickBlock)]) {
					t.Fatalf("n=%d scale=%v: block %d: fast %v go %v", n, scale, i, sa[i], sb[i])
				}
			}
		}
	}
}

// TestPickFullMatchesPick: drawing from the whole vocabulary without
// storing weights gives exactly pick's answer on the stored weights.
func TestPickFullMatchesPick(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	for _, n := range []int{1, 9, 256, 257, 3001} {
		x := randomLogits(uint64(n), n, 3)
		m := x[0]
		for _, v := range x {
			m = max(m, v)
		}
		for _, scale := range []float32{1, 1 / 0.7} {
			w := make([]float32, n)
			expShift(x, m, scale, w)
			for range 200 {
				u := r.Float64()
				a, _ := pick(w, u, nil)
				b, _ := pickFull(x, m, scale, u, nil)
				if a != b {
					t.Fatalf("n=%d scale=%v u=%v: pick %d, pickFull %d", n, scale, u, a, b)
				}
			}
		}
	}
}
