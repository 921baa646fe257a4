package ops

import "fmt"

// Conv2DParams describes a 2-D convolution over one image in NCHW layout:
// input [IC][H][W], weights [OC][IC][KH][KW], output [OC][OutH][OutW].
// Stride and dilation 0 mean 1.
type Conv2DParams struct {
	IC, H, W         int
	OC, KH, KW       int
	StrideH, StrideW int
	PadH, PadW       int
	DilH, DilW       int
}

func (p Conv2DParams) norm() Conv2DParams {
	if p.StrideH == 0 {
		p.StrideH = 1
	}
	if p.StrideW == 0 {
		p.StrideW = 1
	}
	if p.DilH == 0 {
		p.DilH = 1
	}
	if p.DilW == 0 {
		p.DilW = 1
	}
	return p
}

// OutH is the output height: (H + 2*PadH - DilH*(KH-1) - 1)/StrideH + 1.
func (p Conv2DParams) OutH() int {
	p = p.norm()
	return (p.H+2*p.PadH-p.DilH*(p.KH-1)-1)/p.StrideH + 1
}

// OutW is the output width.
func (p Conv2DParams) OutW() int {
	p = p.norm()
	return (p.W+2*p.PadW-p.DilW*(p.KW-1)-1)/p.StrideW + 1
}

// ColLen is the length of one im2col row: IC*KH*KW.
func (p Conv2DParams) ColLen() int { return p.IC * p.KH * p.KW }

// Validate reports impossible shapes.
func (p Conv2DParams) Validate() error {
	q := p.norm()
	switch {
	case p.IC <= 0 || p.H <= 0 || p.W <= 0 || p.OC <= 0 || p.KH <= 0 || p.KW <= 0:
		return fmt.Errorf("conv2d: sizes must be positive: %+v", p)
	case q.StrideH < 0 || q.StrideW < 0 || q.DilH < 0 || q.DilW < 0 || p.PadH < 0 || p.PadW < 0:
		return fmt.Errorf("conv2d: negative stride, dilation or padding: %+v", p)
	case p.OutH() <= 0 || p.OutW() <= 0:
		return fmt.Errorf("conv2d: kernel %dx%d does not fit the padded %dx%d input", p.KH, p.KW, p.H, p.W)
	}
	return nil
}

// Im2Col writes the patches of output pixels [pixStart, pixEnd) (pixel =
// oy*OutW + ox) to cols: row pix-pixStart holds ColLen values ordered (ic, ky, kx),
// zeros where the kernel falls in the padding. This is ggml's im2col layout,
// so out[oc][pix] = dot(weights[oc], cols[pix]) — a GEMM whose operands are
// both contiguous along ColLen.
func Im2Col(x, cols []float32, p Conv2DParams, pixStart, pixEnd int) {
	p = p.norm()
	ow := p.OutW()
	k := p.ColLen()
	for pix := pixStart; pix < pixEnd; pix++ {
		oy, ox := pix/ow, pix%ow
		row := cols[(pix-pixStart)*k : (pix-pixStart)*k+k]
		n := 0
		for ic := 0; ic < p.IC; ic++ {
			plane := x[ic*p.H*p.W : (ic+1)*p.H*p.W]
			for ky := 0; ky < p.KH; ky++ {
				iy := oy*p.StrideH + ky*p.DilH - p.PadH
				for kx := 0; kx < p.KW; kx++ {
					ix := ox*p.StrideW + kx*p.DilW - p.PadW
					if iy < 0 || iy >= p.H || ix < 0 || ix >= p.W {
						row[n] = 0
					} else {
						row[n] = plane[iy*p.W+ix]
					}
					n++
				}
			}
		}
	}
}

// Conv2DRef is the direct (reference) convolution for output channels
// [ocStart, ocEnd): out[oc][oy][ox] = bias[oc] + sum over (ic, ky, kx) of
// w * x, accumulated in float64 and rounded once. bias may be nil.
func Conv2DRef(x, w, bias, out []float32, p Conv2DParams, ocStart, ocEnd int) {
	p = p.norm()
	oh, ow := p.OutH(), p.OutW()
	k := p.ColLen()
	for oc := ocStart; oc < ocEnd; oc++ {
		wk := w[oc*k : oc*k+k]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				var s float64
				n := 0
				for ic := 0; ic < p.IC; ic++ {
					for ky := 0; ky < p.KH; ky++ {
						iy := oy*p.StrideH + ky*p.DilH - p.PadH
						for kx := 0; kx < p.KW; kx++ {
							ix := ox*p.StrideW + kx*p.DilW - p.PadW
							if iy >= 0 && iy < p.H && ix >= 0 && ix < p.W {
								s += float64(wk[n]) * float64(x[(ic*p.H+iy)*p.W+ix])
							}
							n++
						}
					}
				}
				if bias != nil {
					s += float64(bias[oc])
				}
				out[(oc*oh+oy)*ow+ox] = float32(s)
			}
		}
	}
}

// UpsampleNearest scales channels [chanStart, chanEnd) of x ([C][h][w]) by
// integer factors: out[c][y][x] = x[c][y/fy][x/fx], out is [C][h*fy][w*fx].
// Each source row is widened once; the fy−1 rows that repeat it are copies.
func UpsampleNearest(x, out []float32, h, w, fy, fx int, chanStart, chanEnd int) {
	oh, ow := h*fy, w*fx
	for c := chanStart; c < chanEnd; c++ {
		src := x[c*h*w : (c+1)*h*w]
		dst := out[c*oh*ow : (c+1)*oh*ow]
		for y := 0; y < h; y++ {
			srow := src[y*w : y*w+w]
			drow := dst[y*fy*ow : y*fy*ow+ow]
			switch fx {
			case 1:
				copy(drow, srow)
			case 2:
				for i, v := range srow {
					drow[2*i], drow[2*i+1] = v, v
				}
			default:
				for i, v := range srow {
					for d := drow[i*fx : i*fx+fx]; len(d) > 0; d = d[1:] {
						d[0] = v
					}
				}
			}
			for r := 1; r < fy; r++ {
				copy(dst[(y*fy+r)*ow:(y*fy+r+1)*ow], drow)
			}
		}
	}
}
