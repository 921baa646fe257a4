// Package quant converts between float32 and GGUF's storage types: F16, BF16
// and the block quantizations (Q4_0 … Q8_0, the K-quants, IQ4_NL, IQ4_XS).
//
// Dequantization reproduces ggml's dequantize_row_* exactly, bit for bit.
// Quantization reproduces ggml's reference quantizers (the ones llama-quantize
// uses when it has no importance matrix) byte for byte, so a file quantized by
// mica is identical to one quantized by llama.cpp from the same F32 weights.
//
// Exactness rules followed throughout: every intermediate is float32 unless
// ggml computes it in another type; each product that is then added is
// rounded to float32 explicitly (float32(a*b) + c), so the Go compiler never
// fuses it into an FMA (it may on amd64 with GOAMD64=v3, and ggml's reference
// code is compiled without FMA contraction); rounding to an integer uses
// nearestInt, ggml's magic-number trick (round half to even).
//
// The code is plain Go and meant to be read; the fast dot products over these
// layouts live with the matmul kernels.
package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"mica/internal/tensor"
)

// qk is the block size of the legacy quants, IQ4_NL and Q8_1.
const qk = 32

// qkK is the super-block size of the K-quants and IQ4_XS.
const qkK = tensor.QK_K

// groupMaxEps is ggml's GROUP_MAX_EPS: a group whose largest magnitude is
// below it is treated as all zeros.
const groupMaxEps = float32(1e-15)

// nearestInt rounds f to the nearest integer, ties to even, for |f| < 2^22:
// adding 1.5·2^23 leaves the rounded integer in the low mantissa bits. It is
// ggml's nearest_int, and the choice of tie rule matters for exactness.
func nearestInt(f float32) int {
	v := float32(f) + 12582912
	return int(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// fp16 reads a little-endian IEEE half at b[0:2] as float32.
func fp16(b []byte) float32 { return FP16ToFP32(binary.LittleEndian.Uint16(b)) }

// putFP16 stores f as a little-endian IEEE half (round to nearest even).
func putFP16(b []byte, f float32) { binary.LittleEndian.PutUint16(b, FP32ToFP16(f)) }

type dequantFunc func(src []byte, dst []float32)
type quantFunc func(src []float32, dst []byte)

// kernels maps each supported type to its row converters. quantize is nil
// for types mica can read but not produce.
var kernels = map[tensor.DType]struct {
	dequantize dequantFunc
	quantize   quantFunc
}{
	tensor.F32:    {dequantizeF32, quantizeF32},
	tensor.F16:    {dequantizeF16, quantizeF16},
	tensor.BF16:   {dequantizeBF16, quantizeBF16},
	tensor.Q4_0:   {DequantizeQ4_0, QuantizeQ4_0},
	tensor.Q4_1:   {DequantizeQ4_1, QuantizeQ4_1},
	tensor.Q5_0:   {DequantizeQ5_0, QuantizeQ5_0},
	tensor.Q5_1:   {DequantizeQ5_1, QuantizeQ5_1},
	tensor.Q8_0:   {DequantizeQ8_0, QuantizeQ8_0},
	tensor.Q8_1:   {DequantizeQ8_1, QuantizeQ8_1},
	tensor.Q2_K:   {DequantizeQ2_K, QuantizeQ2_K},
	tensor.Q3_K:   {DequantizeQ3_K, QuantizeQ3_K},
	tensor.Q4_K:   {DequantizeQ4_K, QuantizeQ4_K},
	tensor.Q5_K:   {DequantizeQ5_K, QuantizeQ5_K},
	tensor.Q6_K:   {DequantizeQ6_K, QuantizeQ6_K},
	tensor.Q8_K:   {DequantizeQ8_K, QuantizeQ8_K},
	tensor.IQ4_NL: {DequantizeIQ4_NL, QuantizeIQ4_NL},
	tensor.IQ4_XS: {DequantizeIQ4_XS, QuantizeIQ4_XS},
}

// CanQuantize reports whether Quantize can produce type t.
func CanQuantize(t tensor.DType) bool {
	k, ok := kernels[t]
	return ok && k.quantize != nil
}

// CanDequantize reports whether Dequantize can read type t.
func CanDequantize(t tensor.DType) bool {
	k, ok := kernels[t]
	return ok && k.dequantize != nil
}

// checkSizes verifies that n elements of type t fill exactly nbytes bytes.
func checkSizes(op string, t tensor.DType, n, nbytes int) error {
	want, ok := t.RowBytes(int64(n))
	if !ok {
		return fmt.Errorf("quant: %s %v: %d elements is not a multiple of the block size %d", op, t, n, t.BlockSize())
	}
	if int64(nbytes) != want {
		return fmt.Errorf("quant: %s %v: %d elements need %d bytes, got %d", op, t, n, want, nbytes)
	}
	return nil
}

// Dequantize converts len(dst) elements of type t stored in src to float32.
// len(dst) must be a multiple of t's block size and src exactly
// t.RowBytes(len(dst)) bytes long. Blocks are independent, so src may hold
// one row or many.
func Dequantize(t tensor.DType, src []byte, dst []float32) error {
	k, ok := kernels[t]
	if !ok || k.dequantize == nil {
		return fmt.Errorf("quant: cannot dequantize type %v", t)
	}
	if err := checkSizes("dequantize", t, len(dst), len(src)); err != nil {
		return err
	}
	k.dequantize(src, dst)
	return nil
}

// Quantize converts src to type t in dst with ggml's reference algorithm
// (no importance matrix), producing the same bytes as llama-quantize.
// len(src) must be a multiple of t's block size and dst exactly
// t.RowBytes(len(src)) bytes long. Every block depends only on its own
// elements, so the row length does not affect the result.
func Quantize(t tensor.DType, src []float32, dst []byte) error {
	k, ok := kernels[t]
	if !ok || k.quantize == nil {
		return fmt.Errorf("quant: cannot quantize to type %v", t)
	}
	if err := checkSizes("quantize", t, len(src), len(dst)); err != nil {
		return err
	}
	k.quantize(src, dst)
	return nil
}

func dequantizeF32(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func quantizeF32(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func dequantizeF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = fp16(src[2*i:])
	}
}

func quantizeF16(src []float32, dst []byte) {
	for i, v := range src {
		putFP16(dst[2*i:], v)
	}
}

func dequantizeBF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = BF16ToFP32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func quantizeBF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], FP32ToBF16(v))
	}
}
