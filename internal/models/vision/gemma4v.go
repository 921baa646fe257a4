package vision

import (
	"math"

	"mica/internal/compute"
)

// gemma4v is Gemma 4's vision encoder: a ViT with RMSNorm sandwiches,
// per-head q/k/v norms, 2-D RoPE, a gated FFN and clippable linears; then
// average pooling, standardisation and the projection into the text model.
func (p *Projector) gemma4v(ps *pass, in *Input) *compute.Tensor {
	c, w := p.Config, p.w
	n, E, H, d := in.NX*in.NY, c.Width, c.Heads, c.HeadDim()
	cols, rows := patchColsRows(in.NX, in.NY)

	// Patch embedding of 2v − 1 (no bias), plus pos_x[col] + pos_y[row].
	x := ps.Upload(c.patches(in, 2, -1), n, 3*c.PatchSize*c.PatchSize)
	h := ps.linear(unclamped(w.patch, nil), x)
	ps.Add(h, ps.positions(w.pos, 0, cols, E))
	ps.Add(h, ps.positions(w.pos, 1, rows, E))
	ropePos := ropePositions(cols, rows, H)

	for il := range w.layers {
		l := &w.layers[il]
		mark := ps.Mark()

		// Attention, with q/k/v normed per head and q/k rotated in 2-D:
		// h += N(L_out(softmax(q·kᵀ)·v))·attn_post_norm.
		a := ps.RMSNorm(h, l.ln1)
		q, k, v := ps.linear(l.q, a), ps.linear(l.k, a), ps.linear(l.v, a)
		ps.RMSNormInPlace(ps.View(q, n*H, d), l.qNorm)
		ps.RMSNormInPlace(ps.View(k, n*H, d), l.kNorm)
		ps.RMSNormInPlace(ps.View(v, n*H, d), nil)
		ps.rope2D(q, ropePos, d)
		ps.rope2D(k, ropePos, d)
		o := ps.linear(l.o, ps.attention(q, k, v, H, 1))
		ps.RMSNormInPlace(o, l.attnPost)
		ps.Add(h, o)

		// Gated FFN: h = (h + N(L_down(act(L_gate(c)) ⊙ L_up(c)))·ffn_post_norm)·out_scale.
		// (up before gate: llama.cpp's order, which matters for in-place input clamps.)
		f := ps.RMSNorm(h, l.ln2)
		u := ps.linear(l.up, f)
		g := ps.linear(l.gate, f)
		ps.Unary(c.Act, g)
		ps.Mul(g, u)
		down := ps.linear(l.down, g)
		ps.RMSNormInPlace(down, l.ffnPost)
		ps.Add(h, down)
		if l.outScale != 1 {
			ps.Scale(h, l.outScale)
		}

		ps.FreeFrom(mark)
	}

	// Pool merge×merge patches, scale by √E, standardise, RMS-normalise
	// (no weight) and project with clamps.
	t := ps.avgPool(h, in.NX, in.NY, c.Merge)
	ps.Scale(t, float32(math.Sqrt(float64(E))))
	if w.negStdBias != nil {
		ps.Add(t, w.negStdBias)
		ps.Mul(t, w.stdScale)
	}
	ps.RMSNormInPlace(t, nil)
	return ps.linear(w.proj, t)
}

// patchColsRows returns each patch's column and row (p = row·nx + col).
func patchColsRows(nx, ny int) (cols, rows []int32) {
	for r := 0; r < ny; r++ {
		for c := 0; c < nx; c++ {
			cols = append(cols, int32(c))
			rows = append(rows, int32(r))
		}
	}
	return cols, rows
}

// ropePositions gives one position per half-head row of q/k viewed as
// [n·heads·2, 1, d/2]: the first half of each head turns with the patch
// column, the second with the patch row.
func ropePositions(cols, rows []int32, heads int) []int32 {
	out := make([]int32, 0, 2*heads*len(cols))
	for p := range cols {
		for range heads {
			out = append(out, cols[p], rows[p])
		}
	}
	return out
}

// positions looks up rows ids of position table i of pos [2, size, E].
func (p *pass) positions(pos *compute.Tensor, i int, ids []int32, E int) *compute.Tensor {
	out := p.New(len(ids), E)
	p.GetRows(p.View(p.Rows(pos, i, i+1), pos.Shape[1], E), ids, out)
	return out
}

// rope2D rotates x [n, heads·d] in place: NeoX pairs (i, i+d/4) within each
// half-head of d/2 dimensions, base 100, angle pos·100^(−2i/(d/2)).
func (p *pass) rope2D(x *compute.Tensor, pos []int32, d int) {
	p.RoPE(compute.RoPEOp{X: p.View(x, len(pos), 1, d/2), Pos: pos, NRot: d / 2, Base: 100, NeoX: true})
}
