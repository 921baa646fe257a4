package ops

import (
	"math"
	"testing"
)

// Im2Col followed by a naive GEMM (float64 accumulation, like Conv2DRef)
// must reproduce the direct convolution: both sum the same products in the
// same (ic, ky, kx) order in float64, so the results are bit-identical.
func TestConv2DIm2Col(t *testing.T) {
	r := newRand(11)
	for _, p := range []Conv2DParams{
		{IC: 3, H: 9, W: 7, OC: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{IC: 2, H: 5, W: 6, OC: 3, KH: 1, KW: 1},
		{IC: 2, H: 8, W: 8, OC: 2, KH: 5, KW: 3, StrideH: 1, StrideW: 2, PadH: 2, PadW: 0},
		{IC: 1, H: 7, W: 7, OC: 2, KH: 3, KW: 3, PadH: 2, PadW: 2, DilH: 2, DilW: 2},
		{IC: 4, H: 3, W: 3, OC: 5, KH: 3, KW: 3, StrideH: 3, StrideW: 3, PadH: 1, PadW: 1},
	} {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		oh, ow, k := p.OutH(), p.OutW(), p.ColLen()
		x := randVec(r, p.IC*p.H*p.W, 1)
		w := randVec(r, p.OC*k, 1)
		bias := randVec(r, p.OC, 1)
		want := make([]float32, p.OC*oh*ow)
		Conv2DRef(x, w, bias, want, p, 0, p.OC)
		cols := make([]float32, oh*ow*k)
		for _, parts := range splits(oh * ow) {
			for _, s := range parts {
				Im2Col(x, cols[s[0]*k:], p, s[0], s[1])
			}
			got := make([]float32, len(want))
			for oc := 0; oc < p.OC; oc++ {
				for pix := 0; pix < oh*ow; pix++ {
					var s float64
					for e := 0; e < k; e++ {
						s += float64(w[oc*k+e]) * float64(cols[pix*k+e])
					}
					got[oc*oh*ow+pix] = float32(s + float64(bias[oc]))
				}
			}
			sameBits(t, "im2col+gemm vs direct", got, want)
		}
		// spot-check the direct convolution itself at one output
		oc, oy, ox := p.OC-1, oh-1, 0
		q := p.norm()
		var s float64
		for ic := 0; ic < p.IC; ic++ {
			for ky := 0; ky < p.KH; ky++ {
				for kx := 0; kx < p.KW; kx++ {
					iy, ix := oy*q.StrideH+ky*q.DilH-p.PadH, ox*q.StrideW+kx*q.DilW-p.PadW
					if iy >= 0 && iy < p.H && ix >= 0 && ix < p.W {
						s += float64(w[((oc*p.IC+ic)*p.KH+ky)*p.KW+kx]) * float64(x[(ic*p.H+iy)*p.W+ix])
					}
				}
			}
		}
		if g := want[(oc*oh+oy)*ow+ox]; math.Abs(float64(g)-(s+float64(bias[oc]))) > 1e-6 {
			t.Fatalf("%+v: direct conv = %g, want %g", p, g, s+float64(bias[oc]))
		}
	}
	if p := (Conv2DParams{IC: 1, H: 2, W: 2, OC: 1, KH: 5, KW: 5}); p.Validate() == nil {
		t.Fatal("a kernel larger than the input was accepted")
	}
	if p := (Conv2DParams{IC: 1, H: 8, W: 8, OC: 1, KH: 3, KW: 3, StrideH: 2, PadH: 1}); p.OutH() != 4 || p.OutW() != 6 {
		t.Fatalf("out size %dx%d", p.OutH(), p.OutW())
	}
}

func TestUpsampleNearest(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // [2][2][3]
	out := make([]float32, 2*4*6)
	UpsampleNearest(x, out, 2, 3, 2, 2, 0, 1)
	UpsampleNearest(x, out, 2, 3, 2, 2, 1, 2)
	want0 := []float32{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6}
	sameBits(t, "upsample c0", out[:24], want0)
	if out[24] != 7 || out[47] != 12 {
		t.Fatalf("upsample c1: %v", out[24:])
	}
}

// UpsampleNearest against its definition, for factors 1–3 in each
// direction, odd sizes and channel splits.
func TestUpsampleNearestFactors(t *testing.T) {
	r := newRand(12)
	const c, h, w = 3, 5, 7
	x := randVec(r, c*h*w, 1)
	for fy := 1; fy <= 3; fy++ {
		for fx := 1; fx <= 3; fx++ {
			oh, ow := h*fy, w*fx
			want := make([]float32, c*oh*ow)
			for ch := 0; ch < c; ch++ {
				for y := 0; y < oh; y++ {
					for xx := 0; xx < ow; xx++ {
						want[(ch*oh+y)*ow+xx] = x[(ch*h+y/fy)*w+xx/fx]
					}
				}
			}
			got := make([]float32, len(want))
			UpsampleNearest(x, got, h, w, fy, fx, 0, 1)
			UpsampleNearest(x, got, h, w, fy, fx, 1, c)
			sameBits(t, "upsample", got, want)
		}
	}
}
