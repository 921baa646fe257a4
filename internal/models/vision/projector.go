package vision

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/nn"
)

// Projector is a loaded mmproj file: a vision tower and its projector into
// a text model's embedding space. Weights stay in the memory-mapped file.
// A Projector is not safe for concurrent Encode calls.
type Projector struct {
	Config *Config
	Path   string

	be   compute.Backend
	file *gguf.File
	w    *weights
	res  nn.Resources // converted weights; the file when Open opened it
}

// Open loads the mmproj GGUF file at path; Close releases it.
func Open(path string, be compute.Backend) (*Projector, error) {
	return gguf.OpenWith(path, func(f *gguf.File) (*Projector, error) {
		p, err := Load(f, be)
		if err == nil {
			p.res.File = f
		}
		return p, err
	})
}

// Load builds a projector over an open file, which must stay open.
func Load(f *gguf.File, be compute.Backend) (*Projector, error) {
	c, err := ParseConfig(f)
	if err != nil {
		return nil, err
	}
	w, owned, err := bindWeights(f, be, c)
	if err != nil {
		return nil, err
	}
	return &Projector{Config: c, Path: f.Path, be: be, file: f, w: w, res: nn.Resources{B: be, Tensors: owned}}, nil
}

// Close frees what the projector allocated and, for Open, the file.
func (p *Projector) Close() error { return p.res.Close() }

// CheckPair reports whether the projector can feed a text model of
// architecture arch ("gemma3", "gemma4") and embedding width nEmbd.
func (p *Projector) CheckPair(arch string, nEmbd int) error {
	want := map[ProjectorType]string{Gemma3: "gemma3", Gemma4V: "gemma4"}[p.Config.Projector]
	if arch != want {
		return fmt.Errorf("vision: %s is a %s projector (for %s models); the text model is %s",
			p.Path, p.Config.Projector, want, arch)
	}
	if p.Config.ProjDim != nEmbd {
		return fmt.Errorf("vision: %s projects to width %d; the text model's embedding width is %d (mismatched pair)",
			p.Path, p.Config.ProjDim, nEmbd)
	}
	return nil
}

// Encode runs the vision tower and projector on a preprocessed image and
// returns its embeddings, row-major [in.Tokens()][ProjDim], token order
// row-major over the token grid.
func (p *Projector) Encode(in *Input) ([]float32, error) {
	c := p.Config
	if in == nil || in.NX*c.PatchSize != in.Width || in.NY*c.PatchSize != in.Height ||
		len(in.RGB) != 3*in.Width*in.Height || in.NX%c.Merge != 0 || in.NY%c.Merge != 0 {
		return nil, fmt.Errorf("vision: encode: input does not come from this projector's Preprocess")
	}
	ps := &pass{nn.Pass{B: p.be, Eps: c.Eps}}
	defer ps.Free()
	var out *compute.Tensor
	switch c.Projector {
	case Gemma3:
		if in.Width != c.ImageSize || in.Height != c.ImageSize {
			return nil, fmt.Errorf("vision: encode: gemma3 input must be %d×%d, got %d×%d", c.ImageSize, c.ImageSize, in.Width, in.Height)
		}
		out = p.gemma3(ps, in)
	case Gemma4V:
		out = p.gemma4v(ps, in)
	}
	if ps.Err != nil {
		return nil, fmt.Errorf("vision: encode: %w", ps.Err)
	}
	emb := make([]float32, out.Elems())
	if err := compute.ReadF32(out, emb); err != nil {
		return nil, fmt.Errorf("vision: encode: reading embeddings: %w", err)
	}
	return emb, nil
}

// pass is one Encode call's nn.Pass (temporaries, first error, helpers that
// do nothing after an error) with the towers' own layers.
type pass struct{ nn.Pass }

// linear returns clamp(W·clamp(x, inMin, inMax) + b, outMin, outMax). The
// input clamp is applied to x in place, as ggml_clamp does in llama.cpp (so
// later linears reading the same x see it clamped too).
func (p *pass) linear(l linear, x *compute.Tensor) *compute.Tensor {
	p.clamp(x, l.inMin, l.inMax)
	y := p.Linear(l.Linear, x)
	p.clamp(y, l.outMin, l.outMax)
	return y
}

// clamp limits x to [lo, hi] in place. There is no clamp op on the backend
// yet, so the values make a round trip through the host; bounds at
// ±MaxFloat32 (absent) cost nothing.
func (p *pass) clamp(x *compute.Tensor, lo, hi float32) {
	if p.Err != nil || (lo == -math.MaxFloat32 && hi == math.MaxFloat32) {
		return
	}
	v := make([]float32, x.Elems())
	p.Check(compute.ReadF32(x, v))
	for i, e := range v {
		v[i] = min(max(e, lo), hi)
	}
	p.Check(compute.WriteF32(x, v))
}

// attention is full (bidirectional) multi-head attention of q, k, v
// [n, heads·d] with the given score scale; it returns [n, heads·d]:
// softmax(Q·Kᵀ·scale)·V per head, by the backend's attention op (its tiled
// kernel streams keys through an online softmax, so no n×n score matrix is
// kept, even for a 4096-patch image).
func (p *pass) attention(q, k, v *compute.Tensor, heads int, scale float32) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	n, d := q.Shape[0], q.Dim(-1)/heads
	out := p.New(n, heads*d)
	if p.Err != nil {
		return nil
	}
	pos := make([]int32, n) // every patch sees every patch
	p.Attention(compute.AttentionOp{
		Q: p.View(q, n, heads, d), K: p.View(k, n, heads, d), V: p.View(v, n, heads, d), Out: p.View(out, n, heads, d),
		QPos: pos, KPos: pos, Scale: scale,
	})
	return out
}

// avgPool averages m×m blocks of the grid x[ny·nx, E] (row-major patches):
// token (ty, tx) = (1/m²)·Σ_{ky,kx} x[(m·ty+ky)·nx + m·tx+kx], summed in
// (ky, kx) order like ggml's pool_2d. It returns [(ny/m)·(nx/m), E].
func (p *pass) avgPool(x *compute.Tensor, nx, ny, m int) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	E := x.Dim(-1)
	tx, ty := nx/m, ny/m
	// [ty, ky, tx, kx, E] → [ky, kx, ty, tx, E]: each (ky, kx) is one
	// contiguous slab of the tokens' ky,kx-th patches.
	perm := p.Permute(p.View(x, ty, m, tx, m, E), 1, 3, 0, 2, 4)
	slabs := p.New(m*m, ty*tx, E)
	if slabs == nil {
		return nil
	}
	p.Copy(perm, slabs)
	out := p.New(ty*tx, E)
	for s := 0; s < m*m && p.Err == nil; s++ {
		p.Add(out, p.View(p.Rows(slabs, s, s+1), ty*tx, E))
	}
	p.Scale(out, 1/float32(m*m))
	return out
}
