package imagegen

import (
	"fmt"
	"image"
	"strings"
)

// Request is one generation: txt2img when Init is nil, img2img with Init,
// inpainting with Init and Mask. Zero fields take the defaults of
// Defaults().
type Request struct {
	Prompt, Negative string
	Width, Height    int
	Steps            int
	CFG              float32
	Sampler          string // any accepted name; may carry a schedule ("DPM++ 2M Karras")
	Scheduler        string // "" or "automatic": the sampler's default
	Seed             int64  // −1: random
	Subseed          int64  // variation seed (−1: random when SubseedStrength > 0)
	SubseedStrength  float32
	RNG              string // "philox" (A1111's default "GPU" source, torch CUDA randn) or "cpu" (torch CPU)
	ClipSkip         int    // 0: the model's default (1 for SD 1.x, 2 for SDXL)
	BatchSize        int    // images per batch (seeds Seed, Seed+1, …)
	BatchCount       int    // batches

	// img2img and inpainting.
	Init     image.Image
	Strength float32 // denoising strength in (0, 1]
	// StepRule chooses how img2img turns Steps and Strength into the steps
	// that run: "a1111" (default) or "sdcpp" (stable-diffusion.cpp's).
	StepRule string
	// EmptyNegative is what an empty negative prompt means on SDXL:
	// "a1111" (default; the uncond context and pooled vector are zeros, as
	// SGM's force_zero_embeddings) or "sdcpp" (only the context is zeroed;
	// the pooled vector is that of encoding "", as stable-diffusion.cpp).
	EmptyNegative string
	Mask          image.Image // white: repaint; black: keep
	MaskBlur      int         // pixels (Gaussian radius, as A1111's mask_blur)
	// InpaintFill is what the masked area starts from: "original"
	// (default), "fill" (blurred surrounding colours), "noise" (latent
	// noise), "nothing" (latent zeros).
	InpaintFill string
	// InpaintFullRes repaints only the masked region (its bounding box
	// grown by Padding pixels) at the full output resolution, then pastes
	// it back.
	InpaintFullRes bool
	Padding        int

	// Outpaint pads the init picture and paints the border.
	Outpaint *Outpaint

	// Hires fix: a second pass at Scale× the size.
	Hires *Hires

	// SDXL refiner, A1111's way (its refiner_checkpoint and
	// refiner_switch_at): the sampler runs with this model's denoiser
	// until the switch point, then goes on with Refiner's on the same
	// latent, sigma schedule and sampler state. With a hires fix the
	// refiner takes part in the second pass only (A1111's default
	// "Hires fix: which pass to enable refiner for"). Refiner is the
	// loaded model, which the caller resolves from RefinerCheckpoint (the
	// API's name; Generate refuses a name without a model); nil, or this
	// very model, means no refiner.
	RefinerCheckpoint string
	Refiner           *Model
	// RefinerSwitchAt is the fraction of the denoising done before the
	// switch, in (0, 1]; 0 means 0.8 (A1111's default). As A1111 decides
	// it (sd_samplers_common.apply_refiner): at every denoiser call the
	// nearest timestep t of the model's 1000-entry σ table to the call's
	// σ gives the progress (999 − t)/1000, and the refiner takes over at
	// the first call where that reaches RefinerSwitchAt. 1 never switches.
	RefinerSwitchAt float32
	// AestheticScore and NegativeAestheticScore condition an SDXL
	// refiner's prompt and negative prompt; 0 means 6 and 2.5 (SGM's and
	// A1111's defaults).
	AestheticScore, NegativeAestheticScore float32
}

// Hires is A1111's "hires fix": upscale the first pass, then denoise again.
type Hires struct {
	Scale    float32 // e.g. 2
	Width    int     // or explicit sizes (0: from Scale)
	Height   int
	Upscaler string  // "latent" (bilinear on latents, default) or "latent-nearest" or "image" (decode, resize, encode)
	Steps    int     // 0: same as the first pass
	Denoise  float32 // denoising strength of the second pass (default 0.7)
}

// Limits bound what a request may ask for (from the configuration).
type Limits struct {
	MaxPixels int // width·height of the output (hires included)
	MaxSteps  int
	MaxBatch  int // BatchSize·BatchCount
}

// DefaultLimits allow up to 2048×2048, 150 steps and 16 images a request.
func DefaultLimits() Limits { return Limits{MaxPixels: 2048 * 2048, MaxSteps: 150, MaxBatch: 16} }

// Notice is a change the pipeline made to a request, to tell the user.
type Notice string

// Normalize fills defaults, rounds sizes as A1111 does (down to a multiple
// of 8) and checks limits; it returns the notices for what it changed.
func (r *Request) Normalize(lim Limits, native int) ([]Notice, error) {
	var notes []Notice
	if err := r.applyOutpaint(); err != nil {
		return nil, err
	}
	if r.Width == 0 {
		r.Width = native
		if r.Init != nil { // img2img: the picture's size
			r.Width = r.Init.Bounds().Dx()
		}
	}
	if r.Height == 0 {
		r.Height = native
		if r.Init != nil {
			r.Height = r.Init.Bounds().Dy()
		}
	}
	if r.Width < 0 || r.Height < 0 {
		return nil, fmt.Errorf("size %dx%d: width and height must be positive", r.Width, r.Height)
	}
	if w, h := r.Width/8*8, r.Height/8*8; w != r.Width || h != r.Height {
		notes = append(notes, Notice(fmt.Sprintf("size %dx%d rounded down to %dx%d (a multiple of 8, as A1111 does)", r.Width, r.Height, w, h)))
		r.Width, r.Height = w, h
	}
	if r.Width < 64 || r.Height < 64 {
		return nil, fmt.Errorf("size %dx%d: width and height must be at least 64", r.Width, r.Height)
	}
	if r.Steps == 0 {
		r.Steps = 20
	}
	if r.Steps < 0 || (lim.MaxSteps > 0 && r.Steps > lim.MaxSteps) {
		return nil, fmt.Errorf("steps %d: must be between 1 and %d", r.Steps, lim.MaxSteps)
	}
	if r.CFG == 0 {
		r.CFG = 7
	}
	if r.CFG < 0 || r.CFG > 100 {
		return nil, fmt.Errorf("cfg scale %g: must be between 0 and 100", r.CFG)
	}
	if r.Sampler == "" {
		r.Sampler = "Euler a"
	}
	if r.RNG == "" {
		r.RNG = "philox"
	}
	r.RNG = strings.ToLower(r.RNG)
	switch r.RNG {
	case "philox", "gpu", "cuda":
		r.RNG = "philox"
	case "cpu":
	default:
		return nil, fmt.Errorf("rng %q: use philox (A1111's GPU source) or cpu", r.RNG)
	}
	if r.BatchSize == 0 {
		r.BatchSize = 1
	}
	if r.BatchCount == 0 {
		r.BatchCount = 1
	}
	if r.BatchSize < 0 || r.BatchCount < 0 || (lim.MaxBatch > 0 && r.BatchSize*r.BatchCount > lim.MaxBatch) {
		return nil, fmt.Errorf("batch %d×%d: at most %d images a request", r.BatchSize, r.BatchCount, lim.MaxBatch)
	}
	if r.ClipSkip < 0 || r.ClipSkip > 12 {
		return nil, fmt.Errorf("clip skip %d: must be between 1 and 12", r.ClipSkip)
	}
	switch r.EmptyNegative {
	case "", "a1111", "sdcpp":
	default:
		return nil, fmt.Errorf("empty-negative rule %q: use a1111 or sdcpp", r.EmptyNegative)
	}
	if r.Init != nil {
		if r.Strength == 0 {
			r.Strength = 0.75
		}
		if r.Strength < 0 || r.Strength > 1 {
			return nil, fmt.Errorf("denoising strength %g: must be in (0, 1]", r.Strength)
		}
		switch r.StepRule {
		case "", "a1111":
			r.StepRule = "a1111"
		case "sdcpp":
		default:
			return nil, fmt.Errorf("img2img step rule %q: use a1111 or sdcpp", r.StepRule)
		}
	} else if r.Mask != nil {
		return nil, fmt.Errorf("a mask needs an init image")
	}
	if r.Mask != nil {
		mb, ib := r.Mask.Bounds(), r.Init.Bounds()
		if mb.Dx() != ib.Dx() || mb.Dy() != ib.Dy() {
			return nil, fmt.Errorf("mask is %dx%d but the init image is %dx%d: they must have the same size", mb.Dx(), mb.Dy(), ib.Dx(), ib.Dy())
		}
		switch r.InpaintFill {
		case "":
			r.InpaintFill = "original"
		case "original", "fill", "noise", "nothing":
		default:
			return nil, fmt.Errorf("inpaint fill %q: use original, fill, noise or nothing", r.InpaintFill)
		}
		if r.MaskBlur < 0 || r.MaskBlur > 64 || r.Padding < 0 {
			return nil, fmt.Errorf("mask blur %d / padding %d out of range", r.MaskBlur, r.Padding)
		}
	}
	if r.RefinerSwitchAt == 0 {
		r.RefinerSwitchAt = 0.8
	}
	if !(r.RefinerSwitchAt > 0 && r.RefinerSwitchAt <= 1) {
		return nil, fmt.Errorf("refiner switch at %g: must be in (0, 1]", r.RefinerSwitchAt)
	}
	pixels := r.Width * r.Height
	if h := r.Hires; h != nil {
		if h.Scale == 0 && h.Width == 0 {
			h.Scale = 2
		}
		if h.Width == 0 {
			h.Width = int(float32(r.Width)*h.Scale) / 8 * 8
			h.Height = int(float32(r.Height)*h.Scale) / 8 * 8
		}
		if h.Height == 0 {
			h.Height = r.Height * h.Width / r.Width / 8 * 8
		}
		h.Width, h.Height = h.Width/8*8, h.Height/8*8
		if h.Width < r.Width || h.Height < r.Height {
			return nil, fmt.Errorf("hires size %dx%d is smaller than the first pass %dx%d", h.Width, h.Height, r.Width, r.Height)
		}
		if h.Denoise == 0 {
			h.Denoise = 0.7
		}
		if h.Denoise < 0 || h.Denoise > 1 {
			return nil, fmt.Errorf("hires denoising strength %g: must be in (0, 1]", h.Denoise)
		}
		if h.Steps == 0 {
			h.Steps = r.Steps
		}
		if h.Steps < 0 || (lim.MaxSteps > 0 && h.Steps > lim.MaxSteps) {
			return nil, fmt.Errorf("hires steps %d: must be between 1 and %d", h.Steps, lim.MaxSteps)
		}
		switch h.Upscaler {
		case "":
			h.Upscaler = "latent"
		case "latent", "latent-nearest", "image":
		default:
			return nil, fmt.Errorf("hires upscaler %q: use latent, latent-nearest or image", h.Upscaler)
		}
		pixels = h.Width * h.Height
	}
	if lim.MaxPixels > 0 && pixels > lim.MaxPixels {
		return nil, fmt.Errorf("%d pixels requested: the limit is %d (e.g. %dx%d)", pixels, lim.MaxPixels, isqrt(lim.MaxPixels), isqrt(lim.MaxPixels))
	}
	return notes, nil
}

func isqrt(n int) int {
	r := 0
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}
