// Package schedule holds the noise table of a discrete-time (DDPM) diffusion
// model and the sigma schedules samplers walk: discrete, Karras,
// exponential, SGM uniform, simple, DDIM uniform, LCM, and the img2img
// trimming rules of A1111, ComfyUI and stable-diffusion.cpp.
//
// Arithmetic follows stable-diffusion.cpp (the reference engine of the
// shared test cases) operation by operation, in float32 where it uses
// float and in float64 where it calls the double functions, so schedules
// match its printed values bit for bit.
package schedule

import (
	"fmt"
	"math"
)

// Table is a model's noise table: σ_i = √((1 − ᾱ_i)/ᾱ_i) for the training
// timesteps i = 0..T−1, and log σ_i, both float32.
type Table struct {
	sigmas    []float32
	logSigmas []float32
}

// NewScaledLinear builds the table of the "scaled_linear" β schedule used by
// SD 1.x, SD 2.x and SDXL (betaStart 0.00085, betaEnd 0.012, 1000 steps), in
// float32 exactly as sd.cpp's calculate_alphas_cumprod:
// β_i = (√βs + (√βe − √βs)·(i/(T−1)))², ᾱ_i = ∏_{j≤i}(1 − β_j).
func NewScaledLinear(betaStart, betaEnd float64, steps int) (*Table, error) {
	if steps < 2 {
		return nil, fmt.Errorf("schedule: %d training timesteps, need at least 2", steps)
	}
	if !(betaStart > 0 && betaEnd > betaStart && betaEnd < 1) {
		return nil, fmt.Errorf("schedule: betas %v..%v: need 0 < start < end < 1", betaStart, betaEnd)
	}
	lsSqrt := sqrt32(float32(betaStart))
	leSqrt := sqrt32(float32(betaEnd))
	amount := leSqrt - lsSqrt
	product := float32(1)
	ac := make([]float32, steps)
	for i := range ac {
		frac := float32(i) / float32(steps-1)
		beta := lsSqrt + float32(amount*frac)
		product *= 1 - float32(beta*beta)
		ac[i] = product
	}
	return NewFromAlphasCumprod(ac)
}

// NewFromAlphasCumprod builds the table from ᾱ values, such as the
// `alphas_cumprod` buffer some checkpoints carry (sd.cpp prefers it over the
// computed one when it has 1000 valid values). Every value must be finite
// and in (0, 1].
func NewFromAlphasCumprod(ac []float32) (*Table, error) {
	if len(ac) < 2 {
		return nil, fmt.Errorf("schedule: alphas_cumprod has %d values, need at least 2", len(ac))
	}
	tb := &Table{sigmas: make([]float32, len(ac)), logSigmas: make([]float32, len(ac))}
	for i, a := range ac {
		if !(a > 0 && a <= 1) || math.IsInf(float64(a), 0) {
			return nil, fmt.Errorf("schedule: alphas_cumprod[%d] = %v is not in (0, 1]", i, a)
		}
		tb.sigmas[i] = sqrt32((1 - a) / a)
		tb.logSigmas[i] = log32(tb.sigmas[i])
	}
	for i := 1; i < len(ac); i++ {
		if !(tb.sigmas[i] > tb.sigmas[i-1]) {
			return nil, fmt.Errorf("schedule: alphas_cumprod is not strictly decreasing at %d (σ %v after %v)", i, tb.sigmas[i], tb.sigmas[i-1])
		}
	}
	return tb, nil
}

// Len is the number of training timesteps T.
func (tb *Table) Len() int { return len(tb.sigmas) }

// SigmaMin is σ at t = 0.
func (tb *Table) SigmaMin() float32 { return tb.sigmas[0] }

// SigmaMax is σ at t = T−1.
func (tb *Table) SigmaMax() float32 { return tb.sigmas[len(tb.sigmas)-1] }

// Sigma is the tabulated σ_i.
func (tb *Table) Sigma(i int) float32 { return tb.sigmas[i] }

// AlphaCumprod is ᾱ at timestep i, recomputed from σ_i as 1/(σ_i² + 1).
func (tb *Table) AlphaCumprod(i int) float64 {
	s := float64(tb.sigmas[i])
	return 1 / (s*s + 1)
}

// TToSigma is σ(t) for a fractional timestep: exp of log σ interpolated
// linearly between floor(t) and ceil(t), in float32 as sd.cpp. t is clamped
// to [0, T−1].
func (tb *Table) TToSigma(t float32) float32 {
	t = max(0, min(float32(len(tb.sigmas)-1), t))
	lo := int(math.Floor(float64(t)))
	hi := int(math.Ceil(float64(t)))
	w := t - float32(lo)
	logSigma := float32((1-w)*tb.logSigmas[lo]) + float32(w*tb.logSigmas[hi])
	return exp32(logSigma)
}

// SigmaToT is the fractional timestep of σ: find the table interval that
// holds log σ, interpolate the index linearly in log σ (float32, as
// sd.cpp's CompVisDenoiser::sigma_to_t). It is what the UNet receives as its
// timestep; it is not rounded.
func (tb *Table) SigmaToT(sigma float32) float32 {
	logSigma := log32(sigma)
	n := len(tb.logSigmas)
	low := 0
	for _, ls := range tb.logSigmas {
		if logSigma-ls >= 0 {
			low++
		}
	}
	low = min(max(low-1, 0), n-2)
	high := low + 1
	lo, hi := tb.logSigmas[low], tb.logSigmas[high]
	w := (lo - logSigma) / (lo - hi)
	w = max(0, min(1, w))
	return float32((1-w)*float32(low)) + float32(w*float32(high))
}

// The float32 functions of the C library (logf, expf, sqrtf), correctly
// rounded: the float64 result rounded once to float32.
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
