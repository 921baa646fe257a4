package sample

import "math"

// The sampler's exponential: exp32 in plain Go, and the same arithmetic,
// operation for operation, in AVX2 (scan_amd64.c), so that a cgo build and a
// CGO_ENABLED=0 build compute bit-identical weights and draw the same
// tokens. Every product is rounded to float32 before it is added (the
// explicit float32 conversions stop the Go compiler from fusing, and the C
// file is compiled without FMA), and rounding to an integer is to nearest
// even in both.
//
// Method: x = k*ln2 + r with k = round(x*log2(e)) and r from a two-part
// (Cody-Waite) ln2; e^r by its Taylor polynomial of degree 6 (|r| <= 0.347,
// truncation error 1.3e-7 relative); times 2^k built from its exponent
// bits. Inputs below expMin (where 2^k would be subnormal) and NaN give 0;
// the sampler only evaluates x <= 0, so there is no overflow side.
const (
	expMin = -87.33654 // ln(2^-126)
	log2e  = 1.44269504088896341
	ln2Hi  = 0.693359375 // 9 significant bits: k*ln2Hi is exact
	ln2Lo  = -2.12194440e-4
	expC2  = 1.0 / 2
	expC3  = 1.0 / 6
	expC4  = 1.0 / 24
	expC5  = 1.0 / 120
	expC6  = 1.0 / 720
)

// exp32 is e^x in float32 (max relative error about 2e-7 on [-87, 0]).
func exp32(x float32) float32 {
	if !(x >= expMin) {
		return 0
	}
	k := float32(math.RoundToEven(float64(float32(x * log2e))))
	r := x - float32(k*ln2Hi)
	r = r - float32(k*ln2Lo)
	p := float32(expC6*r) + expC5
	p = float32(p*r) + expC4
	p = float32(p*r) + expC3
	p = float32(p*r) + expC2
	p = float32(p*r) + 1
	p = float32(p*r) + 1
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}

// expShiftGo writes out[i] = exp32((x[i]-m)*scale) (the weight of logit
// x[i] relative to m at temperature 1/scale).
func expShiftGo(x []float32, m, scale float32, out []float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = exp32(float32((v - m) * scale))
	}
}

// blockMass is the float64 mass of one block of weights: eight partial sums
// (entry i of the block goes to partial i mod 8, added in order), combined
// as ((s0+s4)+(s1+s5)) + ((s2+s6)+(s3+s7)) — the order the AVX2 code adds
// its two four-lane accumulators in.
func blockMass(w []float32) float64 {
	var s [8]float64
	for i, v := range w {
		s[i&7] += float64(v)
	}
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

// sumExpBlocksGo stores in sums the block masses (blocks of pickBlock) of
// the weights exp32((x[i]-m)*scale) without materialising them, and returns
// their sequential sum.
func sumExpBlocksGo(x []float32, m, scale float32, sums []float64) float64 {
	var w [pickBlock]float32
	total := 0.0
	for b := range sums {
		blk := x[b*pickBlock : min(len(x), (b+1)*pickBlock)]
		expShiftGo(blk, m, scale, w[:])
		sums[b] = blockMass(w[:len(blk)])
		total += sums[b]
	}
	return total
}

// expShift is expShiftGo, with the AVX2 version when available.
func expShift(x []float32, m, scale float32, out []float32) {
	if useFast && len(x) >= 8 {
		expShiftFast(x, m, scale, out)
		return
	}
	expShiftGo(x, m, scale, out)
}

// sumExpBlocks is sumExpBlocksGo, with the AVX2 version when available.
// len(sums) must be the number of blocks of x.
func sumExpBlocks(x []float32, m, scale float32, sums []float64) float64 {
	if useFast && len(x) >= 8 {
		return sumExpBlocksFast(x, m, scale, sums)
	}
	return sumExpBlocksGo(x, m, scale, sums)
}
