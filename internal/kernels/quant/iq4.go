package quant

import "encoding/binary"

// The 4-bit non-linear quants: each 4-bit index selects one of 16 fixed
// levels (iq4Values), scaled per 32 elements. Layouts, little-endian:
//
//	IQ4_NL (18 B per 32):  d fp16 | qs[16] — element j in qs[j]&15, j+16 in qs[j]>>4
//	IQ4_XS (136 B per 256): d fp16 | scales_h u16 | scales_l[4] | qs[128]
//	    sub-block ib (32 elements, packed like IQ4_NL) has the 6-bit scale
//	    ls = (scales_l[ib/2] >> 4·(ib%2)) & 15 | ((scales_h >> 2·ib) & 3) << 4,
//	    and x = d·(ls-32)·iq4Values[q].
//
// The per-type functions process len(dst) or len(src) elements, a multiple
// of the block size; Dequantize and Quantize check sizes.

const (
	iq4NLBytes = 2 + qk/2
	iq4XSBytes = 2 + 2 + qkK/64 + qkK/2
)

// iq4Values are ggml's kvalues_iq4nl, the IQ4 levels in increasing order.
var iq4Values = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// DequantizeIQ4_NL is ggml's dequantize_row_iq4_nl.
func DequantizeIQ4_NL(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qk; ib++ {
		b := src[ib*iq4NLBytes:][:iq4NLBytes]
		dequantizeIQ4Block(fp16(b), b[2:], dst[ib*qk:][:qk])
	}
}

// DequantizeIQ4_XS is ggml's dequantize_row_iq4_xs.
func DequantizeIQ4_XS(src []byte, dst []float32) {
	for ib := 0; ib < len(dst)/qkK; ib++ {
		b := src[ib*iq4XSBytes:][:iq4XSBytes]
		d := fp16(b)
		sh := binary.LittleEndian.Uint16(b[2:])
		sl := b[4:8]
		for j := 0; j < qkK/32; j++ {
			ls := int(sl[j/2]>>(4*(j%2))&0x0f) | int(sh>>(2*j)&3)<<4
			dequantizeIQ4Block(d*float32(ls-32), b[8+16*j:][:16], dst[ib*qkK+32*j:][:32])
		}
	}
}

// dequantizeIQ4Block expands 32 elements packed in 16 bytes with scale d.
func dequantizeIQ4Block(d float32, qs []byte, y []float32) {
	for j := 0; j < 16; j++ {
		y[j] = d * float32(iq4Values[qs[j]&0x0f])
		y[j+16] = d * float32(iq4Values[qs[j]>>4])
	}
}

// QuantizeIQ4_NL reproduces what llama-quantize writes for IQ4_NL without
// an importance matrix (ggml's quantize_iq4_nl, i.e. quantize_row_iq4_nl_impl
// with ntry = 7): per block the x²-weighted best scale over 15 trial scales,
// then every element mapped to its nearest level under that scale.
func QuantizeIQ4_NL(src []float32, dst []byte) {
	var (
		L      [qk]uint8
		weight [qk]float32
	)
	for ib := 0; ib < len(src)/qk; ib++ {
		x := src[ib*qk:][:qk]
		b := dst[ib*iq4NLBytes:][:iq4NLBytes]
		s := iq4BlockScale(x, weight[:], L[:])
		putFP16(b, s)
		var id float32
		if s != 0 {
			id = 1 / s
		}
		for j, v := range x {
			L[j] = iq4Index(id * v)
		}
		packIQ4(b[2:], L[:])
	}
}

// QuantizeIQ4_XS reproduces what llama-quantize writes for IQ4_XS without an
// importance matrix (ggml's quantize_iq4_xs, ntry = 7): per 32-element
// sub-block the best scale as for IQ4_NL, the 8 scales quantized to signed 6
// bits against d = -max/32, then elements mapped to levels under the
// quantized sub-block scales.
func QuantizeIQ4_XS(src []float32, dst []byte) {
	var (
		L      [qkK]uint8
		weight [32]float32
		scales [qkK / 32]float32
	)
	for ibl := 0; ibl < len(src)/qkK; ibl++ {
		x := src[ibl*qkK:][:qkK]
		b := dst[ibl*iq4XSBytes:][:iq4XSBytes]
		clear(b)
		var maxScale, amaxScale float32
		for ib := range scales {
			s := iq4BlockScale(x[32*ib:][:32], weight[:], L[32*ib:][:32])
			scales[ib] = s
			if a := abs32(s); a > amaxScale {
				amaxScale, maxScale = a, s
			}
		}
		d := -maxScale / 32
		putFP16(b, d)
		var id float32
		if d != 0 {
			id = 1 / d
		}
		var sh uint16
		sl := b[4:8]
		for ib := range scales {
			l := max(-32, min(31, nearestInt(id*scales[ib])))
			dl := d * float32(l)
			var idl float32
			if dl != 0 {
				idl = 1 / dl
			}
			for j, v := range x[32*ib : 32*ib+32] {
				L[32*ib+j] = iq4Index(idl * v)
			}
			l += 32
			sl[ib/2] |= byte(l&0x0f) << (4 * (ib % 2))
			sh |= uint16(l>>4) << (2 * ib)
		}
		binary.LittleEndian.PutUint16(b[2:], sh)
		for i := 0; i < qkK/32; i++ {
			packIQ4(b[8+16*i:][:16], L[32*i:][:32])
		}
	}
}

// iq4BlockScale is the per-block scale search of ggml's
// quantize_row_iq4_nl_impl without importance weights and with ntry = 7:
// starting from d = max/127, it keeps the weighted least-squares scale of the
// best of the roundings under iscale = (itry - 127)/max, itry = -7..7,
// weighting by x². Blocks whose magnitudes are all below groupMaxEps get 0.
// weight and L are scratch of len(x).
func iq4BlockScale(x, weight []float32, L []uint8) float32 {
	const ntry = 7
	var amax, vmax float32
	for j, v := range x {
		weight[j] = v * v
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	if amax < groupMaxEps {
		return 0
	}
	v0 := float32(iq4Values[0])
	d := -vmax / v0
	id := 1 / d
	var sumQX, sumQ2 float32
	for j, v := range x {
		l := iq4Index(id * v)
		L[j] = l
		q := float32(iq4Values[l])
		w := weight[j]
		sumQX += float32(w * q * v)
		sumQ2 += float32(w * q * q)
	}
	d = 0
	if sumQ2 > 0 {
		d = sumQX / sumQ2
	}
	best := d * sumQX
	for itry := -ntry; itry <= ntry; itry++ {
		id = float32(itry+int(iq4Values[0])) / vmax
		sumQX, sumQ2 = 0, 0
		for j, v := range x {
			q := float32(iq4Values[iq4Index(id*v)])
			w := weight[j]
			sumQX += float32(w * q * v)
			sumQ2 += float32(w * q * q)
		}
		if sumQ2 > 0 && sumQX*sumQX > best*sumQ2 {
			d = sumQX / sumQ2
			best = d * sumQX
		}
	}
	return d
}

// iq4Index returns the index of the level nearest to x (ggml's
// best_index_int8 over kvalues_iq4nl: a bisection, ties to the upper level).
func iq4Index(x float32) uint8 {
	x = float32(x) // an explicit rounding: keeps x = id·v from fusing into x - level
	if x <= float32(iq4Values[0]) {
		return 0
	}
	if x >= float32(iq4Values[15]) {
		return 15
	}
	lo, hi := 0, 15
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if x < float32(iq4Values[mid]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	if x-float32(iq4Values[hi-1]) < float32(iq4Values[hi])-x {
		return uint8(hi - 1)
	}
	return uint8(hi)
}

// packIQ4 stores 32 4-bit indices in 16 bytes: j in the low nibble of byte
// j, j+16 in the high nibble.
func packIQ4(qs []byte, L []uint8) {
	for j := 0; j < 16; j++ {
		qs[j] = L[j] | L[j+16]<<4
	}
}
