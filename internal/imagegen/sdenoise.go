package imagegen

import (
	"math"

	"mica/internal/diffusion/noise"
	"mica/internal/diffusion/sample"
)

// sdeNoise is the noise sampler A1111 gives DPM++ SDE and DPM++ 2M SDE: a
// torchsde Brownian tree from the smallest non-zero to the largest sigma of
// the pass's whole schedule (for img2img and the hires pass, the schedule
// before it is cut at the denoising strength, as A1111's
// create_noise_sampler receives it), with the image's seed as entropy and
// the request's generator (CUDA Philox or torch's CPU) for its draws.
// Other samplers get nil and draw plain noise.
func (j *imageJob) sdeNoise(pass string, sigmas []float32, n int) sample.SDENoise {
	if j.sampler != sample.DPMPPSDE && j.sampler != sample.DPMPP2MSDE {
		return nil
	}
	steps := 0
	switch pass {
	case "img2img":
		steps = j.r.Steps
	case "hires":
		if j.r.Hires != nil {
			steps = j.r.Hires.Steps
		}
	}
	if steps > 0 {
		if full, err := sample.Sigmas(j.m.table, j.sampler, j.sched, steps); err == nil {
			sigmas = full
		}
	}
	var lo, hi float32 = math.MaxFloat32, 0
	for _, s := range sigmas {
		if s > 0 {
			lo, hi = min(lo, s), max(hi, s)
		}
	}
	if hi == 0 {
		return nil
	}
	src := noise.PhiloxSource
	if j.r.RNG == "cpu" {
		src = noise.TorchCPUSource
	}
	return noise.NewBrownianNoise(lo, hi, n, 1, []uint64{uint64(j.seed)}, src)
}
