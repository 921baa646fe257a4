package clip

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/nn"
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

	p := &nn.Pass{B: b, Eps: c.Eps}
	defer p.Free()
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
		x = p.New(P, C)
	}

	// Embeddings: token + position (position ids 0 .. P−1).
	p.GetRows(m.tokenEmb, ids, x)
	pos := p.New(P, C)
	p.GetRows(m.posEmb, m.posIDs, pos)
	p.Add(x, pos)
	if p.Err != nil {
		return nil, nil, fmt.Errorf("clip: embeddings: %w", p.Err)
	}

	for i := range run {
		m.block(p, &m.blocks[i], x)
		if i+1 == o.Layers && x != out {
			p.Copy(x, out)
		}
		if p.Err != nil {
			return nil, nil, fmt.Errorf("clip: block %d: %w", i, p.Err)
		}
	}
	if pool { // before out is normalised: x may be out
		row := p.New(1, C)
		p.LayerNormInto(p.Rows(x, o.PooledAt, o.PooledAt+1), m.finalW, m.finalB, row)
		if m.projW != nil {
			row = p.MatMul(m.projW, row)
		}
		pooled = p.Read(row)
	}
	if o.FinalNorm {
		p.LayerNormInto(out, m.finalW, m.finalB, out)
	}
	if p.Err != nil {
		return nil, nil, fmt.Errorf("clip: %w", p.Err)
	}
	return out, pooled, nil
}

// block applies one pre-LN transformer block to x in place:
//
//	x += out(attention(LN1(x)))   (causal, Heads heads)
//	x += fc2(act(fc1(LN2(x))))
func (m *Model) block(p *nn.Pass, bl *block, x *compute.Tensor) {
	defer p.FreeFrom(p.Mark())
	c := m.Config
	P, C, H, D := c.Positions, c.Hidden, c.Heads, c.HeadDim()

	h := p.New(P, C)
	p.LayerNormInto(x, bl.ln1W, bl.ln1B, h)
	q := p.View(p.Linear(bl.q, h), P, H, D)
	k := p.View(p.Linear(bl.k, h), P, H, D)
	v := p.View(p.Linear(bl.v, h), P, H, D)
	a := p.New(P, H, D)
	p.Attention(compute.AttentionOp{Q: q, K: k, V: v, Out: a, QPos: m.posIDs, KPos: m.posIDs,
		Scale: float32(1 / math.Sqrt(float64(D))), Causal: true})
	p.Add(x, p.Linear(bl.out, p.View(a, P, C)))

	p.LayerNormInto(x, bl.ln2W, bl.ln2B, h)
	f := p.Linear(bl.fc1, h)
	p.Unary(c.Act, f)
	p.Add(x, p.Linear(bl.fc2, f))
}
