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
