package clip

import (
	"fmt"

	"mica/internal/compute"
	"mica/internal/models/sd/param"
	"mica/internal/nn"
)

// Model is a loaded text encoder.
type Model struct {
	Config Config
	be     compute.Backend

	tokenEmb, posEmb *compute.Tensor // [Vocab, Hidden], [Positions, Hidden]
	finalW, finalB   *compute.Tensor // final LayerNorm
	// projW is the projection as a Linear weight in F32, [ProjDim, Hidden]
	// (SGM's T transposed), so MatMul computes h·T with h unrounded, as
	// stable-diffusion.cpp (which holds T in F32) does. Owned by the model.
	projW  *compute.Tensor
	blocks []block
	posIDs []int32 // 0 .. Positions-1
}

// block is one pre-LN transformer block.
type block struct {
	ln1W, ln1B *compute.Tensor
	q, k, v    linear
	out        linear
	ln2W, ln2B *compute.Tensor
	fc1, fc2   linear
}

// linear is y = x·Wᵀ + b.
type linear = nn.Linear

// Load binds a text encoder's weights under prefix (see Flavor for what the
// prefix names). position_ids and logit_scale, which checkpoints carry, are
// not read. Every missing or mis-shaped tensor is reported in one error.
func Load(src param.Source, prefix string, cfg Config) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := namesFor(cfg.Flavor, prefix)
	C, F := cfg.Hidden, cfg.MLP
	lin := func(name string, out, in int) linear {
		return linear{
			W: src.Tensor(name+".weight", param.Linear, out, in),
			B: src.Tensor(name+".bias", param.Bias, out),
		}
	}
	m := &Model{Config: cfg}
	var viewErr error
	rows := func(t *compute.Tensor, start, end int) *compute.Tensor {
		if t == nil {
			return nil // missing: recorded by the source
		}
		v, err := compute.Rows(t, start, end)
		if err != nil && viewErr == nil {
			viewErr = err
		}
		return v
	}
	m.tokenEmb = src.Tensor(n.tokenEmb, param.Embedding, cfg.Vocab, C)
	m.posEmb = src.Tensor(n.posEmb, param.Embedding, cfg.Positions, C)
	for i := range cfg.Layers {
		p := n.layer(i)
		var b block
		b.ln1W = src.Tensor(p+n.ln1+".weight", param.Norm, C)
		b.ln1B = src.Tensor(p+n.ln1+".bias", param.Bias, C)
		if cfg.Flavor == OpenCLIP {
			// in_proj_weight stacks the q, k and v rows: [3C, C].
			w := src.Tensor(p+n.inProj+"weight", param.Linear, 3*C, C)
			bias := src.Tensor(p+n.inProj+"bias", param.Bias, 3*C)
			for j, l := range []*linear{&b.q, &b.k, &b.v} {
				l.W, l.B = rows(w, j*C, (j+1)*C), rows(bias, j*C, (j+1)*C)
			}
		} else {
			b.q, b.k, b.v = lin(p+n.q, C, C), lin(p+n.k, C, C), lin(p+n.v, C, C)
		}
		b.out = lin(p+n.outProj, C, C)
		b.ln2W = src.Tensor(p+n.ln2+".weight", param.Norm, C)
		b.ln2B = src.Tensor(p+n.ln2+".bias", param.Bias, C)
		b.fc1 = lin(p+n.fc1, F, C)
		b.fc2 = lin(p+n.fc2, C, F)
		m.blocks = append(m.blocks, b)
	}
	m.finalW = src.Tensor(n.finalNormW, param.Norm, C)
	m.finalB = src.Tensor(n.finalNormB, param.Bias, C)
	var proj *compute.Tensor
	if cfg.ProjDim > 0 {
		if cfg.ProjTransposed {
			proj = src.Tensor(n.proj, param.Raw, cfg.ProjDim, C)
		} else {
			proj = src.Tensor(n.proj, param.Raw, C, cfg.ProjDim)
		}
	}
	if err := src.Err(); err != nil {
		return nil, fmt.Errorf("clip: text encoder %q: %w", prefix, err)
	}
	if viewErr != nil {
		return nil, fmt.Errorf("clip: text encoder %q: in_proj: %w", prefix, viewErr)
	}
	m.be = m.tokenEmb.Backend()
	if proj != nil {
		if err := m.loadProjection(proj); err != nil {
			return nil, fmt.Errorf("clip: %s: %w", n.proj, err)
		}
	}
	m.posIDs = make([]int32, cfg.Positions)
	for i := range m.posIDs {
		m.posIDs[i] = int32(i)
	}
	return m, nil
}

// loadProjection keeps the projection as an F32 [ProjDim, Hidden] Linear
// weight: it is widened to F32 first, then SGM's T [Hidden, ProjDim] is
// transposed (an F32 permuted view copied); a Linear weight is only
// widened.
func (m *Model) loadProjection(t *compute.Tensor) (err error) {
	if m.Config.ProjTransposed {
		m.projW, err = nn.ToF32(m.be, t)
	} else {
		m.projW, err = nn.TransposeF32(m.be, t)
	}
	return err
}

// Close releases what the model allocated (the bound weights belong to the
// source).
func (m *Model) Close() {
	if m.projW != nil {
		m.be.Free(m.projW)
		m.projW = nil
	}
}
