package noise

import "math"

// TorchCPU is torch's CPU generator after torch.manual_seed(seed): an
// mt19937 engine and torch's float32 randn paths.
//
//   - n ≥ 16: n uniform floats u = (word & (2^24−1))·2^-24 are drawn, then
//     every block of 16 is turned into normals by Box–Muller on the pairs
//     (j, j+8): r = √(−2 ln(1−u_j)), θ = 2π·u_{j+8}, out_j = r·cos θ,
//     out_{j+8} = r·sin θ, in float32. If n is not a multiple of 16, 16
//     fresh uniforms are drawn and the last 16 values are recomputed from
//     them.
//   - n < 16: each value comes from torch's double normal sampler: two
//     53-bit uniforms u1, u2 from 64-bit draws, r = √(−2 log1p(−u2)),
//     θ = 2π·u1, returning r·cos θ and caching r·sin θ for the next value
//     (the cache lives in the generator, across calls, as in torch).
//
// For n ≥ 16 torch has two kernels, chosen by the CPU it runs on. On x86
// CPUs with AVX2 (AVX-512 ones included: torch 2.11 on an AVX-512 Xeon gave
// the AVX2 kernel's values) it uses a vectorised kernel whose ln, sin and
// cos are the Cephes single-precision approximations (avx_mathfun),
// compiled with fused multiply-adds; NewTorchCPU reproduces that kernel
// bit for bit (187 published values, and 2×65536 values plus 72 whole
// draws of 1 to 262144 values from torch 2.11). On CPUs without AVX2 and
// on ARM, torch uses its scalar kernel with the C library's
// logf/cosf/sinf; NewTorchCPUPortable computes that kernel with correctly
// rounded functions, which differ from glibc's in the last bit or two of
// about 1.5% of the values (torch 2.11, ATEN_CPU_CAPABILITY=default).
type TorchCPU struct {
	portable bool
	mt       [mtN]uint32
	left     int
	next     int
	hasGauss bool
	gauss    float64
}

const (
	mtN       = 624
	mtM       = 397
	mtMatrixA = 0x9908b0df
	mtUpper   = 0x80000000
	mtLower   = 0x7fffffff
)

// NewTorchCPU returns the generator torch.manual_seed(seed) makes on the
// CPU, with torch's AVX2 normal kernel. torch seeds mt19937 with the low
// 32 bits of the seed.
func NewTorchCPU(seed uint64) *TorchCPU {
	g := &TorchCPU{}
	g.mt[0] = uint32(seed)
	for j := 1; j < mtN; j++ {
		prev := g.mt[j-1]
		g.mt[j] = 1812433253*(prev^(prev>>30)) + uint32(j)
	}
	g.left, g.next = 1, 0
	return g
}

// NewTorchCPUPortable is NewTorchCPU with torch's scalar normal kernel (the
// one torch uses on AVX-512 and non-x86 machines).
func NewTorchCPUPortable(seed uint64) *TorchCPU {
	g := NewTorchCPU(seed)
	g.portable = true
	return g
}

func (g *TorchCPU) twist() {
	mix := func(u, v uint32) uint32 {
		y := (u&mtUpper | v&mtLower) >> 1
		if v&1 != 0 {
			y ^= mtMatrixA
		}
		return y
	}
	s := &g.mt
	for j := 0; j < mtN-mtM; j++ {
		s[j] = s[j+mtM] ^ mix(s[j], s[j+1])
	}
	for j := mtN - mtM; j < mtN-1; j++ {
		s[j] = s[j+mtM-mtN] ^ mix(s[j], s[j+1])
	}
	s[mtN-1] = s[mtM-1] ^ mix(s[mtN-1], s[0])
	g.left, g.next = mtN, 0
}

// uint32 is torch's random(): the next tempered mt19937 word.
func (g *TorchCPU) uint32() uint32 {
	g.left--
	if g.left == 0 {
		g.twist()
	}
	y := g.mt[g.next]
	g.next++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// uniform32 is torch's uniform_real_distribution<float>(0, 1).
func (g *TorchCPU) uniform32() float32 {
	return float32(g.uint32()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniform64 is torch's uniform_real_distribution<double>(0, 1) on
// random64() = first word << 32 | second word.
func (g *TorchCPU) uniform64() float64 {
	hi := uint64(g.uint32())
	lo := uint64(g.uint32())
	return float64((hi<<32|lo)&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal64 is torch's normal_distribution<double>, with its cached second value.
func (g *TorchCPU) normal64() float64 {
	if g.hasGauss {
		g.hasGauss = false
		return g.gauss
	}
	u1 := g.uniform64()
	u2 := g.uniform64()
	r := math.Sqrt(-2 * math.Log1p(-u2))
	theta := 2 * math.Pi * u1
	g.gauss, g.hasGauss = r*math.Sin(theta), true
	return r * math.Cos(theta)
}

// Randn draws n values as torch.randn(n) does on the CPU.
func (g *TorchCPU) Randn(n int) []float32 {
	out := make([]float32, max(n, 0))
	if n < 16 {
		for i := range out {
			out[i] = float32(g.normal64())
		}
		return out
	}
	for i := range out {
		out[i] = g.uniform32()
	}
	fill := fill16AVX2
	if g.portable {
		fill = fill16Scalar
	}
	for i := 0; i+16 <= n; i += 16 {
		fill(out[i : i+16])
	}
	if n%16 != 0 {
		tail := out[n-16:]
		for i := range tail {
			tail[i] = g.uniform32()
		}
		fill(tail)
	}
	return out
}

// twoPi32 is float32(2π), the constant of torch's vectorised kernel.
const twoPi32 = float32(2 * math.Pi)

// fill16AVX2 is torch's AVX2 normal_fill_16 on 16 uniforms, in float32.
// The final r·cos θ·std + mean is an FMA with std 1 and mean 0: exact.
func fill16AVX2(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		r := sqrt32(-2 * cephesLog(u1))
		s, c := cephesSinCos(twoPi32 * u2)
		d[j] = r * c
		d[j+8] = r * s
	}
}

// fill16Scalar is torch's scalar normal_fill_16: logf, sqrtf, cosf, sinf,
// and θ = 2π·u computed in double then rounded to float.
func fill16Scalar(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		r := sqrt32(-2 * log32(u1))
		theta := float32(2 * math.Pi * float64(u2))
		d[j] = r * cos32(theta)
		d[j+8] = r * sin32(theta)
	}
}

// fma32 is a·b + c with one rounding, as the FMA instructions the AVX2
// kernel was compiled to. (Through float64 the product is exact; the sum
// is rounded twice, which can differ from one rounding only when the
// float64 sum lands exactly halfway between two float32 values.)
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// cephesLog is the Cephes logf approximation for x in (0, 1], as the AVX2
// kernel evaluates it: x = m·2^e with m in [√½, √2), then
// ln x = (m−1) + P(m−1)·(m−1)³ − (m−1)²/2 + e·ln 2, with ln 2 split into
// 0.693359375 − 2.12194440e-4 and the multiply-adds fused as the compiler did.
func cephesLog(x float32) float32 {
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23)-0x7f) + 1
	m := math.Float32frombits(bits&0x807fffff | 0x3f000000) // mantissa in [0.5, 1)
	var extra float32
	if m < 0.707106781186547524 {
		extra = m
		e--
	}
	m = m - 1 + extra // m−1, or 2m−1 when m < √½
	z := m * m
	y := float32(7.0376836292e-2)
	for _, p := range logPoly {
		y = fma32(y, m, p)
	}
	// The compiler fused the last product of y·m·z with the addition of
	// e·q1 (rounded on its own): y = fma(y·m, z, e·q1). Found by comparing
	// with 65536 values of torch 2.11 on an x86-64 CPU; the other orders
	// differ in the last bit of r about once in 4000 pairs.
	y = fma32(y*m, z, e*-2.12194440e-4)
	y = fma32(-z, 0.5, y)
	return fma32(e, 0.693359375, m+y)
}

var logPoly = [...]float32{
	-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
	-1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
}

// cephesSinCos is the Cephes sinf/cosf approximation as the AVX2 kernel
// evaluates it: reduce |x| by the nearest even multiple j of π/4 (with π/4
// split in three parts, fused), evaluate the sine and cosine polynomials on
// the remainder, and swap and negate them by the octant.
func cephesSinCos(x float32) (sin, cos float32) {
	negSin := x < 0
	x = float32(math.Abs(float64(x)))
	j := int32(x * 1.27323954473516) // 4/π
	j = (j + 1) &^ 1
	y := float32(j)
	x = fma32(y, -0.78515625, x)
	x = fma32(y, -2.4187564849853515625e-4, x)
	x = fma32(y, -3.77489497744594108e-8, x)
	if j&4 != 0 {
		negSin = !negSin
	}
	negCos := (^(j - 2))&4 != 0
	z := x * x
	c := fma32(fma32(2.443315711809948e-5, z, -1.388731625493765e-3), z, 4.166664568298827e-2)
	c = fma32(c*z, z, -(z*0.5)) + 1
	s := fma32(fma32(-1.9515295891e-4, z, 8.3321608736e-3), z, -1.6666654611e-1)
	s = fma32(s*z, x, x)
	if j&2 != 0 {
		s, c = c, s
	}
	if negSin {
		s = -s
	}
	if negCos {
		c = -c
	}
	return s, c
}

// The float32 functions of the C library, correctly rounded.
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
func cos32(x float32) float32  { return float32(math.Cos(float64(x))) }
func sin32(x float32) float32  { return float32(math.Sin(float64(x))) }
