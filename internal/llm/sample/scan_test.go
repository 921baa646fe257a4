package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCollectAboveFastMatchesGo checks the AVX2 scan against the plain-Go
// one on awkward lengths, NaNs, infinities and small output capacities:
// both must return every qualifying index below their stopping point, and
// together with repeated calls, the same full list.
func TestCollectAboveFastMatchesGo(t *testing.T) {
	if !useFast {
		t.Skip("no fast scan on this build/CPU (the plain-Go scan is the only one)")
	}
	r := rand.New(rand.NewPCG(1, 9))
	all := func(f func([]float32, float32, []int32) ([]int32, int), x []float32, thr float32, capacity int) []int32 {
		var res []int32
		buf := make([]int32, 0, capacity)
		for pos := 0; pos < len(x); {
			got, next := f(x[pos:], thr, buf[:0])
			if next == 0 && len(x[pos:]) > 0 && len(got) == 0 {
				t.Fatalf("no progress at %d", pos)
			}
			for _, j := range got {
				if int(j) >= next {
					t.Fatalf("index %d at or beyond the stop %d", j, next)
				}
				res = append(res, int32(pos)+j)
			}
			pos += next
		}
		return res
	}
	for _, n := range []int{1, 7, 31, 32, 33, 63, 64, 65, 100, 257, 1000, 4099} {
		for _, density := range []float64{0, 0.01, 0.5, 1} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64())
				if r.Float64() < density {
					x[i] += 10
				}
				switch r.IntN(50) {
				case 0:
					x[i] = float32(math.NaN())
				case 1:
					x[i] = float32(math.Inf(1))
				case 2:
					x[i] = float32(math.Inf(-1))
				}
			}
			for _, thr := range []float32{5, 0, float32(math.Inf(-1)), float32(math.Inf(1))} {
				for _, capacity := range []int{32, 33, 256} {
					fast := all(func(x []float32, thr float32, out []int32) ([]int32, int) {
						if len(x) < 32 {
							return collectAboveGo(x, thr, out)
						}
						return collectAboveFast(x, thr, out)
					}, x, thr, capacity)
					ref := all(collectAboveGo, x, thr, capacity)
					if !slices.Equal(fast, ref) {
						t.Fatalf("n=%d density=%v thr=%v cap=%d: fast %v, go %v", n, density, thr, capacity, head(fast), head(ref))
					}
				}
			}
		}
	}
}

// TestScansWithoutFastPath reruns the filter and greedy tests on the
// plain-Go scan.
func TestScansWithoutFastPath(t *testing.T) {
	prev := useFast
	useFast = false
	defer func() { useFast = prev }()
	t.Run("greedy", TestGreedyIsArgmaxTiesLowest)
	t.Run("reference", TestFiltersMatchReference)
	t.Run("bad", TestBadLogits)
	t.Run("minp", TestMinPExact)
}

// TestSameTokensWithoutFastPath: a cgo build and a CGO_ENABLED=0 build must
// draw the same tokens, so whole sequences with the AVX2 kernels and with
// the plain-Go ones must match.
func TestSameTokensWithoutFastPath(t *testing.T) {
	if !useFast {
		t.Skip("no fast path on this build/CPU")
	}
	l := randomLogits(8, 3000, 2.5)
	for _, p := range []Params{
		{Temperature: 1, Seed: 1},
		{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: 2},
		{Temperature: 1.3, TopP: 0.9, Seed: 3},
		{Temperature: 1, TopP: 0.99, Seed: 3},
		{Temperature: 1, MinP: 0.02, Seed: 4},
		{Temperature: 0.9, TypicalP: 0.8, Seed: 5},
		{Temperature: 0.8, RepeatPenalty: 1.3, FrequencyPenalty: 0.5, RepeatLastN: 32, Seed: 6},
	} {
		run := func() []int32 {
			s, _ := New(p, len(l))
			out := make([]int32, 200)
			x := make([]float32, len(l))
			for i := range out {
				copy(x, l)
				id, err := s.Sample(x)
				if err != nil {
					t.Fatal(err)
				}
				_ = s.Accept(id)
				out[i] = id
			}
			return out
		}
		fast := run()
		useFast = false
		slow := run()
		useFast = true
		if !slices.Equal(fast, slow) {
			t.Errorf("%+v: AVX2 and plain-Go sequences differ", p)
		}
	}
}
