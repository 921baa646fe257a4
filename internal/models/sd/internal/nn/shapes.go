package nn

import (
	"sort"

	"mica/internal/compute"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// ShapeSource is a param.Source for binding tests at real sizes: it serves
// the shapes it was given (a checkpoint's tensor list) and hands out
// storage-less tensors, recording every name asked for, so a binder can be
// checked against a checkpoint's names without allocating its weights.
// The tensors it returns must not be computed with.
type ShapeSource struct {
	Stored map[string][]int
	Asked  map[string][]int
	param.Errors
}

// NewShapeSource makes a ShapeSource over stored shapes.
func NewShapeSource(stored map[string][]int) *ShapeSource {
	return &ShapeSource{Stored: stored, Asked: map[string][]int{}}
}

// Shape implements param.Source.
func (s *ShapeSource) Shape(name string) ([]int, bool) {
	v, ok := s.Stored[name]
	return v, ok
}

// Tensor implements param.Source.
func (s *ShapeSource) Tensor(name string, role param.Role, shape ...int) *compute.Tensor {
	s.Asked[name] = append([]int(nil), shape...)
	got, ok := s.Stored[name]
	if !ok {
		s.Add("tensor %s: missing", name)
		return nil
	}
	if !s.CheckShape(name, got, shape) {
		return nil
	}
	return compute.NewTensor(nil, tensor.F32, nil, true, shape...)
}

// Unasked lists the stored names with prefix that no binder asked for.
func (s *ShapeSource) Unasked(prefix string) []string {
	var out []string
	for k := range s.Stored {
		if _, ok := s.Asked[k]; !ok && len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
