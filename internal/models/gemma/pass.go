package gemma

import (
	"mica/internal/compute"
	"mica/internal/nn"
)

// fwd is one forward call's nn.Pass (temporaries, first error, helpers that
// do nothing after an error, so the forward pass reads as straight-line
// maths and checks the error once per layer) with Gemma's own blocks.
type fwd struct{ nn.Pass }

func newFwd(be compute.Backend, eps float32) *fwd { return &fwd{nn.Pass{B: be, Eps: eps}} }

// geglu returns down(gelu(gate·x) ⊙ up·x), the Gemma feed-forward block
// (the product in one pass, ggml's geglu).
func (p *fwd) geglu(x, gate, up, down *compute.Tensor) *compute.Tensor {
	gu := p.MatMuls(x, gate, up)
	g, u := gu[0], gu[1]
	p.Gated(compute.GELU, g, u)
	return p.MatMul(down, g)
}

// rope rotates x[tokens, heads, headDim] in place at positions pos.
func (p *fwd) rope(x *compute.Tensor, l *LayerConfig, pos []int32, factors *compute.Tensor) {
	p.RoPE(compute.RoPEOp{X: x, Pos: pos, NRot: l.NRot, Base: l.RopeBase,
		FreqScale: l.RopeScale, Factors: factors, NeoX: true})
}
