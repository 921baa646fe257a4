package ops

import (
	"math"
	"testing"

	"mica/internal/kernels/quant"
)

// TestExpAccuracy measures the fast exp against float64 math.Exp over its
// whole normal-result range. The bound, 2 float32 ulps of relative error
// (2 * 2^-23 ≈ 2.4e-7), is what a degree-7 polynomial with FMA Horner
// evaluation and an exact 2^n scale should achieve; the measured value is
// logged.
func TestExpAccuracy(t *testing.T) {
	needFast(t)
	var xs []float32
	for x := -87.3; x <= 88.7; x += 0.00037 {
		xs = append(xs, float32(x))
	}
	ys := make([]float32, len(xs))
	expFast(xs, ys)
	var worst float64
	var at float32
	for i, x := range xs {
		want := math.Exp(float64(x))
		rel := math.Abs(float64(ys[i])-want) / want
		if rel > worst {
			worst, at = rel, x
		}
	}
	t.Logf("fast exp: max relative error %.3g (%.2f ulp) at x=%g over %d points", worst, worst/0x1p-23, at, len(xs))
	if worst > 2*0x1p-23 {
		t.Fatalf("fast exp max relative error %.3g at x=%g", worst, at)
	}
	special := []float32{float32(math.Inf(-1)), -200, -104, float32(math.Inf(1)), 100, 0, float32(math.NaN())}
	got := make([]float32, len(special))
	expFast(special, got)
	if got[0] != 0 || got[1] != 0 || got[2] != 0 || !math.IsInf(float64(got[3]), 1) || !math.IsInf(float64(got[4]), 1) || got[5] != 1 || !math.IsNaN(float64(got[6])) {
		t.Fatalf("exp of -Inf,-200,-104,+Inf,100,0,NaN = %v", got)
	}
}

// The fast SiLU/SwiGLU use the fast exp and an IEEE division, so they may
// differ from the reference by the exp error propagated: a few ulps.
// Tolerance: 1e-6 relative plus 1e-30 absolute (for results near zero).
func TestActivationsFastVsRef(t *testing.T) {
	needFast(t)
	r := newRand(1)
	for _, n := range awkward {
		x := randVec(r, n, 4)
		x[0] = -95 // exp(-x) overflows: silu -> -0
		g := randVec(r, n, 1)
		type op struct {
			name string
			f    func(out []float32)
		}
		for _, o := range []op{
			{"silu", func(out []float32) { SiLU(x, out, 0, n) }},
			{"swiglu", func(out []float32) { SwiGLU(x, g, out, 0, n) }},
			{"softcap", func(out []float32) { Softcap(x, out, 3, 0, n) }},
		} {
			got, want := make([]float32, n), make([]float32, n)
			o.f(got)
			withRef(func() { o.f(want) })
			// softcap's vector tanh is accurate to a few ulps of 1 in absolute terms
			closeEnough(t, o.name, got, want, 1e-30+map[bool]float64{true: 3 * 3e-7, false: 0}[o.name == "softcap"], 1e-6)
		}
	}
}

func TestSiLUValues(t *testing.T) {
	x := []float32{-3, -0.5, 0, 0.5, 3, 20}
	got := make([]float32, len(x))
	withRef(func() { SiLU(x, got, 0, len(x)) })
	for i, v := range x {
		want := float64(v) / (1 + math.Exp(-float64(v)))
		if math.Abs(float64(got[i])-want) > 2e-7*math.Abs(want)+1e-30 {
			t.Fatalf("silu(%g) = %g, want %g", v, got[i], want)
		}
	}
}

// GELU (ggml's table semantics) must equal the F16 rounding of the tanh
// formula at the F16 rounding of x; compared with the exact formula at x the
// difference is bounded by F16 resolution (2^-11 relative on x and on the
// result, the former amplified by |gelu'| <= 1.13): 2e-3 relative + 1e-4
// absolute covers it, and we check the exact table semantics pointwise too.
func TestGELU(t *testing.T) {
	r := newRand(2)
	x := randVec(r, 1000, 4)
	x = append(x, -10, 10, -12, 15, 0, -0.0001)
	n := len(x)
	got, exact, geglu, ones := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	GELU(x, got, 0, n)
	GELUTanh(x, exact, 0, n)
	GEGLU(x, ones, geglu, 0, n)
	sameBits(t, "geglu with g=1 vs gelu", geglu, got)
	for i, v := range x {
		var want float32
		switch {
		case v <= -10:
			want = 0
		case v >= 10:
			want = v
		default:
			xh := quant.FP16ToFP32(quant.FP32ToFP16(v))
			want = quant.FP16ToFP32(quant.FP32ToFP16(geluTanh32(xh)))
		}
		if got[i] != want {
			t.Fatalf("gelu(%g) = %g, want table value %g", v, got[i], want)
		}
		if v > -10 && v < 10 {
			if d := math.Abs(float64(got[i] - exact[i])); d > 1e-4+2e-3*math.Abs(float64(exact[i])) {
				t.Fatalf("gelu(%g) = %g, tanh formula %g", v, got[i], exact[i])
			}
		}
		// the float32 formula vs float64 maths: a few ulps
		w := 0.5 * float64(v) * (1 + math.Tanh(math.Sqrt(2/math.Pi)*float64(v)*(1+0.044715*float64(v)*float64(v))))
		if math.Abs(float64(exact[i])-w) > 1e-6*math.Abs(w)+1e-7 {
			t.Fatalf("gelu_tanh(%g) = %g, want %g", v, exact[i], w)
		}
	}
	erf := make([]float32, n)
	GELUErf(x, erf, 0, n)
	quick := make([]float32, n)
	QuickGELU(x, quick, 0, n)
	for i, v := range x {
		w := 0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2))
		if math.Abs(float64(erf[i])-w) > 1e-6*math.Abs(w)+1e-7 {
			t.Fatalf("gelu_erf(%g) = %g, want %g", v, erf[i], w)
		}
		q := float64(v) / (1 + math.Exp(-1.702*float64(v)))
		// F16 table: input and output rounded to F16
		if math.Abs(float64(quick[i])-q) > 2e-3*math.Abs(q)+1e-4 {
			t.Fatalf("quick_gelu(%g) = %g, want %g", v, quick[i], q)
		}
	}
}

func TestElementwiseBasics(t *testing.T) {
	a := []float32{1, 2, 3, 4}
	b := []float32{10, 20, 30, 40}
	out := make([]float32, 4)
	Add(a, b, out, 1, 3)
	if out[0] != 0 || out[1] != 22 || out[2] != 33 || out[3] != 0 {
		t.Fatalf("Add range: %v", out)
	}
	Mul(a, b, out, 0, 4)
	if out[3] != 160 {
		t.Fatalf("Mul: %v", out)
	}
	Scale(a, out, 0.5, 0, 4)
	if out[1] != 1 {
		t.Fatalf("Scale: %v", out)
	}
	AddScaled(a, b, out, 2, 0, 4)
	if out[2] != 63 {
		t.Fatalf("AddScaled: %v", out)
	}
	AddRow(a, []float32{1, 2}, out, 2, 0, 2)
	if out[0] != 2 || out[1] != 4 || out[2] != 4 || out[3] != 6 {
		t.Fatalf("AddRow: %v", out)
	}
	MulRow(a, []float32{1, 2}, out, 2, 1, 2)
	if out[2] != 3 || out[3] != 8 {
		t.Fatalf("MulRow: %v", out)
	}
	sc := make([]float32, 2)
	withRef(func() { Softcap([]float32{0, 300}, sc, 30, 0, 2) })
	if sc[0] != 0 || math.Abs(float64(sc[1])-30*math.Tanh(10)) > 1e-5 {
		t.Fatalf("Softcap: %v", sc)
	}
}

// The table activations must be bit-identical on both paths: F16C's
// round-to-nearest-even conversion is the same function as
// quant.FP32ToFP16, and the rest is a lookup, a multiply and selects.
func TestTableActivationsFastVsRef(t *testing.T) {
	needFast(t)
	r := newRand(13)
	for _, n := range append(awkward, 4096) {
		x := randVec(r, n, 6)
		for i := range x {
			switch i % 11 {
			case 3:
				x[i] = 10
			case 5:
				x[i] = -10
			case 7:
				x[i] *= 1e-6 // tiny values, F16 subnormals
			case 9:
				x[i] *= 3000 // beyond the F16 range for quick GELU
			}
		}
		g := randVec(r, n, 1)
		for _, o := range []struct {
			name string
			f    func(out []float32)
		}{
			{"gelu", func(out []float32) { GELU(x, out, 0, n) }},
			{"geglu", func(out []float32) { GEGLU(x, g, out, 0, n) }},
			{"quick_gelu", func(out []float32) { QuickGELU(x, out, 0, n) }},
		} {
			got, want := make([]float32, n), make([]float32, n)
			o.f(got)
			withRef(func() { o.f(want) })
			sameBits(t, o.name, got, want)
		}
	}
}

// TestBinaryFastMatchesGo: Add, Mul, AddRow and MulRow through the AVX2 loop
// give the Go loops' bits (each element is one IEEE operation either way),
// on lengths around the vector width and the fast-path threshold, with
// infinities, NaNs, signed zeros and subnormals among the inputs, and in
// place (out = a).
func TestBinaryFastMatchesGo(t *testing.T) {
	needFast(t)
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 1e-40, -3e-39, 3.4e38}
	val := func(i int) float32 {
		if i%11 == 0 {
			return special[(i/11)%len(special)]
		}
		return float32(math.Sin(float64(i)*0.7)) * float32(1+i%5)
	}
	run := func(fast bool, f func()) {
		prev := useFast
		useFast = fast
		defer func() { useFast = prev }()
		f()
	}
	same := func(name string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d fast %v (%#x) Go %v (%#x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
	for _, n := range []int{255, 256, 257, 263, 1000} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = val(i), val(3*i+1)
		}
		for _, op := range []struct {
			name string
			f    func(a, b, out []float32, s, e int)
		}{{"Add", Add}, {"Mul", Mul}} {
			want, got := make([]float32, n), make([]float32, n)
			run(false, func() { op.f(a, b, want, 0, n) })
			run(true, func() { op.f(a, b, got, 0, n) })
			same(op.name, got, want)
			inPlace := append([]float32(nil), a...)
			run(true, func() { op.f(inPlace, b, inPlace, 0, n) })
			same(op.name+" in place", inPlace, want)
		}
	}
	for _, rc := range [][2]int{{1, 256}, {3, 100}, {7, 37}, {40, 8}, {2, 1000}} {
		rows, n := rc[0], rc[1]
		x, v := make([]float32, rows*n), make([]float32, n)
		for i := range x {
			x[i] = val(i)
		}
		for i := range v {
			v[i] = val(5*i + 2)
		}
		for _, op := range []struct {
			name string
			f    func(x, v, out []float32, n, r0, r1 int)
		}{{"AddRow", AddRow}, {"MulRow", MulRow}} {
			want, got := make([]float32, rows*n), make([]float32, rows*n)
			run(false, func() { op.f(x, v, want, n, 0, rows) })
			run(true, func() { op.f(x, v, got, n, 0, rows) })
			same(op.name, got, want)
			// a row range that starts past row 0
			if rows > 1 {
				part := make([]float32, rows*n)
				run(true, func() { op.f(x, v, part, n, 1, rows) })
				same(op.name+" rows 1..", part[n:], want[n:])
			}
		}
	}
}

// TestToF16FastMatchesGo: the AVX2 conversion gives quant.FP32ToFP16's bits
// (vcvtps2ph, round to nearest even) for values at and between F16's
// rounding points, overflow, subnormals, infinities, NaNs and signed zeros,
// on lengths around the vector width; and it writes no byte past the end.
func TestToF16FastMatchesGo(t *testing.T) {
	needFast(t)
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345), 65504, 65520, 65519.99, -1e6, 6e-8, 3e-8, 2.9e-8, 1e-40, 1 + 1.0/2048, 1 + 3.0/2048}
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 100, 1031} {
		x := make([]float32, n)
		for i := range x {
			if i%3 == 0 {
				x[i] = special[(i/3)%len(special)]
			} else {
				x[i] = float32(math.Sin(float64(i)*1.3)) * float32(math.Pow(2, float64(i%40-20)))
			}
		}
		want := make([]byte, 2*n+2)
		got := make([]byte, 2*n+2)
		got[2*n], got[2*n+1] = 0xAB, 0xCD
		toF16Ref(x, want)
		ToF16(x, got[:2*n])
		if got[2*n] != 0xAB || got[2*n+1] != 0xCD {
			t.Fatalf("n=%d: wrote past the end", n)
		}
		for i := range n {
			if got[2*i] != want[2*i] || got[2*i+1] != want[2*i+1] {
				t.Fatalf("n=%d: element %d (%v): fast %#04x, Go %#04x", n, i, x[i],
					uint16(got[2*i])|uint16(got[2*i+1])<<8, uint16(want[2*i])|uint16(want[2*i+1])<<8)
			}
		}
	}
}
