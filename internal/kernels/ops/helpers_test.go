package ops

import (
	"math"
	"math/rand/v2"
	"testing"
)

// awkward are the lengths every fast kernel is checked on: below, at and
// around the 8-lane vector width and the 32-wide unrolled loops.
var awkward = []int{1, 3, 7, 8, 9, 17, 31, 33, 100, 257}

// withRef runs f with the fast paths switched off.
func withRef(f func()) {
	prev := useFast
	useFast = false
	defer func() { useFast = prev }()
	f()
}

func needFast(t *testing.T) {
	t.Helper()
	if !hasAVX2 {
		t.Skip("no fast path on this build/CPU: the reference is all there is to test")
	}
}

func randVec(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * scale
	}
	return v
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 42)) }

// closeEnough reports the first index where |got-want| > abs + rel*|want|.
func closeEnough(t *testing.T, what string, got, want []float32, abs, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) || math.IsInf(w, 0) && g != w || math.Abs(g-w) > abs+rel*math.Abs(w) {
			t.Fatalf("%s: [%d] = %g, want %g (|Δ| %.3g > %.3g + %.3g·|want|)", what, i, g, w, math.Abs(g-w), abs, rel)
		}
	}
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %g, want bit-identical %g", what, i, got[i], want[i])
		}
	}
}

// splits returns range partitions of [0,n) into 1, 2, 3 and n chunks
// (uneven where possible), as a worker pool might.
func splits(n int) [][][2]int {
	var out [][][2]int
	for _, k := range []int{1, 2, 3, n} {
		if k < 1 || k > n {
			continue
		}
		var parts [][2]int
		for c := 0; c < k; c++ {
			parts = append(parts, [2]int{c * n / k, (c + 1) * n / k})
		}
		out = append(out, parts)
	}
	return out
}
