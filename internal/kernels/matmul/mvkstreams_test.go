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

// TestMatVecStreamsApart: row counts whose runs would start a multiple of
// 4 KiB apart (streams.h shortens them, leaving more rows to go alone)
// still give the reference's values, the same under a row split and as
// row 1 of a batch, for every type with row streams: 4096 columns for the
// 32-element and float types, 16 K-quant blocks (then 128 rows per stream
// of 2 or 3 land on a 4 KiB multiple), and row counts of 12 such periods.
func TestMatVecStreamsApart(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1,
		tensor.Q5_0, tensor.Q5_1, tensor.IQ4_NL, tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_XS} {
		const cols = 4096
		rb, _ := wt.RowBytes(cols)
		period := 4096 / gcd(int(rb), 4096) // rows after which a run start is on a 4 KiB multiple
		rows := 12 * max(period, 16)
		checkRowSplitAndBatch(t, wt, rows, cols, [][2]int{{0, rows / 2}, {rows / 2, rows}}, rng)
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
