// Package oracle is the plain-Go float64 reference the UNet and VAE tests
// compare the backend against (test use only: it panics on backend errors).
package oracle

import (
	"math"

	"mica/internal/compute"
	"mica/internal/kernels/quant"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/tensor"
)

// This file is the plain-Go float64 oracle the UNet and VAE tests compare
// the backend against. It follows sd.cpp's precision choices where they
// change values beyond float64-vs-float32 noise: convolution inputs are
// rounded to F16 (F16 kernels, F16 im2col), Linear inputs are rounded to
// F16 when the weight is F16, and GELU is ggml's F16 table (input and
// output rounded to F16). Everything else is float64.

// Values reads any tensor's values (F32, F16, BF16, quantized) as float64.
func Values(b compute.Backend, t *compute.Tensor) []float64 {
	raw := make([]byte, mustRowBytes(t))
	if err := b.Read(t, raw); err != nil {
		panic(err)
	}
	v := make([]float32, t.Elems())
	if err := quant.Dequantize(t.DType, raw, v); err != nil {
		panic(err)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func mustRowBytes(t *compute.Tensor) int64 {
	n, ok := t.DType.RowBytes(int64(t.Elems()))
	if !ok {
		panic("oracle: tensor " + t.String() + " is not whole blocks")
	}
	return n
}

// F16 rounds to the nearest F16 value.
func F16(x float64) float64 { return float64(quant.FP16ToFP32(quant.FP32ToFP16(float32(x)))) }

// Map is a float64 channel map [C][H][W].
type Map struct {
	C, H, W int
	V       []float64
}

// NewMap makes a zero map.
func NewMap(c, h, w int) *Map { return &Map{c, h, w, make([]float64, c*h*w)} }

// At is element (c, y, x).
func (m *Map) At(c, y, x int) float64 { return m.V[(c*m.H+y)*m.W+x] }

// Conv is conv2d with F16-rounded inputs (weights are already F16)
// plus bias; scale ≠ 0, 1 applies sd.cpp's conv(x·s)/s.
func Conv(b compute.Backend, c *nn.Conv, x *Map) *Map {
	w, bias := Values(b, c.W), Values(b, c.B)
	oc, ic, k := c.W.Shape[0], c.W.Shape[1], c.W.Shape[2]
	s := float64(c.Scale)
	if s == 0 {
		s = 1
	}
	oh := (x.H+2*c.Pad-k)/c.Stride + 1
	ow := (x.W+2*c.Pad-k)/c.Stride + 1
	in := make([]float64, len(x.V))
	for i, v := range x.V {
		in[i] = F16(float64(float32(v * s)))
	}
	y := NewMap(oc, oh, ow)
	for o := 0; o < oc; o++ {
		for yy := 0; yy < oh; yy++ {
			for xx := 0; xx < ow; xx++ {
				acc := 0.0
				for ci := 0; ci < ic; ci++ {
					for ky := 0; ky < k; ky++ {
						iy := yy*c.Stride - c.Pad + ky
						if iy < 0 || iy >= x.H {
							continue
						}
						for kx := 0; kx < k; kx++ {
							ix := xx*c.Stride - c.Pad + kx
							if ix < 0 || ix >= x.W {
								continue
							}
							acc += w[((o*ic+ci)*k+ky)*k+kx] * in[(ci*x.H+iy)*x.W+ix]
						}
					}
				}
				y.V[(o*oh+yy)*ow+xx] = acc/s + bias[o]
			}
		}
	}
	return y
}

// GroupNorm is GroupNorm(32, eps 1e-6), then SiLU when silu is set.
func GroupNorm(b compute.Backend, g *nn.GroupNorm, x *Map, silu bool) *Map {
	w, bias := Values(b, g.W), Values(b, g.B)
	y := NewMap(x.C, x.H, x.W)
	per := x.C / 32 * x.H * x.W
	for gi := 0; gi < 32; gi++ {
		seg := x.V[gi*per : (gi+1)*per]
		mean, vr := 0.0, 0.0
		for _, v := range seg {
			mean += v
		}
		mean /= float64(per)
		for _, v := range seg {
			vr += (v - mean) * (v - mean)
		}
		vr /= float64(per)
		inv := 1 / math.Sqrt(vr+nn.GroupNormEps)
		for i := range seg {
			c := (gi*per + i) / (x.H * x.W)
			v := (seg[i]-mean)*inv*w[c] + bias[c]
			if silu {
				v = SiLU64(v)
			}
			y.V[gi*per+i] = v
		}
	}
	return y
}

// SiLU64 is x·σ(x).
func SiLU64(x float64) float64 { return x / (1 + math.Exp(-x)) }

// GELU64 is ggml's F16-table tanh GELU: the input rounded to F16, GELU
// evaluated in float32 as ggml_gelu_f32 does, the result rounded to F16;
// x <= -10 gives 0 and x >= 10 gives x.
func GELU64(x float64) float64 {
	if x <= -10 {
		return 0
	}
	if x >= 10 {
		return x
	}
	f := float32(F16(x))
	inner := float32(float32(0.7978845608028654)*f) * float32(1+float32(float32(float32(0.044715)*f)*f))
	t := float32(math.Tanh(float64(inner)))
	return F16(float64(float32(float32(0.5)*f) * (1 + t)))
}

// Linear applies l to rows x[n][in] (rounding inputs to F16 for F16
// weights, as ggml does).
func Linear(b compute.Backend, l *nn.Linear, x [][]float64) [][]float64 {
	w := Values(b, l.W)
	var bias []float64
	if l.B != nil {
		bias = Values(b, l.B)
	}
	out, in := l.W.Shape[0], l.W.Shape[1]
	y := make([][]float64, len(x))
	for r, row := range x {
		xr := row
		if l.W.DType == tensor.F16 {
			xr = make([]float64, in)
			for i, v := range row {
				xr[i] = F16(v)
			}
		}
		y[r] = make([]float64, out)
		for o := 0; o < out; o++ {
			acc := 0.0
			for i := 0; i < in; i++ {
				acc += w[o*in+i] * xr[i]
			}
			if bias != nil {
				acc += bias[o]
			}
			y[r][o] = acc
		}
	}
	return y
}

// LayerNorm normalises rows (eps 1e-5).
func LayerNorm(b compute.Backend, l *nn.LayerNorm, x [][]float64) [][]float64 {
	w, bias := Values(b, l.W), Values(b, l.B)
	y := make([][]float64, len(x))
	for r, row := range x {
		mean, vr := 0.0, 0.0
		for _, v := range row {
			mean += v
		}
		mean /= float64(len(row))
		for _, v := range row {
			vr += (v - mean) * (v - mean)
		}
		vr /= float64(len(row))
		inv := 1 / math.Sqrt(vr+nn.LayerNormEps)
		y[r] = make([]float64, len(row))
		for i, v := range row {
			y[r][i] = (v-mean)*inv*w[i] + bias[i]
		}
	}
	return y
}

// Attention is softmax(q·kᵀ/√d)·v per head over rows q[n][heads·d],
// k[m][heads·d], v[m][heads·d].
func Attention(q, k, v [][]float64, heads int) [][]float64 {
	d := len(q[0]) / heads
	out := make([][]float64, len(q))
	for i := range q {
		out[i] = make([]float64, len(q[0]))
		for h := 0; h < heads; h++ {
			s := make([]float64, len(k))
			mx := math.Inf(-1)
			for j := range k {
				for e := 0; e < d; e++ {
					s[j] += q[i][h*d+e] * k[j][h*d+e]
				}
				s[j] /= math.Sqrt(float64(d))
				mx = math.Max(mx, s[j])
			}
			sum := 0.0
			for j := range s {
				s[j] = math.Exp(s[j] - mx)
				sum += s[j]
			}
			for j := range k {
				for e := 0; e < d; e++ {
					out[i][h*d+e] += s[j] / sum * v[j][h*d+e]
				}
			}
		}
	}
	return out
}

// Tokens returns m as rows [H·W][C].
func (m *Map) Tokens() [][]float64 {
	t := make([][]float64, m.H*m.W)
	for p := range t {
		t[p] = make([]float64, m.C)
		for c := 0; c < m.C; c++ {
			t[p][c] = m.V[c*m.H*m.W+p]
		}
	}
	return t
}

// FromTokens makes a map [C][H][W] from rows [H·W][C].
func FromTokens(t [][]float64, h, w int) *Map {
	m := NewMap(len(t[0]), h, w)
	for p := range t {
		for c := range t[p] {
			m.V[c*h*w+p] = t[p][c]
		}
	}
	return m
}

// Add returns a + b elementwise.
func Add(a, b *Map) *Map {
	y := NewMap(a.C, a.H, a.W)
	for i := range y.V {
		y.V[i] = a.V[i] + b.V[i]
	}
	return y
}

// Upsample2 is nearest-neighbour ×2.
func Upsample2(x *Map) *Map {
	y := NewMap(x.C, 2*x.H, 2*x.W)
	for c := 0; c < x.C; c++ {
		for yy := 0; yy < y.H; yy++ {
			for xx := 0; xx < y.W; xx++ {
				y.V[(c*y.H+yy)*y.W+xx] = x.At(c, yy/2, xx/2)
			}
		}
	}
	return y
}

// MapOf reads an F32 [1, C, H, W] tensor.
func MapOf(b compute.Backend, t *compute.Tensor) *Map {
	return &Map{t.Shape[1], t.Shape[2], t.Shape[3], Values(b, t)}
}
