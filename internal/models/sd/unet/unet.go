// Package unet is the Stable Diffusion denoising UNet (SD 1.x, SD 2.x,
// SDXL) on the compute backend: configuration detected from the
// checkpoint's shapes, weights bound by their single-file (LDM) names, and
// the forward pass ε = UNet(x, t, context, y).
package unet

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// Model is a loaded UNet.
type Model struct {
	Config Config

	TimeEmbed1, TimeEmbed2 nn.Linear // time_embed.0, time_embed.2
	LabelEmb1, LabelEmb2   nn.Linear // label_emb.0.0, label_emb.0.2 (SDXL)
	Input                  [][]layer // input_blocks: each block's layers in order
	Middle                 []layer
	Output                 [][]layer
	OutNorm                nn.GroupNorm
	OutConv                nn.Conv
}

// Load binds every UNet weight under prefix for cfg and reports every
// missing or mis-shaped tensor in one error.
func Load(src param.Source, prefix string, cfg Config) (*Model, error) {
	if len(cfg.ChannelMult) == 0 || len(cfg.Depth) != len(cfg.ChannelMult) || cfg.NumResBlocks <= 0 || cfg.ModelChannels <= 0 {
		return nil, fmt.Errorf("unet: invalid config %+v", cfg)
	}
	mc, ted := cfg.ModelChannels, cfg.TimeEmbedDim()
	m := &Model{Config: cfg}
	p := func(parts ...any) string { return param.Join(prefix, parts...) }
	m.TimeEmbed1 = nn.BindLinear(src, p("time_embed", 0), mc, ted, true)
	m.TimeEmbed2 = nn.BindLinear(src, p("time_embed", 2), ted, ted, true)
	if cfg.ADMDim > 0 {
		m.LabelEmb1 = nn.BindLinear(src, p("label_emb", 0, 0), cfg.ADMDim, ted, true)
		m.LabelEmb2 = nn.BindLinear(src, p("label_emb", 0, 2), ted, ted, true)
	}

	// Down: input_blocks.0 is the stem conv; then per level NumResBlocks
	// (ResBlock [+ transformer]) and a downsample except at the deepest.
	skips := []int{mc} // channels of each input block's output, for the skips
	stem := nn.BindConv(src, p("input_blocks", 0, 0), cfg.InChannels, mc, 3, 1, 1)
	m.Input = append(m.Input, []layer{&convLayer{stem}})
	ch := mc
	for level, mult := range cfg.ChannelMult {
		for r := 0; r < cfg.NumResBlocks; r++ {
			i := len(m.Input)
			out := mult * mc
			blk := []layer{bindResBlock(src, p("input_blocks", i, 0), ch, out, ted)}
			ch = out
			if d := cfg.Depth[level]; d > 0 {
				blk = append(blk, bindSpatialTransformer(src, p("input_blocks", i, 1), ch, d, &cfg))
			}
			m.Input = append(m.Input, blk)
			skips = append(skips, ch)
		}
		if level != len(cfg.ChannelMult)-1 {
			i := len(m.Input)
			m.Input = append(m.Input, []layer{&Downsample{nn.BindConv(src, p("input_blocks", i, 0, "op"), ch, ch, 3, 2, 1)}})
			skips = append(skips, ch)
		}
	}

	// Middle: ResBlock, transformer, ResBlock.
	m.Middle = append(m.Middle, bindResBlock(src, p("middle_block", 0), ch, ch, ted))
	if cfg.MiddleDepth > 0 {
		m.Middle = append(m.Middle, bindSpatialTransformer(src, p("middle_block", 1), ch, cfg.MiddleDepth, &cfg))
	}
	m.Middle = append(m.Middle, bindResBlock(src, p("middle_block", len(m.Middle)), ch, ch, ted))

	// Up: per level from the deepest, NumResBlocks+1 blocks, each taking
	// the concatenation of h and the matching skip; an upsample ends every
	// level but the last.
	for level := len(cfg.ChannelMult) - 1; level >= 0; level-- {
		for r := 0; r <= cfg.NumResBlocks; r++ {
			i := len(m.Output)
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			out := cfg.ChannelMult[level] * mc
			blk := []layer{bindResBlock(src, p("output_blocks", i, 0), ch+skip, out, ted)}
			ch = out
			if d := cfg.Depth[level]; d > 0 {
				blk = append(blk, bindSpatialTransformer(src, p("output_blocks", i, 1), ch, d, &cfg))
			}
			if level != 0 && r == cfg.NumResBlocks {
				blk = append(blk, &Upsample{nn.BindConv(src, p("output_blocks", i, len(blk), "conv"), ch, ch, 3, 1, 1)})
			}
			m.Output = append(m.Output, blk)
		}
	}
	m.OutNorm = nn.BindGroupNorm(src, p("out", 0), ch)
	m.OutConv = nn.BindConv(src, p("out", 2), ch, cfg.OutChannels, 3, 1, 1)
	if err := src.Err(); err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	return m, nil
}

type convLayer struct{ c nn.Conv }

func (c *convLayer) forward(b compute.Backend, x, _, _ *compute.Tensor) (*compute.Tensor, error) {
	return c.c.Forward(b, x)
}

// TimestepEmbedding is the sinusoidal embedding of a (fractional) timestep
// with dim values, cosines first: cos(t·f_j) for j < dim/2, then sin(t·f_j),
// f_j = exp(−ln(10000)·j/(dim/2)), in float32 as sd.cpp computes it.
func TimestepEmbedding(t float32, dim int) []float32 {
	half := dim / 2
	out := make([]float32, dim)
	logMax := float32(math.Log(10000))
	for j := 0; j < half; j++ {
		freq := float32(math.Exp(float64(-logMax * float32(j) / float32(half))))
		arg := t * freq
		out[j] = float32(math.Cos(float64(arg)))
		out[j+half] = float32(math.Sin(float64(arg)))
	}
	return out
}

// Forward runs the UNet: x F32 [1, inC, h, w] (any size: where h or w is
// not a multiple of 2^(levels−1), an upsampled map one row or column
// larger than its skip is cut to the skip's size, as A1111 does), the
// fractional timestep t, ctx F32 [tokens, contextDim],
// y F32 [admDim] for SDXL (nil otherwise); the prediction is written to out
// F32 [1, outC, h, w].
func (m *Model) Forward(b compute.Backend, x *compute.Tensor, t float32, ctx, y, out *compute.Tensor) error {
	cfg := &m.Config
	if len(x.Shape) != 4 || x.Shape[0] != 1 || x.Shape[1] != cfg.InChannels || x.Shape[2] < 1 || x.Shape[3] < 1 {
		return fmt.Errorf("unet: input %v, want [1 %d h w]", x, cfg.InChannels)
	}
	if len(out.Shape) != 4 || out.Shape[1] != cfg.OutChannels || out.Shape[2] != x.Shape[2] || out.Shape[3] != x.Shape[3] {
		return fmt.Errorf("unet: output %v for input %v", out, x)
	}
	if ctx == nil || len(ctx.Shape) != 2 || (cfg.ContextDim > 0 && ctx.Shape[1] != cfg.ContextDim) {
		return fmt.Errorf("unet: context %v, want [tokens %d]", ctx, cfg.ContextDim)
	}
	if (cfg.ADMDim > 0) != (y != nil) || (y != nil && y.Elems() != cfg.ADMDim) {
		return fmt.Errorf("unet: vector conditioning %v for ADM width %d", y, cfg.ADMDim)
	}

	emb, err := m.embedding(b, t, y)
	if err != nil {
		return err
	}
	defer nn.Free(b, emb)

	var skips []*compute.Tensor
	defer func() { nn.Free(b, skips...) }()
	h := x
	for _, blk := range m.Input {
		if h, err = runBlock(b, blk, h, emb, ctx, false); err != nil {
			return err
		}
		skips = append(skips, h) // h lives on as the skip
	}
	if h, err = runBlock(b, m.Middle, h, emb, ctx, false); err != nil {
		return err
	}
	for _, blk := range m.Output {
		s := skips[len(skips)-1]
		skips = skips[:len(skips)-1]
		if h.Shape[2] != s.Shape[2] || h.Shape[3] != s.Shape[3] {
			// A stride-2 conv rounds odd sizes up, so the ×2 upsample
			// overshoots the skip by one: A1111 resizes to the skip's
			// size (nearest), which here is a crop.
			c, err := crop(b, h, s.Shape[2], s.Shape[3])
			nn.Free(b, h)
			if err != nil {
				nn.Free(b, s)
				return err
			}
			h = c
		}
		cat, err := b.Alloc(tensor.F32, 1, h.Shape[1]+s.Shape[1], h.Shape[2], h.Shape[3])
		if err == nil {
			err = compute.Concat(h, s, cat, 1)
		}
		nn.Free(b, h, s)
		if err != nil {
			nn.Free(b, cat)
			return err
		}
		if h, err = runBlock(b, blk, cat, emb, ctx, true); err != nil {
			return err
		}
	}
	defer nn.Free(b, h)
	n, err := m.OutNorm.Forward(b, h, true)
	if err != nil {
		return err
	}
	o, err := m.OutConv.Forward(b, n)
	nn.Free(b, n)
	if err != nil {
		return err
	}
	defer nn.Free(b, o)
	return compute.Copy(o, out)
}

// crop copies the top-left [hh, ww] of x [1, C, H, W] into a new tensor.
func crop(b compute.Backend, x *compute.Tensor, hh, ww int) (*compute.Tensor, error) {
	if hh > x.Shape[2] || ww > x.Shape[3] {
		return nil, fmt.Errorf("unet: cannot crop %v to %dx%d", x, hh, ww)
	}
	view := *x
	view.Shape = []int{x.Shape[0], x.Shape[1], hh, ww}
	view.Strides = x.Stride()
	out, err := b.Alloc(tensor.F32, view.Shape...)
	if err != nil {
		return nil, err
	}
	if err := compute.Copy(&view, out); err != nil {
		b.Free(out)
		return nil, err
	}
	return out, nil
}

// runBlock applies a block's layers to h. The input is freed once consumed
// when owned is set; intermediate results always are.
func runBlock(b compute.Backend, blk []layer, h, emb, ctx *compute.Tensor, owned bool) (*compute.Tensor, error) {
	for _, l := range blk {
		next, err := l.forward(b, h, emb, ctx)
		if owned {
			nn.Free(b, h)
		}
		if err != nil {
			return nil, err
		}
		h, owned = next, true
	}
	return h, nil
}

// embedding returns SiLU(time_embed(t) [+ label_emb(y)]) [1, 4·mc]: the
// input every ResBlock's emb_layers projects.
func (m *Model) embedding(b compute.Backend, t float32, y *compute.Tensor) (*compute.Tensor, error) {
	ts, err := nn.UploadF32(b, TimestepEmbedding(t, m.Config.ModelChannels), 1, m.Config.ModelChannels)
	if err != nil {
		return nil, err
	}
	emb, err := mlp(b, &m.TimeEmbed1, &m.TimeEmbed2, ts)
	nn.Free(b, ts)
	if err != nil {
		return nil, err
	}
	if y != nil {
		y2, err := compute.Reshape(y, 1, y.Elems())
		if err != nil {
			nn.Free(b, emb)
			return nil, err
		}
		l, err := mlp(b, &m.LabelEmb1, &m.LabelEmb2, y2)
		if err == nil {
			err = compute.AddTo(emb, l, emb)
			nn.Free(b, l)
		}
		if err != nil {
			nn.Free(b, emb)
			return nil, err
		}
	}
	if err := compute.Unary(compute.SiLU, emb, emb, 0); err != nil {
		nn.Free(b, emb)
		return nil, err
	}
	return emb, nil
}

// mlp is Linear → SiLU → Linear.
func mlp(b compute.Backend, l1, l2 *nn.Linear, x *compute.Tensor) (*compute.Tensor, error) {
	h, err := l1.Forward(b, x)
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, h)
	if err := compute.Unary(compute.SiLU, h, h, 0); err != nil {
		return nil, err
	}
	return l2.Forward(b, h)
}
