package compute

import (
	"fmt"
	"unsafe"

	"mica/internal/tensor"
)

// WriteF32 copies host values into a contiguous F32 tensor of the same
// number of elements.
func WriteF32(t *Tensor, v []float32) error {
	if t.DType != tensor.F32 || t.Elems() != len(v) {
		return fmt.Errorf("write: %d float32 values into %v", len(v), t)
	}
	if len(v) == 0 {
		return nil
	}
	return t.owner.Write(t, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
}

// ReadF32 copies a contiguous F32 tensor into dst (len(dst) == t.Elems()).
func ReadF32(t *Tensor, dst []float32) error {
	if t.DType != tensor.F32 || t.Elems() != len(dst) {
		return fmt.Errorf("read: %v into %d float32 values", t, len(dst))
	}
	if len(dst) == 0 {
		return nil
	}
	return t.owner.Read(t, unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)))
}

// FromF32 allocates an F32 tensor of the given shape on b holding v.
func FromF32(b Backend, v []float32, shape ...int) (*Tensor, error) {
	t, err := b.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := WriteF32(t, v); err != nil {
		b.Free(t)
		return nil, err
	}
	return t, nil
}

// ToF32 reads a contiguous F32 tensor into a new slice.
func ToF32(t *Tensor) ([]float32, error) {
	v := make([]float32, t.Elems())
	return v, ReadF32(t, v)
}
