package matmul

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestFloatGEMMBlocking: the F32/F16/BF16 products with n > 1 against the
// plain-Go reference, bit for bit (tolerance 0: the kernels must run the
// reference's fma sequence per lane and its reduction), on shapes that cut
// every block of the AVX2 kernels unevenly. n ≤ 48 (2, 47) runs fkern.h's
// tiles, n > 48 the half-lane GEMM: activation counts around its 48-row
// block and 3-row tile (49, 50, 98, 100), weight rows around its 48-row
// block and 4-row tile (1, 5, 6, 49, 53), column counts giving one column
// block, column blocks of unequal length (2128 columns = 133 vectors of 16
// in blocks of 45, 45, 43; 4304 = 269 vectors, SigLIP's FFN down) and
// tails. checkFast also compares row splits (every row alone, halves).
func TestFloatGEMMBlocking(t *testing.T) {
	if testing.Short() {
		t.Skip("large shapes")
	}
	rng := rand.New(rand.NewPCG(41, 42))
	cases := []struct{ rows, cols, n int }{
		{6, 2128, 47}, {53, 2128, 2}, {6, 2128, 50}, {53, 2128, 100}, {49, 2141, 49}, {1, 4304, 98}, {5, 4323, 50},
		{6, 1024, 98}, {4, 15, 49},
	}
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%v/%dx%d/n=%d", wt, c.rows, c.cols, c.n), func(t *testing.T) {
				w, err := RandomWeights(wt, c.rows, c.cols, rng)
				if err != nil {
					t.Fatal(err)
				}
				checkFast(t, wt, w, dequantRows(t, wt, w, c.rows, c.cols, true), c.rows, c.cols, c.n, rng)
			})
		}
	}
}
