package ops

import "math"

// RMSNorm normalises rows [rowStart, rowEnd) of x (rows of length n):
// out = x * 1/sqrt(mean(x²) + eps), then times w when w is not nil (length
// n). out may alias x.
func RMSNorm(x, w, out []float32, n int, eps float32, rowStart, rowEnd int) {
	if rowEnd <= rowStart {
		return
	}
	_ = x[rowEnd*n-1]
	_ = out[rowEnd*n-1]
	if w != nil {
		w = w[:n]
	}
	if useFast {
		rmsNormFast(x, w, out, n, eps, rowStart, rowEnd)
		return
	}
	rmsNormRef(x, w, out, n, eps, rowStart, rowEnd)
}

func rmsNormRef(x, w, out []float32, n int, eps float32, rowStart, rowEnd int) {
	for r := rowStart; r < rowEnd; r++ {
		xr, or := x[r*n:r*n+n], out[r*n:r*n+n]
		var sum float64
		for _, v := range xr {
			sum += float64(v * v)
		}
		mean := float32(sum / float64(n))
		scale := 1 / sqrt32(mean+eps)
		for i, v := range xr {
			y := v * scale
			if w != nil {
				y *= w[i]
			}
			or[i] = y
		}
	}
}

// LayerNorm normalises rows [rowStart, rowEnd) of x (length n) to zero mean
// and unit variance, then applies out = y*w + b (w, b may be nil).
func LayerNorm(x, w, b, out []float32, n int, eps float32, rowStart, rowEnd int) {
	for r := rowStart; r < rowEnd; r++ {
		xr, or := x[r*n:r*n+n], out[r*n:r*n+n]
		var sum float64
		for _, v := range xr {
			sum += float64(v)
		}
		mean := float32(sum) / float32(n)
		var sum2 float64
		for i, v := range xr {
			d := v - mean
			or[i] = d
			sum2 += float64(d * d)
		}
		variance := float32(sum2 / float64(n))
		scale := 1 / sqrt32(variance+eps)
		for i := range or {
			y := float32(or[i] * scale)
			if w != nil {
				y = float32(y * w[i]) // explicit rounding: no fused multiply-add
			}
			if b != nil {
				y += b[i]
			}
			or[i] = y
		}
	}
}

// GroupNorm normalises groups [groupStart, groupEnd) of an image x laid out
// [channels][hw]. Channels are split into groups of ceil(channels/groups)
// (the last group may be smaller, as in ggml); each group is normalised
// over all its channels and pixels, then channel c gets out = y*w[c] + b[c]
// (w, b may be nil).
func GroupNorm(x, w, b, out []float32, channels, hw, groups int, eps float32, groupStart, groupEnd int) {
	per := (channels + groups - 1) / groups
	for g := groupStart; g < groupEnd; g++ {
		c0 := g * per
		c1 := min(c0+per, channels)
		if c1 <= c0 {
			continue
		}
		xs, os := x[c0*hw:c1*hw], out[c0*hw:c1*hw]
		count := float64(len(xs))
		var sum float64
		for c := 0; c < c1-c0; c++ { // per-channel partial sums, as ggml
			var s float64
			for _, v := range xs[c*hw : c*hw+hw] {
				s += float64(v)
			}
			sum += s
		}
		mean := float32(sum / count)
		var sum2 float64
		for c := 0; c < c1-c0; c++ {
			var s float64
			for i, v := range xs[c*hw : c*hw+hw] {
				d := v - mean
				os[c*hw+i] = d
				s += float64(d * d)
			}
			sum2 += s
		}
		variance := float32(sum2 / count)
		scale := 1 / sqrt32(variance+eps)
		for c := 0; c < c1-c0; c++ {
			oc := os[c*hw : c*hw+hw]
			for i := range oc {
				y := float32(oc[i] * scale)
				if w != nil {
					y = float32(y * w[c0+c]) // no fused multiply-add
				}
				if b != nil {
					y += b[c0+c]
				}
				oc[i] = y
			}
		}
	}
}

// sqrt32 is sqrtf: the float64 square root rounded to float32 is the
// correctly rounded float32 square root.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
