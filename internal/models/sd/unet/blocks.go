package unet

import (
	"math"

	"mica/internal/compute"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// layer is one entry of an input, middle or output block: it maps the
// running activation h to a new one (h itself is left for the caller to
// free). emb is SiLU(time embedding), ctx the cross-attention context.
type layer interface {
	forward(b compute.Backend, h, emb, ctx *compute.Tensor) (*compute.Tensor, error)
}

// ResBlock: GN → SiLU → conv3×3 (+ Linear(SiLU(emb)) per channel) → GN →
// SiLU → conv3×3, plus the input (through a 1×1 conv when the channel
// count changes): the shared nn.ResBlock with the timestep embedding's
// projection folded into its first conv's bias.
type ResBlock struct {
	nn.ResBlock
	Emb nn.Linear
}

func bindResBlock(src param.Source, name string, in, out, embDim int) *ResBlock {
	r := &ResBlock{
		ResBlock: nn.ResBlock{
			Norm1: nn.BindGroupNorm(src, name+".in_layers.0", in),
			Conv1: nn.BindConv(src, name+".in_layers.2", in, out, 3, 1, 1),
			Norm2: nn.BindGroupNorm(src, name+".out_layers.0", out),
			Conv2: nn.BindConv(src, name+".out_layers.3", out, out, 3, 1, 1),
		},
		Emb: nn.BindLinear(src, name+".emb_layers.1", embDim, out, true),
	}
	if in != out {
		c := nn.BindConv(src, name+".skip_connection", in, out, 1, 1, 0)
		r.Shortcut = &c
	}
	return r
}

func (r *ResBlock) forward(b compute.Backend, x, emb, _ *compute.Tensor) (*compute.Tensor, error) {
	e, err := r.Emb.Forward(b, emb)
	if err != nil {
		return nil, err
	}
	ev, err := nn.ReadF32(b, e)
	nn.Free(b, e)
	if err != nil {
		return nil, err
	}
	return r.ResBlock.Forward(b, x, ev) // conv + bias + emb
}

// Attention is multi-head attention: queries from x, keys and values from
// ctx (x itself for self-attention), no mask.
type Attention struct {
	Q, K, V, Out nn.Linear
	Heads        int
}

func bindAttention(src param.Source, name string, ch, ctxDim, heads int) Attention {
	return Attention{
		Q:     nn.BindLinear(src, name+".to_q", ch, ch, false),
		K:     nn.BindLinear(src, name+".to_k", ctxDim, ch, false),
		V:     nn.BindLinear(src, name+".to_v", ctxDim, ch, false),
		Out:   nn.BindLinear(src, name+".to_out.0", ch, ch, true),
		Heads: heads,
	}
}

// forward returns to_out(softmax(q·kᵀ/√d)·v) for x [n, C], ctx [m, D].
func (a *Attention) forward(b compute.Backend, x, ctx *compute.Tensor) (*compute.Tensor, error) {
	var q, k, v, o *compute.Tensor
	defer func() { nn.Free(b, q, k, v, o) }()
	var err error
	if q, err = a.Q.Forward(b, x); err != nil {
		return nil, err
	}
	if k, err = a.K.Forward(b, ctx); err != nil {
		return nil, err
	}
	if v, err = a.V.Forward(b, ctx); err != nil {
		return nil, err
	}
	n, m, ch := x.Shape[0], ctx.Shape[0], q.Shape[1]
	d := ch / a.Heads
	if o, err = b.Alloc(tensor.F32, n, ch); err != nil {
		return nil, err
	}
	q3, _ := compute.Reshape(q, n, a.Heads, d)
	k3, _ := compute.Reshape(k, m, a.Heads, d)
	v3, _ := compute.Reshape(v, m, a.Heads, d)
	o3, _ := compute.Reshape(o, n, a.Heads, d)
	err = compute.Attention(compute.AttentionOp{
		Q: q3, K: k3, V: v3, Out: o3,
		QPos: make([]int32, n), KPos: make([]int32, m),
		Scale: float32(1 / math.Sqrt(float64(d))),
	})
	if err != nil {
		return nil, err
	}
	return a.Out.Forward(b, o)
}

// TransformerBlock is the BasicTransformerBlock: self-attention,
// cross-attention and a GEGLU feed-forward, each pre-LayerNorm with a
// residual.
type TransformerBlock struct {
	Norm1, Norm2, Norm3 nn.LayerNorm
	Attn1, Attn2        Attention
	FFIn                nn.Linear // [8C, C]: value rows, then gate rows
	FFOut               nn.Linear // [C, 4C]
}

func bindTransformerBlock(src param.Source, name string, ch, ctxDim, heads int) *TransformerBlock {
	return &TransformerBlock{
		Norm1: nn.BindLayerNorm(src, name+".norm1", ch),
		Attn1: bindAttention(src, name+".attn1", ch, ch, heads),
		Norm2: nn.BindLayerNorm(src, name+".norm2", ch),
		Attn2: bindAttention(src, name+".attn2", ch, ctxDim, heads),
		Norm3: nn.BindLayerNorm(src, name+".norm3", ch),
		FFIn:  nn.BindLinear(src, name+".ff.net.0.proj", ch, 8*ch, true),
		FFOut: nn.BindLinear(src, name+".ff.net.2", 4*ch, ch, true),
	}
}

// forward updates the token rows x [n, C] in place.
func (t *TransformerBlock) forward(b compute.Backend, x, ctx *compute.Tensor) error {
	// x += attn1(norm1(x))
	if err := residual(b, x, &t.Norm1, func(h *compute.Tensor) (*compute.Tensor, error) { return t.Attn1.forward(b, h, h) }); err != nil {
		return err
	}
	// x += attn2(norm2(x), ctx)
	if err := residual(b, x, &t.Norm2, func(h *compute.Tensor) (*compute.Tensor, error) { return t.Attn2.forward(b, h, ctx) }); err != nil {
		return err
	}
	// x += ff(norm3(x))
	return residual(b, x, &t.Norm3, func(h *compute.Tensor) (*compute.Tensor, error) { return t.feedForward(b, h) })
}

// residual computes x += f(norm(x)).
func residual(b compute.Backend, x *compute.Tensor, norm *nn.LayerNorm, f func(h *compute.Tensor) (*compute.Tensor, error)) error {
	h, err := norm.Forward(b, x)
	if err != nil {
		return err
	}
	y, err := f(h)
	nn.Free(b, h)
	if err != nil {
		return err
	}
	defer nn.Free(b, y)
	return compute.AddTo(x, y, x)
}

// feedForward is GEGLU: value·GELU(gate) with value and gate the two halves
// of ff.net.0.proj, then ff.net.2.
func (t *TransformerBlock) feedForward(b compute.Backend, x *compute.Tensor) (*compute.Tensor, error) {
	valueProj, err := t.FFIn.Half(0)
	if err != nil {
		return nil, err
	}
	gateProj, err := t.FFIn.Half(1)
	if err != nil {
		return nil, err
	}
	value, err := valueProj.Forward(b, x)
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, value)
	gate, err := gateProj.Forward(b, x)
	if err != nil {
		return nil, err
	}
	err = compute.Unary(compute.GELU, gate, gate, 0) // ggml's F16 tanh-GELU table
	if err == nil {
		err = compute.MulTo(value, gate, value)
	}
	nn.Free(b, gate)
	if err != nil {
		return nil, err
	}
	return t.FFOut.Forward(b, value)
}

// SpatialTransformer: GroupNorm → proj_in → transformer blocks over the
// H·W tokens → proj_out, plus the input. proj_in/out are 1×1 convs (SD 1.x)
// or Linear layers on the tokens (SDXL).
type SpatialTransformer struct {
	Norm            nn.GroupNorm
	ProjInConv      nn.Conv
	ProjOutConv     nn.Conv
	ProjIn, ProjOut nn.Linear
	Linear          bool
	Blocks          []*TransformerBlock
}

func bindSpatialTransformer(src param.Source, name string, ch, depth int, cfg *Config) *SpatialTransformer {
	s := &SpatialTransformer{Norm: nn.BindGroupNorm(src, name+".norm", ch), Linear: cfg.LinearProj}
	if s.Linear {
		s.ProjIn = nn.BindLinear(src, name+".proj_in", ch, ch, true)
		s.ProjOut = nn.BindLinear(src, name+".proj_out", ch, ch, true)
	} else {
		s.ProjInConv = nn.BindConv(src, name+".proj_in", ch, ch, 1, 1, 0)
		s.ProjOutConv = nn.BindConv(src, name+".proj_out", ch, ch, 1, 1, 0)
	}
	for i := 0; i < depth; i++ {
		s.Blocks = append(s.Blocks, bindTransformerBlock(src, param.Join(name+".transformer_blocks", i), ch, cfg.ContextDim, cfg.Heads(ch)))
	}
	return s
}

func (s *SpatialTransformer) forward(b compute.Backend, x, _, ctx *compute.Tensor) (*compute.Tensor, error) {
	h, w := x.Shape[2], x.Shape[3]
	n, err := s.Norm.Forward(b, x, false)
	if err != nil {
		return nil, err
	}
	// In: channel map → projected token rows.
	var tok *compute.Tensor
	if s.Linear {
		t, err := nn.ToTokens(b, n)
		nn.Free(b, n)
		if err != nil {
			return nil, err
		}
		tok, err = s.ProjIn.Forward(b, t)
		nn.Free(b, t)
		if err != nil {
			return nil, err
		}
	} else {
		p, err := s.ProjInConv.Forward(b, n)
		nn.Free(b, n)
		if err != nil {
			return nil, err
		}
		tok, err = nn.ToTokens(b, p)
		nn.Free(b, p)
		if err != nil {
			return nil, err
		}
	}
	for _, blk := range s.Blocks {
		if err := blk.forward(b, tok, ctx); err != nil {
			nn.Free(b, tok)
			return nil, err
		}
	}
	// Out: token rows → projected channel map.
	var out *compute.Tensor
	if s.Linear {
		p, err := s.ProjOut.Forward(b, tok)
		nn.Free(b, tok)
		if err != nil {
			return nil, err
		}
		out, err = nn.ToChannels(b, p, h, w)
		nn.Free(b, p)
		if err != nil {
			return nil, err
		}
	} else {
		m, err := nn.ToChannels(b, tok, h, w)
		nn.Free(b, tok)
		if err != nil {
			return nil, err
		}
		out, err = s.ProjOutConv.Forward(b, m)
		nn.Free(b, m)
		if err != nil {
			return nil, err
		}
	}
	if err := compute.AddTo(out, x, out); err != nil {
		nn.Free(b, out)
		return nil, err
	}
	return out, nil
}

// Downsample is a stride-2 3×3 conv.
type Downsample struct{ Conv nn.Conv }

func (d *Downsample) forward(b compute.Backend, x, _, _ *compute.Tensor) (*compute.Tensor, error) {
	return d.Conv.Forward(b, x)
}

// Upsample is nearest-neighbour ×2, then a 3×3 conv.
type Upsample struct{ Conv nn.Conv }

func (u *Upsample) forward(b compute.Backend, x, _, _ *compute.Tensor) (*compute.Tensor, error) {
	up, err := b.Alloc(tensor.F32, x.Shape[0], x.Shape[1], 2*x.Shape[2], 2*x.Shape[3])
	if err != nil {
		return nil, err
	}
	defer nn.Free(b, up)
	if err := compute.Upsample(x, up, 2); err != nil {
		return nil, err
	}
	return u.Conv.Forward(b, up)
}
