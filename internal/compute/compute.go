// Package compute is the interface between the models and the hardware: a
// Backend owns device memory (Tensors) and executes ops on it. Models call the
// op functions of this package (MatMul, RMSNorm, Attention, …) on tensors and
// never touch weight bytes themselves, so a backend whose buffers are not Go
// slices and whose ops are queued (a GPU) can implement the same interface.
// The CPU backend is in package compute/cpu.
package compute

import (
	"errors"
	"fmt"

	"mica/internal/tensor"
)

// Backend executes ops on tensors it allocated or wrapped.
type Backend interface {
	// Name identifies the backend and the kernels it chose, e.g. "cpu/avx2".
	Name() string
	// Threads is the degree of parallelism the backend uses.
	Threads() int
	// Alloc returns a new contiguous tensor; contents are zero.
	Alloc(dt tensor.DType, shape ...int) (*Tensor, error)
	// Wrap makes host bytes (typically memory-mapped weights) a read-only
	// tensor without copying where the device can read host memory.
	Wrap(dt tensor.DType, data []byte, shape ...int) (*Tensor, error)
	// Write copies raw bytes (in the tensor's dtype) into a contiguous tensor.
	Write(t *Tensor, src []byte) error
	// Read copies a contiguous tensor's raw bytes out.
	Read(t *Tensor, dst []byte) error
	// Free releases a tensor allocated by Alloc (Wrap'd tensors own nothing).
	Free(t *Tensor)
	// Run executes one op (validated by the op constructors of this package).
	Run(op Op) error
	// Sync waits until every op submitted so far has finished.
	Sync() error
	// Memory reports the bytes the backend holds.
	Memory() MemStats
	// Close releases the backend's workers and memory.
	Close() error
}

// UninitAllocator is implemented by backends that can allocate without
// clearing: AllocUninit returns a new contiguous tensor with unspecified
// contents, for the output of an op that writes every element.
type UninitAllocator interface {
	AllocUninit(dt tensor.DType, shape ...int) (*Tensor, error)
}

// AllocOutput allocates a tensor the caller will overwrite entirely (an op's
// output): without clearing it where the backend can, zeroed otherwise.
func AllocOutput(b Backend, dt tensor.DType, shape ...int) (*Tensor, error) {
	if u, ok := b.(UninitAllocator); ok {
		return u.AllocUninit(dt, shape...)
	}
	return b.Alloc(dt, shape...)
}

// MemStats is a backend's memory accounting.
type MemStats struct {
	Allocated int64 // bytes held by Alloc'd tensors now
	Peak      int64 // the most Allocated has been
	Wrapped   int64 // bytes of host memory wrapped (not owned)
}

// Tensor is an n-dimensional array on a backend. Shape is outermost first:
// the last dimension is the contiguous row. A GGUF tensor with ne = [cols,
// rows] therefore has Shape [rows, cols]. Views share storage with their
// parent and may have strides (F32/F16 only); quantized tensors are always
// contiguous rows.
type Tensor struct {
	DType   tensor.DType
	Shape   []int
	Strides []int // in elements, outermost first; nil means contiguous
	Offset  int   // in elements from the start of the storage
	Storage any   // backend-private storage handle
	owner   Backend
	wrapped bool
}

// NewTensor is for backends: it builds a tensor over their storage.
func NewTensor(b Backend, dt tensor.DType, storage any, wrapped bool, shape ...int) *Tensor {
	return &Tensor{DType: dt, Shape: append([]int(nil), shape...), Storage: storage, owner: b, wrapped: wrapped}
}

// Backend is the backend that owns t.
func (t *Tensor) Backend() Backend { return t.owner }

// ReadOnly reports whether t wraps host memory (weights).
func (t *Tensor) ReadOnly() bool { return t.wrapped }

// Elems is the number of elements.
func (t *Tensor) Elems() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Dim returns dimension i, counting from the end when i < 0 (Dim(-1) is the
// row length).
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Rows is the number of rows: the product of every dimension but the last.
func (t *Tensor) Rows() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Elems() / t.Shape[len(t.Shape)-1]
}

// Contiguous reports whether t's elements are laid out densely in order.
func (t *Tensor) Contiguous() bool {
	if t.Strides == nil {
		return true
	}
	want := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Strides[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return true
}

// Stride returns the element strides, computing the contiguous ones when nil.
func (t *Tensor) Stride() []int {
	if t.Strides != nil {
		return t.Strides
	}
	s := make([]int, len(t.Shape))
	acc := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= t.Shape[i]
	}
	return s
}

func (t *Tensor) String() string {
	return fmt.Sprintf("%s%v", t.DType, t.Shape)
}

// ErrShape is wrapped by every shape mismatch error.
var ErrShape = errors.New("shape mismatch")

func shapeErr(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrShape, fmt.Sprintf(format, args...))
}
