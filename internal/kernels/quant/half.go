package quant

import "math"

// FP16ToFP32 converts an IEEE 754 binary16 value to float32 exactly
// (subnormals, infinities and NaNs included).
func FP16ToFP32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	default: // subnormal: mant * 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	}
}

// FP32ToFP16 converts a float32 to IEEE 754 binary16 with round-to-nearest-even,
// as ggml (and the F16C instruction vcvtps2ph with rounding mode 0) does.
// Overflow gives infinity; NaN stays NaN (quiet).
func FP32ToFP16(f float32) uint16 {
	w := math.Float32bits(f)
	sign := uint16(w>>16) & 0x8000
	abs := w & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		return sign | 0x7e00 | uint16((abs>>13)&0x3ff)
	case abs >= 0x477ff000: // rounds to >= 65520: infinity
		return sign | 0x7c00
	case abs >= 0x38800000: // normal half
		// rebias exponent (127 -> 15) and round mantissa 23 -> 10 bits
		v := abs - (112 << 23)
		round := uint32(0xfff) + (v>>13)&1
		return sign | uint16((v+round)>>13)
	case abs < 0x33000000: // below half of the smallest subnormal: zero
		return sign
	default: // subnormal half
		exp := abs >> 23
		mant := abs&0x7fffff | 0x800000
		shift := 126 - exp // 14 + (112 - (exp-127+127)) ... bits to drop beyond 13
		// value = mant * 2^(exp-150); half subnormal unit is 2^-24,
		// so result = mant >> (126-exp) with rounding to nearest even.
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		halfway := uint32(1) << (shift - 1)
		if rem > halfway || (rem == halfway && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
}

// BF16ToFP32 converts a bfloat16 value to float32 exactly.
func BF16ToFP32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// FP32ToBF16 converts a float32 to bfloat16 with round-to-nearest-even; NaNs
// are made quiet. This is the conversion ggml and Google Brain use.
func FP32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
