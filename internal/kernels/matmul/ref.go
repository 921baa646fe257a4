package matmul

import (
	"encoding/binary"
	"math"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// The plain-Go kernels. Quantized dot products mirror ggml's generic
// ggml_vec_dot_<type>_<vec type> functions: exact integer sums per block,
// then float32 scaling and accumulation in the same order as ggml. Products
// are wrapped in float32(...) so that no Go port fuses them into an FMA
// (ggml's reference rounds each product). F32/F16/BF16 dot products follow
// tinyBLAS's lane order (floatorder.go).

// kvaluesIQ4NL is the IQ4_NL/IQ4_XS non-linear 4-bit code book (GGUF format).
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

func f16(b []byte) float32   { return quant.FP16ToFP32(binary.LittleEndian.Uint16(b)) }
func f32le(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

type refDot func(w, x []byte, nb int) float32

func refDotFor(wt tensor.DType) refDot {
	switch wt {
	case tensor.Q4_0:
		return dotQ4_0
	case tensor.Q4_1:
		return dotQ4_1
	case tensor.Q5_0:
		return dotQ5_0
	case tensor.Q5_1:
		return dotQ5_1
	case tensor.Q8_0:
		return dotQ8_0
	case tensor.IQ4_NL:
		return dotIQ4_NL
	case tensor.Q2_K:
		return dotQ2_K
	case tensor.Q3_K:
		return dotQ3_K
	case tensor.Q4_K:
		return dotQ4_K
	case tensor.Q5_K:
		return dotQ5_K
	case tensor.Q6_K:
		return dotQ6_K
	case tensor.IQ4_XS:
		return dotIQ4_XS
	}
	return nil
}

func mulRowsRef(wt tensor.DType, w []byte, rb, cols int, p *Prepared, y []float32, ldy, r0, r1 int) {
	switch wt {
	case tensor.F32, tensor.F16, tensor.BF16:
		row := make([]float32, cols)
		for r := r0; r < r1; r++ {
			widenRow(wt, w[r*rb:(r+1)*rb], row)
			for j := 0; j < p.N; j++ {
				y[j*ldy+r] = floatDotRef(wt, row, p.F32[j*cols:(j+1)*cols])
			}
		}
		return
	}
	dot := refDotFor(wt)
	nb := cols / wt.BlockSize()
	for r := r0; r < r1; r++ {
		wr := w[r*rb : (r+1)*rb]
		for j := 0; j < p.N; j++ {
			y[j*ldy+r] = dot(wr, p.Q[j*p.RowBytes:(j+1)*p.RowBytes], nb)
		}
	}
}

// widenRow converts one F32/F16/BF16 row to float32 exactly.
func widenRow(wt tensor.DType, src []byte, dst []float32) {
	for k := range dst {
		switch wt {
		case tensor.F32:
			dst[k] = f32le(src[4*k:])
		case tensor.F16:
			dst[k] = f16(src[2*k:])
		case tensor.BF16:
			dst[k] = quant.BF16ToFP32(binary.LittleEndian.Uint16(src[2*k:]))
		}
	}
}

func dotQ8_0(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a, b := w[i*34:i*34+34], x[i*34:i*34+34]
		sumi := int32(0)
		for j := 0; j < 32; j++ {
			sumi += int32(int8(a[2+j])) * int32(int8(b[2+j]))
		}
		sumf += float32(float32(sumi) * (f16(a) * f16(b)))
	}
	return sumf
}

func dotQ4_0(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a, b := w[i*18:i*18+18], x[i*34:i*34+34]
		var s0, s1 int32
		for j := 0; j < 16; j++ {
			s0 += (int32(a[2+j]&15) - 8) * int32(int8(b[2+j]))
			s1 += (int32(a[2+j]>>4) - 8) * int32(int8(b[2+16+j]))
		}
		sumf += float32(float32(s0+s1) * f16(a) * f16(b))
	}
	return sumf
}

func dotQ4_1(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a, b := w[i*20:i*20+20], x[i*36:i*36+36]
		var s0, s1 int32
		for j := 0; j < 16; j++ {
			s0 += int32(a[4+j]&15) * int32(int8(b[4+j]))
			s1 += int32(a[4+j]>>4) * int32(int8(b[4+16+j]))
		}
		sumf += float32(float32((f16(a)*f16(b))*float32(s0+s1)) + float32(f16(a[2:])*f16(b[2:])))
	}
	return sumf
}

func dotQ5_0(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a, b := w[i*22:i*22+22], x[i*34:i*34+34]
		qh := binary.LittleEndian.Uint32(a[2:])
		var s0, s1 int32
		for j := 0; j < 16; j++ {
			h0 := int32(qh>>j&1) << 4
			h1 := int32(qh>>(j+16)&1) << 4
			s0 += (int32(a[6+j]&15) | h0 - 16) * int32(int8(b[2+j]))
			s1 += (int32(a[6+j]>>4) | h1 - 16) * int32(int8(b[2+16+j]))
		}
		sumf += float32((f16(a) * f16(b)) * float32(s0+s1))
	}
	return sumf
}

func dotQ5_1(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a, b := w[i*24:i*24+24], x[i*36:i*36+36]
		qh := binary.LittleEndian.Uint32(a[4:])
		var s0, s1 int32
		for j := 0; j < 16; j++ {
			h0 := int32(qh>>j&1) << 4
			h1 := int32(qh>>(j+16)&1) << 4
			s0 += (int32(a[8+j]&15) | h0) * int32(int8(b[4+j]))
			s1 += (int32(a[8+j]>>4) | h1) * int32(int8(b[4+16+j]))
		}
		sumf += float32(float32((f16(a)*f16(b))*float32(s0+s1)) + float32(f16(a[2:])*f16(b[2:])))
	}
	return sumf
}

func dotIQ4_NL(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a, b := w[i*18:i*18+18], x[i*34:i*34+34]
		d := f16(b) * f16(a)
		var s1, s2 int32
		for j := 0; j < 16; j++ {
			s1 += int32(int8(b[2+j])) * int32(kvaluesIQ4NL[a[2+j]&15])
			s2 += int32(int8(b[2+16+j])) * int32(kvaluesIQ4NL[a[2+j]>>4])
		}
		sumf += float32(d * float32(s1+s2))
	}
	return sumf
}

// q8K splits a Q8_K block into its scale, quants and 16-element sums.
func q8K(b []byte) (d float32, qs []byte, bsum func(j int) int32) {
	return f32le(b), b[4:260], func(j int) int32 { return int32(int16(binary.LittleEndian.Uint16(b[260+2*j:]))) }
}

func dotQ2_K(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		a := w[i*84 : i*84+84]
		yd, q8, bsum := q8K(x[i*292 : i*292+292])
		sc, q2 := a[:16], a[16:80]
		summs := int32(0)
		for j := 0; j < 16; j++ {
			summs += bsum(j) * int32(sc[j]>>4)
		}
		dall := yd * f16(a[80:])
		dmin := yd * f16(a[82:])
		isum := int32(0)
		is := 0
		q8o := 0
		for k := 0; k < 2; k++ {
			for shift := 0; shift < 8; shift += 2 {
				for half := 0; half < 2; half++ {
					d := int32(sc[is] & 15)
					is++
					isuml := int32(0)
					for l := half * 16; l < half*16+16; l++ {
						isuml += int32(int8(q8[q8o+l])) * int32(q2[k*32+l]>>shift&3)
					}
					isum += d * isuml
				}
				q8o += 32
			}
		}
		sumf += float32(float32(dall*float32(isum)) - float32(dmin*float32(summs)))
	}
	return sumf
}

// kScales8 accumulates ggml's 8-lane integer sums over 16-element groups:
// aux[l] += scale(group) * q8[g*16+l'] * a[g*16+l'] for the two halves of
// each group, exactly as the generic K-quant vec_dots do.
func kAccumulate(aux *[8]int32, q8 []byte, a *[256]int8, scale func(g int) int32) {
	for g := 0; g < 16; g++ {
		s := scale(g)
		for h := 0; h < 2; h++ {
			o := g*16 + h*8
			for l := 0; l < 8; l++ {
				aux[l] += s * int32(int16(int8(q8[o+l]))*int16(a[o+l]))
			}
		}
	}
}

// kScaleMin unpacks the 6-bit scales and mins of Q4_K/Q5_K (12 bytes).
func kScaleMin(s []byte) (sc, mn [8]uint8) {
	for j := 0; j < 8; j++ {
		if j < 4 {
			sc[j] = s[j] & 63
			mn[j] = s[j+4] & 63
		} else {
			sc[j] = s[j+4]&15 | (s[j-4]>>6)<<4
			mn[j] = s[j+4]>>4 | (s[j]>>6)<<4
		}
	}
	return
}

func dotQ3_K(w, x []byte, nb int) float32 {
	var sums [8]float32
	for i := 0; i < nb; i++ {
		blk := w[i*110 : i*110+110]
		yd, q8, _ := q8K(x[i*292 : i*292+292])
		hm, q3, s := blk[:32], blk[32:96], blk[96:108]
		var a [256]int8
		m := uint8(1)
		for j := 0; j < 2; j++ {
			for shift := 0; shift < 8; shift += 2 {
				for l := 0; l < 32; l++ {
					v := int8(q3[j*32+l] >> shift & 3)
					if hm[l]&m == 0 {
						v -= 4
					}
					a[j*128+shift/2*32+l] = v
				}
				m <<= 1
			}
		}
		var scales [16]int32
		for j := 0; j < 16; j++ {
			var v uint8
			if j < 8 {
				v = s[j] & 15
			} else {
				v = s[j-8] >> 4
			}
			v |= (s[8+j%4] >> (2 * (j / 4)) & 3) << 4
			scales[j] = int32(v) - 32
		}
		var aux [8]int32
		kAccumulate(&aux, q8, &a, func(g int) int32 { return scales[g] })
		d := f16(blk[108:]) * yd
		for l := 0; l < 8; l++ {
			sums[l] += float32(d * float32(aux[l]))
		}
	}
	var sumf float32
	for _, v := range sums {
		sumf += v
	}
	return sumf
}

func dotQ45K(w, x []byte, nb, bsz int, five bool) float32 {
	var sums [8]float32
	var sumf float32
	for i := 0; i < nb; i++ {
		blk := w[i*bsz : i*bsz+bsz]
		yd, q8, bsum := q8K(x[i*292 : i*292+292])
		q4 := blk[16:144]
		var qh []byte
		if five {
			qh, q4 = blk[16:48], blk[48:176]
		}
		var a [256]int8
		for j := 0; j < 4; j++ {
			for l := 0; l < 32; l++ {
				lo, hi := q4[j*32+l]&15, q4[j*32+l]>>4
				if five {
					if qh[l]>>(2*j)&1 != 0 {
						lo += 16
					}
					if qh[l]>>(2*j+1)&1 != 0 {
						hi += 16
					}
				}
				a[j*64+l], a[j*64+32+l] = int8(lo), int8(hi)
			}
		}
		sc, mn := kScaleMin(blk[4:16])
		sumi := int32(0)
		for j := 0; j < 16; j++ {
			sumi += bsum(j) * int32(mn[j/2])
		}
		var aux [8]int32
		kAccumulate(&aux, q8, &a, func(g int) int32 { return int32(sc[g/2]) })
		d := f16(blk) * yd
		for l := 0; l < 8; l++ {
			sums[l] += float32(d * float32(aux[l]))
		}
		dmin := f16(blk[2:]) * yd
		sumf -= float32(dmin * float32(sumi))
	}
	for _, v := range sums {
		sumf += v
	}
	return sumf
}

func dotQ4_K(w, x []byte, nb int) float32 { return dotQ45K(w, x, nb, 144, false) }
func dotQ5_K(w, x []byte, nb int) float32 { return dotQ45K(w, x, nb, 176, true) }

func dotQ6_K(w, x []byte, nb int) float32 {
	var sums [8]float32
	for i := 0; i < nb; i++ {
		blk := w[i*210 : i*210+210]
		yd, q8, _ := q8K(x[i*292 : i*292+292])
		var a [256]int8
		for h := 0; h < 2; h++ {
			ql, qh := blk[h*64:h*64+64], blk[128+h*32:128+h*32+32]
			for l := 0; l < 32; l++ {
				a[h*128+l] = int8(ql[l]&15|(qh[l]&3)<<4) - 32
				a[h*128+l+32] = int8(ql[l+32]&15|(qh[l]>>2&3)<<4) - 32
				a[h*128+l+64] = int8(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				a[h*128+l+96] = int8(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			}
		}
		var aux [8]int32
		kAccumulate(&aux, q8, &a, func(g int) int32 { return int32(int8(blk[192+g])) })
		d := f16(blk[208:]) * yd
		for l := 0; l < 8; l++ {
			sums[l] += float32(d * float32(aux[l]))
		}
	}
	var sumf float32
	for _, v := range sums {
		sumf += v
	}
	return sumf
}

func dotIQ4_XS(w, x []byte, nb int) float32 {
	var sumf float32
	for i := 0; i < nb; i++ {
		blk := w[i*136 : i*136+136]
		yd, q8, _ := q8K(x[i*292 : i*292+292])
		d4d8 := f16(blk) * yd
		h := binary.LittleEndian.Uint16(blk[2:])
		qs := blk[8:]
		for ib := 0; ib < 8; ib++ {
			ls := int32(blk[4+ib/2]>>(4*(ib%2))&15) | int32(h>>(2*ib)&3)<<4
			dl := d4d8 * float32(ls-32)
			var s1, s2 int32
			for j := 0; j < 16; j++ {
				s1 += int32(int8(q8[ib*32+j])) * int32(kvaluesIQ4NL[qs[ib*16+j]&15])
				s2 += int32(int8(q8[ib*32+16+j])) * int32(kvaluesIQ4NL[qs[ib*16+j]>>4])
			}
			sumf += float32(dl * float32(s1+s2))
		}
	}
	return sumf
}
