package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"mica/internal/compute"
	"mica/internal/kernels/ops"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// TestConv2DQuantizedMatrix: a Q8_0/Q4_0 kernel given as an [OC, IC·KH·KW]
// matrix equals im2col followed by the matmul kernels on the same matrix
// bit for bit (that is the lowering), and stays within the activations'
// Q8 rounding of the float64 reference convolution with the dequantized
// kernel: each patch value is rounded to a step of at most 1/127 of its
// block's largest magnitude (≤ 1 here), so |Δ| ≤ Σ|w|/254 per output.
func TestConv2DQuantizedMatrix(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []ops.Conv2DParams{
		{IC: 32, H: 9, W: 7, OC: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
		{IC: 64, H: 6, W: 5, OC: 3, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1},
		{IC: 32, H: 11, W: 10, OC: 7, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1},
	}
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_0} {
		for _, threads := range []int{1, 2} {
			b := New(threads)
			for ci, p := range cases {
				k, oh, ow := p.ColLen(), p.OutH(), p.OutW()
				x := randVals(rng, p.IC*p.H*p.W)
				w := randVals(rng, p.OC*k)
				bias := randVals(rng, p.OC)
				rb, _ := dt.RowBytes(int64(k))
				wq := make([]byte, int(rb)*p.OC)
				if err := quant.Quantize(dt, w, wq); err != nil {
					t.Fatal(err)
				}
				wd := make([]float32, len(w))
				if err := quant.Dequantize(dt, wq, wd); err != nil {
					t.Fatal(err)
				}
				wt, err := b.Wrap(dt, wq, p.OC, k)
				if err != nil {
					t.Fatal(err)
				}
				xt := newF32(t, b, x, 1, p.IC, p.H, p.W)
				yt := newF32(t, b, nil, 1, p.OC, oh, ow)
				if err := compute.Conv2D(compute.Conv2DOp{X: xt, W: wt, B: newF32(t, b, bias, p.OC), Y: yt,
					StrideH: p.StrideH, StrideW: p.StrideW, PadH: p.PadH, PadW: p.PadW, KH: p.KH, KW: p.KW}); err != nil {
					t.Fatal(err)
				}
				got := readF32(t, b, yt)

				// im2col + matmul by hand.
				cols := make([]float32, oh*ow*k)
				ops.Im2Col(x, cols, p, 0, oh*ow)
				mt := newF32(t, b, nil, oh*ow, p.OC)
				if err := compute.MatMul(wt, newF32(t, b, cols, oh*ow, k), mt); err != nil {
					t.Fatal(err)
				}
				m := readF32(t, b, mt)
				ref := make([]float32, p.OC*oh*ow)
				ops.Conv2DRef(x, wd, bias, ref, p, 0, p.OC)
				for c := 0; c < p.OC; c++ {
					sumAbs := 0.0
					for _, v := range wd[c*k : (c+1)*k] {
						sumAbs += math.Abs(float64(v))
					}
					for i := 0; i < oh*ow; i++ {
						g := got[c*oh*ow+i]
						if want := m[i*p.OC+c] + bias[c]; g != want {
							t.Fatalf("%s case %d threads %d: [%d,%d] = %v, im2col+matmul %v", dt, ci, threads, c, i, g, want)
						}
						if d := math.Abs(float64(g - ref[c*oh*ow+i])); d > sumAbs/254+1e-4 {
							t.Fatalf("%s case %d: [%d,%d] = %v, reference %v (bound %.3g)", dt, ci, c, i, g, ref[c*oh*ow+i], sumAbs/254)
						}
					}
				}
			}
			b.Close()
		}
	}
	// A matrix whose width is not IC·KH·KW is refused.
	b := New(1)
	defer b.Close()
	wt := newF32(t, b, nil, 2, 30)
	err := compute.Conv2D(compute.Conv2DOp{X: newF32(t, b, nil, 1, 3, 4, 4), W: wt, Y: newF32(t, b, nil, 1, 2, 4, 4),
		StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, KH: 3, KW: 3})
	if err == nil {
		t.Fatal("a [2, 30] kernel matrix for 3 input channels and a 3×3 kernel was accepted")
	}
}
