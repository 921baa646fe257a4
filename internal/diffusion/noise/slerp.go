package noise

import (
	"fmt"
	"math"
)

// Variation seeds (A1111's "subseed" and "variation strength"): the
// pipeline draws noise(seed) and noise(subseed) with the same generator kind
// and shape, then uses
//
//	noise = SlerpA1111(strength, noise(seed), noise(subseed), C, H, W)
//
// so strength 0 is the seed's noise and strength 1 the subseed's. A1111
// does this once per image, for the initial noise only; sampler noise
// continues the seed's generator.

// parallelDot is the cosine above which A1111 stops interpolating on the
// sphere and blends linearly.
const parallelDot = 0.9995

// Slerp interpolates spherically from a (t = 0) to b (t = 1), treating each
// slice as one vector. If the two are nearly parallel (cosine > 0.9995) it
// returns A1111's linear fallback a·t + b·(1−t): note that this fallback,
// like A1111's, weights a by t, the opposite of the spherical branch; it only
// triggers when a and b are (almost) the same noise, where the difference
// vanishes. Scalars are computed in float64, the result rounded once.
// a and b must have the same length.
func Slerp(t float32, a, b []float32) ([]float32, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("noise: slerp of %d and %d values: lengths differ", len(a), len(b))
	}
	dot := cosine(a, b, 0, 1, len(a))
	out := make([]float32, len(a))
	if dot > parallelDot {
		lerp(out, t, a, b)
		return out, nil
	}
	wa, wb := slerpWeights(t, dot)
	for i := range out {
		out[i] = float32(wa*float64(a[i]) + wb*float64(b[i]))
	}
	return out, nil
}

// SlerpA1111 is A1111's slerp(val, low, high) exactly as it applies to a
// latent of shape [C, H, W] (row-major): the norms and cosines are taken
// along dim 1, so every (c, w) column of H values is interpolated on its
// own sphere, and the linear fallback is chosen when the mean of all C·W
// cosines exceeds 0.9995. Arithmetic is float64 with one rounding per value
// (A1111 computes in float32, so results agree to float32 rounding, not bit
// for bit).
func SlerpA1111(t float32, a, b []float32, c, h, w int) ([]float32, error) {
	if c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("noise: slerp shape [%d %d %d] is not positive", c, h, w)
	}
	if len(a) != c*h*w || len(b) != c*h*w {
		return nil, fmt.Errorf("noise: slerp of %d and %d values, shape [%d %d %d] needs %d", len(a), len(b), c, h, w, c*h*w)
	}
	dots := make([]float64, c*w)
	mean := 0.0
	for ci := 0; ci < c; ci++ {
		for wi := 0; wi < w; wi++ {
			d := cosine(a, b, ci*h*w+wi, w, h)
			dots[ci*w+wi] = d
			mean += d
		}
	}
	out := make([]float32, len(a))
	if mean/float64(c*w) > parallelDot {
		lerp(out, t, a, b)
		return out, nil
	}
	for ci := 0; ci < c; ci++ {
		for wi := 0; wi < w; wi++ {
			wa, wb := slerpWeights(t, dots[ci*w+wi])
			for hi := 0; hi < h; hi++ {
				i := (ci*h+hi)*w + wi
				out[i] = float32(wa*float64(a[i]) + wb*float64(b[i]))
			}
		}
	}
	return out, nil
}

// cosine is the cosine of the angle between the n-element strided vectors
// of a and b starting at start.
func cosine(a, b []float32, start, stride, n int) float64 {
	var ab, aa, bb float64
	for k, i := 0, start; k < n; k, i = k+1, i+stride {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 1 // a zero vector has no direction: blend linearly
	}
	return ab / math.Sqrt(aa*bb)
}

// slerpWeights are sin((1−t)ω)/sin ω and sin(tω)/sin ω for cos ω = dot.
func slerpWeights(t float32, dot float64) (float64, float64) {
	omega := math.Acos(max(-1, min(1, dot)))
	so := math.Sin(omega)
	if so == 0 { // antiparallel: any great circle; keep the endpoints' weights linear
		return 1 - float64(t), float64(t)
	}
	return math.Sin((1-float64(t))*omega) / so, math.Sin(float64(t)*omega) / so
}

// lerp is A1111's fallback low·val + high·(1 − val).
func lerp(out []float32, t float32, a, b []float32) {
	for i := range out {
		out[i] = float32(float64(a[i])*float64(t) + float64(b[i])*(1-float64(t)))
	}
}
