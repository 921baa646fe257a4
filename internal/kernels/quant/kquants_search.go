package quant

// The scale searches behind the K-quant reference quantizers, and the Q2_K
// and Q3_K quantizers built on them. Each reproduces ggml's float32
// arithmetic operation for operation, in ggml's order: sums accumulate in
// float32 element by element, products that are then added are rounded to
// float32 first (no FMA), and candidate scales are tried in ggml's order with
// ggml's strict comparisons, so ties resolve the same way.

// makeQkx2Quants fits x ≈ scale·L - theMin with L in [0, nmax], minimising
// the weighted error (squared, or absolute with useMad). It starts from the
// plain min/max grid and then tries nstep+1 scales iscale = (nmax + rmin +
// rdelta·is)/(max-min), solving the weighted least-squares scale and min for
// each rounding. It is ggml's make_qkx2_quants; L and laux hold len(x)
// entries. min is clamped to ≤ 0, so theMin ≥ 0.
func makeQkx2Quants(nmax int, x, weights []float32, L, laux []uint8, rmin, rdelta float32, nstep int, useMad bool) (scale, theMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		for i := range L[:n] {
			L[i] = 0
		}
		return 0, -lo
	}
	fnmax := float32(nmax)
	iscale := fnmax / (hi - lo)
	scale = 1 / iscale
	var bestError float32
	for i := 0; i < n; i++ {
		l := nearestInt(iscale * (x[i] - lo))
		L[i] = uint8(max(0, min(nmax, l)))
		diff := float32(scale*float32(L[i])) + lo - x[i]
		if useMad {
			diff = abs32(diff)
		} else {
			diff = diff * diff
		}
		bestError += float32(weights[i] * diff)
	}
	if nstep < 1 {
		return scale, -lo
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + fnmax) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := 0; i < n; i++ {
			l := max(0, min(nmax, nearestInt(iscale*(x[i]-lo))))
			laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(w * fl * fl)
			sumXL += float32(w * fl * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i := 0; i < n; i++ {
				diff := float32(thisScale*float32(laux[i])) + thisMin - x[i]
				if useMad {
					diff = abs32(diff)
				} else {
					diff = diff * diff
				}
				curError += float32(weights[i] * diff)
			}
			if curError < bestError {
				copy(L[:n], laux[:n])
				bestError = curError
				scale = thisScale
				lo = thisMin
			}
		}
	}
	return scale, -lo
}

// makeQxQuants fits x ≈ scale·(L - nmax) with L in [0, 2·nmax), weighting
// each element by x², trying iscale = -(nmax + 0.1·is)/max for is in
// -9..9 and keeping the best weighted least-squares fit. It is ggml's
// make_qx_quants with rmse_type 1 and no importance weights (the only form
// the reference quantizers use).
func makeQxQuants(nmax int, x []float32, L []int8) float32 {
	var amax, vmax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	if amax < groupMaxEps {
		for i := range x {
			L[i] = 0
		}
		return 0
	}
	fnmax := float32(nmax)
	clampL := func(l int) int { return max(-nmax, min(nmax-1, l)) }

	iscale := -fnmax / vmax
	var sumLX, sumL2 float32
	for i, v := range x {
		l := clampL(nearestInt(iscale * v))
		L[i] = int8(l + nmax)
		w := v * v
		fl := float32(l)
		sumLX += float32(w * v * fl)
		sumL2 += float32(w * fl * fl)
	}
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(fnmax + float32(0.1*float32(is))) / vmax
		sumLX, sumL2 = 0, 0
		for _, v := range x {
			l := clampL(nearestInt(iscale * v))
			w := v * v
			fl := float32(l)
			sumLX += float32(w * v * fl)
			sumL2 += float32(w * fl * fl)
		}
		if sumL2 > 0 && sumLX*sumLX > best*sumL2 {
			for i, v := range x {
				L[i] = int8(nmax + clampL(nearestInt(iscale*v)))
			}
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}

// makeQ3Quants fits x ≈ scale·L with L in [-nmax, nmax), weighting by x²:
// it rounds against -nmax/max, then refines element by element (up to five
// passes) while moving one element to its locally optimal level improves the
// fit. L is returned offset by +nmax. It is ggml's make_q3_quants with
// do_rmse set, as quantize_row_q3_K_ref calls it.
func makeQ3Quants(nmax int, x []float32, L []int8) float32 {
	var amax, vmax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	if amax < groupMaxEps {
		for i := range x {
			L[i] = 0
		}
		return 0
	}
	clampL := func(l int) int { return max(-nmax, min(nmax-1, l)) }
	iscale := -float32(nmax) / vmax
	var sumLX, sumL2 float32
	for i, v := range x {
		l := clampL(nearestInt(iscale * v))
		L[i] = int8(l)
		w := v * v
		fl := float32(l)
		sumLX += float32(w * v * fl)
		sumL2 += float32(w * fl * fl)
	}
	for itry := 0; itry < 5; itry++ {
		changed := 0
		for i, v := range x {
			w := v * v
			li := float32(L[i])
			slx := sumLX - float32(w*v*li)
			if slx > 0 {
				sl2 := sumL2 - float32(w*li*li)
				newL := clampL(nearestInt(v * sl2 / slx))
				if newL != int(L[i]) {
					fl := float32(newL)
					slx += float32(w * v * fl)
					sl2 += float32(w * fl * fl)
					if sl2 > 0 && slx*slx*sumL2 > sumLX*sumLX*sl2 {
						L[i] = int8(newL)
						sumLX, sumL2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range x {
		L[i] += int8(nmax)
	}
	if sumL2 > 0 {
		return sumLX / sumL2
	}
	return 0
}

// QuantizeQ2_K is ggml's quantize_row_q2_K_ref: per 16-element sub-block a
// scale-and-min fit minimising the |x|-weighted absolute error (2 bits), the
// 16 scales and mins quantized to 4 bits against fp16 factors, then every
// element re-rounded against the stored values.
func QuantizeQ2_K(src []float32, dst []byte) {
	var (
		L       [qkK]uint8
		laux    [16]uint8
		weights [16]float32
		mins    [qkK / 16]float32
		scales  [qkK / 16]float32
	)
	const q4scale = 15
	for ib := 0; ib < len(src)/qkK; ib++ {
		x := src[ib*qkK:][:qkK]
		b := dst[ib*q2KBytes:][:q2KBytes]
		var maxScale, maxMin float32
		for j := 0; j < qkK/16; j++ {
			xs := x[16*j:][:16]
			for l, v := range xs {
				weights[l] = abs32(v)
			}
			scales[j], mins[j] = makeQkx2Quants(3, xs, weights[:], L[16*j:][:16], laux[:], -0.5, 0.1, 15, true)
			if scales[j] > maxScale {
				maxScale = scales[j]
			}
			if mins[j] > maxMin {
				maxMin = mins[j]
			}
		}

		sc := b[:16]
		clear(sc)
		if maxScale > 0 {
			iscale := q4scale / maxScale
			for j := range sc {
				sc[j] = uint8(nearestInt(iscale * scales[j]))
			}
			putFP16(b[80:], maxScale/q4scale)
		} else {
			putFP16(b[80:], 0)
		}
		if maxMin > 0 {
			iscale := q4scale / maxMin
			for j := range sc {
				sc[j] |= uint8(nearestInt(iscale*mins[j]) << 4)
			}
			putFP16(b[82:], maxMin/q4scale)
		} else {
			putFP16(b[82:], 0)
		}
		d, dmin := fp16(b[80:]), fp16(b[82:])
		for j := 0; j < qkK/16; j++ {
			dl := d * float32(sc[j]&0x0f)
			if dl == 0 {
				continue
			}
			dm := float32(dmin * float32(sc[j]>>4)) // rounded: no FMA into x+dm
			for i := 0; i < 16; i++ {
				l := nearestInt((x[16*j+i] + dm) / dl)
				L[16*j+i] = uint8(max(0, min(3, l)))
			}
		}
		packQ2(b[16:80], L[:])
	}
}

// packQ2 stores 256 2-bit values: byte 32k+l of each 128-element half holds
// elements l, l+32, l+64, l+96 of that half in bits 0-1, 2-3, 4-5, 6-7.
func packQ2(qs []byte, L []uint8) {
	for j := 0; j < qkK; j += 128 {
		for l := 0; l < 32; l++ {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

// QuantizeQ3_K is ggml's quantize_row_q3_K_ref: per 16-element sub-block a
// signed 3-bit fit (makeQ3Quants), the 16 scales quantized to signed 6 bits
// against an fp16 factor, then every element re-rounded; the third bit of
// each value goes to hmask (bit k of hmask[i] for element 32k+i).
func QuantizeQ3_K(src []float32, dst []byte) {
	var (
		L      [qkK]int8
		scales [qkK / 16]float32
	)
	for ib := 0; ib < len(src)/qkK; ib++ {
		x := src[ib*qkK:][:qkK]
		b := dst[ib*q3KBytes:][:q3KBytes]
		var maxScale, amax float32
		for j := 0; j < qkK/16; j++ {
			scales[j] = makeQ3Quants(4, x[16*j:][:16], L[16*j:][:16])
			if a := abs32(scales[j]); a > amax {
				amax, maxScale = a, scales[j]
			}
		}

		sc := b[96:108]
		clear(sc)
		if maxScale != 0 {
			iscale := -32 / maxScale
			for j := 0; j < qkK/16; j++ {
				l := int8(nearestInt(iscale * scales[j]))
				l = max(-32, min(31, l)) + 32
				if j < 8 {
					sc[j] = byte(l & 0x0f)
				} else {
					sc[j-8] |= byte(l&0x0f) << 4
				}
				l >>= 4
				sc[j%4+8] |= byte(l) << (2 * (j / 4))
			}
			putFP16(b[108:], 1/iscale)
		} else {
			putFP16(b[108:], 0)
		}

		d := fp16(b[108:])
		for j := 0; j < qkK/16; j++ {
			dl := d * float32(q3KScale(j, sc))
			if dl == 0 {
				continue
			}
			for i := 0; i < 16; i++ {
				l := nearestInt(x[16*j+i] / dl)
				L[16*j+i] = int8(max(-4, min(3, l)) + 4)
			}
		}

		hmask := b[:32]
		clear(hmask)
		var L2 [qkK]uint8
		for j := 0; j < qkK; j++ {
			l := uint8(L[j])
			if l > 3 {
				hmask[j%32] |= 1 << (j / 32)
				l -= 4
			}
			L2[j] = l
		}
		packQ2(b[32:96], L2[:])
	}
}
