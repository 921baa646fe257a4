package ops

import (
	"fmt"
	"math"
	"testing"

	"mica/internal/kernels/quant"
)

// convF16Cases are awkward shapes: channel counts off the 6/8/16 grid,
// odd sizes, rows narrower and wider than a 16-pixel tile, strides 2 and
// 3, padding 0/1/2, dilation, 1×1 (planned as one long row, or not when
// the pixel count is no multiple of 16), tap counts below 16 (no lane step
// at all: every tap is a tail tap) and above one default tap chunk.
var convF16Cases = []Conv2DParams{
	{IC: 3, H: 9, W: 7, OC: 4, KH: 3, KW: 3, PadH: 1, PadW: 1},
	{IC: 5, H: 17, W: 19, OC: 13, KH: 3, KW: 3, PadH: 1, PadW: 1},
	{IC: 16, H: 8, W: 8, OC: 7, KH: 3, KW: 3, PadH: 1, PadW: 1},
	{IC: 7, H: 33, W: 35, OC: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	{IC: 4, H: 9, W: 10, OC: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
	{IC: 2, H: 8, W: 8, OC: 2, KH: 5, KW: 3, StrideH: 1, StrideW: 2, PadH: 2, PadW: 0},
	{IC: 3, H: 11, W: 12, OC: 5, KH: 3, KW: 3, PadH: 2, PadW: 2, DilH: 2, DilW: 2},
	{IC: 4, H: 7, W: 7, OC: 5, KH: 3, KW: 3, StrideH: 3, StrideW: 3, PadH: 1, PadW: 1},
	{IC: 33, H: 5, W: 6, OC: 11, KH: 1, KW: 1},
	{IC: 20, H: 4, W: 12, OC: 8, KH: 1, KW: 1},
	{IC: 17, H: 6, W: 40, OC: 6, KH: 1, KW: 1, StrideH: 2, StrideW: 2},
	{IC: 1, H: 3, W: 3, OC: 1, KH: 1, KW: 1},
	{IC: 40, H: 5, W: 21, OC: 14, KH: 3, KW: 3, PadH: 1, PadW: 1},
	{IC: 350, H: 3, W: 5, OC: 7, KH: 3, KW: 3, PadH: 1, PadW: 1}, // 196 lane steps: 2 chunks of the default
	{IC: 5, H: 2, W: 9, OC: 200, KH: 3, KW: 3, PadH: 1, PadW: 1}, // 2 tiles, 34 blocks: up to 8 slices
}

// convF16Oracle computes what im2col → matmul (F16 weights) → + bias
// computes, independently of ConvF16's band layout: Im2Col, each patch
// value rounded to F16, then matmul's lane order per output (products of
// F16 values are exact in float32, so acc + w·x is the fma).
func convF16Oracle(x []float32, w []uint16, bias []float32, p Conv2DParams) []float32 {
	oh, ow, k := p.OutH(), p.OutW(), p.ColLen()
	cols := make([]float32, oh*ow*k)
	Im2Col(x, cols, p, 0, oh*ow)
	for i, v := range cols {
		cols[i] = quant.FP16ToFP32(quant.FP32ToFP16(v))
	}
	out := make([]float32, p.OC*oh*ow)
	kmain := k / 16 * 16
	for oc := 0; oc < p.OC; oc++ {
		for pix := 0; pix < oh*ow; pix++ {
			xr := cols[pix*k : pix*k+k]
			var acc [16]float32
			for kk := 0; kk < kmain; kk++ {
				acc[kk%16] += float32(quant.FP16ToFP32(w[oc*k+kk]) * xr[kk])
			}
			for j := 0; j < 8; j++ {
				acc[j] += acc[j+8]
			}
			for j := 0; j < 4; j++ {
				acc[j] += acc[j+4]
			}
			s := (acc[0] + acc[2]) + (acc[1] + acc[3])
			for kk := kmain; kk < k; kk++ {
				s += float32(quant.FP16ToFP32(w[oc*k+kk]) * xr[kk])
			}
			var b float32
			if bias != nil {
				b = bias[oc]
			}
			out[oc*oh*ow+pix] = s + b
		}
	}
	return out
}

func f16Bytes(w []uint16) []byte {
	b := make([]byte, 2*len(w))
	for i, v := range w {
		b[2*i], b[2*i+1] = byte(v), byte(v>>8)
	}
	return b
}

// runConvF16 runs the whole convolution group by group and band by band,
// the panel blocks, input channels and tiles split into parts chunks.
func runConvF16(t *testing.T, p Conv2DParams, x []float32, w []byte, bias []float32, bandFloats, panelFloats, parts int) []float32 {
	t.Helper()
	c, err := NewConvF16(p, bandFloats, panelFloats)
	if err != nil {
		t.Fatal(err)
	}
	if parts > 1 {
		c.chunk = parts*parts - 2 // 2 and 7 lane steps: several tap chunks
		c.tileGroup = parts       // and tile groups of 2 and 3
	}
	y := make([]float32, p.OC*p.OutH()*p.OutW())
	for i := range y {
		y[i] = float32(math.NaN()) // every output must be written
	}
	band := make([]float32, c.BandFloats())
	panel := make([]float32, c.PanelFloats())
	for g := 0; g < c.Groups(); g++ {
		nb := c.PanelBlocks(g)
		for q := 0; q < parts; q++ {
			if err := c.FillPanel(w, panel, g, q*nb/parts, (q+1)*nb/parts); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < c.Bands(); i++ {
			b := c.Band(i, 1+(parts-1)*7) // 1, 8, 15 threads: channel slices
			for q := 0; q < parts; q++ {
				if err := c.FillBand(x, band, b, q*p.IC/parts, (q+1)*p.IC/parts); err != nil {
					t.Fatal(err)
				}
			}
			for q := 0; q < parts; q++ {
				if err := c.Run(band, w, panel, bias, y, b, g, q*b.Units/parts, (q+1)*b.Units/parts); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return y
}

// The band kernels (fast and plain Go) give exactly the oracle's bits for
// every shape, band size and split of the work.
func TestConvF16MatchesIm2ColOrder(t *testing.T) {
	r := newRand(5)
	for ci, p := range convF16Cases {
		k := p.ColLen()
		x := randVec(r, p.IC*p.H*p.W, 2)
		x[0], x[len(x)-1] = 70000, -1e-6 // F16 overflow to Inf; a subnormal
		wf := randVec(r, p.OC*k, 0.3)
		w := make([]uint16, len(wf))
		for i, v := range wf {
			w[i] = quant.FP32ToFP16(v)
		}
		var bias []float32
		if ci%2 == 0 {
			bias = randVec(r, p.OC, 1)
		}
		if ci == 0 {
			x[0] = 1 // keep one case free of Inf
		}
		want := convF16Oracle(x, w, bias, p)
		wb := f16Bytes(w)
		for _, bf := range []int{1, 700, 1 << 20} {
			for _, pf := range []int{1, 700, 1 << 20} {
				for _, parts := range []int{1, 2, 3} {
					name := fmt.Sprintf("%+v band %d panel %d parts %d", p, bf, pf, parts)
					sameBits(t, name+" fast", runConvF16(t, p, x, wb, bias, bf, pf, parts), want)
					withRef(func() {
						sameBits(t, name+" ref", runConvF16(t, p, x, wb, bias, bf, pf, parts), want)
					})
				}
			}
		}
	}
}

// Against the float64 direct convolution of the F16-rounded operands the
// float32 sums differ only by accumulated rounding. Every product is exact;
// an output's value passes through at most m = K/16 + 4 + 16 + 1 float32
// additions (its lane, the reduction tree, the tail taps, the bias), so
// |Δ| ≤ m·2⁻²⁴·(Σ|w·x| + |bias|) to first order: for the largest case here
// (K = 3150, m = 218) that is 1.3e-5·Σ. Tolerance 2e-5·(Σ|w·x| + |bias|).
func TestConvF16NearDirect(t *testing.T) {
	r := newRand(6)
	for _, p := range convF16Cases {
		k := p.ColLen()
		x := randVec(r, p.IC*p.H*p.W, 1)
		for i, v := range x {
			x[i] = quant.FP16ToFP32(quant.FP32ToFP16(v))
		}
		wf := randVec(r, p.OC*k, 0.3)
		w := make([]uint16, len(wf))
		for i, v := range wf {
			w[i] = quant.FP32ToFP16(v)
			wf[i] = quant.FP16ToFP32(w[i])
		}
		bias := randVec(r, p.OC, 1)
		got := runConvF16(t, p, x, f16Bytes(w), bias, 1<<20, 1<<20, 2)
		want := make([]float32, len(got))
		Conv2DRef(x, wf, bias, want, p, 0, p.OC)
		abs := make([]float32, len(got))
		xa, wa := make([]float32, len(x)), make([]float32, len(wf))
		for i := range x {
			xa[i] = float32(math.Abs(float64(x[i])))
		}
		for i := range wf {
			wa[i] = float32(math.Abs(float64(wf[i])))
		}
		Conv2DRef(xa, wa, nil, abs, p, 0, p.OC)
		for i := range got {
			if d := math.Abs(float64(got[i]) - float64(want[i])); d > 2e-5*(float64(abs[i])+math.Abs(float64(bias[i/(len(got)/p.OC)]))) {
				t.Fatalf("%+v: [%d] = %g, want %g (Σ|w·x| %g)", p, i, got[i], want[i], abs[i])
			}
		}
	}
}

func TestConvF16Errors(t *testing.T) {
	if _, err := NewConvF16(Conv2DParams{IC: 1, H: 2, W: 2, OC: 1, KH: 5, KW: 5}, 1<<20, 1<<20); err == nil {
		t.Fatal("a kernel larger than the input was accepted")
	}
	p := Conv2DParams{IC: 2, H: 4, W: 4, OC: 2, KH: 3, KW: 3, PadH: 1, PadW: 1}
	c, err := NewConvF16(p, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	band, panel := make([]float32, c.BandFloats()), make([]float32, c.PanelFloats())
	if err := c.Run(band, make([]byte, 10), panel, nil, make([]float32, 32), c.Band(0, 1), 0, 0, 1); err == nil {
		t.Fatal("short weights were accepted")
	}
	if err := c.FillPanel(make([]byte, 10), panel, 0, 0, 1); err == nil {
		t.Fatal("short weights were accepted by FillPanel")
	}
	if err := c.FillBand(make([]float32, 5), band, c.Band(0, 1), 0, 2); err == nil {
		t.Fatal("a short input was accepted by FillBand")
	}
	if err := c.FillBand(make([]float32, 32), band, c.Band(0, 1), 0, 3); err == nil {
		t.Fatal("a channel range past IC was accepted by FillBand")
	}
	w := make([]byte, 2*2*18)
	if err := c.Run(band, w, panel, nil, make([]float32, 32), c.Band(0, 1), 0, 0, 99); err == nil {
		t.Fatal("units past the band were accepted")
	}
	if err := c.Run(band, w, panel, nil, make([]float32, 32), c.Band(0, 1), 1, 0, 1); err == nil {
		t.Fatal("a group past the last was accepted")
	}
}
