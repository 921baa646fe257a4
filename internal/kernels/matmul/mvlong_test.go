package matmul

import (
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestMatVecLongRows32 covers the 32-element matrix-vector kernels on rows
// too wide for their precomputed activation pairs (more than 160 block
// pairs: 10,304 columns; 10,336 also ends in an odd block), where the pairs
// are made inside the loop instead. Per type and fast level: the fast
// result agrees with the reference (checkFast's tolerance), and it is bit
// for bit the same under another row split and as row 1 of a batch of
// three (the tile kernels). Tolerance 0 for the last two: every path does
// the same float operations per output.
func TestMatVecLongRows32(t *testing.T) {
	if testing.Short() {
		t.Skip("long rows")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, wt := range []tensor.DType{tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.IQ4_NL} {
		for _, cols := range []int{10304, 10336} {
			// 9 rows: four streams of two rows and one row alone
			checkRowSplitAndBatch(t, wt, 9, cols, [][2]int{{0, 1}, {1, 6}, {6, 9}}, rng)
		}
	}
}

// TestMatVecLongRowsIQ4XS: IQ4_XS rows of more than QMV_MAXRY (64)
// super-blocks, whose activations the matrix-vector kernel rearranges per
// super-block and row instead of once per call (16,640 columns: 65
// super-blocks). Against the reference, under row splits, and bit for bit
// as a row of a batch (the batch kernel's rearranged copy).
func TestMatVecLongRowsIQ4XS(t *testing.T) {
	if testing.Short() {
		t.Skip("long rows")
	}
	rng := rand.New(rand.NewPCG(23, 24))
	checkRowSplitAndBatch(t, tensor.IQ4_XS, 7, 16640, [][2]int{{0, 1}, {1, 7}}, rng)
}

// checkRowSplitAndBatch checks the matrix-vector kernels of wt on rows×cols
// random weights, per fast level: against the reference (checkFast's
// tolerance), and bit for bit the same when the rows are computed in the
// ranges cuts (which must cover [0, rows)) and as row 1 of a batch of three
// (the tile kernels).
func checkRowSplitAndBatch(t *testing.T, wt tensor.DType, rows, cols int, cuts [][2]int, rng *rand.Rand) {
	t.Helper()
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
			for _, r := range cuts {
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
