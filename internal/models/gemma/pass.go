package gemma

import (
	"mica/internal/compute"
	"mica/internal/tensor"
)

// pass is one forward call's working state: the backend, the temporaries it
// allocated (freed at the end) and the first error. Every helper is a no-op
// once an error is recorded, so the forward pass reads as straight-line
// maths and checks the error once per layer.
type pass struct {
	be  compute.Backend
	tmp []*compute.Tensor
	err error
}

func (p *pass) check(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

func (p *pass) free() { p.freeFrom(0) }

// mark and freeFrom release the temporaries allocated since a mark, so a
// layer's intermediates do not outlive the layer.
func (p *pass) mark() int { return len(p.tmp) }

func (p *pass) freeFrom(mark int) {
	for _, t := range p.tmp[mark:] {
		p.be.Free(t)
	}
	p.tmp = p.tmp[:mark]
}

// new allocates a zeroed F32 temporary.
func (p *pass) new(shape ...int) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	t, err := p.be.Alloc(tensor.F32, shape...)
	p.check(err)
	if t != nil {
		p.tmp = append(p.tmp, t)
	}
	return t
}

// matmul returns x·wᵀ: [rows of x, rows of w].
func (p *pass) matmul(w, x *compute.Tensor) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	y := p.new(x.Rows(), w.Shape[0])
	if y != nil {
		p.check(compute.MatMul(w, x, y))
	}
	return y
}

// norm returns RMSNorm(x)·w over the last dimension (w nil: no weight).
func (p *pass) norm(x, w *compute.Tensor, eps float32) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	y := p.new(x.Shape...)
	if y != nil {
		p.check(compute.Norm(compute.RMSNorm, x, w, nil, y, eps))
	}
	return y
}

// normInPlace applies RMSNorm(x)·w to x.
func (p *pass) normInPlace(x, w *compute.Tensor, eps float32) {
	if p.err == nil {
		p.check(compute.Norm(compute.RMSNorm, x, w, nil, x, eps))
	}
}

// add sets x += y.
func (p *pass) add(x, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.AddTo(x, y, x))
	}
}

// mul sets x *= y (y the same shape, or one row broadcast).
func (p *pass) mul(x, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.MulTo(x, y, x))
	}
}

// scale sets x *= s.
func (p *pass) scale(x *compute.Tensor, s float32) {
	if p.err == nil {
		p.check(compute.Scale(x, s, x))
	}
}

// gelu sets x = gelu_tanh(x).
func (p *pass) gelu(x *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Unary(compute.GELU, x, x, 0))
	}
}

// geglu returns down(gelu(gate·x) ⊙ up·x), the Gemma feed-forward block.
func (p *pass) geglu(x, gate, up, down *compute.Tensor) *compute.Tensor {
	g := p.matmul(gate, x)
	u := p.matmul(up, x)
	p.gelu(g)
	p.mul(g, u)
	return p.matmul(down, g)
}

// view reshapes t (no copy).
func (p *pass) view(t *compute.Tensor, shape ...int) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	v, err := compute.Reshape(t, shape...)
	p.check(err)
	return v
}

// rows is the view of rows [start, end) of t's first dimension.
func (p *pass) rows(t *compute.Tensor, start, end int) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	v, err := compute.Rows(t, start, end)
	p.check(err)
	return v
}

// copyTo copies src (any view) into the contiguous dst, converting dtype.
func (p *pass) copyTo(src, dst *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Copy(src, dst))
	}
}

// rope rotates x[tokens, heads, headDim] in place at positions pos.
func (p *pass) rope(x *compute.Tensor, l *LayerConfig, pos []int32, factors *compute.Tensor) {
	if p.err == nil {
		p.check(compute.RoPE(compute.RoPEOp{X: x, Pos: pos, NRot: l.NRot, Base: l.RopeBase,
			FreqScale: l.RopeScale, Factors: factors, NeoX: true}))
	}
}
