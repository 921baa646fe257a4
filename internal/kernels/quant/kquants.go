package quant

import (
	"encoding/binary"
	"math"
)

// The K-quants: super-blocks of 256 elements split into sub-blocks of 16 or
// 32, each with a small integer scale (and min) that is itself scaled by an
// fp16 super-block factor. Layouts, little-endian, in byte order:
//
//	Q2_K (84 B):  scales[16] (low nibble scale, high nibble min) | qs[64] 2-bit | d fp16 | dmin fp16
//	Q3_K (110 B): hmask[32] high bits | qs[64] low 2 bits | scales[12] 6-bit signed (+32) | d fp16
//	Q4_K (144 B): d fp16 | dmin fp16 | scales[12] 6-bit scales and mins | qs[128] 4-bit
//	Q5_K (176 B): d fp16 | dmin fp16 | scales[12] | qh[32] high bits | qs[128] low 4 bits
//	Q6_K (210 B): ql[128] low 4 bits | qh[64] high 2 bits | scales[16] int8 | d fp16
//	Q8_K (292 B): d float32 | qs[256] int8 | bsums[16] int16 (sums of 16 qs each)
//
// Element order inside the 2-bit and 6-bit packings is the interleaved one
// ggml uses (see the loops); it matters for exactness and for the dot
// products, so it is spelled out in each function.
//
// As with the legacy quants, the per-type functions process len(dst) or
// len(src) elements, a multiple of 256; Dequantize and Quantize check sizes.

const (
	q2KBytes = qkK/16 + qkK/4 + 4
	q3KBytes = qkK/8 + qkK/4 + 12 + 2
	q4KBytes = 4 + 12 + qkK/2
	q5KBytes = 4 + 12 + qkK/8 + qkK/2
	q6KBytes = qkK/2 + qkK/4 + qkK/16 + 2
	q8KBytes = 4 + qkK + qkK/16*2
)

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j (0..7) from the
// 12-byte Q4_K/Q5_K scales field: sub-blocks 0-3 keep them in the low 6 bits
// of bytes j and j+4; sub-blocks 4-7 split them between the nibbles of byte
// j+4 and the top two bits of bytes j-4 and j.
func scaleMinK4(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0x0f | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// putScaleMinK4 stores 6-bit scale ls and min lm of sub-block j, the inverse
// of scaleMinK4. Sub-blocks must be stored in order 0..7 into zeroed bytes.
func putScaleMinK4(j int, s []byte, ls, lm uint8) {
	if j < 4 {
		s[j] = ls
		s[j+4] = lm
		return
	}
	s[j+4] = ls&0x0f | (lm&0x0f)<<4
	s[j-4] |= (ls >> 4) << 6
	s[j] |= (lm >> 4) << 6
}

// q3KScale returns the signed 6-bit scale of sub-block j (0..15) of a Q3_K
// block: low 4 bits in a nibble of scales[j%8], high 2 bits in scales[8+j%4].
func q3KScale(j int, s []byte) int {
	var lo byte
	if j < 8 {
		lo = s[j] & 0x0f
	} else {
		lo = s[j-8] >> 4
	}
	hi := (s[8+j%4] >> (2 * (j / 4))) & 3
	return int(lo|hi<<4) - 32
}

// DequantizeQ2_K is ggml's dequantize_row_q2_K.
func DequantizeQ2_K(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*q2KBytes:][:q2KBytes]
		y := dst[ib*qkK:][:qkK]
		scales, qs := b[:16], b[16:80]
		d, dmin := fp16(b[80:]), fp16(b[82:])
		is := 0
		for n := 0; n < qkK; n += 128 {
			q := qs[n/4:][:32]
			for j := 0; j < 4; j++ {
				shift := 2 * j
				for half := 0; half < 2; half++ {
					sc := scales[is]
					is++
					dl := d * float32(sc&0x0f)
					ml := float32(dmin * float32(sc>>4)) // rounded: no FMA into the subtraction
					for l := 0; l < 16; l++ {
						v := float32((q[16*half+l] >> shift) & 3)
						y[n+32*j+16*half+l] = float32(dl*v) - ml
					}
				}
			}
		}
	}
}

// DequantizeQ3_K is ggml's dequantize_row_q3_K.
func DequantizeQ3_K(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*q3KBytes:][:q3KBytes]
		y := dst[ib*qkK:][:qkK]
		hmask, qs, scales := b[:32], b[32:96], b[96:108]
		d := fp16(b[108:])
		is := 0
		m := byte(1)
		for n := 0; n < qkK; n += 128 {
			q := qs[n/4:][:32]
			for j := 0; j < 4; j++ {
				shift := 2 * j
				for half := 0; half < 2; half++ {
					dl := d * float32(q3KScale(is, scales))
					is++
					for l := 16 * half; l < 16*half+16; l++ {
						v := int((q[l] >> shift) & 3)
						if hmask[l]&m == 0 {
							v -= 4
						}
						y[n+32*j+l] = dl * float32(v)
					}
				}
				m <<= 1
			}
		}
	}
}

// DequantizeQ4_K is ggml's dequantize_row_q4_K.
func DequantizeQ4_K(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*q4KBytes:][:q4KBytes]
		y := dst[ib*qkK:][:qkK]
		d, dmin := fp16(b), fp16(b[2:])
		scales, qs := b[4:16], b[16:]
		for j := 0; j < qkK/64; j++ {
			sc1, m1 := scaleMinK4(2*j, scales)
			sc2, m2 := scaleMinK4(2*j+1, scales)
			d1, dm1 := d*float32(sc1), float32(dmin*float32(m1)) // rounded: no FMA
			d2, dm2 := d*float32(sc2), float32(dmin*float32(m2))
			q := qs[32*j:][:32]
			for l, v := range q {
				y[64*j+l] = float32(d1*float32(v&0x0f)) - dm1
				y[64*j+32+l] = float32(d2*float32(v>>4)) - dm2
			}
		}
	}
}

// DequantizeQ5_K is ggml's dequantize_row_q5_K.
func DequantizeQ5_K(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*q5KBytes:][:q5KBytes]
		y := dst[ib*qkK:][:qkK]
		d, dmin := fp16(b), fp16(b[2:])
		scales, qh, qs := b[4:16], b[16:48], b[48:]
		for j := 0; j < qkK/64; j++ {
			sc1, m1 := scaleMinK4(2*j, scales)
			sc2, m2 := scaleMinK4(2*j+1, scales)
			d1, dm1 := d*float32(sc1), float32(dmin*float32(m1)) // rounded: no FMA
			d2, dm2 := d*float32(sc2), float32(dmin*float32(m2))
			u1, u2 := byte(1)<<(2*j), byte(2)<<(2*j)
			q := qs[32*j:][:32]
			for l, v := range q {
				lo, hi := int(v&0x0f), int(v>>4)
				if qh[l]&u1 != 0 {
					lo += 16
				}
				if qh[l]&u2 != 0 {
					hi += 16
				}
				y[64*j+l] = float32(d1*float32(lo)) - dm1
				y[64*j+32+l] = float32(d2*float32(hi)) - dm2
			}
		}
	}
}

// DequantizeQ6_K is ggml's dequantize_row_q6_K.
func DequantizeQ6_K(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*q6KBytes:][:q6KBytes]
		y := dst[ib*qkK:][:qkK]
		d := fp16(b[208:])
		for n := 0; n < qkK/128; n++ {
			ql := b[64*n:][:64]
			qh := b[128+32*n:][:32]
			sc := b[192+8*n:][:8]
			yy := y[128*n:][:128]
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int(ql[l]&0x0f|(qh[l]>>0&3)<<4) - 32
				q2 := int(ql[l+32]&0x0f|(qh[l]>>2&3)<<4) - 32
				q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				yy[l] = d * float32(int8(sc[is])) * float32(q1)
				yy[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
				yy[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
				yy[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
			}
		}
	}
}

// DequantizeQ8_K is ggml's dequantize_row_q8_K.
func DequantizeQ8_K(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*q8KBytes:][:q8KBytes]
		y := dst[ib*qkK:][:qkK]
		d := math.Float32frombits(binary.LittleEndian.Uint32(b))
		for j, q := range b[4 : 4+qkK] {
			y[j] = d * float32(int8(q))
		}
	}
}

// QuantizeQ4_K is ggml's quantize_row_q4_K_ref (what quantize_q4_K does
// without an importance matrix): per 32-element sub-block a weighted
// scale-and-min fit (makeQkx2Quants, 4 bits), the 8 scales and mins then
// quantized to 6 bits against fp16 super-block factors, and finally every
// element re-rounded against the scales as stored.
func QuantizeQ4_K(src []float32, dst []byte) {
	quantizeQ45K(src, dst, 15, -1, 20, q4KBytes)
}

// QuantizeQ5_K is ggml's quantize_row_q5_K_ref: as Q4_K with 5-bit values.
func QuantizeQ5_K(src []float32, dst []byte) {
	quantizeQ45K(src, dst, 31, -0.5, 15, q5KBytes)
}

// quantizeQ45K is the shared body of the Q4_K and Q5_K reference quantizers;
// nmax is 15 or 31 and rmin/nstep the search range of makeQkx2Quants.
func quantizeQ45K(src []float32, dst []byte, nmax int, rmin float32, nstep int, blockBytes int) {
	var (
		L       [qkK]uint8
		laux    [32]uint8
		weights [32]float32
		mins    [qkK / 32]float32
		scales  [qkK / 32]float32
	)
	for ib := 0; ib < len(src)/qkK; ib++ {
		x := src[ib*qkK:][:qkK]
		b := dst[ib*blockBytes:][:blockBytes]
		var maxScale, maxMin float32
		for j := 0; j < qkK/32; j++ {
			xs := x[32*j:][:32]
			var sumX2 float32
			for _, v := range xs {
				sumX2 += float32(v * v)
			}
			avX := sqrt32(sumX2 / 32)
			for l, v := range xs {
				weights[l] = avX + abs32(v)
			}
			scales[j], mins[j] = makeQkx2Quants(nmax, xs, weights[:], L[32*j:][:32], laux[:], rmin, 0.1, nstep, false)
			if scales[j] > maxScale {
				maxScale = scales[j]
			}
			if mins[j] > maxMin {
				maxMin = mins[j]
			}
		}

		var invScale, invMin float32
		if maxScale > 0 {
			invScale = 63 / maxScale
		}
		if maxMin > 0 {
			invMin = 63 / maxMin
		}
		sc := b[4:16]
		clear(sc)
		for j := 0; j < qkK/32; j++ {
			ls := min(63, uint8(nearestInt(invScale*scales[j])))
			lm := min(63, uint8(nearestInt(invMin*mins[j])))
			putScaleMinK4(j, sc, ls, lm)
		}
		putFP16(b, maxScale/63)
		putFP16(b[2:], maxMin/63)
		d, dmin := fp16(b), fp16(b[2:])

		for j := 0; j < qkK/32; j++ {
			s, m := scaleMinK4(j, sc)
			dl := d * float32(s)
			if dl == 0 {
				continue
			}
			dm := float32(dmin * float32(m)) // rounded: no FMA into x+dm
			for i := 0; i < 32; i++ {
				l := nearestInt((x[32*j+i] + dm) / dl)
				L[32*j+i] = uint8(max(0, min(nmax, l)))
			}
		}

		if nmax == 15 { // Q4_K: two sub-blocks per 32 bytes, low then high nibble
			qs := b[16:]
			for j := 0; j < qkK; j += 64 {
				for l := 0; l < 32; l++ {
					qs[j/2+l] = L[j+l] | L[j+l+32]<<4
				}
			}
			continue
		}
		// Q5_K: bit 4 of sub-block 2k goes to bit 2k of qh, of 2k+1 to bit 2k+1.
		qh, qs := b[16:48], b[48:]
		clear(qh)
		for n := 0; n < qkK/64; n++ {
			m1, m2 := byte(1)<<(2*n), byte(2)<<(2*n)
			for j := 0; j < 32; j++ {
				l1, l2 := L[64*n+j], L[64*n+j+32]
				if l1 > 15 {
					l1 -= 16
					qh[j] |= m1
				}
				if l2 > 15 {
					l2 -= 16
					qh[j] |= m2
				}
				qs[32*n+j] = l1 | l2<<4
			}
		}
	}
}

// QuantizeQ6_K is ggml's quantize_row_q6_K_ref: per 16-element sub-block a
// signed 6-bit fit weighted by x² (makeQxQuants), the 16 scales quantized to
// int8 against an fp16 factor, then every element re-rounded.
func QuantizeQ6_K(src []float32, dst []byte) {
	var (
		L      [qkK]int8
		scales [qkK / 16]float32
	)
	for ib := 0; ib < len(src)/qkK; ib++ {
		x := src[ib*qkK:][:qkK]
		b := dst[ib*q6KBytes:][:q6KBytes]
		var maxScale, maxAbsScale float32
		for j := 0; j < qkK/16; j++ {
			s := makeQxQuants(32, x[16*j:][:16], L[16*j:][:16])
			scales[j] = s
			if a := abs32(s); a > maxAbsScale {
				maxAbsScale, maxScale = a, s
			}
		}
		clear(b)
		if maxAbsScale < groupMaxEps {
			continue // all zeros, d = 0
		}
		iscale := -128 / maxScale
		putFP16(b[208:], 1/iscale)
		sc := b[192:208]
		for j := range scales {
			sc[j] = byte(int8(min(127, nearestInt(iscale*scales[j]))))
		}
		d := fp16(b[208:])
		for j := 0; j < qkK/16; j++ {
			dl := d * float32(int8(sc[j]))
			if dl == 0 {
				continue
			}
			for i := 0; i < 16; i++ {
				l := nearestInt(x[16*j+i] / dl)
				L[16*j+i] = int8(max(-32, min(31, l)) + 32)
			}
		}
		for n := 0; n < qkK/128; n++ {
			ql := b[64*n:][:64]
			qh := b[128+32*n:][:32]
			q := L[128*n:][:128]
			for l := 0; l < 32; l++ {
				q1, q2, q3, q4 := uint8(q[l]), uint8(q[l+32]), uint8(q[l+64]), uint8(q[l+96])
				ql[l] = q1&0x0f | (q3&0x0f)<<4
				ql[l+32] = q2&0x0f | (q4&0x0f)<<4
				qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
			}
		}
	}
}

// QuantizeQ8_K is ggml's quantize_row_q8_K_ref, the activation format for
// dot products against K-quant weights: d = max/-127 (max the element of
// largest magnitude), q = min(127, round(x/d)), and the sums of each 16
// quants. An all-zero block gets d = 0, zero quants and zero sums (ggml
// leaves the sums unwritten there).
func QuantizeQ8_K(src []float32, dst []byte) {
	for ib := 0; ib < len(src)/qkK; ib++ {
		x := src[ib*qkK:][:qkK]
		b := dst[ib*q8KBytes:][:q8KBytes]
		amax, vmax := absMax(x)
		if amax == 0 {
			clear(b)
			continue
		}
		iscale := -127 / vmax
		qs := b[4 : 4+qkK]
		for j, v := range x {
			qs[j] = byte(int8(min(127, nearestInt(iscale*v))))
		}
		for j := 0; j < qkK/16; j++ {
			sum := 0
			for _, q := range qs[16*j : 16*j+16] {
				sum += int(int8(q))
			}
			binary.LittleEndian.PutUint16(b[4+qkK+2*j:], uint16(int16(sum)))
		}
		binary.LittleEndian.PutUint32(b, math.Float32bits(1/iscale))
	}
}

// sqrt32 is C's sqrtf: the float64 square root of a float32 rounded back to
// float32 is the correctly rounded float32 square root.
func sqrt32(v float32) float32 { return float32(math.Sqrt(float64(v))) }
