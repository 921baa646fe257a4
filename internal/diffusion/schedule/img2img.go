package schedule

import (
	"fmt"
	"math"
)

// img2img starts sampling part-way down a schedule, from the noise level the
// denoising strength selects. The three front ends choose it differently:
//
//   - A1111 (default): the full schedule for N steps is computed, then
//     t_enc = ⌊min(strength, 0.999)·N⌋ (float64) and the sigmas from index
//     N − t_enc − 1 on are kept: t_enc + 1 steps run. With the option
//     "img2img_fix_steps" it instead computes a schedule of
//     ⌊N / min(strength, 0.999)⌋ steps and runs its last N.
//   - stable-diffusion.cpp: the same trimming, but t_enc = ⌊N·strength⌋ is
//     computed in float32, reduced by one if it equals N, and strength ≥ 1
//     keeps the whole schedule. It agrees with A1111 except where the
//     float32 and float64 products fall on different sides of an integer.
//   - ComfyUI (KSampler denoise): a schedule of ⌊N / denoise⌋ steps, of
//     which the last N run (like A1111's fix-steps mode, without the 0.999
//     cap).
//
// Strength 0.5 with 4 steps: A1111 and sd.cpp run 3 steps from σ(t = 666);
// ComfyUI runs 4 steps of an 8-step schedule.

// Img2ImgA1111 returns the sigmas A1111 samples for img2img: total is the
// length of the schedule it computes and tEnc+1 the steps that run.
func (tb *Table) Img2ImgA1111(kind string, steps int, strength float64, fixSteps bool) ([]float32, error) {
	if err := checkStrength(steps, strength); err != nil {
		return nil, err
	}
	s := math.Min(strength, 0.999)
	total, tEnc := steps, int(s*float64(steps))
	if fixSteps {
		if strength <= 0 {
			return nil, fmt.Errorf("schedule: img2img strength %v: fix-steps needs a strength above 0", strength)
		}
		total, tEnc = int(float64(steps)/s), steps-1
	}
	full, err := tb.Sigmas(kind, total)
	if err != nil {
		return nil, err
	}
	return Trim(full, tEnc)
}

// Img2ImgSDCPP returns the sigmas stable-diffusion.cpp samples for img2img
// (the README's "img2img" step 4).
func (tb *Table) Img2ImgSDCPP(kind string, steps int, strength float32) ([]float32, error) {
	if err := checkStrength(steps, float64(strength)); err != nil {
		return nil, err
	}
	full, err := tb.Sigmas(kind, steps)
	if err != nil {
		return nil, err
	}
	if strength >= 1 {
		return full, nil
	}
	tEnc := int(float32(float32(steps) * strength))
	if tEnc == steps {
		tEnc--
	}
	return Trim(full, tEnc)
}

// Img2ImgComfy returns the sigmas ComfyUI's KSampler samples with denoise
// below 1: the last steps+1 values of a ⌊steps/denoise⌋-step schedule.
// Denoise ≥ 0.9999 gives the full schedule.
func (tb *Table) Img2ImgComfy(kind string, steps int, denoise float64) ([]float32, error) {
	if err := checkStrength(steps, denoise); err != nil {
		return nil, err
	}
	if denoise > 0.9999 {
		return tb.Sigmas(kind, steps)
	}
	if denoise <= 0 {
		return nil, fmt.Errorf("schedule: img2img denoise %v: nothing to sample", denoise)
	}
	total := int(float64(steps) / denoise)
	if total > MaxSteps {
		return nil, fmt.Errorf("schedule: img2img of %d steps at denoise %v needs a %d-step schedule (limit %d)", steps, denoise, total, MaxSteps)
	}
	full, err := tb.Sigmas(kind, total)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), full[len(full)-steps-1:]...), nil
}

// Trim keeps the last tEnc+1 steps of a full schedule of N steps (N+1
// values): the sigmas from index N − tEnc − 1 on.
func Trim(full []float32, tEnc int) ([]float32, error) {
	n := len(full) - 1
	if n < 1 || tEnc < 0 || tEnc >= n {
		return nil, fmt.Errorf("schedule: cannot keep %d+1 steps of a %d-step schedule", tEnc, n)
	}
	return append([]float32(nil), full[n-tEnc-1:]...), nil
}

func checkStrength(steps int, strength float64) error {
	if steps < 1 || steps > MaxSteps {
		return fmt.Errorf("schedule: img2img with %d steps (need 1..%d)", steps, MaxSteps)
	}
	if math.IsNaN(strength) || strength < 0 {
		return fmt.Errorf("schedule: img2img strength %v is not ≥ 0", strength)
	}
	return nil
}
