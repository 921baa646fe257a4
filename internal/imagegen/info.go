package imagegen

import (
	"fmt"
	"image"
	"strconv"

	"mica/internal/diffusion/infotext"
	"mica/internal/diffusion/sample"
)

// Version is written into infotexts ("Version: mica …"); the CLI sets it.
var Version = "dev"

// infotext writes A1111's "parameters" text for one image, so A1111's PNG
// info (and mica's) can read the settings back. refiner is the refiner
// that took part in the image (nil if none did).
func (m *Model) infotext(r *Request, sampler, sched string, seed, subseed int64, refiner *Model) string {
	p := infotext.Params{Prompt: r.Prompt, Negative: r.Negative}
	set := func(k, v string) { p.Set(k, v) }
	set("Steps", strconv.Itoa(r.Steps))
	set("Sampler", samplerLabel(sampler))
	set("Schedule type", schedulerLabel(sched))
	set("CFG scale", fmtFloat(r.CFG))
	set("Seed", strconv.FormatInt(seed, 10))
	set("Size", fmt.Sprintf("%dx%d", r.Width, r.Height))
	set("Model", m.Name)
	if r.Init != nil {
		set("Denoising strength", fmtFloat(r.Strength))
	}
	if r.SubseedStrength > 0 {
		set("Variation seed", strconv.FormatInt(subseed, 10))
		set("Variation seed strength", fmtFloat(r.SubseedStrength))
	}
	if r.ClipSkip > 1 {
		set("Clip skip", strconv.Itoa(r.ClipSkip))
	}
	if r.Mask != nil {
		set("Mask blur", strconv.Itoa(r.MaskBlur))
		if r.InpaintFullRes {
			set("Inpaint area", "Only masked")
			set("Masked area padding", strconv.Itoa(r.Padding))
		}
	}
	if h := r.Hires; h != nil {
		if h.Scale > 0 {
			set("Hires upscale", fmtFloat(h.Scale))
		}
		set("Hires resize", fmt.Sprintf("%dx%d", h.Width, h.Height))
		set("Hires steps", strconv.Itoa(h.Steps))
		set("Hires upscaler", map[string]string{"latent": "Latent", "latent-nearest": "Latent (nearest)", "image": "Lanczos"}[h.Upscaler])
		set("Denoising strength", fmtFloat(h.Denoise))
	}
	if r.RNG == "cpu" {
		set("RNG", "CPU")
	}
	if refiner != nil {
		// A1111 adds these when the switch happens: the refiner's
		// short_title, "NAME [hash]" (no brackets without a hash), and
		// the switch point as set.
		name := refiner.Name
		if h := refiner.ShortHash(); h != "" {
			name += " [" + h + "]"
		}
		set("Refiner", name)
		set("Refiner switch at", fmtFloat(r.RefinerSwitchAt))
	}
	set("Version", "mica "+Version)
	return infotext.Format(p)
}

func fmtFloat(f float32) string { return strconv.FormatFloat(float64(f), 'g', -1, 32) }

// Preview is a cheap picture of a latent [4, h, w] for progress displays:
// a fixed linear map from the four latent channels to RGB (the "cheap
// approximation" A1111 offers), one pixel per latent pixel.
func (m *Model) Preview(lat []float32, w, h int) *image.RGBA {
	coef := [4][3]float32{{0.298, 0.207, 0.208}, {0.187, 0.286, 0.173}, {-0.158, 0.189, 0.264}, {-0.184, -0.271, -0.473}}
	if m.bigG != nil {
		coef = [4][3]float32{{0.3448, 0.4168, 0.4395}, {-0.1953, -0.0290, 0.0250}, {0.1074, 0.0886, -0.0163}, {-0.3730, -0.2499, -0.2088}}
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := img.PixOffset(x, y)
			for c := 0; c < 3; c++ {
				var v float32
				for k := 0; k < 4; k++ {
					v += lat[k*w*h+y*w+x] * coef[k][c]
				}
				img.Pix[o+c] = to8(v)
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}

// samplerLabel is A1111's name of a sampler ("DPM++ 2M").
func samplerLabel(name string) string {
	for _, s := range sample.Samplers() {
		if s.Name == name {
			return s.Label
		}
	}
	return name
}

// schedulerLabel is A1111's name of a schedule ("Karras").
func schedulerLabel(name string) string {
	for _, s := range sample.Schedulers() {
		if s.Name == name {
			return s.Label
		}
	}
	return name
}
