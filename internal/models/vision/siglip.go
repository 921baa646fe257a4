package vision

import (
	"math"

	"mica/internal/compute"
)

// gemma3 is Gemma 3's vision encoder: SigLIP (pre-LayerNorm ViT, learned
// absolute positions, tanh-GELU MLP) and the gemma3 projector (average
// pooling, RMSNorm, projection into the text model's width).
func (p *Projector) gemma3(ps *pass, in *Input) *compute.Tensor {
	c, w := p.Config, p.w
	n, H := in.NX*in.NY, c.Heads

	// Patch embedding: h_p = W·vec(patch_p) + b, plus the learned position p.
	x := ps.Upload(c.patches(in, 1, 0), n, 3*c.PatchSize*c.PatchSize)
	h := ps.linear(unclamped(w.patch, w.patchBias), x)
	ps.Add(h, w.pos)

	for il := range w.layers {
		l := &w.layers[il]
		mark := ps.Mark()

		// Attention: h += W_out·softmax(q·kᵀ/√d)·v + b_out.
		a := ps.LayerNorm(h, l.ln1, l.ln1b)
		q, k, v := ps.linear(l.q, a), ps.linear(l.k, a), ps.linear(l.v, a)
		att := ps.attention(q, k, v, H, 1/float32(math.Sqrt(float64(c.HeadDim()))))
		ps.Add(h, ps.linear(l.o, att))

		// MLP: h += W_down·act(W_up·LN(h) + b_up) + b_down.
		f := ps.linear(l.up, ps.LayerNorm(h, l.ln2, l.ln2b))
		ps.Unary(c.Act, f)
		ps.Add(h, ps.linear(l.down, f))

		ps.FreeFrom(mark)
	}
	h = ps.LayerNorm(h, w.postLN[0], w.postLN[1])

	// Projector: average-pool the patch grid, RMSNorm with the soft
	// embedding norm, then project: out = x·P.
	t := ps.avgPool(h, in.NX, in.NY, c.Merge)
	t = ps.RMSNorm(t, w.softEmbNorm)
	return ps.linear(w.proj, t)
}
