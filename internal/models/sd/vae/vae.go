// Package vae is the Stable Diffusion KL autoencoder (AutoencoderKL, the
// same architecture for SD 1.x, SD 2.x and SDXL) on the compute backend:
// the decoder (latent → image, whole or in blended tiles) and the encoder
// (image → latent mean and log-variance).
package vae

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// Options are the load-time choices.
type Options struct {
	// ConvScale, when not 0 or 1, makes every conv compute
	// conv(x·s)/s + bias: sd.cpp's guard against the SDXL VAE's F16
	// overflow (s = 1/32) when no separate VAE file is given.
	ConvScale float32
	// NoEncoder skips the encoder's weights (decode-only use).
	NoEncoder bool
}

// Config is the autoencoder's shape, detected from the weights.
type Config struct {
	Ch           int   // base channels (128)
	ChMult       []int // (1,2,4,4)
	NumResBlocks int   // per encoder level (2); the decoder has one more
	ZChannels    int   // latent channels (4)
	InChannels   int   // image channels (3)
}

// Model is a loaded autoencoder.
type Model struct {
	Config    Config
	Encoder   *Encoder // nil when loaded with NoEncoder
	Decoder   *Decoder
	Quant     *nn.Conv // quant_conv [2z, 2z, 1, 1]
	PostQuant nn.Conv  // post_quant_conv [z, z, 1, 1]
}

// ResnetBlock is the VAE's residual block (nn.ResBlock: GN → SiLU →
// conv3×3 → GN → SiLU → conv3×3, plus the input, through a 1×1
// nin_shortcut when the channel count changes).
type ResnetBlock = nn.ResBlock

// AttnBlock is the single-head self-attention of the mid block, with
// conv-shaped (1×1) q, k, v and proj_out weights run as F16 1×1 convs.
type AttnBlock struct {
	Norm             nn.GroupNorm
	Q, K, V, ProjOut nn.Conv
}

// Mid is block_1, attn_1, block_2.
type Mid struct {
	Block1, Block2 *ResnetBlock
	Attn           *AttnBlock
}

// Decoder maps z to an image.
type Decoder struct {
	ConvIn  nn.Conv
	Mid     Mid
	Up      [][]*ResnetBlock // Up[level] in the checkpoint's numbering (level 0 at full resolution)
	Upconv  []*nn.Conv       // upsample conv per level (nil at level 0)
	NormOut nn.GroupNorm
	ConvOut nn.Conv
}

// Encoder maps an image to 2z channels (mean, logvar).
type Encoder struct {
	ConvIn   nn.Conv
	Down     [][]*ResnetBlock
	Downconv []*nn.Conv // stride-2 conv after right/bottom zero padding (nil at the deepest level)
	Mid      Mid
	NormOut  nn.GroupNorm
	ConvOut  nn.Conv
}

// DetectConfig reads the autoencoder's shape from the decoder's weights.
func DetectConfig(src param.Source, prefix string) (Config, error) {
	var cfg Config
	s, ok := src.Shape(prefix + "decoder.conv_out.weight")
	if !ok || len(s) != 4 {
		return cfg, fmt.Errorf("vae: no conv %sdecoder.conv_out.weight", prefix)
	}
	cfg.InChannels, cfg.Ch = s[0], s[1]
	if s, ok = src.Shape(prefix + "decoder.conv_in.weight"); !ok || len(s) != 4 {
		return cfg, fmt.Errorf("vae: no conv %sdecoder.conv_in.weight", prefix)
	}
	cfg.ZChannels = s[1]
	for l := 0; ; l++ {
		s, ok := src.Shape(fmt.Sprintf("%sdecoder.up.%d.block.0.conv1.weight", prefix, l))
		if !ok {
			break
		}
		if len(s) != 4 || s[0]%cfg.Ch != 0 {
			return cfg, fmt.Errorf("vae: decoder.up.%d.block.0.conv1.weight has shape %v", l, s)
		}
		cfg.ChMult = append(cfg.ChMult, s[0]/cfg.Ch)
		if l > 16 {
			return cfg, fmt.Errorf("vae: more than 16 levels")
		}
	}
	if len(cfg.ChMult) == 0 {
		return cfg, fmt.Errorf("vae: no decoder.up.0.block.0 under %q", prefix)
	}
	for {
		if _, ok := src.Shape(fmt.Sprintf("%sdecoder.up.0.block.%d.conv1.weight", prefix, cfg.NumResBlocks+1)); !ok {
			break
		}
		cfg.NumResBlocks++
	}
	if cfg.NumResBlocks == 0 {
		return cfg, fmt.Errorf("vae: decoder.up.0 has a single block")
	}
	return cfg, nil
}

// Load detects the configuration and binds the weights under prefix (e.g.
// "first_stage_model."), reporting every missing or mis-shaped tensor.
func Load(src param.Source, prefix string, o Options) (*Model, error) {
	cfg, err := DetectConfig(src, prefix)
	if err != nil {
		return nil, err
	}
	return LoadConfig(src, prefix, cfg, o)
}

// LoadConfig binds the weights of an autoencoder of a known configuration.
func LoadConfig(src param.Source, prefix string, cfg Config, o Options) (*Model, error) {
	if cfg.Ch <= 0 || len(cfg.ChMult) == 0 || cfg.NumResBlocks <= 0 || cfg.ZChannels <= 0 || cfg.InChannels <= 0 {
		return nil, fmt.Errorf("vae: invalid config %+v", cfg)
	}
	m := &Model{Config: cfg}
	conv := func(name string, ic, oc, k, stride, pad int) nn.Conv {
		c := nn.BindConv(src, prefix+name, ic, oc, k, stride, pad)
		c.Scale = o.ConvScale
		return c
	}
	res := func(name string, in, out int) *ResnetBlock {
		r := &ResnetBlock{
			Norm1: nn.BindGroupNorm(src, prefix+name+".norm1", in),
			Conv1: conv(name+".conv1", in, out, 3, 1, 1),
			Norm2: nn.BindGroupNorm(src, prefix+name+".norm2", out),
			Conv2: conv(name+".conv2", out, out, 3, 1, 1),
		}
		if in != out {
			c := conv(name+".nin_shortcut", in, out, 1, 1, 0)
			r.Shortcut = &c
		}
		return r
	}
	mid := func(name string, ch int) Mid {
		return Mid{
			Block1: res(name+".block_1", ch, ch),
			Attn: &AttnBlock{
				Norm:    nn.BindGroupNorm(src, prefix+name+".attn_1.norm", ch),
				Q:       conv(name+".attn_1.q", ch, ch, 1, 1, 0),
				K:       conv(name+".attn_1.k", ch, ch, 1, 1, 0),
				V:       conv(name+".attn_1.v", ch, ch, 1, 1, 0),
				ProjOut: conv(name+".attn_1.proj_out", ch, ch, 1, 1, 0),
			},
			Block2: res(name+".block_2", ch, ch),
		}
	}
	levels := len(cfg.ChMult)
	top := cfg.Ch * cfg.ChMult[levels-1]
	z := cfg.ZChannels

	d := &Decoder{ConvIn: conv("decoder.conv_in", z, top, 3, 1, 1), Mid: mid("decoder.mid", top)}
	d.Up = make([][]*ResnetBlock, levels)
	d.Upconv = make([]*nn.Conv, levels)
	ch := top
	for l := levels - 1; l >= 0; l-- {
		out := cfg.Ch * cfg.ChMult[l]
		for j := 0; j <= cfg.NumResBlocks; j++ {
			d.Up[l] = append(d.Up[l], res(fmt.Sprintf("decoder.up.%d.block.%d", l, j), ch, out))
			ch = out
		}
		if l != 0 {
			c := conv(fmt.Sprintf("decoder.up.%d.upsample.conv", l), ch, ch, 3, 1, 1)
			d.Upconv[l] = &c
		}
	}
	d.NormOut = nn.BindGroupNorm(src, prefix+"decoder.norm_out", ch)
	d.ConvOut = conv("decoder.conv_out", ch, cfg.InChannels, 3, 1, 1)
	m.Decoder = d
	m.PostQuant = conv("post_quant_conv", z, z, 1, 1, 0)

	if !o.NoEncoder {
		e := &Encoder{ConvIn: conv("encoder.conv_in", cfg.InChannels, cfg.Ch, 3, 1, 1)}
		ch := cfg.Ch
		e.Down = make([][]*ResnetBlock, levels)
		e.Downconv = make([]*nn.Conv, levels)
		for l := 0; l < levels; l++ {
			out := cfg.Ch * cfg.ChMult[l]
			for j := 0; j < cfg.NumResBlocks; j++ {
				e.Down[l] = append(e.Down[l], res(fmt.Sprintf("encoder.down.%d.block.%d", l, j), ch, out))
				ch = out
			}
			if l != levels-1 {
				c := conv(fmt.Sprintf("encoder.down.%d.downsample.conv", l), ch, ch, 3, 2, 0)
				e.Downconv[l] = &c
			}
		}
		e.Mid = mid("encoder.mid", ch)
		e.NormOut = nn.BindGroupNorm(src, prefix+"encoder.norm_out", ch)
		e.ConvOut = conv("encoder.conv_out", ch, 2*z, 3, 1, 1)
		m.Encoder = e
		q := conv("quant_conv", 2*z, 2*z, 1, 1, 0)
		m.Quant = &q
	}
	if err := src.Err(); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	return m, nil
}

// forward is x + proj_out(softmax(q·kᵀ/√C)·v) over the H·W positions.
func (a *AttnBlock) forward(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	h, w, c := x.Shape[2], x.Shape[3], x.Shape[1]
	n, err := a.Norm.Forward(b, x, false)
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, n)
	var tok [3]*compute.Tensor // q, k, v as token rows [H·W, C]
	defer func() { nn.Free(b, tok[:]...) }()
	for i, conv := range []*nn.Conv{&a.Q, &a.K, &a.V} {
		m, err := conv.Forward(b, n)
		if err != nil {
			return nil, err
		}
		tok[i], err = nn.ToTokens(b, m)
		nn.Free(b, m)
		if err != nil {
			return nil, err
		}
	}
	o, err := b.Alloc(tensor.F32, h*w, c)
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, o)
	q3, _ := compute.Reshape(tok[0], h*w, 1, c)
	k3, _ := compute.Reshape(tok[1], h*w, 1, c)
	v3, _ := compute.Reshape(tok[2], h*w, 1, c)
	o3, _ := compute.Reshape(o, h*w, 1, c)
	if err := compute.Attention(compute.AttentionOp{Q: q3, K: k3, V: v3, Out: o3,
		QPos: make([]int32, h*w), KPos: make([]int32, h*w), Scale: float32(1 / math.Sqrt(float64(c)))}); err != nil {
		return nil, err
	}
	nn.Free(b, tok[:]...)
	tok = [3]*compute.Tensor{}
	om, err := nn.ToChannels(b, o, h, w)
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, om)
	out, err := a.ProjOut.Forward(b, om)
	if err != nil {
		return nil, err
	}
	if err := compute.AddTo(out, x, out); err != nil {
		nn.Free(b, out)
		return nil, err
	}
	return out, nil
}

func (m *Mid) forward(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	h, err := m.Block1.Forward(b, x, nil)
	if err != nil {
		return nil, err
	}
	h2, err := m.Attn.forward(b, h)
	nn.Free(b, h)
	if err != nil {
		return nil, err
	}
	h3, err := m.Block2.Forward(b, h2, nil)
	nn.Free(b, h2)
	return h3, err
}

// step applies f to h and frees h (h is an intermediate owned by the
// caller's chain).
func step(b compute.Backend, h *compute.Tensor, f func(*compute.Tensor) (*compute.Tensor, error)) (*compute.Tensor, error) {
	out, err := f(h)
	nn.Free(b, h)
	return out, err
}

// Decode maps z F32 [1, z, h, w] (the sampler's latent already divided by
// the model's scale factor) to the image out F32 [1, 3, 8h, 8w] in about
// [−1, 1].
func (m *Model) Decode(b compute.Backend, z, out *compute.Tensor) error {
	up := 1 << (len(m.Config.ChMult) - 1)
	if len(z.Shape) != 4 || z.Shape[0] != 1 || z.Shape[1] != m.Config.ZChannels {
		return fmt.Errorf("vae: latent %v, want [1 %d h w]", z, m.Config.ZChannels)
	}
	if len(out.Shape) != 4 || out.Shape[1] != m.Config.InChannels || out.Shape[2] != up*z.Shape[2] || out.Shape[3] != up*z.Shape[3] {
		return fmt.Errorf("vae: image %v for latent %v, want [1 %d %d %d]", out, z, m.Config.InChannels, up*z.Shape[2], up*z.Shape[3])
	}
	d := m.Decoder
	h, err := m.PostQuant.Forward(b, z)
	if err != nil {
		return err
	}
	if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return d.ConvIn.Forward(b, x) }); err != nil {
		return err
	}
	if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return d.Mid.forward(b, x) }); err != nil {
		return err
	}
	for l := len(d.Up) - 1; l >= 0; l-- {
		for _, r := range d.Up[l] {
			if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return r.Forward(b, x, nil) }); err != nil {
				return err
			}
		}
		if c := d.Upconv[l]; c != nil {
			if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return upsample(b, c, x) }); err != nil {
				return err
			}
		}
	}
	if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return d.NormOut.Forward(b, x, true) }); err != nil {
		return err
	}
	if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return d.ConvOut.Forward(b, x) }); err != nil {
		return err
	}
	defer nn.Free(b, h)
	return compute.Copy(h, out)
}

func upsample(b compute.Backend, c *nn.Conv, x *compute.Tensor) (*compute.Tensor, error) {
	up, err := b.Alloc(tensor.F32, x.Shape[0], x.Shape[1], 2*x.Shape[2], 2*x.Shape[3])
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, up)
	if err := compute.Upsample(x, up, 2); err != nil {
		return nil, err
	}
	return c.Forward(b, up)
}

// padRightBottom returns x [1, C, H, W] with one zero column on the right
// and one zero row at the bottom (the encoder's asymmetric downsampling
// padding).
func padRightBottom(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	col, err := b.Alloc(tensor.F32, n, c, h, 1)
	if err != nil {
		return nil, err
	}
	wide, err := b.Alloc(tensor.F32, n, c, h, w+1)
	if err == nil {
		err = compute.Concat(x, col, wide, 3)
	}
	nn.Free(b, col)
	if err != nil {
		nn.Free(b, wide)
		return nil, err
	}
	row, err := b.Alloc(tensor.F32, n, c, 1, w+1)
	if err != nil {
		nn.Free(b, wide)
		return nil, err
	}
	out, err := b.Alloc(tensor.F32, n, c, h+1, w+1)
	if err == nil {
		err = compute.Concat(wide, row, out, 2)
	}
	nn.Free(b, row, wide)
	if err != nil {
		nn.Free(b, out)
		return nil, err
	}
	return out, nil
}

// Encode maps the image x F32 [1, 3, H, W] (values in [−1, 1], H and W
// multiples of 8) to the latent distribution's mean and log-variance, each
// F32 [1, z, H/8, W/8] (not yet scaled by the model's scale factor). The
// caller frees both.
func (m *Model) Encode(b compute.Backend, x *compute.Tensor) (mean, logvar *compute.Tensor, err error) {
	e := m.Encoder
	if e == nil {
		return nil, nil, fmt.Errorf("vae: loaded without the encoder")
	}
	down := 1 << (len(m.Config.ChMult) - 1)
	if len(x.Shape) != 4 || x.Shape[0] != 1 || x.Shape[1] != m.Config.InChannels || x.Shape[2]%down != 0 || x.Shape[3]%down != 0 {
		return nil, nil, fmt.Errorf("vae: image %v, want [1 %d H W] with H, W multiples of %d", x, m.Config.InChannels, down)
	}
	h, err := e.ConvIn.Forward(b, x)
	if err != nil {
		return nil, nil, err
	}
	for l := range e.Down {
		for _, r := range e.Down[l] {
			if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return r.Forward(b, x, nil) }); err != nil {
				return nil, nil, err
			}
		}
		if c := e.Downconv[l]; c != nil {
			if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return padRightBottom(b, x) }); err != nil {
				return nil, nil, err
			}
			if h, err = step(b, h, func(x *compute.Tensor) (*compute.Tensor, error) { return c.Forward(b, x) }); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, f := range []func(*compute.Tensor) (*compute.Tensor, error){
		func(x *compute.Tensor) (*compute.Tensor, error) { return e.Mid.forward(b, x) },
		func(x *compute.Tensor) (*compute.Tensor, error) { return e.NormOut.Forward(b, x, true) },
		func(x *compute.Tensor) (*compute.Tensor, error) { return e.ConvOut.Forward(b, x) },
		func(x *compute.Tensor) (*compute.Tensor, error) { return m.Quant.Forward(b, x) },
	} {
		if h, err = step(b, h, f); err != nil {
			return nil, nil, err
		}
	}
	defer nn.Free(b, h)
	z, hh, ww := m.Config.ZChannels, h.Shape[2], h.Shape[3]
	moments, err := compute.Reshape(h, 2, z, hh, ww)
	if err != nil {
		return nil, nil, err
	}
	halves := [2]*compute.Tensor{}
	for i := range halves {
		v, err := compute.Rows(moments, i, i+1)
		if err == nil {
			halves[i], err = b.Alloc(tensor.F32, 1, z, hh, ww)
		}
		if err == nil {
			err = compute.Copy(v, halves[i])
		}
		if err != nil {
			nn.Free(b, halves[:]...)
			return nil, nil, err
		}
	}
	return halves[0], halves[1], nil
}
