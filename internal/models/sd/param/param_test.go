package param

import (
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/tensor"
)

func TestRandomRolesAndErrors(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	r := NewRandom(b, 1, 0.02)
	r.DType = tensor.F16
	r.Set("a.weight", 4, 8)
	if w := r.Tensor("a.weight", Linear, 4, 8); w == nil || w.DType != tensor.F16 {
		t.Fatalf("linear weight: %v", w)
	}
	if c := r.Tensor("c.weight", Conv, 2, 3, 3, 3); c == nil || c.DType != tensor.F16 {
		t.Fatalf("conv weight: %v", c)
	}
	n := r.Tensor("n.weight", Norm, 16)
	if n == nil || n.DType != tensor.F32 {
		t.Fatalf("norm weight: %v", n)
	}
	buf := make([]byte, 64)
	if err := b.Read(n, buf); err != nil {
		t.Fatal(err)
	}
	// Norm weights are 1 ± scale: every F32 has exponent near 0x3f8.
	for i := 0; i < 16; i++ {
		if hi := buf[4*i+3]; hi != 0x3f {
			t.Fatalf("norm element %d not near 1 (byte %#x)", i, hi)
		}
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	// A wrong shape is recorded, not fatal, and every problem is reported.
	if w := r.Tensor("a.weight", Linear, 8, 4); w != nil {
		t.Fatal("mis-shaped tensor returned")
	}
	r.Set("b.weight", 3)
	r.Tensor("b.weight", Bias, 4)
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "a.weight") || !strings.Contains(err.Error(), "b.weight") {
		t.Fatalf("want both problems reported, got %v", err)
	}
	// Same name and seed give the same values.
	r2 := NewRandom(b, 1, 0.02)
	x1, x2 := r2.Tensor("n.weight", Norm, 16), NewRandom(b, 1, 0.02).Tensor("n.weight", Norm, 16)
	b1, b2 := make([]byte, 64), make([]byte, 64)
	b.Read(x1, b1)
	b.Read(x2, b2)
	if string(b1) != string(b2) || string(b1) != string(buf) {
		t.Fatal("Random is not deterministic")
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Join("model.", "input_blocks", 1, 0, "weight"), "model.input_blocks.1.0.weight"},
		{Join("model", "out", 2), "model.out.2"},
		{Join("", "a", "b"), "a.b"},
	} {
		if c.got != c.want {
			t.Errorf("got %q want %q", c.got, c.want)
		}
	}
}
