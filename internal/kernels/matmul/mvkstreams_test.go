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
			checkRowSplitAndBatch(t, wt, 7, cols, [][2]int{{0, 2}, {2, 6}, {6, 7}}, rng)
		}
	}
}
