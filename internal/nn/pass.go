// Package nn holds what every model's forward pass and weight binding share:
// Pass, one forward call's temporaries and first error, with helpers that do
// nothing once an error is recorded (so a forward pass reads as
// straight-line maths and checks the error once per block), and Binder,
// which binds GGUF weights by name and collects every problem into one
// error. Models add their own layers on top; the maths runs on the compute
// backend.
package nn

import (
	"unsafe"

	"mica/internal/compute"
	"mica/internal/tensor"
)

// Pass is one forward call's working state: the backend, the temporaries
// it allocated (freed by Free) and the first error. Every helper is a no-op
// once Err is set.
type Pass struct {
	B   compute.Backend
	Eps float32 // the norms' ε
	Err error
	tmp []*compute.Tensor
}

// Check records err unless an error is already recorded.
func (p *Pass) Check(err error) {
	if p.Err == nil && err != nil {
		p.Err = err
	}
}

// Mark and FreeFrom release the temporaries allocated since a mark (but
// those in keep), so a block's intermediates do not outlive the block.
func (p *Pass) Mark() int { return len(p.tmp) }

// FreeFrom frees the temporaries allocated since mark, except keep.
func (p *Pass) FreeFrom(mark int, keep ...*compute.Tensor) {
	kept := p.tmp[:mark]
outer:
	for _, t := range p.tmp[mark:] {
		for _, k := range keep {
			if k == t {
				kept = append(kept, t)
				continue outer
			}
		}
		p.B.Free(t)
	}
	p.tmp = kept
}

// Free releases every temporary.
func (p *Pass) Free() { p.FreeFrom(0) }

// New allocates a zeroed F32 temporary.
func (p *Pass) New(shape ...int) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	t, err := p.B.Alloc(tensor.F32, shape...)
	p.Check(err)
	if t != nil {
		p.tmp = append(p.tmp, t)
	}
	return t
}

// newOutput is New for a temporary the next op overwrites entirely, so
// the backend need not clear it.
func (p *Pass) newOutput(shape ...int) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	t, err := compute.AllocOutput(p.B, tensor.F32, shape...)
	p.Check(err)
	if t != nil {
		p.tmp = append(p.tmp, t)
	}
	return t
}

// Upload makes host values an F32 temporary of the given shape.
func (p *Pass) Upload(v []float32, shape ...int) *compute.Tensor {
	t := p.New(shape...)
	if t != nil {
		p.Check(compute.WriteF32(t, v))
	}
	return t
}

// Read returns an F32 tensor's values (nil after an error).
func (p *Pass) Read(t *compute.Tensor) []float32 {
	if p.Err != nil {
		return nil
	}
	v := make([]float32, t.Elems())
	if err := compute.ReadF32(t, v); err != nil {
		p.Check(err)
		return nil
	}
	return v
}

// MatMul returns x·wᵀ: [rows of x, rows of w].
func (p *Pass) MatMul(w, x *compute.Tensor) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	y := p.newOutput(x.Rows(), w.Shape[0])
	if y != nil {
		p.Check(compute.MatMul(w, x, y))
	}
	return y
}

// MatMuls returns x·wᵀ for each w (like MatMul for each), the input
// converted once for all of them: a layer's query, key and value
// projections.
func (p *Pass) MatMuls(x *compute.Tensor, ws ...*compute.Tensor) []*compute.Tensor {
	ys := make([]*compute.Tensor, len(ws))
	if p.Err != nil {
		return ys // (x may be nil after an error)
	}
	for i, w := range ws {
		ys[i] = p.newOutput(x.Rows(), w.Shape[0]) // nil after an error
	}
	if p.Err == nil {
		p.Check(compute.MatMuls(x, ws, ys))
	}
	if p.Err != nil {
		clear(ys) // (the temporaries are the pass's, freed with it)
	}
	return ys
}

// Linear is y = x·Wᵀ + b over rows (B nil: no bias).
type Linear struct{ W, B *compute.Tensor }

// Linear returns x·Wᵀ + b.
func (p *Pass) Linear(l Linear, x *compute.Tensor) *compute.Tensor {
	y := p.MatMul(l.W, x)
	if l.B != nil {
		p.Add(y, l.B)
	}
	return y
}

// RMSNorm returns x/√(mean(x²) + ε)·w over the last dimension (w nil: no
// weight).
func (p *Pass) RMSNorm(x, w *compute.Tensor) *compute.Tensor {
	return p.norm(compute.RMSNorm, x, w, nil)
}

// RMSNormInPlace sets x = RMSNorm(x)·w.
func (p *Pass) RMSNormInPlace(x, w *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.Norm(compute.RMSNorm, x, w, nil, x, p.Eps))
	}
}

// LayerNorm returns (x − mean)/√(var + ε)·w + b over the last dimension.
func (p *Pass) LayerNorm(x, w, b *compute.Tensor) *compute.Tensor {
	return p.norm(compute.LayerNorm, x, w, b)
}

// LayerNormInto sets y = LayerNorm(x)·w + b (y may be x).
func (p *Pass) LayerNormInto(x, w, b, y *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.Norm(compute.LayerNorm, x, w, b, y, p.Eps))
	}
}

func (p *Pass) norm(kind compute.NormKind, x, w, b *compute.Tensor) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	y := p.newOutput(x.Shape...)
	if y != nil {
		p.Check(compute.Norm(kind, x, w, b, y, p.Eps))
	}
	return y
}

// Add sets x += y (y the same shape, or one row broadcast).
func (p *Pass) Add(x, y *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.AddTo(x, y, x))
	}
}

// Mul sets x ⊙= y (y the same shape, or one row broadcast).
func (p *Pass) Mul(x, y *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.MulTo(x, y, x))
	}
}

// Scale sets x *= s.
func (p *Pass) Scale(x *compute.Tensor, s float32) {
	if p.Err == nil {
		p.Check(compute.Scale(x, s, x))
	}
}

// Unary sets x = f(x) (the op's parameter 0).
func (p *Pass) Unary(kind compute.UnaryKind, x *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.Unary(kind, x, x, 0))
	}
}

// Gated sets x = f(x)·g in place (GELU: ggml's geglu; SiLU: swiglu).
func (p *Pass) Gated(kind compute.UnaryKind, x, g *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.Gated(kind, x, g, x))
	}
}

// GetRows writes rows ids of the table w into y.
func (p *Pass) GetRows(w *compute.Tensor, ids []int32, y *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.GetRows(w, ids, y))
	}
}

// View reshapes t (no copy).
func (p *Pass) View(t *compute.Tensor, shape ...int) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	v, err := compute.Reshape(t, shape...)
	p.Check(err)
	return v
}

// Rows is the view of rows [start, end) of t's first dimension.
func (p *Pass) Rows(t *compute.Tensor, start, end int) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	v, err := compute.Rows(t, start, end)
	p.Check(err)
	return v
}

// Permute is the view of t with its dimensions reordered.
func (p *Pass) Permute(t *compute.Tensor, order ...int) *compute.Tensor {
	if p.Err != nil {
		return nil
	}
	v, err := compute.Permute(t, order...)
	p.Check(err)
	return v
}

// Copy copies src (any view) into the contiguous dst, converting dtype.
func (p *Pass) Copy(src, dst *compute.Tensor) {
	if p.Err == nil {
		p.Check(compute.Copy(src, dst))
	}
}

// RoPE runs a rotary-embedding op.
func (p *Pass) RoPE(op compute.RoPEOp) {
	if p.Err == nil {
		p.Check(compute.RoPE(op))
	}
}

// Attention runs an attention op.
func (p *Pass) Attention(op compute.AttentionOp) {
	if p.Err == nil {
		p.Check(compute.Attention(op))
	}
}

// F32Bytes is v's memory as bytes (little-endian hosts: the backend's F32
// layout), for Backend.Read and Write without a copy.
func F32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
