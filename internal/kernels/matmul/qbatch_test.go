package matmul

import (
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestQ8BatchBlocking: the AVX2 Q8_0 batch kernel (qkern_batch.h) walks
// activation groups, weight-row chunks, K segments (accumulators carried
// between them in memory) and 1×8 / 2×4 tiles with narrower edges. Every
// output must equal, bit for bit, the n = 1 matrix-vector result for its
// activation row, under several row splits. The shapes put the edges of
// each level in play: rows of 40 blocks (one segment) and 41, 64 and 65
// blocks (segments of 32 and a short last one), weight rows past one chunk
// (128 KiB of rows: 58 rows at 65 blocks), activation counts that leave
// remainder tiles of 4, 2 and 1 rows and more than one group (8 rows per
// group at 65 blocks). Tolerance 0: every path performs the same float
// operations per element.
func TestQ8BatchBlocking(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	ns := []int{2, 3, 4, 5, 7, 8, 9, 15, 16, 19, 23, 31}
	for _, c := range []struct{ nb, rows int }{{20, 9}, {40, 7}, {41, 13}, {64, 5}, {65, 70}} {
		batchAgainstN1(t, tensor.Q8_0, rng, 32, c.nb, c.rows, ns)
	}
}

// batchAgainstN1 checks, for weights of type dt with rows×(bs·nb) elements
// and each n in ns, that every output of the batch path equals, bit for
// bit, the n = 1 matrix-vector result for its activation row, under several
// row splits (whole, a single first row, a middle cut).
func batchAgainstN1(t *testing.T, dt tensor.DType, rng *rand.Rand, bs, nb, rows int, ns []int) {
	t.Helper()
	cols := bs * nb
	w, err := RandomWeights(dt, rows, cols, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		x := RandomActivations(n, cols, rng)
		p, err := Prepare(dt, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, n*rows)
		for j := 0; j < n; j++ {
			if err := Mul(dt, w, rows, cols, x[j*cols:(j+1)*cols], 1, want[j*rows:(j+1)*rows]); err != nil {
				t.Fatal(err)
			}
		}
		for _, split := range [][]int{{0, rows}, {0, 1, rows}, {0, rows / 2, rows/2 + 3, rows}} {
			y := make([]float32, n*rows)
			for k := 0; k+1 < len(split); k++ {
				r0, r1 := split[k], min(split[k+1], rows)
				if r0 >= r1 {
					continue
				}
				if err := MulRows(dt, w, cols, p, y, rows, r0, r1); err != nil {
					t.Fatal(err)
				}
			}
			if sameBits(y, want) {
				continue
			}
			for i := range y {
				if y[i] != want[i] {
					t.Fatalf("%v cols=%d rows=%d n=%d split %v: element %d (activation row %d, weight row %d) = %v, n=1 gives %v",
						dt, cols, rows, n, split, i, i/rows, i%rows, y[i], want[i])
				}
			}
			t.Fatalf("%v cols=%d rows=%d n=%d split %v: bits differ from n=1 (a signed zero)", dt, cols, rows, n, split)
		}
	}
}
