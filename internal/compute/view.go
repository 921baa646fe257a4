package compute

import "fmt"

// Views share their parent's storage: no data moves. Quantized tensors only
// support row slices (whole rows stay whole blocks).

// Reshape returns a view of a contiguous t with a new shape of the same size.
func Reshape(t *Tensor, shape ...int) (*Tensor, error) {
	if !t.Contiguous() {
		return nil, fmt.Errorf("reshape: %v is not contiguous (use Copy first)", t)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return nil, shapeErr("reshape", "dimension %d in %v", d, shape)
		}
		n *= d
	}
	if n != t.Elems() || (t.DType.Quantized() && shape[len(shape)-1] != t.Dim(-1)) {
		return nil, shapeErr("reshape", "%v to %v", t, shape)
	}
	v := *t
	v.Shape = append([]int(nil), shape...)
	v.Strides = nil
	return &v, nil
}

// Permute returns a view with the axes reordered: view.Shape[i] = t.Shape[axes[i]].
func Permute(t *Tensor, axes ...int) (*Tensor, error) {
	if t.DType.Quantized() {
		return nil, fmt.Errorf("permute: quantized tensor %v", t)
	}
	if len(axes) != len(t.Shape) {
		return nil, shapeErr("permute", "%d axes for %v", len(axes), t)
	}
	seen := make([]bool, len(axes))
	st := t.Stride()
	v := *t
	v.Shape = make([]int, len(axes))
	v.Strides = make([]int, len(axes))
	for i, a := range axes {
		if a < 0 || a >= len(axes) || seen[a] {
			return nil, shapeErr("permute", "axes %v", axes)
		}
		seen[a] = true
		v.Shape[i], v.Strides[i] = t.Shape[a], st[a]
	}
	return &v, nil
}

// Rows returns the view of rows [start, end) of t along its first dimension.
func Rows(t *Tensor, start, end int) (*Tensor, error) {
	if len(t.Shape) == 0 || start < 0 || end > t.Shape[0] || start > end {
		return nil, shapeErr("rows", "[%d,%d) of %v", start, end, t)
	}
	if t.DType.Quantized() && !t.Contiguous() {
		return nil, fmt.Errorf("rows: quantized tensor %v must be contiguous", t)
	}
	v := *t
	v.Shape = append([]int(nil), t.Shape...)
	v.Shape[0] = end - start
	v.Strides = append([]int(nil), t.Strides...)
	if v.Strides == nil {
		v.Strides = nil
	}
	v.Offset = t.Offset + start*t.Stride()[0]
	return &v, nil
}
