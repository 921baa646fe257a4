// Package nn holds the layers the Stable Diffusion UNet and VAE share
// (convolution, linear, group and layer norm, the residual block, layout
// changes between channel maps and token rows), bound through param.Source and run on the
// compute backend. Every Forward allocates its output and leaves its input
// alone; callers free what they no longer need, so peak memory stays the
// live activations only.
package nn

import (
	"encoding/binary"
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// GroupNormEps is the epsilon of every UNet and VAE GroupNorm
// (stable-diffusion.cpp uses 1e-6 where original LDM used 1e-5).
const GroupNormEps = 1e-6

// LayerNormEps is the epsilon of the transformer LayerNorms.
const LayerNormEps = 1e-5

// Free releases tensors (nil is ignored).
func Free(b compute.Backend, ts ...*compute.Tensor) {
	for _, t := range ts {
		if t != nil {
			b.Free(t)
		}
	}
}

// Conv is a 2-D convolution with a square kernel and optional bias. With
// Scale ≠ 0 and ≠ 1 it computes conv(x·Scale)/Scale + bias (sd.cpp's SDXL
// VAE guard against F16 overflow, Scale = 1/32).
type Conv struct {
	W, B        *compute.Tensor // W is [oc, ic, k, k], or [oc, ic·k·k] when quantized
	K           int             // the kernel size
	Stride, Pad int
	Scale       float32
}

// BindConv binds name.weight [oc, ic, k, k] and name.bias [oc]. A source
// that quantizes the kernel returns it as the matrix [oc, ic·k·k].
func BindConv(src param.Source, name string, ic, oc, k, stride, pad int) Conv {
	return Conv{
		W:      src.Tensor(name+".weight", param.Conv, oc, ic, k, k),
		B:      src.Tensor(name+".bias", param.Bias, oc),
		K:      k,
		Stride: stride, Pad: pad,
	}
}

// OutChannels is the number of output channels.
func (c *Conv) OutChannels() int { return c.W.Shape[0] }

// Forward returns conv(x) for x [1, C, H, W].
func (c *Conv) Forward(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	return c.ForwardBias(b, x, nil)
}

// ForwardBias is Forward with extra per-output-channel values added to the
// bias (the ResBlock's timestep embedding, folded into the conv's bias).
func (c *Conv) ForwardBias(b compute.Backend, x *compute.Tensor, extra []float32) (*compute.Tensor, error) {
	n, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	k := c.K
	oh := (h+2*c.Pad-k)/c.Stride + 1
	ow := (w+2*c.Pad-k)/c.Stride + 1
	y, err := b.Alloc(tensor.F32, n, c.W.Shape[0], oh, ow)
	if err != nil {
		return nil, err
	}
	bias := c.B
	scaled := c.Scale != 0 && c.Scale != 1
	if extra != nil || scaled {
		// The bias joins the sum before the rescale, so it is divided by the
		// scale first: (conv(x·s) + b·s)/s = conv(x·s)/s + b exactly for a
		// power-of-two s.
		v, err := ReadF32(b, c.B)
		if err != nil {
			b.Free(y)
			return nil, err
		}
		for i := range v {
			if extra != nil {
				v[i] += extra[i]
			}
			if scaled {
				v[i] *= c.Scale
			}
		}
		if bias, err = param.Upload(b, tensor.F32, v, len(v)); err != nil {
			b.Free(y)
			return nil, err
		}
		defer b.Free(bias)
	}
	if scaled {
		// x is scaled in place and restored: multiplying by a power of two
		// and back is exact (short of F32 subnormals), and saves a copy of
		// the largest activations.
		if err := compute.Scale(x, c.Scale, x); err != nil {
			b.Free(y)
			return nil, err
		}
	}
	op := compute.Conv2DOp{X: x, W: c.W, B: bias, Y: y, StrideH: c.Stride, StrideW: c.Stride, PadH: c.Pad, PadW: c.Pad}
	if len(c.W.Shape) == 2 {
		op.KH, op.KW = k, k
	}
	err = compute.Conv2D(op)
	if scaled {
		if err2 := compute.Scale(x, 1/c.Scale, x); err == nil {
			err = err2
		}
		if err == nil {
			err = compute.Scale(y, 1/c.Scale, y)
		}
	}
	if err != nil {
		b.Free(y)
		return nil, err
	}
	return y, nil
}

// Linear is y = x·Wᵀ + b over rows.
type Linear struct{ W, B *compute.Tensor }

// BindLinear binds name.weight [out, in] and, with bias, name.bias [out].
func BindLinear(src param.Source, name string, in, out int, bias bool) Linear {
	l := Linear{W: src.Tensor(name+".weight", param.Linear, out, in)}
	if bias {
		l.B = src.Tensor(name+".bias", param.Bias, out)
	}
	return l
}

// Forward returns x·Wᵀ + b for x [n, in] (any leading shape).
func (l *Linear) Forward(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	shape := append([]int(nil), x.Shape...)
	shape[len(shape)-1] = l.W.Shape[0]
	y, err := b.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := l.Into(x, y); err != nil {
		b.Free(y)
		return nil, err
	}
	return y, nil
}

// Into writes x·Wᵀ + b into y.
func (l *Linear) Into(x, y *compute.Tensor) error {
	if err := compute.MatMul(l.W, x, y); err != nil {
		return err
	}
	if l.B != nil {
		return compute.AddTo(y, l.B, y)
	}
	return nil
}

// Half returns the linear layer made of the first (i = 0) or second (i = 1)
// half of the output rows: GEGLU's value and gate projections, as views.
func (l *Linear) Half(i int) (Linear, error) {
	n := l.W.Shape[0] / 2
	w, err := compute.Rows(l.W, i*n, (i+1)*n)
	if err != nil {
		return Linear{}, err
	}
	out := Linear{W: w}
	if l.B != nil {
		if out.B, err = compute.Rows(l.B, i*n, (i+1)*n); err != nil {
			return Linear{}, err
		}
	}
	return out, nil
}

// GroupNorm normalises [1, C, H, W] over 32 groups.
type GroupNorm struct{ W, B *compute.Tensor }

// BindGroupNorm binds name.weight and name.bias [c].
func BindGroupNorm(src param.Source, name string, c int) GroupNorm {
	return GroupNorm{W: src.Tensor(name+".weight", param.Norm, c), B: src.Tensor(name+".bias", param.Bias, c)}
}

// Forward returns the normalised x, followed by SiLU when silu is set.
func (g *GroupNorm) Forward(b compute.Backend, x *compute.Tensor, silu bool) (*compute.Tensor, error) {
	y, err := b.Alloc(tensor.F32, x.Shape...)
	if err != nil {
		return nil, err
	}
	err = compute.GroupNorm(x, g.W, g.B, y, 32, GroupNormEps)
	if err == nil && silu {
		err = compute.Unary(compute.SiLU, y, y, 0)
	}
	if err != nil {
		b.Free(y)
		return nil, err
	}
	return y, nil
}

// LayerNorm normalises rows.
type LayerNorm struct{ W, B *compute.Tensor }

// BindLayerNorm binds name.weight and name.bias [c].
func BindLayerNorm(src param.Source, name string, c int) LayerNorm {
	return LayerNorm{W: src.Tensor(name+".weight", param.Norm, c), B: src.Tensor(name+".bias", param.Bias, c)}
}

// Forward returns LayerNorm(x) (eps 1e-5).
func (l *LayerNorm) Forward(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	y, err := b.Alloc(tensor.F32, x.Shape...)
	if err != nil {
		return nil, err
	}
	if err := compute.Norm(compute.LayerNorm, x, l.W, l.B, y, LayerNormEps); err != nil {
		b.Free(y)
		return nil, err
	}
	return y, nil
}

// ToTokens returns the channel map x [1, C, H, W] as token rows [H·W, C].
func ToTokens(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	c, hw := x.Shape[1], x.Shape[2]*x.Shape[3]
	v, err := compute.Reshape(x, c, hw)
	if err != nil {
		return nil, err
	}
	if v, err = compute.Permute(v, 1, 0); err != nil {
		return nil, err
	}
	y, err := b.Alloc(tensor.F32, hw, c)
	if err != nil {
		return nil, err
	}
	if err := compute.Copy(v, y); err != nil {
		b.Free(y)
		return nil, err
	}
	return y, nil
}

// ToChannels returns token rows t [H·W, C] as the channel map [1, C, H, W].
func ToChannels(b compute.Backend, t *compute.Tensor, h, w int) (*compute.Tensor, error) {
	if t.Shape[0] != h*w {
		return nil, fmt.Errorf("to channels: %v is not %d×%d tokens", t, h, w)
	}
	c := t.Shape[1]
	v, err := compute.Permute(t, 1, 0)
	if err != nil {
		return nil, err
	}
	y, err := b.Alloc(tensor.F32, 1, c, h, w)
	if err != nil {
		return nil, err
	}
	if err := compute.Copy(v, y); err != nil {
		b.Free(y)
		return nil, err
	}
	return y, nil
}

// ReadF32 reads an F32 tensor's values to the host.
func ReadF32(b compute.Backend, t *compute.Tensor) ([]float32, error) {
	if t.DType != tensor.F32 {
		return nil, fmt.Errorf("read %v: want F32", t)
	}
	raw := make([]byte, 4*t.Elems())
	if err := b.Read(t, raw); err != nil {
		return nil, err
	}
	v := make([]float32, t.Elems())
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v, nil
}

// UploadF32 makes an F32 tensor of shape from host values.
func UploadF32(b compute.Backend, v []float32, shape ...int) (*compute.Tensor, error) {
	return param.Upload(b, tensor.F32, v, shape...)
}

// ResBlock is the residual block of the UNet and the VAE: GN → SiLU →
// conv3×3 → GN → SiLU → conv3×3, plus the input (through a 1×1 conv when
// the channel count changes).
type ResBlock struct {
	Norm1, Norm2 GroupNorm
	Conv1, Conv2 Conv
	Shortcut     *Conv // nil when in == out channels
}

// Forward runs the block on x; extra (the UNet's timestep embedding, one
// value per output channel, or nil) is added with the first conv's bias.
func (r *ResBlock) Forward(b compute.Backend, x *compute.Tensor, extra []float32) (*compute.Tensor, error) {
	h, err := r.Norm1.Forward(b, x, true)
	if err != nil {
		return nil, err
	}
	h2, err := r.Conv1.ForwardBias(b, h, extra)
	Free(b, h)
	if err != nil {
		return nil, err
	}
	h3, err := r.Norm2.Forward(b, h2, true)
	Free(b, h2)
	if err != nil {
		return nil, err
	}
	out, err := r.Conv2.Forward(b, h3)
	Free(b, h3)
	if err != nil {
		return nil, err
	}
	skip := x
	if r.Shortcut != nil {
		if skip, err = r.Shortcut.Forward(b, x); err != nil {
			Free(b, out)
			return nil, err
		}
		defer Free(b, skip)
	}
	if err := compute.AddTo(out, skip, out); err != nil {
		Free(b, out)
		return nil, err
	}
	return out, nil
}
