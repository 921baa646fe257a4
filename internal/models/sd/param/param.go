// Package param is how Stable Diffusion components (CLIP, UNet, VAE) get
// their weights: by checkpoint name (the single-file LDM names, e.g.
// "model.diffusion_model.input_blocks.0.0.weight"), checked against the
// shape the component expects, in the dtype its role calls for. Every
// missing or mis-shaped tensor is collected, so a component's Load reports
// all of them in one error instead of stopping at the first.
package param

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"mica/internal/compute"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// Role says what a weight is used for, which decides the dtype it is held
// in (stable-diffusion.cpp's policy, which the references were made with):
// convolution kernels are F16 whatever the file holds, linear and embedding
// weights keep the file's dtype (or the load-time quantization type), norm
// weights and biases are widened to F32.
type Role int

// Weight roles.
const (
	Linear    Role = iota // a [out, in] matrix used by MatMul
	Conv                  // a [OC, IC, KH, KW] convolution kernel
	Embedding             // a table read by GetRows
	Norm                  // a norm weight (F32)
	Bias                  // a bias (F32)
	Raw                   // any other tensor, in the file's dtype
)

func (r Role) String() string {
	switch r {
	case Linear:
		return "linear"
	case Conv:
		return "conv"
	case Embedding:
		return "embedding"
	case Norm:
		return "norm"
	case Bias:
		return "bias"
	}
	return "raw"
}

// Source hands out named weights. Tensor never fails outright: a missing or
// mis-shaped tensor is recorded (Err reports them all) and nil is returned,
// so a component binds every weight first and checks Err once.
type Source interface {
	// Tensor returns the weight called name, checked against shape
	// (outermost first, as PyTorch and safetensors store it).
	Tensor(name string, role Role, shape ...int) *compute.Tensor
	// Shape returns a tensor's stored shape, or false if there is none:
	// for detecting a configuration from the checkpoint.
	Shape(name string) ([]int, bool)
	// Err is every problem recorded so far, joined, or nil.
	Err() error
}

// Errors collects the problems of a binding pass; sources embed it.
type Errors struct{ errs []error }

// Add records a problem.
func (e *Errors) Add(format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf(format, args...))
}

// Err is every recorded problem, joined, or nil.
func (e *Errors) Err() error { return errors.Join(e.errs...) }

// CheckShape records a problem when got differs from want.
func (e *Errors) CheckShape(name string, got, want []int) bool {
	if len(got) == len(want) {
		same := true
		for i := range got {
			if got[i] != want[i] {
				same = false
			}
		}
		if same {
			return true
		}
	}
	e.Add("tensor %s has shape %v, want %v", name, got, want)
	return false
}

// Random is a Source for tests: it makes a deterministic random tensor for
// every name asked for (values uniform in ±Scale; norm weights 1±Scale) and
// remembers the names and shapes, so a component can be run without a
// checkpoint. Shapes it was given with Set are served as stored shapes.
type Random struct {
	B      compute.Backend
	Seed   uint64
	Scale  float32
	DType  tensor.DType // for Linear and Embedding weights; F32 if zero
	shapes map[string][]int
	Asked  map[string][]int
	Errors
}

// NewRandom makes a Random source on b.
func NewRandom(b compute.Backend, seed uint64, scale float32) *Random {
	return &Random{B: b, Seed: seed, Scale: scale, DType: tensor.F32, shapes: map[string][]int{}, Asked: map[string][]int{}}
}

// Set declares a stored shape (what Shape returns), for detection tests.
func (r *Random) Set(name string, shape ...int) { r.shapes[name] = append([]int(nil), shape...) }

// Shape implements Source.
func (r *Random) Shape(name string) ([]int, bool) {
	if s, ok := r.shapes[name]; ok {
		return s, true
	}
	s, ok := r.Asked[name]
	return s, ok
}

// Tensor implements Source.
func (r *Random) Tensor(name string, role Role, shape ...int) *compute.Tensor {
	if s, ok := r.shapes[name]; ok && !r.CheckShape(name, s, shape) {
		return nil
	}
	r.Asked[name] = append([]int(nil), shape...)
	n := 1
	for _, d := range shape {
		n *= d
	}
	h := uint64(14695981039346656037)
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(r.Seed, h))
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*rng.Float32() - 1) * r.Scale
		if role == Norm {
			v[i]++
		}
	}
	dt := tensor.F32
	switch role {
	case Conv:
		dt = tensor.F16
	case Linear, Embedding:
		if r.DType != 0 {
			dt = r.DType
		}
	}
	t, err := Upload(r.B, dt, v, shape...)
	if err != nil {
		r.Add("tensor %s: %v", name, err)
		return nil
	}
	return t
}

// Names lists the names asked for, sorted (for tests comparing binders with
// checkpoint writers).
func (r *Random) Names() []string {
	out := make([]string, 0, len(r.Asked))
	for k := range r.Asked {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Upload allocates a tensor of dtype dt on b and fills it from F32 values
// (converted with ggml's rounding for F16/BF16; quantized types use the
// reference quantizer).
func Upload(b compute.Backend, dt tensor.DType, v []float32, shape ...int) (*compute.Tensor, error) {
	t, err := b.Alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	raw, err := Encode(dt, v, shape[len(shape)-1])
	if err != nil {
		b.Free(t)
		return nil, err
	}
	if err := b.Write(t, raw); err != nil {
		b.Free(t)
		return nil, err
	}
	return t, nil
}

// Encode converts F32 values to dtype dt's bytes; rows of length rowLen are
// quantized independently for block types.
func Encode(dt tensor.DType, v []float32, rowLen int) ([]byte, error) {
	switch dt {
	case tensor.F32:
		out := make([]byte, 4*len(v))
		for i, x := range v {
			u := math.Float32bits(x)
			out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		return out, nil
	case tensor.F16, tensor.BF16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			var u uint16
			if dt == tensor.F16 {
				u = quant.FP32ToFP16(x)
			} else {
				u = quant.FP32ToBF16(x)
			}
			out[2*i], out[2*i+1] = byte(u), byte(u>>8)
		}
		return out, nil
	}
	if rowLen <= 0 || len(v)%rowLen != 0 {
		return nil, fmt.Errorf("encode %s: %d values are not rows of %d", dt, len(v), rowLen)
	}
	nb, ok := dt.RowBytes(int64(len(v)))
	if !ok {
		return nil, fmt.Errorf("encode %s: %d values do not fill whole blocks", dt, len(v))
	}
	out := make([]byte, nb)
	if err := quant.Quantize(dt, v, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Join is a helper for building names: Join("a.", "b", 3, "c") = "a.b.3.c".
func Join(prefix string, parts ...any) string {
	var sb strings.Builder
	sb.WriteString(prefix)
	for i, p := range parts {
		if i > 0 || (prefix != "" && !strings.HasSuffix(prefix, ".")) {
			sb.WriteByte('.')
		}
		fmt.Fprint(&sb, p)
	}
	return sb.String()
}
