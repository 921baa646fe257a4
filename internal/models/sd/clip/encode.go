package clip

import (
	"encoding/binary"
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/tensor"
)

// NoPool is EncodeOptions.PooledAt's value for "no pooled output".
const NoPool = -1

// ClipSkipLayers is EncodeOptions.Layers for A1111's clip skip k (1: the
// last block, 2: the penultimate, …): Layers − (k − 1).
func (c Config) ClipSkipLayers(k int) (int, error) {
	if k < 1 || k > c.Layers {
		return 0, fmt.Errorf("clip: clip skip %d outside 1..%d", k, c.Layers)
	}
	return c.Layers - (k - 1), nil
}

// EncodeOptions selects what Encode returns.
type EncodeOptions struct {
	// Layers is how many transformer blocks produce the hidden state, 1 ..
	// Config.Layers: Config.Layers − (clipSkip − 1) for A1111's clip skip
	// (SD 1.x default 1: all; SDXL default 2: the penultimate block).
	Layers int
	// FinalNorm applies the final LayerNorm to the returned hidden state
	// (SD 1.x does, SDXL does not).
	FinalNorm bool
	// PooledAt is the row to pool, the index of the first EOS token, or
	// NoPool (−1). Note the zero value pools row 0. The pooled output always
	// comes from the full stack, whatever Layers says: every block, the
	// final LayerNorm, that row, then the projection (h·T) if the model has
	// one.
	PooledAt int
}

// Encode runs the text encoder on one sequence of exactly Config.Positions
// token ids (BOS, prompt, EOS, padding). It returns the hidden state, F32
// [Positions, Hidden], allocated on b (the backend the weights live on; the
// caller frees it with b.Free), and the pooled vector when asked for.
//
// The pooled vector comes from the same pass: the hidden state is copied out
// after block Layers and the remaining blocks run on, which gives the same
// numbers as a separate full run (the blocks do not depend on what is read
// from them).
func (m *Model) Encode(b compute.Backend, ids []int32, o EncodeOptions) (hidden *compute.Tensor, pooled []float32, err error) {
	c := m.Config
	switch {
	case b != m.be:
		return nil, nil, fmt.Errorf("clip: encode on backend %s, but the weights are on %s", b.Name(), m.be.Name())
	case len(ids) != c.Positions:
		return nil, nil, fmt.Errorf("clip: %d token ids, want exactly %d (pad the sequence)", len(ids), c.Positions)
	case o.Layers < 1 || o.Layers > c.Layers:
		return nil, nil, fmt.Errorf("clip: %d layers asked for, the model has 1..%d (clip skip too large?)", o.Layers, c.Layers)
	case o.PooledAt < NoPool || o.PooledAt >= c.Positions:
		return nil, nil, fmt.Errorf("clip: pooled row %d outside 0..%d", o.PooledAt, c.Positions-1)
	}
	P, C := c.Positions, c.Hidden
	pool := o.PooledAt != NoPool
	run := o.Layers
	if pool {
		run = c.Layers
	}

	p := &pass{be: b, eps: c.Eps}
	defer p.free()
	out, err := b.Alloc(tensor.F32, P, C)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			b.Free(out)
		}
	}()
	// x is the residual stream; when blocks run on after the tap it is a
	// temporary and out receives a copy.
	x := out
	if run > o.Layers {
		x = p.new(P, C)
	}

	// Embeddings: token + position (position ids 0 .. P−1).
	p.getRows(m.tokenEmb, ids, x)
	pos := p.new(P, C)
	p.getRows(m.posEmb, m.posIDs, pos)
	p.add(x, pos)
	if p.err != nil {
		return nil, nil, fmt.Errorf("clip: embeddings: %w", p.err)
	}

	for i := range run {
		m.block(p, &m.blocks[i], x)
		if i+1 == o.Layers && x != out {
			p.copyTo(x, out)
		}
		if p.err != nil {
			return nil, nil, fmt.Errorf("clip: block %d: %w", i, p.err)
		}
	}
	if pool { // before out is normalised: x may be out
		row := p.new(1, C)
		p.layerNorm(p.rows(x, o.PooledAt, o.PooledAt+1), m.finalW, m.finalB, row)
		if m.projW != nil {
			row = p.linear(linear{w: m.projW}, row)
		}
		pooled = p.read(row)
	}
	if o.FinalNorm {
		p.layerNorm(out, m.finalW, m.finalB, out)
	}
	if p.err != nil {
		return nil, nil, fmt.Errorf("clip: %w", p.err)
	}
	return out, pooled, nil
}

// block applies one pre-LN transformer block to x in place:
//
//	x += out(attention(LN1(x)))   (causal, Heads heads)
//	x += fc2(act(fc1(LN2(x))))
func (m *Model) block(p *pass, bl *block, x *compute.Tensor) {
	defer p.freeFrom(p.mark())
	c := m.Config
	P, C, H, D := c.Positions, c.Hidden, c.Heads, c.HeadDim()

	h := p.new(P, C)
	p.layerNorm(x, bl.ln1W, bl.ln1B, h)
	q := p.view(p.linear(bl.q, h), P, H, D)
	k := p.view(p.linear(bl.k, h), P, H, D)
	v := p.view(p.linear(bl.v, h), P, H, D)
	a := p.new(P, H, D)
	p.attention(q, k, v, a, m.posIDs, float32(1/math.Sqrt(float64(D))))
	p.add(x, p.linear(bl.out, p.view(a, P, C)))

	p.layerNorm(x, bl.ln2W, bl.ln2B, h)
	f := p.linear(bl.fc1, h)
	p.unary(c.Act, f)
	p.add(x, p.linear(bl.fc2, f))
}

// pass is one Encode call's working state: the backend, the temporaries it
// allocated and the first error. Helpers do nothing once an error is
// recorded, so the forward pass reads as straight-line maths.
type pass struct {
	be  compute.Backend
	eps float32 // LayerNorm epsilon
	tmp []*compute.Tensor
	err error
}

func (p *pass) check(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

func (p *pass) mark() int { return len(p.tmp) }

func (p *pass) freeFrom(mark int) {
	for _, t := range p.tmp[mark:] {
		p.be.Free(t)
	}
	p.tmp = p.tmp[:mark]
}

func (p *pass) free() { p.freeFrom(0) }

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

func (p *pass) getRows(w *compute.Tensor, ids []int32, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.GetRows(w, ids, y))
	}
}

// linear returns x·Wᵀ + b.
func (p *pass) linear(l linear, x *compute.Tensor) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	y := p.new(x.Rows(), l.w.Shape[0])
	if y == nil {
		return nil
	}
	p.check(compute.MatMul(l.w, x, y))
	if l.b != nil {
		p.add(y, l.b)
	}
	return y
}

// layerNorm sets y = LayerNorm(x)·w + b (y may be x).
func (p *pass) layerNorm(x, w, b, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Norm(compute.LayerNorm, x, w, b, y, p.eps))
	}
}

// add sets x += y (y the same shape, or one row broadcast).
func (p *pass) add(x, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.AddTo(x, y, x))
	}
}

// unary sets x = f(x).
func (p *pass) unary(kind compute.UnaryKind, x *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Unary(kind, x, x, 0))
	}
}

// attention writes causal softmax(q·kᵀ·scale)·v into out.
func (p *pass) attention(q, k, v, out *compute.Tensor, pos []int32, scale float32) {
	if p.err == nil {
		p.check(compute.Attention(compute.AttentionOp{Q: q, K: k, V: v, Out: out,
			QPos: pos, KPos: pos, Scale: scale, Causal: true}))
	}
}

func (p *pass) view(t *compute.Tensor, shape ...int) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	v, err := compute.Reshape(t, shape...)
	p.check(err)
	return v
}

func (p *pass) rows(t *compute.Tensor, start, end int) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	v, err := compute.Rows(t, start, end)
	p.check(err)
	return v
}

func (p *pass) copyTo(src, dst *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Copy(src, dst))
	}
}

// read returns an F32 tensor's values.
func (p *pass) read(t *compute.Tensor) []float32 {
	if p.err != nil {
		return nil
	}
	raw := make([]byte, 4*t.Elems())
	if err := p.be.Read(t, raw); err != nil {
		p.check(err)
		return nil
	}
	v := make([]float32, t.Elems())
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v
}
