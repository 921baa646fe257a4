package vision

import (
	"fmt"
	"math"
	"unsafe"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

// Projector is a loaded mmproj file: a vision tower and its projector into
// a text model's embedding space. Weights stay in the memory-mapped file.
// A Projector is not safe for concurrent Encode calls.
type Projector struct {
	Config *Config
	Path   string

	be       compute.Backend
	file     *gguf.File
	ownsFile bool
	w        *weights
	owned    []*compute.Tensor
}

// Open loads the mmproj GGUF file at path; Close releases it.
func Open(path string, be compute.Backend) (*Projector, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	p, err := Load(f, be)
	if err != nil {
		f.Close()
		return nil, err
	}
	p.ownsFile = true
	return p, nil
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
	return &Projector{Config: c, Path: f.Path, be: be, file: f, w: w, owned: owned}, nil
}

// Close frees what the projector allocated and, for Open, the file.
func (p *Projector) Close() error {
	for _, t := range p.owned {
		p.be.Free(t)
	}
	p.owned = nil
	if p.ownsFile {
		p.ownsFile = false
		return p.file.Close()
	}
	return nil
}

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
	ps := &pass{be: p.be, eps: c.Eps}
	defer ps.free()
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
	if ps.err != nil {
		return nil, fmt.Errorf("vision: encode: %w", ps.err)
	}
	emb := make([]float32, out.Elems())
	if err := p.be.Read(out, f32Bytes(emb)); err != nil {
		return nil, fmt.Errorf("vision: encode: reading embeddings: %w", err)
	}
	return emb, nil
}

func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// pass is one Encode call's temporaries and first error; every helper is a
// no-op after an error, so the graphs read as straight-line maths.
type pass struct {
	be  compute.Backend
	eps float32
	tmp []*compute.Tensor
	err error
}

func (p *pass) check(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

func (p *pass) free() {
	for _, t := range p.tmp {
		p.be.Free(t)
	}
	p.tmp = nil
}

func (p *pass) mark() int { return len(p.tmp) }

// keep frees the temporaries since mark except those in keep.
func (p *pass) freeSince(mark int, keep ...*compute.Tensor) {
	kept := p.tmp[:mark]
outer:
	for _, t := range p.tmp[mark:] {
		for _, k := range keep {
			if k == t {
				kept = append(kept, t)
				continue outer
			}
		}
		p.be.Free(t)
	}
	p.tmp = kept
}

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

// upload makes a host matrix a tensor.
func (p *pass) upload(v []float32, shape ...int) *compute.Tensor {
	t := p.new(shape...)
	if t != nil {
		p.check(p.be.Write(t, f32Bytes(v)))
	}
	return t
}

// linear returns clamp(W·clamp(x, inMin, inMax) + b, outMin, outMax). The
// input clamp is applied to x in place, as ggml_clamp does in llama.cpp (so
// later linears reading the same x see it clamped too).
func (p *pass) linear(l linear, x *compute.Tensor) *compute.Tensor {
	p.clamp(x, l.inMin, l.inMax)
	if p.err != nil {
		return nil
	}
	y := p.new(x.Rows(), l.w.Shape[0])
	if y != nil {
		p.check(compute.MatMul(l.w, x, y))
	}
	if l.b != nil {
		p.add(y, l.b)
	}
	p.clamp(y, l.outMin, l.outMax)
	return y
}

// clamp limits x to [lo, hi] in place. There is no clamp op on the backend
// yet, so the values make a round trip through the host; bounds at
// ±MaxFloat32 (absent) cost nothing.
func (p *pass) clamp(x *compute.Tensor, lo, hi float32) {
	if p.err != nil || (lo == -math.MaxFloat32 && hi == math.MaxFloat32) {
		return
	}
	v := make([]float32, x.Elems())
	p.check(p.be.Read(x, f32Bytes(v)))
	for i, e := range v {
		v[i] = min(max(e, lo), hi)
	}
	p.check(p.be.Write(x, f32Bytes(v)))
}

// add sets x += y (y the same shape, or one row broadcast).
func (p *pass) add(x, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.AddTo(x, y, x))
	}
}

// mul sets x ⊙= y (y the same shape, or one row broadcast).
func (p *pass) mul(x, y *compute.Tensor) {
	if p.err == nil {
		p.check(compute.MulTo(x, y, x))
	}
}

func (p *pass) scale(x *compute.Tensor, s float32) {
	if p.err == nil {
		p.check(compute.Scale(x, s, x))
	}
}

func (p *pass) act(kind compute.UnaryKind, x *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Unary(kind, x, x, 0))
	}
}

// layerNorm returns (x − mean)/√(var + ε)·w + b over rows.
func (p *pass) layerNorm(x, w, b *compute.Tensor) *compute.Tensor {
	y := p.new(x.Shape...)
	if y != nil {
		p.check(compute.Norm(compute.LayerNorm, x, w, b, y, p.eps))
	}
	return y
}

// rmsNorm returns x/√(mean(x²) + ε)·w over rows (w nil: no weight).
func (p *pass) rmsNorm(x, w *compute.Tensor) *compute.Tensor {
	y := p.new(x.Shape...)
	if y != nil {
		p.check(compute.Norm(compute.RMSNorm, x, w, nil, y, p.eps))
	}
	return y
}

func (p *pass) rmsNormInPlace(x, w *compute.Tensor) {
	if p.err == nil {
		p.check(compute.Norm(compute.RMSNorm, x, w, nil, x, p.eps))
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

// attention is full (bidirectional) multi-head attention of q, k, v
// [n, heads·d] with the given score scale; it returns [n, heads·d]:
// softmax(Q·Kᵀ·scale)·V per head, by the backend's attention op (its tiled
// kernel streams keys through an online softmax, so no n×n score matrix is
// kept, even for a 4096-patch image).
func (p *pass) attention(q, k, v *compute.Tensor, heads int, scale float32) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	n, d := q.Shape[0], q.Dim(-1)/heads
	out := p.new(n, heads*d)
	if p.err != nil {
		return nil
	}
	pos := make([]int32, n) // every patch sees every patch
	p.check(compute.Attention(compute.AttentionOp{
		Q: p.view(q, n, heads, d), K: p.view(k, n, heads, d), V: p.view(v, n, heads, d), Out: p.view(out, n, heads, d),
		QPos: pos, KPos: pos, Scale: scale,
	}))
	return out
}

// avgPool averages m×m blocks of the grid x[ny·nx, E] (row-major patches):
// token (ty, tx) = (1/m²)·Σ_{ky,kx} x[(m·ty+ky)·nx + m·tx+kx], summed in
// (ky, kx) order like ggml's pool_2d. It returns [(ny/m)·(nx/m), E].
func (p *pass) avgPool(x *compute.Tensor, nx, ny, m int) *compute.Tensor {
	if p.err != nil {
		return nil
	}
	E := x.Dim(-1)
	tx, ty := nx/m, ny/m
	// [ty, ky, tx, kx, E] → [ky, kx, ty, tx, E]: each (ky, kx) is one
	// contiguous slab of the tokens' ky,kx-th patches.
	perm, err := compute.Permute(p.view(x, ty, m, tx, m, E), 1, 3, 0, 2, 4)
	p.check(err)
	slabs := p.new(m*m, ty*tx, E)
	if slabs == nil {
		return nil
	}
	p.check(compute.Copy(perm, slabs))
	out := p.new(ty*tx, E)
	for s := 0; s < m*m && p.err == nil; s++ {
		slab, err := compute.Rows(slabs, s, s+1)
		p.check(err)
		p.add(out, p.view(slab, ty*tx, E))
	}
	p.scale(out, 1/float32(m*m))
	return out
}
