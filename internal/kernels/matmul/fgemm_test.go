package matmul

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestFloatGEMMBlocking: the F32/F16/BF16 products with n > 1 against the
// plain-Go reference, bit for bit (tolerance 0: the kernels must run the
// reference's fma sequence per lane and its reduction), on shapes that cut
// every block of the AVX2 kernels unevenly. n ≤ 48 (2, 47) runs fkern.h's
// tiles, n > 48 the half-lane GEMM: activation counts around its 3-row
// tile and its activation blocks (at least 48 rows; as many as 256 KiB of
// packed activations hold, at most 144: 49, 50, 98, 100; 150 rows of 64
// columns = 144 + 6; 110 rows of 2880 columns = 48 + 48 + 14; 100 rows of
// 2128 columns = 60 + 40 for F16 (2 bytes per packed value), 48 + 48 + 4
// for F32 and BF16, 50 rows = 48 + 2 for them), weight
// rows around its 48-row block and 4-row tile (1, 5, 6, 49, 53), column
// counts giving one column block, column blocks of unequal length (2128
// columns = 133 vectors of 16 in blocks of 45, 45, 43, for F16 67 + 66;
// 4304 = 269 vectors, SigLIP's FFN down, F16 90 + 90 + 89) and tails. checkFast also compares row splits (every
// row alone, halves).
func TestFloatGEMMBlocking(t *testing.T) {
	if testing.Short() {
		t.Skip("large shapes")
	}
	rng := rand.New(rand.NewPCG(41, 42))
	cases := []struct{ rows, cols, n int }{
		{6, 2128, 47}, {53, 2128, 2}, {6, 2128, 50}, {53, 2128, 100}, {49, 2141, 49}, {1, 4304, 98}, {5, 4323, 50},
		{6, 1024, 98}, {4, 15, 49}, {5, 64, 150}, {5, 2880, 110},
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

// TestFloatMatVecStreams: the matrix-vector kernels (n = 1) read a row range
// as four runs of consecutive rows side by side, the last (rows mod 4) rows
// alone. Against the reference, bit for bit, with row counts below, at and
// around multiples of 4 and column counts with and without a tail (BF16's
// step is 32 columns); checkFast also splits the rows (every row alone,
// halves, small first chunks), which moves the run boundaries.
func TestFloatMatVecStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, cols := range []int{16, 48, 640, 657} {
			w, err := RandomWeights(wt, 41, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			mag := dequantRows(t, wt, w, 41, cols, true)
			for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 41} {
				t.Run(fmt.Sprintf("%v/%dx%d", wt, rows, cols), func(t *testing.T) {
					checkFast(t, wt, w, mag, rows, cols, 1, rng)
				})
			}
		}
	}
}

// TestPackedActivationsInRanges: F16 and F32 activations packed once for the AVX2
// GEMM come out the same whether the rows are prepared in one call or in
// ranges that cut the GEMM's 3-row groups (as the backend's threads
// prepare them), and the products equal those of activations the GEMM
// packs itself (the AVX-512 level takes no packed activations; the Go
// level none at all), and MulBlock's pieces (activation blocks × weight
// rows) add up to MulRows' bits; bad pieces are refused.
func TestPackedActivationsInRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	for _, c := range []struct {
		wt   tensor.DType
		cols int
	}{{tensor.F16, 640}, {tensor.F16, 650}, {tensor.F32, 640}, {tensor.F32, 650}} {
		wt, cols := c.wt, c.cols
		const rows, n = 37, 100
		w, err := RandomWeights(wt, rows, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		x := RandomActivations(n, cols, rng)
		whole, err := Prepare(wt, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		if isa == isaAVX2 && len(whole.pk) == 0 {
			t.Fatal("no packed activations for the AVX2 GEMM")
		}
		parts := new(Prepared)
		if err := PrepareLayout(parts, wt, x, n, cols); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int{{50, 51}, {0, 1}, {51, n}, {1, 50}} {
			PrepareRows(parts, x, r[0], r[1])
		}
		if !bytes.Equal(whole.pk, parts.pk) {
			t.Fatalf("%v, cols %d: packed activations differ between one call and ranges", wt, cols)
		}
		y1, y2 := make([]float32, n*rows), make([]float32, n*rows)
		if err := MulRows(wt, w, cols, whole, y1, rows, 0, rows); err != nil {
			t.Fatal(err)
		}
		if err := MulRows(wt, w, cols, parts, y2, rows, 0, rows); err != nil {
			t.Fatal(err)
		}
		self := *whole
		self.pk = nil // the GEMM packs them itself
		y3 := make([]float32, n*rows)
		if err := MulRows(wt, w, cols, &self, y3, rows, 0, rows); err != nil {
			t.Fatal(err)
		}
		if !sameBits(y1, y2) || !sameBits(y1, y3) {
			t.Fatalf("%v, cols %d: products differ with the activations packed in ranges or by the GEMM", wt, cols)
		}
		if !whole.Packed() {
			continue
		}
		// MulBlock in pieces: blocks of BlockRows (the last one short)
		// and of 3 rows, × weight rows cut at 5 and 21.
		y4 := make([]float32, n*rows)
		for _, jb := range []int{whole.BlockRows(), 3} {
			clear(y4)
			for j0 := 0; j0 < n; j0 += jb {
				for _, r := range [][2]int{{0, 5}, {5, 21}, {21, rows}} {
					if err := MulBlock(wt, w, cols, whole, y4, rows, r[0], r[1], j0, min(n, j0+jb)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !sameBits(y1, y4) {
				t.Fatalf("%v, cols %d: MulBlock in pieces of %d rows differs from MulRows", wt, cols, jb)
			}
		}
		for _, bad := range [][2]int{{1, 10}, {-3, 10}, {0, n + 1}, {6, 6}} {
			if err := MulBlock(wt, w, cols, whole, y4, rows, 0, rows, bad[0], bad[1]); err == nil {
				t.Errorf("MulBlock accepted activation rows %v", bad)
			}
		}
	}
}

// TestMulBlockUnpacked: MulBlock on activations that are not packed ahead
// (the backend's split by activation rows) equals MulRows bit for bit for
// every kind of weight, in row ranges that cut the GEMM's blocks and
// 3-row groups anywhere; BlockRows is the GEMM's block for float weights
// (AVX2, n > 48) and 0 for quantized ones; bad ranges are refused.
func TestMulBlockUnpacked(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_K} {
		const rows, n, cols = 21, 100, 512
		w, err := RandomWeights(wt, rows, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		x := RandomActivations(n, cols, rng)
		p, err := Prepare(wt, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		p.pk = nil // as for activations too large to pack ahead
		jb := p.BlockRows()
		float := wt == tensor.F32 || wt == tensor.F16 || wt == tensor.BF16
		if want := isa == isaAVX2 && float; (jb > 0) != want || jb%3 != 0 {
			t.Fatalf("%v: BlockRows %d at level %d", wt, jb, isa)
		}
		whole := make([]float32, n*rows)
		if err := MulRows(wt, w, cols, p, whole, rows, 0, rows); err != nil {
			t.Fatal(err)
		}
		pieces := make([]float32, n*rows)
		for _, r := range [][2]int{{0, 1}, {1, 50}, {50, 52}, {52, n}} {
			if err := MulBlock(wt, w, cols, p, pieces, rows, 0, rows, r[0], r[1]); err != nil {
				t.Fatal(err)
			}
		}
		if !sameBits(whole, pieces) {
			t.Fatalf("%v: MulBlock by activation rows differs from MulRows", wt)
		}
		for _, bad := range [][2]int{{-1, 10}, {0, n + 1}, {6, 6}, {7, 5}} {
			if err := MulBlock(wt, w, cols, p, pieces, rows, 0, rows, bad[0], bad[1]); err == nil {
				t.Errorf("%v: MulBlock accepted activation rows %v", wt, bad)
			}
		}
	}
}
