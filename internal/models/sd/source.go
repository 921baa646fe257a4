package sd

import (
	"fmt"
	"strings"

	"mica/internal/compute"
	"mica/internal/kernels/quant"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// SourceOptions are the load-time choices for serving weights.
type SourceOptions struct {
	// Quantize, when Q8_0 or Q4_0, quantizes the UNet's Linear weights and
	// conv kernels at load, as stable-diffusion.cpp's --type does. A conv
	// kernel [oc, ic, k, k] is quantized as the matrix [oc, ic·k·k] (the
	// backend's conv takes kernels in that form; 32-element blocks cannot
	// tile a 3-wide kernel row). Weights whose rows are not whole blocks
	// (the 4-channel input conv) stay as they were; see Notes.
	Quantize tensor.DType
}

// Source serves a checkpoint's weights by single-file name with sd.cpp's
// dtype policy, which the reference images were made with:
//   - Conv kernels: F16 (F32 and BF16 files are rounded at load).
//   - Linear and Embedding weights: the file's dtype (F32, F16 or BF16, all
//     of which the matmul kernels take), or the quantization type for the
//     UNet's Linear weights when asked.
//   - Norm weights and biases: F32 (F16/BF16 are widened).
//   - Raw tensors: the file's dtype.
//
// Where the stored bytes already are the wanted dtype and layout the
// tensor wraps the memory map (no copy); otherwise it is converted into
// backend memory, which Free releases.
type Source struct {
	ck    *Checkpoint
	b     compute.Backend
	o     SourceOptions
	held  []*compute.Tensor
	asked map[string]bool
	// Notes lists load-time decisions worth telling the user (weights
	// left unquantized and why).
	Notes []string
	param.Errors
}

// Source returns a param.Source over the checkpoint for backend b.
func (c *Checkpoint) Source(b compute.Backend, o SourceOptions) (*Source, error) {
	switch o.Quantize {
	case 0, tensor.Q8_0, tensor.Q4_0:
	default:
		return nil, fmt.Errorf("sd: load-time quantization to %s is not supported (Q8_0 or Q4_0)", o.Quantize)
	}
	return &Source{ck: c, b: b, o: o, asked: map[string]bool{}}, nil
}

// Shape implements param.Source.
func (s *Source) Shape(name string) ([]int, bool) { return s.ck.Shape(name) }

// Unused lists the checkpoint's tensors under prefix that nothing asked
// for (a binder that missed part of a checkpoint), sorted.
func (s *Source) Unused(prefix string) []string {
	var out []string
	for _, n := range s.ck.Names() {
		if strings.HasPrefix(n, prefix) && !s.asked[n] {
			out = append(out, n)
		}
	}
	return out
}

// Free releases the tensors the source converted (wrapped ones own
// nothing).
func (s *Source) Free() {
	for _, t := range s.held {
		s.b.Free(t)
	}
	s.held = nil
}

// Tensor implements param.Source.
func (s *Source) Tensor(name string, role param.Role, shape ...int) *compute.Tensor {
	s.asked[name] = true
	e, ok := s.ck.tensors[name]
	if !ok {
		s.Add("tensor %s: missing from %s", name, s.ck.Path)
		return nil
	}
	if !s.CheckShape(name, e.shape, shape) {
		return nil
	}
	fileDT := e.parts[0].info.DType
	for _, p := range e.parts {
		if p.info.DType != fileDT {
			s.Add("tensor %s: parts stored as %s and %s", name, fileDT, p.info.RawDType)
			return nil
		}
	}
	if fileDT != tensor.F32 && fileDT != tensor.F16 && fileDT != tensor.BF16 && role != param.Raw {
		s.Add("tensor %s (%s): stored as %s; weights must be F32, F16 or BF16", name, e.file(), e.parts[0].info.RawDType)
		return nil
	}
	want := fileDT
	upShape := shape
	switch role {
	case param.Conv:
		want = tensor.F16
		if q := s.o.Quantize; q != 0 && strings.HasPrefix(name, UNetPrefix) && len(shape) == 4 {
			if cols := shape[1] * shape[2] * shape[3]; cols%q.BlockSize() == 0 {
				want, upShape = q, []int{shape[0], cols}
			} else {
				s.Notes = append(s.Notes, fmt.Sprintf("%s stays F16: kernels of %d values are not whole %s blocks", name, cols, q))
			}
		}
	case param.Norm, param.Bias:
		want = tensor.F32
	case param.Linear:
		if q := s.o.Quantize; q != 0 && strings.HasPrefix(name, UNetPrefix) {
			if cols := shape[len(shape)-1]; cols%q.BlockSize() == 0 {
				want = q
			} else {
				s.Notes = append(s.Notes, fmt.Sprintf("%s stays %s: rows of %d are not whole %s blocks", name, fileDT, cols, q))
			}
		}
	}
	if want == fileDT && len(e.parts) == 1 && !e.transpose {
		data, err := e.parts[0].f.TensorData(e.parts[0].info.Name)
		if err != nil {
			s.Add("tensor %s: %v", name, err)
			return nil
		}
		t, err := s.b.Wrap(want, data, shape...)
		if err != nil {
			s.Add("tensor %s (%s): %v", name, e.file(), err)
			return nil
		}
		return t
	}
	vals, err := s.values(e)
	if err != nil {
		s.Add("tensor %s: %v", name, err)
		return nil
	}
	t, err := param.Upload(s.b, want, vals, upShape...)
	if err != nil {
		s.Add("tensor %s: converting %s to %s: %v", name, fileDT, want, err)
		return nil
	}
	s.held = append(s.held, t)
	return t
}

// values reads an entry as F32 values in its single-file layout.
func (s *Source) values(e *entry) ([]float32, error) {
	var vals []float32
	for _, p := range e.parts {
		data, err := p.f.TensorData(p.info.Name)
		if err != nil {
			return nil, err
		}
		v := make([]float32, p.info.Elements())
		if err := quant.Dequantize(p.info.DType, data, v); err != nil {
			return nil, fmt.Errorf("%s: %v", e.file(), err)
		}
		vals = append(vals, v...)
	}
	if e.transpose {
		rows, cols := e.shape[0], e.shape[1] // the stored tensor is [cols, rows]
		t := make([]float32, len(vals))
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				t[r*cols+c] = vals[c*rows+r]
			}
		}
		vals = t
	}
	return vals, nil
}
