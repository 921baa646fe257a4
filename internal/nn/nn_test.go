package nn

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// store is an in-memory Store.
type store map[string]struct {
	dt   tensor.DType
	ne   []int64
	data []byte
}

func (s store) TensorShape(name string) (tensor.DType, []int64, bool) {
	e, ok := s[name]
	return e.dt, e.ne, ok
}

func (s store) TensorData(name string) ([]byte, error) { return s[name].data, nil }

func f32(v ...float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

func f16(v ...float32) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], quant.FP32ToFP16(x))
	}
	return out
}

func TestBinder(t *testing.T) {
	be := cpu.New(1)
	defer be.Close()
	s := store{
		"w":     {tensor.F32, []int64{3, 2}, f32(1, 2, 3, 4, 5, 6)},
		"norm":  {tensor.F16, []int64{2}, f16(0.5, -2)},
		"scale": {tensor.F32, []int64{1}, f32(0.25)},
	}
	b := NewBinder(s, be)
	w := b.Req("w", 3, 2)
	if w == nil || len(w.Shape) != 2 || w.Shape[0] != 2 || w.Shape[1] != 3 {
		t.Fatalf("w: %v, want compute shape [2 3]", w)
	}
	n := b.F32("norm", false, 2)
	if n == nil || n.DType != tensor.F32 {
		t.Fatalf("norm: %v, want F32", n)
	}
	if v := b.Values("norm", n); len(v) != 2 || v[0] != 0.5 || v[1] != -2 {
		t.Fatalf("norm values %v", v)
	}
	if got := b.Scalar("scale", 1); got != 0.25 {
		t.Fatalf("scale %g", got)
	}
	if got := b.Scalar("absent", 7); got != 7 {
		t.Fatalf("absent scalar %g, want the default", got)
	}
	if b.Opt("absent", 4) != nil {
		t.Fatal("optional absent tensor bound")
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if len(b.Owned()) != 1 {
		t.Fatalf("%d owned tensors, want 1 (the widened norm)", len(b.Owned()))
	}
	for _, o := range b.Owned() {
		be.Free(o)
	}

	// Every problem in one error; what the binding allocated is freed.
	before := be.Memory().Allocated
	b = NewBinder(s, be)
	b.F32("norm", false, 2)
	b.Req("w", 2, 3)
	b.Req("missing", 4)
	b.F32("w", false, 3, 2) // F32 already: no copy, no problem
	err := b.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"2 tensor problem(s)", "w: shape [3 2], want [2 3]", "missing: missing (want shape [4])"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got := be.Memory().Allocated; got != before {
		t.Errorf("allocated %d bytes after a failed binding, want %d", got, before)
	}
}

func TestTransposeF32(t *testing.T) {
	be := cpu.New(1)
	defer be.Close()
	b := NewBinder(store{"m": {tensor.F16, []int64{3, 2}, f16(1, 2, 3, 4, 5, 6)}}, be)
	m := b.Req("m", 3, 2) // [2, 3]
	tr, err := TransposeF32(be, m)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(tr)
	p := &Pass{B: be}
	got := p.Read(tr)
	want := []float32{1, 4, 2, 5, 3, 6}
	if p.Err != nil || len(got) != len(want) {
		t.Fatalf("%v %v", got, p.Err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("transpose %v, want %v", got, want)
		}
	}
}

// TestPassStopsAtFirstError: after an error every helper does nothing and
// returns nil, the first error is kept, and Free releases every temporary.
func TestPassStopsAtFirstError(t *testing.T) {
	be := cpu.New(1)
	defer be.Close()
	before := be.Memory().Allocated
	p := &Pass{B: be, Eps: 1e-6}
	x := p.Upload([]float32{1, 2, 3, 4}, 2, 2)
	w := p.Upload([]float32{1, 0, 0, 1}, 2, 2)
	y := p.Linear(Linear{W: w}, x) // x·Wᵀ with W = I
	if v := p.Read(y); p.Err != nil || v[0] != 1 || v[3] != 4 {
		t.Fatalf("identity linear: %v %v", v, p.Err)
	}
	mark := p.Mark()
	keep := p.New(2)
	p.New(3)
	p.FreeFrom(mark, keep)
	if p.Mark() != mark+1 {
		t.Fatalf("%d temporaries after FreeFrom with one kept, want %d", p.Mark(), mark+1)
	}
	first := errors.New("first")
	p.Check(first)
	p.Check(errors.New("second"))
	if p.New(4) != nil || p.MatMul(w, x) != nil || p.RMSNorm(x, nil) != nil || p.View(x, 4) != nil || p.Rows(x, 0, 1) != nil || p.Read(x) != nil {
		t.Fatal("a helper ran after an error")
	}
	if p.Err != first {
		t.Fatalf("error %v, want the first", p.Err)
	}
	p.Free()
	if got := be.Memory().Allocated; got != before {
		t.Errorf("allocated %d bytes after Free, want %d", got, before)
	}
}
