package quant

import (
	"encoding/binary"
	"math"

	"mica/internal/tensor"
)

// Plain (non-block) types that appear in safetensors checkpoints: FP8
// E4M3 (the "e4m3fn" variant: no infinities, 0x7f/0xff are NaN), and
// integer tensors (position ids, step counters) read as float32. They can be
// dequantized, not produced.

func init() {
	for t, f := range map[tensor.DType]dequantFunc{
		tensor.F8_E4M3: dequantizeF8E4M3, tensor.I32: dequantizeI32, tensor.I64: dequantizeI64, tensor.U8: dequantizeU8,
	} {
		kernels[t] = struct {
			dequantize dequantFunc
			quantize   quantFunc
		}{f, nil}
	}
}

// F8E4M3ToFP32 converts an FP8 E4M3FN value (1 sign, 4 exponent bits with
// bias 7, 3 mantissa bits; no infinities; S.1111.111 is NaN) to float32
// exactly.
func F8E4M3ToFP32(b uint8) float32 {
	exp := int(b>>3) & 0xf
	mant := int(b & 7)
	var v float64 // every E4M3 value is exact in float64 and float32
	switch {
	case exp == 0xf && mant == 7:
		return float32(math.NaN())
	case exp == 0: // subnormal: mant/8 · 2^-6
		v = math.Ldexp(float64(mant), -9)
	default: // (1 + mant/8) · 2^(exp-7)
		v = math.Ldexp(float64(8+mant), exp-10)
	}
	if b&0x80 != 0 {
		v = -v
	}
	return float32(v)
}

func dequantizeF8E4M3(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = F8E4M3ToFP32(src[i])
	}
}

func dequantizeI32(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = float32(int32(binary.LittleEndian.Uint32(src[4*i:])))
	}
}

func dequantizeI64(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = float32(int64(binary.LittleEndian.Uint64(src[8*i:])))
	}
}

func dequantizeU8(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = float32(src[i])
	}
}
