package imagegen

import (
	"context"
	"fmt"
	"image"
	"math"
	"time"

	"golang.org/x/image/draw"

	"mica/internal/compute"
	"mica/internal/diffusion/schedule"
)

// encode turns pixels (planar [3, H, W] in [−1, 1]) into a latent:
// scale·(mean + exp(½·clamp(logvar, −30, 20))·ε). With eps nil the mean
// is used (no sampling).
func (m *Model) encode(px []float32, W, H int, eps []float32) ([]float32, error) {
	x, err := compute.FromF32(m.b, px, 1, 3, H, W)
	if err != nil {
		return nil, err
	}
	defer m.b.Free(x)
	mean, logvar, err := m.vae.Encode(m.b, x)
	if err != nil {
		return nil, err
	}
	defer m.b.Free(mean)
	defer m.b.Free(logvar)
	mu, err := compute.ToF32(mean)
	if err != nil {
		return nil, err
	}
	if eps != nil {
		lv, err := compute.ToF32(logvar)
		if err != nil {
			return nil, err
		}
		for i := range mu {
			l := min(max(lv[i], -30), 20)
			mu[i] += float32(math.Exp(float64(0.5*l))) * eps[i]
		}
	}
	for i := range mu {
		mu[i] *= m.scale
	}
	return mu, nil
}

// img2imgSigmas picks the steps an img2img pass runs from the full
// schedule of steps, by the request's rule.
func img2imgSigmas(tb *schedule.Table, sched string, steps int, strength float32, rule string) ([]float32, error) {
	if rule == "sdcpp" {
		return tb.Img2ImgSDCPP(sched, steps, strength)
	}
	return tb.Img2ImgA1111(sched, steps, float64(strength), false)
}

func (j *imageJob) img2img(ctx context.Context, w, h int) ([]float32, error) {
	m, r := j.m, j.r
	init := resizeTo(r.Init, r.Width, r.Height)
	var mask *image.Gray
	var region image.Rectangle
	if r.Mask != nil {
		mask = maskGray(r.Mask)
		if r.InpaintFullRes {
			region = expandToAspect(maskBounds(mask, r.Padding), r.Init.Bounds(), r.Width, r.Height)
			init = resizeTo(cropImage(r.Init, region), r.Width, r.Height)
			mask = maskGray(resizeTo(cropImage(mask, region), r.Width, r.Height))
		} else {
			mask = maskGray(resizeTo(mask, r.Width, r.Height))
		}
		if r.MaskBlur > 0 {
			mask = blurGray(mask, r.MaskBlur)
		}
		if r.InpaintFill == "fill" {
			init = fillMasked(init, mask)
		}
	}
	px, W, H := fromImage(init)
	// The VAE's posterior is sampled with the seed's first noise draw; the
	// generator is then re-seeded, so the initial noise repeats those
	// values (stable-diffusion.cpp's order, which its references follow).
	eps, err := j.initialNoise(w, h)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	lat, err := m.encode(px, W, H, eps)
	j.t.Encode += time.Since(t0)
	if err != nil {
		return nil, err
	}
	sigmas, err := img2imgSigmas(m.table, j.sched, r.Steps, r.Strength, r.StepRule)
	if err != nil {
		return nil, err
	}
	x, err := j.initialNoise(w, h)
	if err != nil {
		return nil, err
	}
	var keep *latentMask
	var extra []float32
	if mask != nil {
		keep = newLatentMask(mask, lat, w, h)
		switch r.InpaintFill {
		case "noise":
			for i := range lat {
				lat[i] = lat[i]*keep.keep[i%(w*h)] + x[i]*(1-keep.keep[i%(w*h)])
			}
		case "nothing":
			for i := range lat {
				lat[i] *= keep.keep[i%(w*h)]
			}
		}
		keep.init = lat
		if m.ucfg.InChannels == 9 {
			if extra, err = m.inpaintConditioning(px, mask, w, h); err != nil {
				return nil, err
			}
			keep = nil // the inpainting UNet sees the mask itself
		}
	} else if m.ucfg.InChannels == 9 {
		if extra, err = m.inpaintConditioning(px, nil, w, h); err != nil {
			return nil, err
		}
	}
	for i := range x {
		x[i] = lat[i] + x[i]*sigmas[0]
	}
	out, err := j.sample(ctx, "img2img", x, sigmas, keep, extra, w, h)
	if err != nil {
		return nil, err
	}
	j.region = region
	return out, nil
}

// inpaintConditioning is the extra input of a 9-channel inpainting UNet:
// the mask at latent size (1 channel, rounded) and the latent of the
// picture with the masked part blanked (4 channels). With no picture it
// conditions on mid-grey, fully masked (txt2img on an inpainting model).
func (m *Model) inpaintConditioning(px []float32, mask *image.Gray, w, h int) ([]float32, error) {
	W, H := 8*w, 8*h
	img := make([]float32, 3*W*H)
	lm := make([]float32, w*h)
	for i := range lm {
		lm[i] = 1
	}
	if px != nil {
		copy(img, px)
		if mask != nil {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					lm[y*w+x] = float32(math.Round(float64(mask.GrayAt(8*x+4, 8*y+4).Y) / 255))
				}
			}
			for c := 0; c < 3; c++ {
				for y := 0; y < H; y++ {
					for x := 0; x < W; x++ {
						if mask.GrayAt(x, y).Y >= 128 {
							img[c*W*H+y*W+x] = 0
						}
					}
				}
			}
		} else {
			clear(lm)
		}
	}
	lat, err := m.encode(img, W, H, nil)
	if err != nil {
		return nil, err
	}
	return append(lm, lat...), nil
}

// latentMask keeps the unmasked part of the initial latent while sampling
// (A1111: denoised = init·keep + denoised·(1−keep) after every step, and
// once more on the result).
type latentMask struct {
	keep   []float32 // per latent pixel: 1 keep, 0 repaint
	init   []float32
	before bool
}

func newLatentMask(mask *image.Gray, init []float32, w, h int) *latentMask {
	k := make([]float32, w*h)
	small := maskGray(resizeTo(mask, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			k[y*w+x] = 1 - float32(math.Round(float64(small.GrayAt(x, y).Y)/255))
		}
	}
	return &latentMask{keep: k, init: init}
}

func (l *latentMask) apply(x []float32) {
	n := len(l.keep)
	for i := range x {
		k := l.keep[i%n]
		x[i] = l.init[i]*k + x[i]*(1-k)
	}
}

// hires runs A1111's hires fix: upscale the first pass, then an img2img
// pass at the hires denoising strength with fresh seed noise.
func (j *imageJob) hires(ctx context.Context, lat []float32, w, h int) ([]float32, int, int, error) {
	m, hr := j.m, j.r.Hires
	W, H := hr.Width/8, hr.Height/8
	var up []float32
	switch hr.Upscaler {
	case "latent", "latent-nearest":
		up = resizeLatent(lat, w, h, W, H, hr.Upscaler == "latent-nearest")
	case "image":
		img, err := m.decode(lat, w, h)
		if err != nil {
			return nil, 0, 0, err
		}
		px, PW, PH := fromImage(resizeTo(img, hr.Width, hr.Height))
		if up, err = m.encode(px, PW, PH, nil); err != nil {
			return nil, 0, 0, err
		}
	default:
		return nil, 0, 0, fmt.Errorf("hires upscaler %q", hr.Upscaler)
	}
	sigmas, err := img2imgSigmas(m.table, j.sched, hr.Steps, hr.Denoise, "a1111")
	if err != nil {
		return nil, 0, 0, err
	}
	x, err := j.initialNoise(W, H)
	if err != nil {
		return nil, 0, 0, err
	}
	for i := range x {
		x[i] = up[i] + x[i]*sigmas[0]
	}
	var extra []float32
	if m.ucfg.InChannels == 9 {
		if extra, err = m.inpaintConditioning(nil, nil, W, H); err != nil {
			return nil, 0, 0, err
		}
	}
	out, err := j.sample(ctx, "hires", x, sigmas, nil, extra, W, H)
	return out, W, H, err
}

// resizeLatent scales a [4, h, w] latent to [4, H, W], bilinearly (align
// corners off, like torch's interpolate) or nearest.
func resizeLatent(lat []float32, w, h, W, H int, nearest bool) []float32 {
	out := make([]float32, 4*W*H)
	for c := 0; c < 4; c++ {
		src, dst := lat[c*w*h:(c+1)*w*h], out[c*W*H:(c+1)*W*H]
		for y := 0; y < H; y++ {
			fy := (float64(y)+0.5)*float64(h)/float64(H) - 0.5
			for x := 0; x < W; x++ {
				fx := (float64(x)+0.5)*float64(w)/float64(W) - 0.5
				if nearest {
					sx, sy := min(x*w/W, w-1), min(y*h/H, h-1)
					dst[y*W+x] = src[sy*w+sx]
					continue
				}
				x0, y0 := int(math.Floor(fx)), int(math.Floor(fy))
				ax, ay := float32(fx-float64(x0)), float32(fy-float64(y0))
				at := func(xx, yy int) float32 {
					xx, yy = min(max(xx, 0), w-1), min(max(yy, 0), h-1)
					return src[yy*w+xx]
				}
				top := at(x0, y0)*(1-ax) + at(x0+1, y0)*ax
				bot := at(x0, y0+1)*(1-ax) + at(x0+1, y0+1)*ax
				dst[y*W+x] = top*(1-ay) + bot*ay
			}
		}
	}
	return out
}

// resizeTo scales an image to W×H (Catmull-Rom; a copy when the size
// already matches).
func resizeTo(src image.Image, W, H int) image.Image {
	b := src.Bounds()
	if b.Dx() == W && b.Dy() == H {
		return src
	}
	dst := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}
