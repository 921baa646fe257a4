// Package sample runs the k-diffusion samplers (Euler, Euler a, Heun, DPM2,
// DPM++ 2S a, DPM++ 2M, DPM++ SDE, DPM++ 2M SDE, DDIM, LCM, UniPC) over a
// denoiser callback, on flat float32 latents. It knows nothing of models:
// the caller's Denoiser applies c_in, the network, CFG and D = x − σ·ε.
//
// The updates follow stable-diffusion.cpp's denoiser.hpp operation by
// operation where it has the sampler (every scalar float32, except where it
// calls the double ln/exp, element-wise float32 with explicit conversions so
// Go never fuses a multiply and add), so euler, euler_a and dpm++2m
// reproduce its latents bit for bit given the same denoiser outputs and
// noise. DPM++ SDE and UniPC, which sd.cpp lacks, follow k-diffusion and
// ComfyUI with float64 scalars.
//
// Noise for stochastic samplers comes from Options.Noise, one Randn(len(x))
// call per injection in the order sd.cpp draws: euler_a draws after every
// step but the last, so with the Philox generator that drew the initial
// noise at offset 0 it uses offsets 1..N−1. k-diffusion's DPM++ SDE and
// DPM++ 2M SDE take their noise from a Brownian tree over [σ_min, σ_max]
// (Options.SDENoise, noise.BrownianNoise), queried at the step's two
// sigmas, which is what makes A1111's and ComfyUI's pictures with these
// samplers reproducible; without it they draw plain per-step noise from
// Options.Noise, as sd.cpp's dpm++2m_sde does.
//
// DDIM is the Euler-ancestral update with η (default 0): in σ-space that is
// exactly DDIM's update on the variance-preserving latent, as sd.cpp's
// ddim_trailing uses it. Its default schedule, ddim_uniform, is A1111's
// DDIM timestep grid; A1111's own DDIM loop ends at ᾱ of timestep 0
// (σ_min ≈ 0.029) rather than σ = 0, a small difference on the last step.
// LCM sets x ← D and adds fresh noise at σ_next (sd.cpp, ComfyUI); its
// default schedule is sgm_uniform, as ComfyUI recommends for LCM models.
package sample

import (
	"context"
	"errors"
	"fmt"
	"math"

	"mica/internal/diffusion/noise"
	"mica/internal/diffusion/schedule"
)

// Denoiser returns the denoised estimate D(x; σ) for the latent x at noise
// level sigma. step is the 0-based sampling step the evaluation belongs to
// (both evaluations of a second-order step share it). The returned slice
// must have len(x) values; Run copies it, so the denoiser may reuse its
// buffers. The sampler does not keep x beyond the call.
type Denoiser func(ctx context.Context, x []float32, sigma float32, step int) ([]float32, error)

// Options tune a run.
type Options struct {
	// Noise draws the noise of stochastic samplers (required by euler_a,
	// dpm++2s_a, dpm++sde, dpm++2m_sde, lcm, and ddim with eta > 0).
	Noise noise.Generator
	// Eta scales the injected noise: 0 means the sampler's default (1 for
	// the ancestral and SDE samplers, 0 for ddim); a negative value means
	// exactly 0 (no noise, deterministic).
	Eta float32
	// SNoise multiplies every noise draw (k-diffusion's s_noise); 0 means 1.
	SNoise float32
	// SDENoise, if set, gives DPM++ SDE and DPM++ 2M SDE their noise
	// (k-diffusion's noise_sampler); it must be built over the sigmas Run
	// receives (noise.NewBrownianNoise with their smallest non-zero and
	// largest value).
	SDENoise SDENoise
	// OnStep, if set, is called after every sampling step with the step
	// number (0-based), the number of steps, the new x and the denoised
	// estimate of that step. The slices are only valid during the call.
	OnStep func(step, total int, x, denoised []float32)
}

// SDENoise is k-diffusion's noise_sampler(σ, σ_next): standard-normal
// noise for the interval between two sigmas, len(x) values.
type SDENoise interface {
	Noise(sigma, sigmaNext float32) []float32
}

// ErrNoNoise is returned when a stochastic sampler runs without Options.Noise.
var ErrNoNoise = errors.New("sample: the sampler injects noise but Options.Noise is nil")

// Run samples from x (the initial latent, already noised to sigmas[0])
// along sigmas (decreasing, normally ending in 0; len(sigmas)−1 steps) and
// returns the final latent. x is not modified. The context is checked
// before every step; on cancellation Run returns the latent reached so far
// with ctx.Err().
func Run(ctx context.Context, sampler string, d Denoiser, x []float32, sigmas []float32, o Options) ([]float32, error) {
	info, ok := lookup(sampler)
	if !ok {
		return nil, fmt.Errorf("sample: unknown sampler %q", sampler)
	}
	if d == nil {
		return nil, errors.New("sample: nil denoiser")
	}
	if len(x) == 0 {
		return nil, errors.New("sample: empty latent")
	}
	if len(sigmas) < 1 {
		return nil, errors.New("sample: empty sigma schedule")
	}
	for i, s := range sigmas {
		if !(s >= 0) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("sample: sigma[%d] = %v is not a finite value ≥ 0", i, s)
		}
		if i > 0 && s > sigmas[i-1] {
			return nil, fmt.Errorf("sample: sigmas increase at %d (%v after %v)", i, s, sigmas[i-1])
		}
	}
	for i := 0; i+1 < len(sigmas); i++ {
		if sigmas[i] == 0 {
			return nil, fmt.Errorf("sample: sigma[%d] is 0 before the last step", i)
		}
	}
	r := &runner{
		ctx:    ctx,
		d:      d,
		x:      append([]float32(nil), x...),
		sigmas: sigmas,
		n:      len(sigmas) - 1,
		eta:    o.Eta,
		snoise: o.SNoise,
		noise:  o.Noise,
		sde:    o.SDENoise,
		onStep: o.OnStep,
	}
	if r.eta == 0 {
		r.eta = info.defaultEta
	}
	r.eta = max(r.eta, 0)
	if r.snoise == 0 {
		r.snoise = 1
	}
	if r.needsNoise(info.Name) && r.noise == nil {
		return nil, ErrNoNoise
	}
	if r.n == 0 {
		return r.x, nil
	}
	err := info.run(r)
	return r.x, err
}

// Sigmas is the schedule A1111 gives a sampler: tb.Sigmas(scheduler, steps),
// except for samplers with DiscardPenultimate (DPM2), which get a schedule of
// steps+1 with the sigma before the final 0 removed. sd.cpp does not discard;
// call tb.Sigmas directly to match it.
func Sigmas(tb *schedule.Table, sampler, scheduler string, steps int) ([]float32, error) {
	info, ok := lookup(sampler)
	if !ok {
		return nil, fmt.Errorf("sample: unknown sampler %q", sampler)
	}
	if !info.DiscardPenultimate || steps < 1 {
		return tb.Sigmas(scheduler, steps)
	}
	s, err := tb.Sigmas(scheduler, steps+1)
	if err != nil {
		return nil, err
	}
	return schedule.DiscardPenultimate(s), nil
}

// runner is one sampling run: the state the update functions share.
type runner struct {
	ctx    context.Context
	d      Denoiser
	x      []float32
	sigmas []float32
	n      int
	eta    float32
	snoise float32
	noise  noise.Generator
	sde    SDENoise
	onStep func(step, total int, x, denoised []float32)
}

// needsNoise: the sampler injects noise and some step ends above σ = 0.
func (r *runner) needsNoise(name string) bool {
	noisyStep := r.n >= 1 && r.sigmas[1] > 0
	switch name {
	case DPMPPSDE, DPMPP2MSDE:
		return noisyStep && r.eta > 0 && r.sde == nil
	case EulerA, DPMPP2SA, DDIM:
		return noisyStep && r.eta > 0
	case LCM:
		return noisyStep
	}
	return false
}

// check is the cancellation point between steps.
func (r *runner) check() error { return r.ctx.Err() }

// denoise evaluates D(x; σ) and checks the result's length.
func (r *runner) denoise(x []float32, sigma float32, step int) ([]float32, error) {
	den, err := r.d(r.ctx, x, sigma, step)
	if err != nil {
		return nil, err
	}
	if len(den) != len(x) {
		return nil, fmt.Errorf("sample: denoiser returned %d values for a latent of %d at step %d", len(den), len(x), step)
	}
	return append([]float32(nil), den...), nil
}

// randn draws one noise tensor, already multiplied by s_noise.
func (r *runner) randn() ([]float32, error) {
	z := r.noise.Randn(len(r.x))
	if len(z) != len(r.x) {
		return nil, fmt.Errorf("sample: noise generator returned %d values, want %d", len(z), len(r.x))
	}
	if r.snoise != 1 {
		for i := range z {
			z[i] *= r.snoise
		}
	}
	return z, nil
}

// sdeNoise is the noise for the interval σ → σ_next, already multiplied by
// s_noise: the Brownian tree's when there is one, else a fresh draw.
func (r *runner) sdeNoise(sigma, sigmaNext float32) ([]float32, error) {
	if r.sde == nil {
		return r.randn()
	}
	z := r.sde.Noise(sigma, sigmaNext)
	if len(z) != len(r.x) {
		return nil, fmt.Errorf("sample: SDE noise returned %d values, want %d", len(z), len(r.x))
	}
	if r.snoise != 1 {
		for i := range z {
			z[i] *= r.snoise
		}
	}
	return z, nil
}

// addSDENoise adds amp·z to x, z the noise for σ → σ_next (sdeNoise).
func (r *runner) addSDENoise(x []float32, sigma, sigmaNext, amp float32) error {
	z, err := r.sdeNoise(sigma, sigmaNext)
	if err != nil {
		return err
	}
	for j := range x {
		x[j] += float32(z[j] * amp) // rounded: no fused multiply-add
	}
	return nil
}

// addNoise adds amp·z to x, element-wise float32 (sd.cpp's x += randn·amp).
func (r *runner) addNoise(amp float32) error {
	z, err := r.randn()
	if err != nil {
		return err
	}
	for i := range r.x {
		r.x[i] += float32(z[i] * amp)
	}
	return nil
}

func (r *runner) stepDone(step int, denoised []float32) {
	if r.onStep != nil {
		r.onStep(step, r.n, r.x, denoised)
	}
}

// ancestral is k-diffusion's get_ancestral_step in float32, as sd.cpp:
// σ_up = min(σ_to, η·√(σ_to²(σ_from² − σ_to²)/σ_from²)), σ_down = √(σ_to² − σ_up²).
func ancestral(from, to, eta float32) (down, up float32) {
	if eta <= 0 {
		return to, 0
	}
	from2, to2 := from*from, to*to
	if from2 > 0 {
		term := float32(to2*(from2-to2)) / from2
		up = min(to, float32(eta*sqrt32(max(term, 0))))
	}
	down2 := to2 - float32(up*up)
	if down2 > 0 {
		down = sqrt32(down2)
	}
	return down, up
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
