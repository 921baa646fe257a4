package matmul

import (
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestLongRows covers the matrix-vector paths for very wide rows (Q4_0 above
// 10,240 columns, Q8_0 above 32,768), which switch to a different loop than
// the model-sized rows of the other tests.
func TestLongRows(t *testing.T) {
	if testing.Short() {
		t.Skip("long rows")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		wt   tensor.DType
		cols int
	}{{tensor.Q4_0, 10304}, {tensor.Q8_0, 32800}} {
		const rows = 5
		w, err := RandomWeights(c.wt, rows, c.cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		checkFast(t, c.wt, w, dequantRows(t, c.wt, w, rows, c.cols, true), rows, c.cols, 1, rng)
	}
}

// TestBatchLongRows covers the Q8_0 batch kernel's activation groups on
// wide rows: 16,384 columns leave room for only a few activation rows per
// group (tiles narrower than the usual four), and 32,800 columns do not fit
// one row, so the generic tiles run instead. Either way each output must
// equal, bit for bit, the n = 1 matrix-vector result for that row
// (tolerance 0: the same float operations per element).
func TestBatchLongRows(t *testing.T) {
	if testing.Short() {
		t.Skip("long rows")
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, cols := range []int{16384, 32800} {
		const rows, n = 5, 7
		w, err := RandomWeights(tensor.Q8_0, rows, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		x := RandomActivations(n, cols, rng)
		p, err := Prepare(tensor.Q8_0, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		y := make([]float32, n*rows)
		if err := MulRows(tensor.Q8_0, w, cols, p, y, rows, 0, rows); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < n; j++ {
			one := make([]float32, rows)
			if err := Mul(tensor.Q8_0, w, rows, cols, x[j*cols:(j+1)*cols], 1, one); err != nil {
				t.Fatal(err)
			}
			if !sameBits(one, y[j*rows:(j+1)*rows]) {
				t.Fatalf("cols=%d: activation row %d of %d differs from n=1: %v vs %v", cols, j, n, y[j*rows:(j+1)*rows], one)
			}
		}
	}
}
