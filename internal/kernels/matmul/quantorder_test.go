package matmul

import (
	"math/rand/v2"
	"testing"
)

// TestQuantIndependentOfN: for every quantized weight type, one activation
// row times the weight rows gives bit-identical outputs whether it is
// multiplied alone (the n = 1 matrix-vector kernels), in a small batch or a
// larger one (the register-tile kernels), at any position in the batch —
// the continuous batcher must produce the same logits as a lone decode.
// Tolerance 0: the integer block sums are exact and every path performs the
// same float operations per element. Checked at every fast level and with
// the reference.
func TestQuantIndependentOfN(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	levels := append([]int{-1}, isaLevels()...)
	for _, wt := range allTypes {
		if !wt.Quantized() {
			continue
		}
		for _, cols := range []int{wt.BlockSize(), 3 * wt.BlockSize(), 20 * wt.BlockSize(), 11 * 256} {
			rows := 11
			w, err := RandomWeights(wt, rows, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			row := RandomActivations(1, cols, rng)
			for _, lvl := range levels {
				run := func(n, at int) []float32 {
					x := RandomActivations(n, cols, rng)
					copy(x[at*cols:], row)
					p, err := Prepare(wt, x, n, cols)
					if err != nil {
						t.Fatal(err)
					}
					y := make([]float32, n*rows)
					if lvl < 0 {
						err = MulRowsRef(wt, w, cols, p, y, rows, 0, rows)
					} else {
						withISA(lvl, func() { err = MulRows(wt, w, cols, p, y, rows, 0, rows) })
					}
					if err != nil {
						t.Fatal(err)
					}
					return y[at*rows : (at+1)*rows]
				}
				want := run(1, 0)
				for _, c := range [][2]int{{2, 0}, {2, 1}, {5, 4}, {5, 2}, {16, 0}, {16, 9}, {16, 15}} {
					if got := run(c[0], c[1]); !sameBits(got, want) {
						t.Errorf("%v cols=%d level=%d: row %d of n=%d differs from n=1: %v vs %v", wt, cols, lvl, c[1], c[0], got[:3], want[:3])
						break
					}
				}
			}
		}
	}
}
