package imagegen

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"time"

	"mica/internal/compute"
	"mica/internal/diffusion/noise"
	"mica/internal/diffusion/sample"
)

// Image is one generated picture with what made it.
type Image struct {
	RGBA     *image.RGBA
	Seed     int64
	Subseed  int64
	Infotext string // A1111's "parameters" text
}

// Progress is reported after every sampler step.
type Progress struct {
	Image, Images int // 0-based image index, total images
	Step, Steps   int // 1-based step within the current pass, its total
	Pass          string
	Model         string // the checkpoint that made the step (the refiner's name once it took over)
	// Latent is the current denoised estimate [4, h, w] (for previews:
	// see Preview); valid only during the callback.
	Latent           []float32
	LatentW, LatentH int
}

// Action is what a progress callback asks for.
type Action int

// Actions.
const (
	Continue  Action = iota
	Skip             // finish the current image now (its denoised estimate) and go on with the next
	Interrupt        // finish the current image now and stop the request
)

// Result is everything a request produced.
type Result struct {
	Images      []Image
	Notices     []Notice
	Interrupted bool // stopped early on request
	Timings     Timings
}

// Timings splits a request's time by stage.
type Timings struct {
	Text, Sampling, Decode, Encode time.Duration
	Steps                          int // UNet steps run (CFG pairs count once)
}

// Generate runs a request. ctx cancels between steps (the result then
// holds the images finished so far and ctx's error is returned). progress,
// if not nil, is called after every step; its answer can skip the current
// image or interrupt the request (A1111's skip and interrupt: the image
// being made is decoded from its current denoised estimate).
func (m *Model) Generate(ctx context.Context, r Request, lim Limits, progress func(Progress) Action) (*Result, error) {
	notes, err := r.Normalize(lim, m.NativeSize())
	if err != nil {
		return nil, err
	}
	sampler, sched, err := sample.Resolve(r.Sampler, r.Scheduler)
	if err != nil {
		return nil, err
	}
	if r.Seed < 0 {
		r.Seed = int64(rand.Uint32())
	}
	if r.SubseedStrength > 0 && r.Subseed < 0 {
		r.Subseed = int64(rand.Uint32())
	}
	res := &Result{Notices: append(notes, refinerAlone(m, &r)...)}
	t0 := time.Now()
	c, u, err := m.conditioning(&r, r.Width, r.Height)
	if err != nil {
		return nil, err
	}
	ref, err := m.newRefiner(&r)
	if err != nil {
		return nil, err
	}
	res.Timings.Text = time.Since(t0)
	total := r.BatchSize * r.BatchCount
	for i := 0; i < total; i++ {
		job := imageJob{m: m, r: &r, sampler: sampler, sched: sched, c: c, u: u, index: i, total: total,
			seed: r.Seed + int64(i), subseed: r.Subseed + int64(i), progress: progress, t: &res.Timings, ref: ref}
		img, err := job.run(ctx)
		if err != nil {
			return res, err
		}
		res.Images = append(res.Images, Image{RGBA: img, Seed: job.seed, Subseed: job.subseed,
			Infotext: m.infotext(&r, sampler, sched, job.seed, job.subseed, job.refinedWith())})
		if job.stop == Interrupt {
			res.Interrupted = true
			break
		}
	}
	return res, nil
}

// imageJob is the generation of one image of a request.
type imageJob struct {
	m              *Model
	r              *Request
	sampler, sched string
	c, u           cond
	index, total   int
	seed, subseed  int64
	progress       func(Progress) Action
	stop           Action // what the progress callback asked for
	t              *Timings
	gen            noise.Generator
	region         image.Rectangle // inpaint-only-masked: where the result goes
	ref            *refiner        // the request's refiner, or nil
	refined        bool            // the refiner took over
	refinedAt      int             // at this 0-based step of its pass
}

func (j *imageJob) newGenerator(seed int64) noise.Generator {
	if j.r.RNG == "cpu" {
		return noise.NewTorchCPU(uint64(seed))
	}
	return noise.NewPhilox(uint64(seed))
}

// initialNoise draws the first noise tensor of an image: the seed's, or
// with a variation seed, A1111's spherical blend of the two.
func (j *imageJob) initialNoise(w, h int) ([]float32, error) {
	j.gen = j.newGenerator(j.seed)
	x := j.gen.Randn(4 * w * h)
	if j.r.SubseedStrength > 0 {
		sub := j.newGenerator(j.subseed).Randn(4 * w * h)
		return noise.SlerpA1111(j.r.SubseedStrength, x, sub, 4, h, w)
	}
	return x, nil
}

func (j *imageJob) run(ctx context.Context) (*image.RGBA, error) {
	r := j.r
	w, h := r.Width/8, r.Height/8
	var lat []float32
	var err error
	if r.Init == nil {
		lat, err = j.txt2img(ctx, w, h)
	} else {
		lat, err = j.img2img(ctx, w, h)
	}
	if err != nil {
		return nil, err
	}
	if hr := r.Hires; hr != nil && j.stop == Continue {
		if lat, w, h, err = j.hires(ctx, lat, w, h); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	// After the switch A1111 decodes with the refiner's VAE (its model is
	// the loaded one then); SDXL base and refiner ship the same VAE.
	img, err := j.decoder().decode(lat, w, h)
	j.t.Decode += time.Since(t0)
	if err != nil {
		return nil, err
	}
	if r.Mask != nil {
		img = j.overlay(img)
	}
	return img, nil
}

func (j *imageJob) txt2img(ctx context.Context, w, h int) ([]float32, error) {
	sigmas, err := sample.Sigmas(j.m.table, j.sampler, j.sched, j.r.Steps)
	if err != nil {
		return nil, err
	}
	x, err := j.initialNoise(w, h)
	if err != nil {
		return nil, err
	}
	for i := range x {
		x[i] *= sigmas[0]
	}
	var extra []float32
	if j.m.ucfg.InChannels == 9 {
		// An inpainting checkpoint asked for txt2img: mask everything and
		// condition on the latent of a mid-grey picture, as A1111 does.
		if extra, err = j.m.inpaintConditioning(nil, nil, w, h); err != nil {
			return nil, err
		}
	}
	return j.sample(ctx, "txt2img", x, sigmas, nil, extra, w, h)
}

// sample runs the sampler with CFG over the UNet. init/mask (optional) keep
// the unmasked latent during inpainting; extra is the inpainting model's
// additional input channels.
func (j *imageJob) sample(ctx context.Context, pass string, x []float32, sigmas []float32, keep *latentMask, extra []float32, w, h int) ([]float32, error) {
	m, r := j.m, j.r
	steps := len(sigmas) - 1
	den, err := m.newDenoiser(j.c, j.u, r.CFG, w, h, extra)
	if err != nil {
		return nil, err
	}
	defer den.free()
	den.keep = keep
	denoise, freeRefiner := j.withRefiner(pass, den, w, h)
	defer freeRefiner()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last []float32 // the latest denoised estimate, for skip and interrupt
	opts := sample.Options{Noise: generatorFunc(func(n int) []float32 { return j.gen.Randn(n) })}
	opts.SDENoise = j.sdeNoise(pass, sigmas, len(x))
	opts.OnStep = func(step, total int, x, denoised []float32) {
		j.t.Steps++
		if j.progress == nil {
			return
		}
		if a := j.progress(Progress{Image: j.index, Images: j.total, Step: step + 1, Steps: steps, Pass: pass, Model: j.stepModel(), Latent: denoised, LatentW: w, LatentH: h}); a != Continue {
			j.stop = a
			last = append(last[:0], denoised...)
			cancel()
		}
	}
	t0 := time.Now()
	out, err := sample.Run(sctx, j.sampler, denoise, x, sigmas, opts)
	j.t.Sampling += time.Since(t0)
	if err != nil && j.stop != Continue && ctx.Err() == nil {
		out, err = last, nil
	}
	if err != nil {
		return nil, err
	}
	if keep != nil {
		keep.apply(out)
	}
	return out, nil
}

type generatorFunc func(n int) []float32

func (f generatorFunc) Randn(n int) []float32 { return f(n) }

// denoiser evaluates D(x; σ) = x − σ·ε with ε = ε_u + cfg·(ε_c − ε_u) from
// the UNet at c_in·x and the fractional timestep of σ.
type denoiser struct {
	m         *Model
	cfg       float32
	w, h      int
	x, out    *compute.Tensor
	cc, cu    *compute.Tensor
	yc, yu    *compute.Tensor
	extra     []float32
	keep      *latentMask
	inC       int
	xin, epsC []float32
}

func (m *Model) newDenoiser(c, u cond, cfg float32, w, h int, extra []float32) (*denoiser, error) {
	d := &denoiser{m: m, cfg: cfg, w: w, h: h, extra: extra, inC: m.ucfg.InChannels}
	var err error
	alloc := func(v []float32, shape ...int) *compute.Tensor {
		if err != nil || v == nil {
			return nil
		}
		var t *compute.Tensor
		t, err = compute.FromF32(m.b, v, shape...)
		return t
	}
	d.cc = alloc(c.ctx, c.n, c.dim)
	if cfg != 1 {
		d.cu = alloc(u.ctx, u.n, u.dim)
	}
	if c.y != nil {
		d.yc = alloc(c.y, len(c.y))
		if cfg != 1 {
			d.yu = alloc(u.y, len(u.y))
		}
	}
	d.x = alloc(make([]float32, d.inC*w*h), 1, d.inC, h, w)
	d.out = alloc(make([]float32, 4*w*h), 1, 4, h, w)
	if err != nil {
		d.free()
		return nil, err
	}
	d.xin = make([]float32, d.inC*w*h)
	d.epsC = make([]float32, 4*w*h)
	return d, nil
}

func (d *denoiser) free() {
	for _, t := range []*compute.Tensor{d.x, d.out, d.cc, d.cu, d.yc, d.yu} {
		if t != nil {
			d.m.b.Free(t)
		}
	}
}

func (d *denoiser) denoise(ctx context.Context, x []float32, sigma float32, step int) ([]float32, error) {
	if d.keep != nil && d.keep.before {
		d.keep.apply(x)
	}
	cin := float32(1 / math.Sqrt(float64(sigma*sigma+1)))
	for i, v := range x {
		d.xin[i] = v * cin
	}
	copy(d.xin[len(x):], d.extra)
	t := d.m.table.SigmaToT(sigma)
	if err := compute.WriteF32(d.x, d.xin); err != nil {
		return nil, err
	}
	if err := d.m.unet.Forward(d.m.b, d.x, t, d.cc, d.yc, d.out); err != nil {
		return nil, err
	}
	if err := compute.ReadF32(d.out, d.epsC); err != nil {
		return nil, err
	}
	eps := d.epsC
	if d.cfg != 1 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := d.m.unet.Forward(d.m.b, d.x, t, d.cu, d.yu, d.out); err != nil {
			return nil, err
		}
		epsU, err := compute.ToF32(d.out)
		if err != nil {
			return nil, err
		}
		for i := range epsU {
			epsU[i] = epsU[i] + d.cfg*(eps[i]-epsU[i])
		}
		eps = epsU
	}
	den := make([]float32, len(x))
	for i := range den {
		den[i] = x[i] - sigma*eps[i]
	}
	if d.keep != nil {
		d.keep.apply(den)
	}
	return den, nil
}

// decode turns a latent [4, h, w] into 8-bit RGB: latent/scale, the VAE
// decoder, then clamp((x+1)/2) and round to 8 bits as stable-diffusion.cpp
// does. Large images decode in tiles so memory stays bounded.
func (m *Model) decode(lat []float32, w, h int) (*image.RGBA, error) {
	z := make([]float32, len(lat))
	for i, v := range lat {
		z[i] = v / m.scale
	}
	zt, err := compute.FromF32(m.b, z, 1, 4, h, w)
	if err != nil {
		return nil, err
	}
	defer m.b.Free(zt)
	out, err := m.b.Alloc(zt.DType, 1, 3, 8*h, 8*w)
	if err != nil {
		return nil, err
	}
	defer m.b.Free(out)
	if w*h > 96*96 {
		err = m.vae.DecodeTiled(m.b, zt, out, 64, 16)
	} else {
		err = m.vae.Decode(m.b, zt, out)
	}
	if err != nil {
		return nil, err
	}
	px, err := compute.ToF32(out)
	if err != nil {
		return nil, err
	}
	return toRGBA(px, 8*w, 8*h), nil
}

// toRGBA converts planar [3, H, W] values in [−1, 1] to 8-bit pixels.
func toRGBA(px []float32, W, H int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	plane := W * H
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			o := img.PixOffset(x, y)
			for c := 0; c < 3; c++ {
				img.Pix[o+c] = to8(px[c*plane+y*W+x])
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}

// to8 maps [−1, 1] to a byte: v = clamp((x+1)/2, 0, 1), then 0 at or below
// 0, 255 at or above 1, else trunc(v·255 + 0.5).
func to8(x float32) uint8 {
	v := (x + 1) / 2
	if v <= 0 {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(v*255 + 0.5)
}

// fromImage converts pixels to planar [3, H, W] values in [−1, 1].
func fromImage(img image.Image) ([]float32, int, int) {
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	out := make([]float32, 3*W*H)
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			for c, v := range []uint32{r, g, bl} {
				out[c*W*H+y*W+x] = float32(v>>8)/255*2 - 1
			}
		}
	}
	return out, W, H
}
