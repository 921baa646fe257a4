package quant_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// allTypes are every type Quantize and Dequantize handle.
var allTypes = []tensor.DType{
	tensor.F32, tensor.F16, tensor.BF16,
	tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q8_0, tensor.Q8_1,
	tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.Q8_K,
	tensor.IQ4_NL, tensor.IQ4_XS,
}

// roundTripBound is the largest |dequantize(quantize(x)) - x| accepted for an
// element, as a fraction of the largest magnitude A in its quantization
// group (the 32-block, or the 256-super-block for the K-quants and IQ4_XS).
//
// Justification: a b-bit symmetric type has step about A/2^(b-1) and rounds
// to within half a step, except that the level on the side opposite the
// extreme is one short (Q4_0, Q5_0 clamp to 15/31), which costs a whole step
// there. Types with a minimum span up to 2A with 2^b-1 steps. The K-quants
// additionally quantize their sub-block scales (4-8 bits) against the
// super-block maximum, and their scale searches trade a clipped extreme for
// a smaller total error, so their bound is one full step of the 2A range.
// IQ4's levels are at most 24 units apart while the extreme element sits at
// 113 to 127 units, so half a gap is at most 12/113 ≈ 0.106·A; the bound,
// 16/127 ≈ 0.126·A, leaves room for the scale search and (IQ4_XS) the 6-bit
// sub-block scales. Every bound also allows the fp16 rounding of
// the stored scales (relative 2^-11, covered by the margins) and adds
// absFloor for fp16 scales in the subnormal range.
var roundTripBound = map[tensor.DType]float64{
	tensor.F32:    0,
	tensor.F16:    1.0 / 2048, // relative rounding of one half value
	tensor.BF16:   1.0 / 256,
	tensor.Q8_0:   0.5/127 + 1.0/1024,
	tensor.Q8_1:   0.5/127 + 1.0/1024,
	tensor.Q8_K:   0.5/127 + 1.0/1024, // d is float32: only the rounding
	tensor.Q4_0:   1.0/8 + 1.0/256,
	tensor.Q5_0:   1.0/16 + 1.0/256,
	tensor.Q4_1:   0.5*2/15 + 1.0/256,
	tensor.Q5_1:   0.5*2/31 + 1.0/256,
	tensor.Q6_K:   2.0 / 63,
	tensor.Q5_K:   2.0 / 31,
	tensor.Q4_K:   2.0 / 15,
	tensor.Q3_K:   2.0 / 7,
	tensor.Q2_K:   2.0 / 3,
	tensor.IQ4_NL: 16.0/127 + 1.0/256,
	tensor.IQ4_XS: 16.0/127 + 1.0/64,
}

// absFloor is the absolute error allowed on top of roundTripBound: for the
// block types, fp16 scales below the normal range (spacing 2^-24) times the
// largest multiplier a scale meets (63·127 bounds every type); for F16 and
// BF16, half the spacing of their subnormals.
func absFloor(t tensor.DType) float64 {
	switch t {
	case tensor.F32:
		return 0
	case tensor.F16:
		return 0x1p-25
	case tensor.BF16:
		return 0x1p-134
	}
	return 63 * 127 * 0x1p-24
}

func groupSize(t tensor.DType) int {
	switch t {
	case tensor.F32, tensor.F16, tensor.BF16:
		return 1
	}
	return t.BlockSize()
}

type inputCase struct {
	name string
	gen  func(r *rand.Rand, i int) float32
}

var awkwardInputs = []inputCase{
	{"zeros", func(*rand.Rand, int) float32 { return 0 }},
	{"negative zeros", func(*rand.Rand, int) float32 { return float32(math.Copysign(0, -1)) }},
	{"constant", func(*rand.Rand, int) float32 { return 0.375 }},
	{"negative constant", func(*rand.Rand, int) float32 { return -3.25 }},
	{"gaussian", func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64()) }},
	{"uniform positive", func(r *rand.Rand, _ int) float32 { return r.Float32() }},
	{"huge", func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64() * 1000) }},
	{"tiny", func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64() * 1e-7) }},
	{"denormal", func(r *rand.Rand, _ int) float32 { return float32(r.NormFloat64() * 1e-40) }},
	{"one outlier", func(r *rand.Rand, i int) float32 {
		if i%97 == 5 {
			return 50
		}
		return float32(r.NormFloat64() * 0.01)
	}},
	{"sparse", func(r *rand.Rand, i int) float32 {
		if r.IntN(8) != 0 {
			return 0
		}
		return float32(r.NormFloat64())
	}},
	{"ramp", func(_ *rand.Rand, i int) float32 { return float32(i%256) - 100 }},
	{"mixed magnitudes", func(r *rand.Rand, i int) float32 {
		return float32(r.NormFloat64() * math.Pow(10, float64(i/64%7-3)))
	}},
}

func TestRoundTripBounds(t *testing.T) {
	const n = 4 * 256
	for _, ty := range allTypes {
		if !quant.CanQuantize(ty) {
			t.Errorf("%v: cannot quantize", ty)
			continue
		}
		bound := roundTripBound[ty]
		g := groupSize(ty)
		worst := 0.0
		for _, in := range awkwardInputs {
			r := rand.New(rand.NewPCG(1, uint64(len(in.name))))
			x := make([]float32, n)
			for i := range x {
				x[i] = in.gen(r, i)
			}
			nb, _ := ty.RowBytes(n)
			q := make([]byte, nb)
			if err := quant.Quantize(ty, x, q); err != nil {
				t.Fatalf("%v %s: %v", ty, in.name, err)
			}
			y := make([]float32, n)
			if err := quant.Dequantize(ty, q, y); err != nil {
				t.Fatalf("%v %s: %v", ty, in.name, err)
			}
			for b := 0; b < n; b += g {
				var amax float64
				for _, v := range x[b : b+g] {
					amax = math.Max(amax, math.Abs(float64(v)))
				}
				for i := b; i < b+g; i++ {
					e := math.Abs(float64(y[i]) - float64(x[i]))
					if math.IsNaN(float64(y[i])) || e > bound*amax+absFloor(ty) {
						t.Fatalf("%v %s: element %d: %g -> %g, error %g > bound %g·%g", ty, in.name, i, x[i], y[i], e, bound, amax)
					}
					if amax*bound > 1000*absFloor(ty) { // report where the floor does not matter
						worst = math.Max(worst, e/amax)
					}
				}
				if amax == 0 {
					for i := b; i < b+g; i++ {
						if y[i] != 0 {
							t.Fatalf("%v %s: all-zero group dequantizes to %g at %d", ty, in.name, y[i], i)
						}
					}
				}
			}
		}
		t.Logf("%-7v worst error %.4f of the group's max magnitude (bound %.4f)", ty, worst, bound)
	}
}

// TestQuantizeDeterministic checks that quantizing the same data into a
// buffer full of garbage gives the same bytes as into a zeroed one: every
// byte of every block must be written.
func TestQuantizeDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, 512)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	x[300] = 0 // and one all-zero super-block half
	for _, ty := range allTypes {
		nb, _ := ty.RowBytes(int64(len(x)))
		a, b := make([]byte, nb), make([]byte, nb)
		for i := range b {
			b[i] = 0xa5
		}
		for _, dst := range [][]byte{a, b} {
			if err := quant.Quantize(ty, x, dst); err != nil {
				t.Fatal(err)
			}
		}
		if string(a) != string(b) {
			t.Errorf("%v: output depends on the destination's previous contents", ty)
		}
		zeros := make([]float32, 512)
		for i := range b {
			b[i] = 0xa5
		}
		quant.Quantize(ty, zeros, a)
		quant.Quantize(ty, zeros, b)
		if string(a) != string(b) {
			t.Errorf("%v: all-zero output depends on the destination's previous contents", ty)
		}
	}
}

func TestSizeErrors(t *testing.T) {
	for _, ty := range allTypes {
		bs := ty.BlockSize()
		nb, _ := ty.RowBytes(int64(2 * bs))
		cases := []struct {
			name   string
			n, len int
		}{
			{"short source", 2 * bs, int(nb) - 1},
			{"long source", 2 * bs, int(nb) + 1},
			{"empty source", 2 * bs, 0},
		}
		if bs > 1 {
			cases = append(cases, struct {
				name   string
				n, len int
			}{"partial block", 2*bs - 1, int(nb)})
		}
		for _, c := range cases {
			err := quant.Dequantize(ty, make([]byte, c.len), make([]float32, c.n))
			if err == nil || !strings.Contains(err.Error(), ty.String()) {
				t.Errorf("Dequantize %v %s: error %v, want one naming the type", ty, c.name, err)
			}
			err = quant.Quantize(ty, make([]float32, c.n), make([]byte, c.len))
			if err == nil || !strings.Contains(err.Error(), ty.String()) {
				t.Errorf("Quantize %v %s: error %v, want one naming the type", ty, c.name, err)
			}
		}
		if err := quant.Dequantize(ty, nil, nil); err != nil {
			t.Errorf("Dequantize %v of nothing: %v", ty, err)
		}
	}
	for _, ty := range []tensor.DType{tensor.IQ2_XXS, tensor.I32, tensor.TQ1_0, tensor.DType(12345)} {
		err := quant.Dequantize(ty, make([]byte, 64), make([]float32, 256))
		if err == nil || !strings.Contains(err.Error(), ty.String()) {
			t.Errorf("Dequantize %v: error %v, want one naming the type", ty, err)
		}
		if quant.CanQuantize(ty) || quant.Quantize(ty, make([]float32, 256), make([]byte, 64)) == nil {
			t.Errorf("Quantize %v: want unsupported", ty)
		}
	}
}

// TestOutOfRangeNoPanic feeds values that overflow the fp16 scales, NaNs and
// infinities: the results are meaningless (as in ggml) but nothing panics.
func TestOutOfRangeNoPanic(t *testing.T) {
	x := make([]float32, 512)
	for i := range x {
		switch i % 5 {
		case 0:
			x[i] = 3e38
		case 1:
			x[i] = -3e38
		case 2:
			x[i] = float32(math.NaN())
		case 3:
			x[i] = float32(math.Inf(1))
		default:
			x[i] = 1e-45
		}
	}
	for _, ty := range allTypes {
		nb, _ := ty.RowBytes(int64(len(x)))
		q := make([]byte, nb)
		if err := quant.Quantize(ty, x, q); err != nil {
			t.Fatal(err)
		}
		if err := quant.Dequantize(ty, q, make([]float32, len(x))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQ8_KReference checks Q8_K (absent from the zoo) on a block worked out
// by hand: the largest magnitude is -254, so iscale = -127/-254 = 0.5 and
// d = 1/iscale = 2 (positive although max is negative: x = d·q with
// q = round(iscale·x)); x = i for 1 ≤ i ≤ 254 rounds i/2 half to even
// (1→0, 3→2, 5→2, 254→127).
func TestQ8_KReference(t *testing.T) {
	x := make([]float32, 256)
	x[0], x[255] = -254, -254
	for i := 1; i < 255; i++ {
		x[i] = float32(i)
	}
	b := make([]byte, tensor.Q8_K.TypeSize())
	quant.QuantizeQ8_K(x, b)
	if d := math.Float32frombits(le32(b)); d != 2 {
		t.Fatalf("d = %g, want 2", d)
	}
	qs := b[4 : 4+256]
	want := map[int]int8{0: -127, 1: 0, 2: 1, 3: 2, 5: 2, 7: 4, 253: 126, 254: 127, 255: -127}
	for i, w := range want {
		if got := int8(qs[i]); got != w {
			t.Errorf("q[%d] = %d, want %d", i, got, w)
		}
	}
	for j := 0; j < 16; j++ {
		sum := 0
		for _, q := range qs[16*j : 16*j+16] {
			sum += int(int8(q))
		}
		if got := int16(uint16(b[260+2*j]) | uint16(b[261+2*j])<<8); int(got) != sum {
			t.Errorf("bsums[%d] = %d, want %d", j, got, sum)
		}
	}
	y := make([]float32, 256)
	quant.DequantizeQ8_K(b, y)
	for i := range y {
		if y[i] != 2*float32(int8(qs[i])) {
			t.Fatalf("dequantized[%d] = %g, want %g", i, y[i], 2*float32(int8(qs[i])))
		}
	}
}

// TestQ8_1Sum checks the s field of Q8_1: fp16(d·Σq).
func TestQ8_1Sum(t *testing.T) {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i) - 10 // max magnitude 21: d = 21/127
	}
	b := make([]byte, 36)
	quant.QuantizeQ8_1(x, b)
	d := quant.FP16ToFP32(uint16(b[0]) | uint16(b[1])<<8)
	if d != quant.FP16ToFP32(quant.FP32ToFP16(float32(21)/127)) {
		t.Fatalf("d = %g", d)
	}
	sum := 0
	for _, q := range b[4:] {
		sum += int(int8(q))
	}
	if int8(b[4+31]) != 127 || int8(b[4]) != -60 { // -10·127/21 = -60.48
		t.Errorf("q[0], q[31] = %d, %d, want -60, 127", int8(b[4]), int8(b[4+31]))
	}
	wantS := quant.FP32ToFP16(float32(sum) * (float32(21) / 127))
	if s := uint16(b[2]) | uint16(b[3])<<8; s != wantS {
		t.Errorf("s = %#04x, want %#04x", s, wantS)
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// BenchmarkDequantize reports the rate of float32 output (MB/s of
// dequantized data) for each type, single-threaded, plain Go.
func BenchmarkDequantize(b *testing.B) {
	const n = 64 * 1024
	x := make([]float32, n)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]float32, n)
	for _, ty := range allTypes {
		nb, _ := ty.RowBytes(n)
		q := make([]byte, nb)
		if err := quant.Quantize(ty, x, q); err != nil {
			b.Fatal(err)
		}
		b.Run(ty.String(), func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				quant.Dequantize(ty, q, y)
			}
		})
	}
}

// BenchmarkQuantize reports the rate of float32 input consumed.
func BenchmarkQuantize(b *testing.B) {
	const n = 16 * 1024
	x := make([]float32, n)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, ty := range allTypes {
		nb, _ := ty.RowBytes(n)
		q := make([]byte, nb)
		b.Run(ty.String(), func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				quant.Quantize(ty, x, q)
			}
		})
	}
}
