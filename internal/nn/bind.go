package nn

import (
	"fmt"
	"io"
	"strings"

	"mica/internal/compute"
	"mica/internal/tensor"
)

// Store is where a Binder finds weights: tensors by name, with GGUF-order
// shapes (ne: innermost dimension first) and their bytes. *gguf.File is one.
type Store interface {
	TensorShape(name string) (dt tensor.DType, ne []int64, ok bool)
	TensorData(name string) ([]byte, error)
}

// Binder wraps a Store's tensors by name on a backend, checking their
// shapes. It never fails outright: every problem is collected so that a bad
// file is reported in one error (Err), and nil is returned in its place.
// Tensors it allocates (converted or transposed copies) are Owned by the
// caller once binding succeeds.
type Binder struct {
	src      Store
	be       compute.Backend
	problems []string
	owned    []*compute.Tensor
}

// NewBinder binds from src onto be.
func NewBinder(src Store, be compute.Backend) *Binder { return &Binder{src: src, be: be} }

// Problem records a problem.
func (b *Binder) Problem(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// Tensor wraps name (zero-copy), checking its GGUF shape (ne, innermost
// first); the tensor's shape is compute order, outermost first. A missing
// tensor is a problem unless optional.
func (b *Binder) Tensor(name string, optional bool, ne ...int) *compute.Tensor {
	dt, have, ok := b.src.TensorShape(name)
	if !ok {
		if !optional {
			b.Problem("%s: missing (want shape %v)", name, ne)
		}
		return nil
	}
	if !sameNE(have, ne) {
		b.Problem("%s: shape %v, want %v", name, have, ne)
		return nil
	}
	data, err := b.src.TensorData(name)
	if err != nil {
		b.Problem("%s: %v", name, err)
		return nil
	}
	shape := make([]int, len(ne))
	for i, d := range ne {
		shape[len(ne)-1-i] = d
	}
	t, err := b.be.Wrap(dt, data, shape...)
	if err != nil {
		b.Problem("%s: %v", name, err)
		return nil
	}
	return t
}

func sameNE(have []int64, want []int) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] != int64(want[i]) {
			return false
		}
	}
	return true
}

// Req is Tensor for a required weight, Opt for an optional one.
func (b *Binder) Req(name string, ne ...int) *compute.Tensor { return b.Tensor(name, false, ne...) }

// Opt is Tensor for an optional weight (nil when absent).
func (b *Binder) Opt(name string, ne ...int) *compute.Tensor { return b.Tensor(name, true, ne...) }

// Convert returns t in dtype dt: t itself when it already is, else a copy
// made once at load (from F32, F16 or BF16).
func (b *Binder) Convert(name string, t *compute.Tensor, dt tensor.DType) *compute.Tensor {
	if t == nil || t.DType == dt {
		return t
	}
	if t.DType != tensor.F32 && t.DType != tensor.F16 && t.DType != tensor.BF16 {
		b.Problem("%s: type %s, want F32, F16 or BF16", name, t.DType)
		return nil
	}
	out, err := b.be.Alloc(dt, t.Shape...)
	if err == nil {
		b.owned = append(b.owned, out)
		err = compute.Copy(t, out)
	}
	if err != nil {
		b.Problem("%s: %v", name, err)
		return nil
	}
	return out
}

// F32 binds a small parameter the ops want in F32 (norm weights, biases,
// scales), converting F16 or BF16 once.
func (b *Binder) F32(name string, optional bool, ne ...int) *compute.Tensor {
	return b.Convert(name, b.Tensor(name, optional, ne...), tensor.F32)
}

// Values reads a small tensor's values to the host (scales the forward
// pass uses as scalars); nil when t is nil or on a problem.
func (b *Binder) Values(name string, t *compute.Tensor) []float32 {
	t = b.Convert(name, t, tensor.F32)
	if t == nil {
		return nil
	}
	v := make([]float32, t.Elems())
	if err := compute.ReadF32(t, v); err != nil {
		b.Problem("%s: %v", name, err)
		return nil
	}
	return v
}

// Scalar reads an optional one-element tensor, def when absent.
func (b *Binder) Scalar(name string, def float32) float32 {
	if v := b.Values(name, b.Opt(name, 1)); len(v) == 1 {
		return v[0]
	}
	return def
}

// Own adds a tensor the caller allocated to those the binding owns (freed
// by Err on failure, handed out by Owned on success).
func (b *Binder) Own(t *compute.Tensor) { b.owned = append(b.owned, t) }

// Backend is the backend the binder wraps onto.
func (b *Binder) Backend() compute.Backend { return b.be }

// Err is nil when every tensor bound, else one error listing every problem;
// then the tensors the binding allocated are freed.
func (b *Binder) Err() error {
	if len(b.problems) == 0 {
		return nil
	}
	for _, t := range b.owned {
		b.be.Free(t)
	}
	b.owned = nil
	return fmt.Errorf("%d tensor problem(s):\n  %s", len(b.problems), strings.Join(b.problems, "\n  "))
}

// Owned is the tensors the binding allocated, for the model to free.
func (b *Binder) Owned() []*compute.Tensor { return b.owned }

// ToF32 returns an F32 copy of t (any dtype Copy converts from), allocated
// on be; the caller frees it.
func ToF32(be compute.Backend, t *compute.Tensor) (*compute.Tensor, error) {
	out, err := be.Alloc(tensor.F32, t.Shape...)
	if err != nil {
		return nil, err
	}
	if err := compute.Copy(t, out); err != nil {
		be.Free(out)
		return nil, err
	}
	return out, nil
}

// TransposeF32 returns the F32 [cols, rows] transpose of the 2-D t: t is
// widened to F32 first, then the permuted view is copied. The caller frees
// the result.
func TransposeF32(be compute.Backend, t *compute.Tensor) (*compute.Tensor, error) {
	wide, err := ToF32(be, t)
	if err != nil {
		return nil, err
	}
	defer be.Free(wide)
	view, err := compute.Permute(wide, 1, 0)
	if err != nil {
		return nil, err
	}
	return ToF32(be, view)
}

// Resources is what a model built over a file releases when it closes: the
// tensors its binding allocated and, when the model opened the file itself,
// the file.
type Resources struct {
	B       compute.Backend
	Tensors []*compute.Tensor
	File    io.Closer // nil when the caller owns the file
}

// Close frees the tensors and closes the file, once.
func (r *Resources) Close() error {
	for _, t := range r.Tensors {
		r.B.Free(t)
	}
	r.Tensors = nil
	if f := r.File; f != nil {
		r.File = nil
		return f.Close()
	}
	return nil
}
