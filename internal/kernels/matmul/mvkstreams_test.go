package matmul

import (
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestMatVecKStreams covers the K-quant matrix-vector kernels that take
// rows in three streams (Q2_K, Q3_K, IQ4_XS): 7 rows are two rows in each
// of three streams and one row alone, and the row splits below give
// streams of other lengths and a call with fewer rows than streams. Per
// type and fast level: the fast result agrees with the reference
// (checkFast's tolerance), and it is bit for bit the same under the row
// split and as row 1 of a batch of three (the tile kernels, which share no
// code with the matrix-vector ones). Tolerance 0 for the last two: every
// path does the same float operations per output.
func TestMatVecKStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, wt := range []tensor.DType{tensor.Q2_K, tensor.Q3_K, tensor.IQ4_XS} {
		for _, cols := range []int{3 * 256, 65 * 256} {
			const rows = 7
			w, err := RandomWeights(wt, rows, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			checkFast(t, wt, w, dequantRows(t, wt, w, rows, cols, true), rows, cols, 1, rng)
			row := RandomActivations(1, cols, rng)
			x := RandomActivations(3, cols, rng)
			copy(x[cols:], row)
			p1, err := Prepare(wt, row, 1, cols)
			if err != nil {
				t.Fatal(err)
			}
			p3, err := Prepare(wt, x, 3, cols)
			if err != nil {
				t.Fatal(err)
			}
			for _, lvl := range isaLevels() {
				one, split, batch := make([]float32, rows), make([]float32, rows), make([]float32, 3*rows)
				withISA(lvl, func() {
					if err = MulRows(wt, w, cols, p1, one, rows, 0, rows); err != nil {
						return
					}
					for _, r := range [][2]int{{0, 2}, {2, 6}, {6, rows}} {
						if err = MulRows(wt, w, cols, p1, split, rows, r[0], r[1]); err != nil {
							return
						}
					}
					err = MulRows(wt, w, cols, p3, batch, rows, 0, rows)
				})
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(split, one) {
					t.Errorf("%v cols=%d level=%d: row split changes the outputs: %v vs %v", wt, cols, lvl, split[:3], one[:3])
				}
				if got := batch[rows : 2*rows]; !sameBits(got, one) {
					t.Errorf("%v cols=%d level=%d: row 1 of a batch of 3 differs from n=1: %v vs %v", wt, cols, lvl, got[:3], one[:3])
				}
			}
		}
	}
}
