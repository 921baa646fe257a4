package nn

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"mica/internal/compute"
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
	if p.New(4) != nil || p.MatMul(w, x) != nil || p.MatMuls(x, w, w)[1] != nil || p.MatMuls(nil, w)[0] != nil || p.RMSNorm(x, nil) != nil || p.View(x, 4) != nil || p.Rows(x, 0, 1) != nil || p.Read(x) != nil {
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

// TestOutputsOverwriteReusedMemory: MatMul and the norms take their outputs
// from the backend without clearing them (buffers come back dirty from the
// reuse cache), so they must write every element: the results on memory
// last filled with NaNs equal those on fresh memory, bit for bit.
func TestOutputsOverwriteReusedMemory(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	const n, cols, rows = 67, 64, 1100 // outputs of 67×1100 and 67×64 floats: sizes the reuse cache keeps
	xs := make([]float32, n*cols)
	for i := range xs {
		xs[i] = float32(math.Sin(float64(i)))
	}
	ws := make([]float32, rows*cols)
	for i := range ws {
		ws[i] = float32(math.Cos(float64(3 * i)))
	}
	run := func() (mm, rms, ln []float32) {
		p := &Pass{B: be, Eps: 1e-6}
		defer p.Free()
		x := p.Upload(xs, n, cols)
		w := p.Upload(ws, rows, cols)
		mm, rms, ln = p.Read(p.MatMul(w, x)), p.Read(p.RMSNorm(x, nil)), p.Read(p.LayerNorm(x, nil, nil))
		if p.Err != nil {
			t.Fatal(p.Err)
		}
		return
	}
	mm0, rms0, ln0 := run()
	// dirty the reuse cache: buffers of the outputs' sizes, filled with NaN
	nan := float32(math.NaN())
	p := &Pass{B: be}
	for _, sz := range [][]int{{n, rows}, {n, cols}, {n, cols}} {
		v := make([]float32, sz[0]*sz[1])
		for i := range v {
			v[i] = nan
		}
		p.Upload(v, sz...)
	}
	p.Free()
	// (the check means something only if the dirty buffers do come back)
	probe, err := compute.AllocOutput(be, tensor.F32, n, rows)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4*n*rows)
	if err := be.Read(probe, got); err != nil {
		t.Fatal(err)
	}
	if v := math.Float32frombits(binary.LittleEndian.Uint32(got)); v == v {
		t.Fatalf("AllocOutput gave a buffer holding %g, not the dirty one from the reuse cache", v)
	}
	be.Free(probe)
	mm1, rms1, ln1 := run()
	for name, pair := range map[string][2][]float32{"MatMul": {mm0, mm1}, "RMSNorm": {rms0, rms1}, "LayerNorm": {ln0, ln1}} {
		for i := range pair[0] {
			if math.Float32bits(pair[0][i]) != math.Float32bits(pair[1][i]) {
				t.Fatalf("%s: element %d is %g on reused memory, %g on fresh", name, i, pair[1][i], pair[0][i])
			}
		}
	}
}
