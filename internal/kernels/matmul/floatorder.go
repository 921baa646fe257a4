package matmul

import (
	"math"
	"unsafe"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// The F32/F16/BF16 dot product, in the order of llamafile's tinyBLAS on
// AVX-512 (ggml-cpu/llamafile/sgemm.cpp), which llama.cpp's CPU backend runs
// for mul_mat with these weight types whenever the batch has at least two
// activation rows, the weight row count is a multiple of 4 and cols is a
// multiple of the vector step (ggml falls back to its own vec_dot functions
// otherwise, including n = 1 decode; mica uses this one order for every n so
// that decode and prefill agree):
//
//   - F32 (tinyBLAS<16, __m512, __m512, float>) and F16 weights
//     (tinyBLAS<16, __m512, __m512, ggml_fp16_t> after ggml rounds the
//     activations to F16, its vec_dot_type): 16 lane accumulators, lane j
//     takes k = j, j+16, j+32, … in order: acc[j] = fma(w[k], x[k], acc[j]),
//     one rounding per step. The products of two F16 values are exact in
//     float32, so the F16 case is the F32 one on widened values.
//   - BF16 weights on AVX512-BF16 hardware (tinyBLAS<32, __m512, __m512bh>,
//     activations rounded to BF16 with round-to-nearest-even): vdpbf16ps
//     over 32 columns per step; lane i of the step at column kb adds
//     w[kb+2i+1]·x[kb+2i+1] and then w[kb+2i]·x[kb+2i], each addition
//     rounded (Intel's definition of the instruction). The product of two
//     BF16 values is exact in float32, so each addition is an fma.
//   - Reduction (_mm512_reduce_add_ps): acc[j] += acc[j+8] for j < 8,
//     acc[j] += acc[j+4] for j < 4, then (acc0+acc2)+(acc1+acc3).
//
// Columns beyond the last multiple of the step (16, or 32 for BF16) — no
// real model has them; tinyBLAS declines such shapes — are added after the
// reduction, in order, each by an fma into the running sum.
//
// Not reproduced: vdpbf16ps and vcvtneps2bf16 treat subnormal inputs as zero
// and flush subnormal results (DAZ/FTZ); mica keeps subnormals. This only
// matters for values below 2⁻¹²⁶, which do not occur in the dot products of
// real models.

// floatStep is the column step of the lane order for weight type wt.
func floatStep(wt tensor.DType) int {
	if wt == tensor.BF16 {
		return 32
	}
	return 16
}

// fma32 is a·b + c rounded once to float32 (IEEE 754 fusedMultiplyAdd in
// binary32, what vfmadd…ps computes), exactly, for all inputs.
//
// a·b is exact in float64 (at most 48 significant bits). The float64 sum
// s = a·b + c is rounded once; its rounding error e is recovered exactly by
// Knuth's TwoSum. Rounding s to float32 directly could double-round, so s is
// first replaced by the float64 neighbour of the exact sum with an odd last
// bit when the sum is inexact (round to odd); rounding a round-to-odd value
// with 53 bits to 24 bits gives the correctly rounded result (53 ≥ 24 + 2).
func fma32(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b)) // conversion: never fused (exact anyway)
	cc := float64(c)
	s := p + cc
	bv := s - p
	e := (p - (s - bv)) + (cc - bv)
	// inexact sum, even last bit, s finite (then e is finite too): step to
	// the neighbour on e's side (+1 if e has s's sign, else −1)
	if bits := math.Float64bits(s); e != 0 && bits&1 == 0 && bits&(0x7ff<<52) != 0x7ff<<52 {
		s = math.Float64frombits(bits + 1 - (math.Float64bits(e)^bits)>>63<<1)
	}
	return float32(s)
}

// reduce16 is the lane reduction of _mm512_reduce_add_ps.
func reduce16(acc *[16]float32) float32 {
	for j := 0; j < 8; j++ {
		acc[j] += acc[j+8]
	}
	for j := 0; j < 4; j++ {
		acc[j] += acc[j+4]
	}
	return (acc[0] + acc[2]) + (acc[1] + acc[3])
}

// floatDotRef is the reference dot product of one widened weight row w with
// one prepared activation row x (natural column order) for weight type wt.
func floatDotRef(wt tensor.DType, w, x []float32) float32 {
	var acc [16]float32
	step := floatStep(wt)
	main := len(w) / step * step
	if wt == tensor.BF16 {
		for kb := 0; kb < main; kb += 32 {
			wb, xb := w[kb:kb+32], x[kb:kb+32]
			for i := 0; i < 16; i++ {
				acc[i] = fma32(wb[2*i+1], xb[2*i+1], acc[i])
				acc[i] = fma32(wb[2*i], xb[2*i], acc[i])
			}
		}
	} else {
		for kb := 0; kb < main; kb += 16 {
			wb, xb := w[kb:kb+16], x[kb:kb+16]
			for i := 0; i < 16; i++ {
				acc[i] = fma32(wb[i], xb[i], acc[i])
			}
		}
	}
	s := reduce16(&acc)
	for k := main; k < len(w); k++ {
		s = fma32(w[k], x[k], s)
	}
	return s
}

// aligned4 reports whether b's storage can hold float32 values.
func aligned4(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%4 == 0
}

// asFloats views the first n float32 values of b (4-byte aligned, long
// enough).
func asFloats(b []byte, n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

// roundActivations fills out with rows of x (cols values each) rounded to
// vt, F16 or BF16, and for BF16 also kern, the rows in the kernels' column
// order.
func roundActivations(vt tensor.DType, x, out, kern []float32, cols int) {
	if fastRound(vt, x, out, kern, cols) {
		return
	}
	if vt == tensor.F16 {
		for i, v := range x {
			out[i] = quant.FP16ToFP32(quant.FP32ToFP16(v))
		}
		return
	}
	for i, v := range x {
		out[i] = quant.BF16ToFP32(quant.FP32ToBF16(v))
	}
	for j := 0; j < len(x)/cols; j++ {
		permuteBF16(out[j*cols:(j+1)*cols], kern[j*cols:(j+1)*cols])
	}
}

// permuteBF16 writes one row in the kernels' BF16 column order: for each
// full 32-column group, lane i's odd column 2i+1 at i and its even column
// 2i at 16+i; the remaining columns unchanged.
func permuteBF16(src, dst []float32) {
	main := len(src) / 32 * 32
	for g := 0; g < main; g += 32 {
		for i := 0; i < 16; i++ {
			dst[g+i] = src[g+2*i+1]
			dst[g+16+i] = src[g+2*i]
		}
	}
	copy(dst[main:], src[main:])
}
