package matmul

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// fma32Exact is a·b + c computed exactly with math/big and rounded once to
// float32 (big.Float.Float32 rounds to nearest even, subnormals included).
func fma32Exact(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(1000).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(1000).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(1000).SetFloat64(float64(c)))
	f, _ := x.Float32()
	if f == 0 && math.Signbit(float64(f)) { // exact zero sums are +0 in IEEE fma
		f = 0
	}
	return f
}

// TestFMA32 checks the float32 fma emulation against exact arithmetic,
// including the cases where rounding a float64 sum to float32 would
// double-round, ties, subnormal results and cancellations.
func TestFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	check := func(a, b, c float32) {
		got, want := fma32(a, b, c), fma32Exact(a, b, c)
		if want == 0 && got == 0 {
			return // signed zeros: checked below
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), exact %g (%#x)", a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	// double rounding: a·b + c just above a float32 tie, with the excess
	// below float64 precision
	a := float32(1 + 1.0/(1<<12))
	check(a, a, -1)
	check(1+1.0/(1<<23), 1+1.0/(1<<23), 0)
	check(1<<24, 1, 1)
	check(1<<24, 1, 3)
	check(-1, 1, 1+1.0/(1<<23))
	for i := 0; i < 200000; i++ {
		var a, b, c float32
		switch i % 4 {
		case 0: // random magnitudes
			a = math.Float32frombits(rng.Uint32()&^(0xff<<23) | (uint32(100+rng.IntN(56)) << 23))
			b = math.Float32frombits(rng.Uint32()&^(0xff<<23) | (uint32(100+rng.IntN(56)) << 23))
			c = math.Float32frombits(rng.Uint32()&^(0xff<<23) | (uint32(80+rng.IntN(96)) << 23))
		case 1: // near-cancellation: c ≈ −a·b
			a, b = rng.Float32()*2-1, rng.Float32()*2-1
			c = -a * b * (1 + float32(rng.IntN(9)-4)/(1<<23))
		case 2: // ties: a·b has exactly one bit beyond float32 precision region
			a = float32(1+rng.IntN(1<<12)) / (1 << 12)
			b = float32(1+rng.IntN(1<<12)) / (1 << 12)
			c = float32(rng.IntN(1<<10)) / (1 << 3)
		case 3: // subnormal results
			a = math.Float32frombits(rng.Uint32()&0x807fffff | 0x1f800000)
			b = math.Float32frombits(rng.Uint32()&0x807fffff | 0x1f800000)
			c = math.Float32frombits(rng.Uint32() & 0x807fffff)
		}
		check(a, b, c)
	}
	negZero := float32(math.Copysign(0, -1)) // (a Go constant -0.0 is +0)
	if v := fma32(1, negZero, 0); math.Signbit(float64(v)) {
		t.Errorf("fma32(1, -0, +0) = -0, want +0")
	}
	if v := fma32(1, negZero, negZero); !math.Signbit(float64(v)) {
		t.Errorf("fma32(1, -0, -0) = +0, want -0")
	}
	if v := fma32(float32(math.Inf(1)), 1, 1); !math.IsInf(float64(v), 1) {
		t.Errorf("fma32(+Inf, 1, 1) = %g", v)
	}
	if v := fma32(float32(math.NaN()), 1, 1); !math.IsNaN(float64(v)) {
		t.Errorf("fma32(NaN, 1, 1) = %g", v)
	}
}

// floatCase builds a 1×cols weight row of type wt from float32 values (which
// must be exact in it) and an activation row.
func floatCase(t *testing.T, wt tensor.DType, wv []float32) []byte {
	t.Helper()
	rb, _ := wt.RowBytes(int64(len(wv)))
	w := make([]byte, rb)
	for k, v := range wv {
		switch wt {
		case tensor.F32:
			binary.LittleEndian.PutUint32(w[4*k:], math.Float32bits(v))
		case tensor.F16:
			h := quant.FP32ToFP16(v)
			if quant.FP16ToFP32(h) != v {
				t.Fatalf("%g is not an F16 value", v)
			}
			binary.LittleEndian.PutUint16(w[2*k:], h)
		case tensor.BF16:
			h := quant.FP32ToBF16(v)
			if quant.BF16ToFP32(h) != v {
				t.Fatalf("%g is not a BF16 value", v)
			}
			binary.LittleEndian.PutUint16(w[2*k:], h)
		}
	}
	return w
}

// TestFloatOrder checks the documented summation order with inputs whose
// result depends on it (each case also states what a plain sequential sum
// would give, to show it discriminates): the lane split, the reduction tree,
// the single rounding of the fma, BF16's odd-before-even pairs and the tail.
// The reference and every fast level must give the stated value exactly.
func TestFloatOrder(t *testing.T) {
	const e24 = 1 << 24
	type tc struct {
		name   string
		wt     tensor.DType
		cols   int
		w, x   map[int]float32 // nonzero entries; x defaults to 1
		want   float32
		seqSum float32 // what a sequential float32 sum would give
	}
	cases := []tc{
		// lane 0 = 2²⁴ + 1 → 2²⁴ (tie to even), lane 8 = −2²⁴: lanes cancel
		{"lanes", tensor.F32, 32, map[int]float32{0: e24, 16: 1, 8: -e24}, nil, 0, 1},
		// after 16→8→4: l0 = 2²⁴, l1 = 1, l2 = −2²⁴, l3 = 0: (l0+l2)+(l1+l3) = 1
		{"tree", tensor.F32, 16, map[int]float32{0: e24, 1: 1, 2: -e24}, nil, 1, 0},
		// fma(−1 first, then (1+2⁻¹²)², one rounding: 2⁻¹¹+2⁻²⁴ exactly
		{"fused", tensor.F32, 32, map[int]float32{0: -1, 16: 1 + 1.0/(1<<12)},
			map[int]float32{16: 1 + 1.0/(1<<12)}, 1.0/(1<<11) + 1.0/(1<<24), 1.0 / (1 << 11)},
		// F16: 4096·4096 = 2²⁴ in lane 0, then +1 → 2²⁴; lane 8 −2²⁴
		{"f16-lanes", tensor.F16, 32, map[int]float32{0: 4096, 16: 1, 8: -4096}, map[int]float32{0: 4096, 8: 4096}, 0, 1},
		// BF16 lane 0: block 0 odd 2²⁴; block 1 odd (col 33) 1 first → 2²⁴,
		// then even (col 32) −2²⁴ → 0 (even first would give 1)
		{"bf16-odd-first", tensor.BF16, 64, map[int]float32{1: e24, 33: 1, 32: -e24}, nil, 0, 1},
		// tail: 16 lanes give 2²⁴ (col 0), then cols 16.. in order: +1 → 2²⁴, −2²⁴ → 0
		{"tail", tensor.F32, 19, map[int]float32{0: e24, 16: 1, 17: -e24, 18: 0}, nil, 0, 0},
		// BF16 tail: cols 32..47 sequential after the 32-column step
		{"bf16-tail", tensor.BF16, 48, map[int]float32{1: e24, 32: 1, 33: -e24, 34: 1}, nil, 1, 1},
	}
	for _, c := range cases {
		wv := make([]float32, c.cols)
		xv := make([]float32, c.cols)
		for k := range xv {
			xv[k] = 1
		}
		for k, v := range c.w {
			wv[k] = v
		}
		for k, v := range c.x {
			xv[k] = v
		}
		var seq float32
		for k := range wv {
			seq += float32(wv[k] * xv[k])
		}
		if seq != c.seqSum {
			t.Fatalf("%s: test case broken: sequential sum %g, stated %g", c.name, seq, c.seqSum)
		}
		w := floatCase(t, c.wt, wv)
		p, err := Prepare(c.wt, xv, 1, c.cols)
		if err != nil {
			t.Fatal(err)
		}
		y := make([]float32, 1)
		if err := MulRowsRef(c.wt, w, c.cols, p, y, 1, 0, 1); err != nil {
			t.Fatal(err)
		}
		if y[0] != c.want {
			t.Errorf("%s: reference %g, want %g", c.name, y[0], c.want)
		}
		for _, level := range isaLevels() {
			withISA(level, func() {
				for _, n := range []int{1, 5} { // matrix-vector and tiles
					xs := make([]float32, n*c.cols)
					for j := 0; j < n; j++ {
						copy(xs[j*c.cols:], xv)
					}
					p, _ := Prepare(c.wt, xs, n, c.cols)
					y := make([]float32, n)
					if err := MulRows(c.wt, w, c.cols, p, y, 1, 0, 1); err != nil {
						t.Fatal(err)
					}
					for j, v := range y {
						if v != c.want {
							t.Errorf("%s %s n=%d: Y[%d] = %g, want %g", c.name, isaName(level), n, j, v, c.want)
						}
					}
				}
			})
		}
	}
}

// TestFloatIndependentOfN: the same activation row gives the same bits
// whether it is multiplied alone (matrix-vector), in a small batch or in a
// large one, at any position in the batch — decode and prefill must agree.
// Column counts cover one block, several column blocks of the tiled path
// (2880) and tails.
func TestFloatIndependentOfN(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, cols := range []int{16, 48, 70, 640, 2880} {
			rows := 11
			w, err := RandomWeights(wt, rows, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			row := RandomActivations(1, cols, rng)
			run := func(n, at int) []float32 {
				x := RandomActivations(n, cols, rng)
				copy(x[at*cols:], row)
				p, err := Prepare(wt, x, n, cols)
				if err != nil {
					t.Fatal(err)
				}
				y := make([]float32, n*rows)
				if err := MulRows(wt, w, cols, p, y, rows, 0, rows); err != nil {
					t.Fatal(err)
				}
				return y[at*rows : (at+1)*rows]
			}
			want := run(1, 0)
			for _, c := range [][2]int{{2, 1}, {7, 3}, {7, 6}, {64, 0}, {64, 37}, {64, 63}, {100, 50}} {
				if got := run(c[0], c[1]); !sameBits(got, want) {
					t.Fatalf("%v cols=%d: row %d of n=%d differs from n=1: %v vs %v", wt, cols, c[1], c[0], got[:3], want[:3])
				}
			}
		}
	}
}

// TestRoundActivations: Prepare's F16/BF16 rounding (SIMD or Go) gives the
// quant package's conversions, and the BF16 kernel order is a permutation
// of the rounded row.
func TestRoundActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	n, cols := 3, 77
	x := RandomActivations(n, cols, rng)
	specials := []float32{0, float32(math.Copysign(0, -1)), 1e-40, -3e-39, 65519, 65520, 1e6, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1 + 1.0/(1<<8), 1 + 3.0/(1<<8), 6e-8, 3e-8}
	copy(x[5:], specials)
	for _, wt := range []tensor.DType{tensor.F16, tensor.BF16} {
		p, err := Prepare(wt, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range x {
			want := quant.FP16ToFP32(quant.FP32ToFP16(v))
			if wt == tensor.BF16 {
				want = quant.BF16ToFP32(quant.FP32ToBF16(v))
			}
			if math.Float32bits(p.F32[i]) != math.Float32bits(want) {
				t.Fatalf("%v: activation %d = %g rounded to %g (%#x), want %g (%#x)", wt, i, v, p.F32[i], math.Float32bits(p.F32[i]), want, math.Float32bits(want))
			}
		}
		if wt == tensor.BF16 {
			for j := 0; j < n; j++ {
				want := make([]float32, cols)
				permuteBF16(p.F32[j*cols:(j+1)*cols], want)
				if !sameBits(want, p.kern[j*cols:(j+1)*cols]) {
					t.Fatalf("BF16 kernel order of row %d differs", j)
				}
			}
		}
	}
	if size, _ := PreparedSize(tensor.BF16, n, cols); size != 8*n*cols {
		t.Errorf("PreparedSize(BF16) = %d, want %d", size, 8*n*cols)
	}
	if size, _ := PreparedSize(tensor.F32, n, cols); size != 0 {
		t.Errorf("PreparedSize(F32) = %d, want 0", size)
	}
}
