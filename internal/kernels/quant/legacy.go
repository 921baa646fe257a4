package quant

import (
	"encoding/binary"
	"math"
)

// The legacy quants: blocks of 32 elements with one fp16 scale (and for the
// _1 types an fp16 minimum). Layouts, little-endian, byte offsets:
//
//	Q4_0  (18 B): d fp16 | qs[16]  — element j in qs[j]&15, j+16 in qs[j]>>4; x = (q-8)·d
//	Q4_1  (20 B): d fp16 | m fp16 | qs[16];                                   x = q·d + m
//	Q5_0  (22 B): d fp16 | qh u32 | qs[16] — bit 4 of element j is qh bit j;  x = (q-16)·d
//	Q5_1  (24 B): d fp16 | m fp16 | qh u32 | qs[16];                          x = q·d + m
//	Q8_0  (34 B): d fp16 | qs[32] int8;                                       x = q·d
//	Q8_1  (36 B): d fp16 | s fp16 (= d·Σq) | qs[32] int8;                     x = q·d
//
// The per-type functions below work on len(dst) (dequantize) or len(src)
// (quantize) elements, which must be a multiple of 32, with the other slice
// at least as long as the layout needs; Dequantize and Quantize check sizes
// and return errors instead.

const (
	q4_0Bytes = 2 + qk/2
	q4_1Bytes = 4 + qk/2
	q5_0Bytes = 2 + 4 + qk/2
	q5_1Bytes = 4 + 4 + qk/2
	q8_0Bytes = 2 + qk
	q8_1Bytes = 4 + qk
)

// DequantizeQ4_0 is ggml's dequantize_row_q4_0.
func DequantizeQ4_0(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*q4_0Bytes:][:q4_0Bytes]
		y := dst[ib*qk:][:qk]
		d := fp16(b)
		qs := b[2:]
		for j := 0; j < qk/2; j++ {
			y[j] = float32(int(qs[j]&0x0f)-8) * d
			y[j+qk/2] = float32(int(qs[j]>>4)-8) * d
		}
	}
}

// QuantizeQ4_0 is ggml's quantize_row_q4_0_ref: d = -max/8 where max is the
// element of largest magnitude, then q = min(15, trunc(x/d + 8.5)).
func QuantizeQ4_0(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q4_0Bytes:][:q4_0Bytes]
		id := putSignedScale(b, x, -8)
		qs := b[2:]
		for j := 0; j < qk/2; j++ {
			x0 := float32(x[j] * id)
			x1 := float32(x[j+qk/2] * id)
			qs[j] = min(15, truncInt8(x0+8.5)) | min(15, truncInt8(x1+8.5))<<4
		}
	}
}

// DequantizeQ4_1 is ggml's dequantize_row_q4_1.
func DequantizeQ4_1(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*q4_1Bytes:][:q4_1Bytes]
		y := dst[ib*qk:][:qk]
		d, m := fp16(b), fp16(b[2:])
		qs := b[4:]
		for j := 0; j < qk/2; j++ {
			y[j] = float32(float32(qs[j]&0x0f)*d) + m
			y[j+qk/2] = float32(float32(qs[j]>>4)*d) + m
		}
	}
}

// QuantizeQ4_1 is ggml's quantize_row_q4_1_ref: d = (max-min)/15, m = min,
// q = min(15, trunc((x-min)/d + 0.5)).
func QuantizeQ4_1(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q4_1Bytes:][:q4_1Bytes]
		lo, id := putMinScale(b, x, 15)
		qs := b[4:]
		for j := 0; j < qk/2; j++ {
			x0 := float32((x[j] - lo) * id)
			x1 := float32((x[j+qk/2] - lo) * id)
			qs[j] = min(15, truncInt8(x0+0.5)) | min(15, truncInt8(x1+0.5))<<4
		}
	}
}

// DequantizeQ5_0 is ggml's dequantize_row_q5_0.
func DequantizeQ5_0(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*q5_0Bytes:][:q5_0Bytes]
		y := dst[ib*qk:][:qk]
		d := fp16(b)
		qh := binary.LittleEndian.Uint32(b[2:])
		qs := b[6:]
		for j := 0; j < qk/2; j++ {
			h0 := int(qh>>j&1) << 4
			h1 := int(qh>>(j+qk/2)&1) << 4
			y[j] = float32(int(qs[j]&0x0f)|h0-16) * d
			y[j+qk/2] = float32(int(qs[j]>>4)|h1-16) * d
		}
	}
}

// QuantizeQ5_0 is ggml's quantize_row_q5_0_ref: d = -max/16,
// q = min(31, trunc(x/d + 16.5)).
func QuantizeQ5_0(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q5_0Bytes:][:q5_0Bytes]
		id := putSignedScale(b, x, -16)
		var qh uint32
		qs := b[6:]
		for j := 0; j < qk/2; j++ {
			q0 := min(31, truncInt8(float32(x[j]*id)+16.5))
			q1 := min(31, truncInt8(float32(x[j+qk/2]*id)+16.5))
			qs[j] = q0&0x0f | (q1&0x0f)<<4
			qh |= uint32(q0>>4) << j
			qh |= uint32(q1>>4) << (j + qk/2)
		}
		binary.LittleEndian.PutUint32(b[2:], qh)
	}
}

// DequantizeQ5_1 is ggml's dequantize_row_q5_1.
func DequantizeQ5_1(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*q5_1Bytes:][:q5_1Bytes]
		y := dst[ib*qk:][:qk]
		d, m := fp16(b), fp16(b[2:])
		qh := binary.LittleEndian.Uint32(b[4:])
		qs := b[8:]
		for j := 0; j < qk/2; j++ {
			q0 := uint32(qs[j]&0x0f) | (qh>>j&1)<<4
			q1 := uint32(qs[j]>>4) | (qh>>(j+qk/2)&1)<<4
			y[j] = float32(float32(q0)*d) + m
			y[j+qk/2] = float32(float32(q1)*d) + m
		}
	}
}

// QuantizeQ5_1 is ggml's quantize_row_q5_1_ref: d = (max-min)/31, m = min,
// q = trunc((x-min)/d + 0.5) (no clamp, as in ggml).
func QuantizeQ5_1(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q5_1Bytes:][:q5_1Bytes]
		lo, id := putMinScale(b, x, 31)
		var qh uint32
		qs := b[8:]
		for j := 0; j < qk/2; j++ {
			q0 := truncUint8(float32((x[j]-lo)*id) + 0.5)
			q1 := truncUint8(float32((x[j+qk/2]-lo)*id) + 0.5)
			qs[j] = q0&0x0f | (q1&0x0f)<<4
			qh |= uint32(q0>>4&1) << j
			qh |= uint32(q1>>4&1) << (j + qk/2)
		}
		binary.LittleEndian.PutUint32(b[4:], qh)
	}
}

// DequantizeQ8_0 is ggml's dequantize_row_q8_0.
func DequantizeQ8_0(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*q8_0Bytes:][:q8_0Bytes]
		y := dst[ib*qk:][:qk]
		dequantizeQ8(b[2:], fp16(b), y)
	}
}

// QuantizeQ8_0 is ggml's quantize_row_q8_0_ref: d = amax/127,
// q = round(x/d) with halves away from zero (what llama-quantize writes).
// Activations use ActivationQ8_0.
func QuantizeQ8_0(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q8_0Bytes:][:q8_0Bytes]
		d, _ := quantizeQ8(x, b[2:])
		putFP16(b, d)
	}
}

// DequantizeQ8_1 expands Q8_1 blocks (x = q·d; the stored sum is ignored).
func DequantizeQ8_1(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*q8_1Bytes:][:q8_1Bytes]
		y := dst[ib*qk:][:qk]
		dequantizeQ8(b[4:], fp16(b), y)
	}
}

// QuantizeQ8_1 is ggml's quantize_row_q8_1_ref: like Q8_0, plus
// s = fp16(d·Σq). Activations use ActivationQ8_1.
func QuantizeQ8_1(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q8_1Bytes:][:q8_1Bytes]
		d, sum := quantizeQ8(x, b[4:])
		putFP16(b, d)
		putFP16(b[2:], float32(sum)*d)
	}
}

// ActivationQ8_0 quantizes activations for dot products against Q8_0,
// Q4_0, Q5_0 and IQ4_NL weights as llama.cpp's CPU backend does on x86
// (quantize_row_q8_0 of ggml-cpu with AVX/AVX2, also used by AVX-512
// builds), which is not the reference quantizer: d = amax/127 (stored as
// F16), but q = x·(127/amax) rounded half to even. The difference flips
// about one activation in 10⁴ by one step, enough to move logits by 10⁻²
// after a few layers, so matching llama.cpp's numbers needs this one.
func ActivationQ8_0(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q8_0Bytes:][:q8_0Bytes]
		d, _ := activationQ8(x, b[2:])
		putFP16(b, d)
	}
}

// ActivationQ8_1 is ActivationQ8_0 for Q4_1 and Q5_1 weights (ggml-cpu's
// x86 quantize_row_q8_1), plus s = fp16(d·Σq).
func ActivationQ8_1(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*q8_1Bytes:][:q8_1Bytes]
		d, sum := activationQ8(x, b[4:])
		putFP16(b, d)
		putFP16(b[2:], float32(sum)*d)
	}
}

// activationQ8 is the x86 CPU quantizer of one block: d = amax/127,
// q = roundeven(x·(127/amax)) (0 for an all-zero block).
func activationQ8(x []float32, qs []byte) (d float32, sum int) {
	amax, _ := absMax(x)
	d = amax / 127
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j, v := range x {
		q := int8(math.RoundToEven(float64(v * id)))
		qs[j] = byte(q)
		sum += int(q)
	}
	return d, sum
}

// inverse is ggml's id = d ? 1/d : 0 (an all-zero block has d = 0).
func inverse(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// putSignedScale is the scale of Q4_0 and Q5_0: d = vmax/div, where vmax is
// the element of largest magnitude (sign kept) and div is −2^(bits−1); it
// stores d in fp16 at b and returns 1/d for quantizing (of the float32 d).
func putSignedScale(b []byte, x []float32, div float32) (id float32) {
	_, vmax := absMax(x)
	d := vmax / div
	putFP16(b, d)
	return inverse(d)
}

// putMinScale is the scale and minimum of Q4_1 and Q5_1: d = (max−min)/levels,
// m = min, stored in fp16 at b and b[2:]; it returns min and 1/d.
func putMinScale(b []byte, x []float32, levels float32) (lo, id float32) {
	lo, hi := minMax(x)
	d := (hi - lo) / levels
	putFP16(b, d)
	putFP16(b[2:], lo)
	return lo, inverse(d)
}

// quantizeQ8 is the body of ggml's Q8_0 and Q8_1 quantizers: d = amax/127,
// qs[j] = round(x[j]/d) with halves away from zero; it returns d and Σq.
func quantizeQ8(x []float32, qs []byte) (d float32, sum int) {
	amax, _ := absMax(x)
	d = amax / 127
	id := inverse(d)
	for j, v := range x {
		q := roundInt8(v * id)
		qs[j] = byte(q)
		sum += int(q)
	}
	return d, sum
}

// dequantizeQ8 sets y[j] = q[j]·d for int8 q.
func dequantizeQ8(qs []byte, d float32, y []float32) {
	for j, q := range qs {
		y[j] = float32(int8(q)) * d
	}
}

// absMax returns the largest magnitude in x and the (signed) element that
// has it, the first one on ties, as ggml's "if (amax < fabsf(v))" loops do.
func absMax(x []float32) (amax, vmax float32) {
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	return amax, vmax
}

// minMax returns the smallest and largest element of x.
func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// truncInt8 converts like C's (int8_t)f (truncation toward zero) and returns
// the result as a byte; callers pass values in [0, 127].
func truncInt8(f float32) byte { return byte(int8(f)) }

// truncUint8 converts like C's (uint8_t)f for f in [0, 255].
func truncUint8(f float32) byte { return byte(uint8(f)) }

// roundInt8 is C's roundf (halves away from zero) stored into an int8.
func roundInt8(f float32) int8 { return int8(math.Round(float64(f))) }
