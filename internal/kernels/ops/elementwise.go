package ops

import (
	"math"
	"sync"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// FastPath names the kernels in use: "avx2" or "go".
func FastPath() string {
	if useFast {
		return fastName()
	}
	return "go"
}

// ToF16 writes x as little-endian F16 values into y (2 bytes each; round
// to nearest even, overflow to infinity, NaN quiet: quant.FP32ToFP16), as
// a K/V cache stores new rows.
func ToF16(x []float32, y []byte) {
	if len(x) == 0 {
		return
	}
	_ = y[2*len(x)-1] // y must hold them all (checked here, before C writes)
	if useFast {
		toF16Fast(x, y)
		return
	}
	toF16Ref(x, y)
}

func toF16Ref(x []float32, y []byte) {
	_ = quant.Quantize(tensor.F16, x, y[:2*len(x)]) // (sizes checked by ToF16)
}

// Add sets out[i] = a[i] + b[i] for i in [start, end). out may alias a or b.
func Add(a, b, out []float32, start, end int) {
	a, b, out = a[start:end], b[start:end], out[start:end]
	if useFast && len(out) >= minFastBinary {
		binaryFast(a, b, out, len(out), false)
		return
	}
	for i := range out {
		out[i] = a[i] + b[i]
	}
}

// Mul sets out[i] = a[i] * b[i] for i in [start, end).
func Mul(a, b, out []float32, start, end int) {
	a, b, out = a[start:end], b[start:end], out[start:end]
	if useFast && len(out) >= minFastBinary {
		binaryFast(a, b, out, len(out), true)
		return
	}
	for i := range out {
		out[i] = a[i] * b[i]
	}
}

// minFastBinary is the length from which Add, Mul, AddRow and MulRow call
// the AVX2 loop (one IEEE operation per element either way, so the results
// are the same; below it the call costs more than it saves).
const minFastBinary = 256

// Scale sets out[i] = x[i] * s for i in [start, end).
func Scale(x, out []float32, s float32, start, end int) {
	x, out = x[start:end], out[start:end]
	for i := range out {
		out[i] = x[i] * s
	}
}

// AddScaled sets out[i] = a[i] + b[i]*s for i in [start, end) (the product
// is rounded before the add, no fused multiply-add).
func AddScaled(a, b, out []float32, s float32, start, end int) {
	a, b, out = a[start:end], b[start:end], out[start:end]
	for i := range out {
		out[i] = a[i] + float32(b[i]*s)
	}
}

// AddRow adds the length-n vector v to rows [rowStart, rowEnd) of x (rows of
// length n): out[r*n+i] = x[r*n+i] + v[i]. It is ggml_add with broadcast
// (biases).
func AddRow(x, v, out []float32, n, rowStart, rowEnd int) {
	v = v[:n]
	if useFast && (rowEnd-rowStart)*n >= minFastBinary {
		binaryFast(x[rowStart*n:rowEnd*n], v, out[rowStart*n:rowEnd*n], n, false)
		return
	}
	for r := rowStart; r < rowEnd; r++ {
		xr, or := x[r*n:r*n+n], out[r*n:r*n+n]
		for i := range or {
			or[i] = xr[i] + v[i]
		}
	}
}

// MulRow multiplies rows [rowStart, rowEnd) of x (length n) by the vector v.
func MulRow(x, v, out []float32, n, rowStart, rowEnd int) {
	v = v[:n]
	if useFast && (rowEnd-rowStart)*n >= minFastBinary {
		binaryFast(x[rowStart*n:rowEnd*n], v, out[rowStart*n:rowEnd*n], n, true)
		return
	}
	for r := rowStart; r < rowEnd; r++ {
		xr, or := x[r*n:r*n+n], out[r*n:r*n+n]
		for i := range or {
			or[i] = xr[i] * v[i]
		}
	}
}

// Softcap sets out[i] = cap*tanh(x[i]*(1/cap)) for i in [start, end), in
// the order ggml evaluates Gemma's final-logit softcapping (scale, tanh,
// scale).
func Softcap(x, out []float32, cap float32, start, end int) {
	if useFast {
		softcapFast(x[start:end], out[start:end], 1/cap, cap)
		return
	}
	softcapRef(x[start:end], out[start:end], 1/cap, cap)
}

func softcapRef(x, y []float32, inv, cap float32) {
	for i, v := range x {
		y[i] = float32(math.Tanh(float64(v*inv))) * cap
	}
}

// SiLU sets out[i] = x[i]/(1+e^-x[i]) for i in [start, end).
func SiLU(x, out []float32, start, end int) {
	if useFast {
		siluFast(x[start:end], nil, out[start:end])
		return
	}
	siluRef(x[start:end], nil, out[start:end])
}

// SwiGLU sets out[i] = silu(x[i]) * g[i] for i in [start, end).
func SwiGLU(x, g, out []float32, start, end int) {
	if useFast {
		siluFast(x[start:end], g[start:end], out[start:end])
		return
	}
	siluRef(x[start:end], g[start:end], out[start:end])
}

// GELU is ggml's F32 GELU (tanh approximation through its F16 table, see the
// package doc) for i in [start, end).
func GELU(x, out []float32, start, end int) {
	geluTable.once.Do(buildGELUTables)
	f16Table(x[start:end], nil, out[start:end], &geluTable.gelu, true)
}

// GEGLU sets out[i] = GELU(x[i]) * g[i] (ggml's geglu, table semantics).
func GEGLU(x, g, out []float32, start, end int) {
	geluTable.once.Do(buildGELUTables)
	f16Table(x[start:end], g[start:end], out[start:end], &geluTable.gelu, true)
}

func f16Table(x, g, y []float32, table *[1 << 16]uint16, clamp bool) {
	if useFast {
		f16TableFast(x, g, y, table, clamp)
		return
	}
	f16TableRef(x, g, y, table, clamp)
}

// f16TableRef: y = table[f16(x)] (times g); with clamp, ggml's GELU cut-offs
// x <= -10 → 0 and x >= 10 → x.
func f16TableRef(x, g, y []float32, table *[1 << 16]uint16, clamp bool) {
	for i, v := range x {
		var r float32
		switch {
		case clamp && v <= -10:
			r = 0
		case clamp && v >= 10:
			r = v
			if g != nil {
				r *= g[i]
			}
		default:
			r = quant.FP16ToFP32(table[quant.FP32ToFP16(v)])
			if g != nil {
				r *= g[i]
			}
		}
		y[i] = r
	}
}

// GELUTanh evaluates 0.5x(1+tanh(sqrt(2/pi)x(1+0.044715x^2))) in float32
// with no table.
func GELUTanh(x, out []float32, start, end int) {
	x, out = x[start:end], out[start:end]
	for i, v := range x {
		out[i] = geluTanh32(v)
	}
}

// GELUErf sets out[i] = 0.5x(1+erf(x/sqrt2)) in float32.
func GELUErf(x, out []float32, start, end int) {
	x, out = x[start:end], out[start:end]
	const invSqrt2 = float32(0.70710678118654752440)
	for i, v := range x {
		e := float32(math.Erf(float64(v * invSqrt2)))
		out[i] = float32(float32(0.5*v) * (1 + e))
	}
}

// QuickGELU is ggml's x*sigmoid(1.702x) through its F16 table.
func QuickGELU(x, out []float32, start, end int) {
	geluTable.once.Do(buildGELUTables)
	f16Table(x[start:end], nil, out[start:end], &geluTable.quick, false)
}

var geluTable struct {
	once  sync.Once
	gelu  [1 << 16]uint16
	quick [1 << 16]uint16
}

func buildGELUTables() {
	for h := range 1 << 16 {
		f := quant.FP16ToFP32(uint16(h))
		geluTable.gelu[h] = quant.FP32ToFP16(geluTanh32(f))
		geluTable.quick[h] = quant.FP32ToFP16(quickGELU32(f))
	}
}

// geluTanh32 is ggml_gelu_f32 step by step in float32 (tanhf through the
// float64 tanh, rounded: glibc's tanhf is within an ulp of that).
func geluTanh32(x float32) float32 {
	const coefA = float32(0.044715)
	const sqrt2OverPi = float32(0.79788456080286535587989211986876)
	inner := float32(sqrt2OverPi*x) * float32(1+float32(float32(coefA*x)*x))
	t := float32(math.Tanh(float64(inner)))
	return float32(float32(0.5*x) * (1 + t))
}

func quickGELU32(x float32) float32 {
	e := float32(math.Exp(float64(float32(-1.702) * x)))
	return x * (1 / (1 + e))
}

func expRef(x, y []float32) {
	for i, v := range x {
		y[i] = float32(math.Exp(float64(v)))
	}
}

func siluRef(x, g, y []float32) {
	for i, v := range x {
		s := v / (1 + float32(math.Exp(float64(-v))))
		if g != nil {
			s *= g[i]
		}
		y[i] = s
	}
}
