package imagegen

import (
	"context"
	"fmt"
	"strings"

	"mica/internal/diffusion/sample"
	"mica/internal/diffusion/schedule"
	"mica/internal/models/sd"
)

// refiner is a request's second model (Request.Refiner) with its text
// conditioning, made once per request at the size of the pass it joins.
type refiner struct {
	m    *Model
	at   float32 // Request.RefinerSwitchAt
	c, u cond
}

// newRefiner checks that r's refiner can continue this model's latents and
// encodes the prompts for it; nil when the request has no refiner.
func (m *Model) newRefiner(r *Request) (*refiner, error) {
	rm := r.Refiner
	if rm == nil {
		if n := strings.TrimSpace(r.RefinerCheckpoint); n != "" && !strings.EqualFold(n, "none") {
			return nil, fmt.Errorf("refiner %q is not loaded (the caller resolves refiner_checkpoint into Request.Refiner)", n)
		}
		return nil, nil
	}
	if rm == m {
		return nil, nil // A1111: the refiner is the loaded model, nothing to switch to
	}
	switch {
	case rm.Kind.IsSDXL() != m.Kind.IsSDXL():
		return nil, fmt.Errorf("refiner %s is %s but the model %s is %s: their latents differ", rm.Name, rm.Kind, m.Name, m.Kind)
	case rm.ucfg.InChannels != 4:
		return nil, fmt.Errorf("refiner %s: an inpainting checkpoint (%d input channels) cannot refine", rm.Name, rm.ucfg.InChannels)
	}
	w, h := r.Width, r.Height
	if hr := r.Hires; hr != nil {
		w, h = hr.Width, hr.Height // the refiner joins the hires pass only
	}
	c, u, err := rm.conditioning(r, w, h)
	if err != nil {
		return nil, fmt.Errorf("refiner %s: %w", rm.Name, err)
	}
	return &refiner{m: rm, at: r.RefinerSwitchAt, c: c, u: u}, nil
}

// refinerDue is A1111's switch rule (sd_samplers_common.apply_refiner,
// the default since 1.7, when "Switch to refiner by sampling steps" is
// off): the index t of the table σ nearest to sigma (the first on a tie,
// as torch.argmin) is the model timestep, the progress is (999 − t)/1000
// in float32 (torch divides the integer tensor into float32 and compares
// with the float setting in float32), and the refiner takes over once the
// progress reaches at. For 20 discrete ("Automatic") steps and 0.8 that
// is the first step whose timestep is ≤ 199: step 16 (0-based), so the
// base model runs 16 steps and the refiner 4.
func refinerDue(tb *schedule.Table, sigma, at float32) bool {
	best, bestD := 0, float32(-1)
	for i := 0; i < tb.Len(); i++ {
		d := tb.Sigma(i) - sigma
		if d < 0 {
			d = -d
		}
		if bestD < 0 || d < bestD {
			best, bestD = i, d
		}
	}
	done := float32(tb.Len()-1-best) / float32(tb.Len())
	return done >= at
}

// refinerJoins: the refiner takes part in this pass (A1111's default
// hires_fix_refiner_pass "second pass": with a hires fix, only there).
func (j *imageJob) refinerJoins(pass string) bool {
	if j.ref == nil {
		return false
	}
	if j.r.Hires != nil {
		return pass == "hires"
	}
	return true
}

// withRefiner returns the denoiser a pass samples with: base's, which
// hands over to the refiner's at the first call refinerDue allows (the
// check runs at every call, as A1111's does, so a second-order step may
// switch between its two evaluations). The sampler and its state (its
// history, the latent, the σ schedule, the noise generator) go on
// unchanged. free releases the refiner's buffers.
func (j *imageJob) withRefiner(pass string, base *denoiser, w, h int) (d sample.Denoiser, free func()) {
	if !j.refinerJoins(pass) {
		return base.denoise, func() {}
	}
	var rd *denoiser
	d = func(ctx context.Context, x []float32, sigma float32, step int) ([]float32, error) {
		if rd == nil && refinerDue(j.m.table, sigma, j.ref.at) {
			var err error
			if rd, err = j.ref.m.newDenoiser(j.ref.c, j.ref.u, j.r.CFG, w, h, nil); err != nil {
				return nil, fmt.Errorf("refiner %s: %w", j.ref.m.Name, err)
			}
			rd.keep = base.keep
			j.refined, j.refinedAt = true, step
		}
		if rd != nil {
			return rd.denoise(ctx, x, sigma, step)
		}
		return base.denoise(ctx, x, sigma, step)
	}
	return d, func() {
		if rd != nil {
			rd.free()
		}
	}
}

// refinedWith is the refiner if it took part in the image, else nil.
func (j *imageJob) refinedWith() *Model {
	if j.refined {
		return j.ref.m
	}
	return nil
}

// decoder is the model whose VAE decodes the image.
func (j *imageJob) decoder() *Model {
	if j.refined {
		return j.ref.m
	}
	return j.m
}

// stepModel names the model that made the latest step.
func (j *imageJob) stepModel() string {
	if j.refined {
		return j.ref.m.Name
	}
	return j.m.Name
}

// refinerAlone is the notice for txt2img on a refiner without a base
// model: A1111 runs it without comment, but the refiner was trained on
// the low-noise end of the schedule only (SDXL report, §2.5: the first
// 200 timesteps), so from pure noise it makes poor pictures.
func refinerAlone(m *Model, r *Request) []Notice {
	if m.Kind != sd.SDXLRefiner || r.Init != nil {
		return nil
	}
	return []Notice{Notice(fmt.Sprintf("%s is an SDXL refiner: txt2img with it alone is unusual (it was trained for the last, low-noise part of denoising); use it for img2img or as --refiner of an SDXL base model", m.Name))}
}
