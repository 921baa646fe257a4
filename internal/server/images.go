package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // init images and masks
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	_ "golang.org/x/image/webp"

	"mica/internal/compute/cpu"
	"mica/internal/diffusion/infotext"
	"mica/internal/format/pngtext"
	"mica/internal/imagegen"
	"mica/internal/jobs"
	"mica/internal/server/hub"
	"mica/internal/server/sdapi"
)

// images is the image half of the server: Stable Diffusion checkpoints in
// the models folder and the persistent job queue every generation goes
// through. Image models are loaded within the server's memory budget, as
// LLMs are (runner.go's residency).
type images struct {
	s      *Server
	q      *jobs.Queue
	data   string
	lim    imagegen.Limits
	hashes *hashCache // checkpoint SHA-256s (modelhash.go)

	omu     sync.Mutex
	options map[string]any // A1111's settings (GET/POST /sdapi/v1/options), persisted

	kmu    sync.Mutex
	owner  map[string]string // job id → API key name, for MaxJobsPerKey
	active map[string]int    // API key name → its jobs not yet ended
	done   func()            // stops watching job ends
}

// imageModel is a checkpoint found in the models folder.
type imageModel struct {
	Name string // file stem or folder name
	Path string
	Size int64 // the file, or the sum of a folder's files
}

// openImages opens the job queue under the data folder; queued jobs of a
// previous run start again.
func openImages(s *Server) (*images, error) {
	im := &images{s: s, data: s.cfg.DataDir, lim: s.cfg.ImageLimits}
	if im.lim == (imagegen.Limits{}) {
		im.lim = imagegen.DefaultLimits()
	}
	im.loadOptions()
	q, err := jobs.Open(s.cfg.DataDir, jobs.Options{
		Resolve: im.resolve, Timeout: s.cfg.ImageTimeout, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	im.q = q
	im.owner, im.active = map[string]string{}, map[string]int{}
	events, stop := q.Subscribe("")
	im.hashes = openHashCache(s.cfg.DataDir, s.log)
	im.done = func() { stop(); im.hashes.close() }
	go im.watchEnds(events)
	im.hashAll()
	return im, nil
}

// hashAll has the checkpoints' hashes computed in the background.
func (im *images) hashAll() {
	ms, _ := im.list()
	for _, m := range ms {
		im.hashes.sha256(m.Path)
	}
}

// watchEnds releases a key's job slot when its job ends.
func (im *images) watchEnds(events <-chan jobs.Event) {
	for e := range events {
		if !e.State.Terminal() {
			continue
		}
		im.kmu.Lock()
		if k, ok := im.owner[e.JobID]; ok {
			delete(im.owner, e.JobID)
			if im.active[k]--; im.active[k] <= 0 {
				delete(im.active, k)
			}
		}
		im.kmu.Unlock()
	}
}

// reserve takes one of key's job slots (MaxJobsPerKey), or says why not.
func (im *images) reserve(key string) error {
	limit := im.s.cfg.MaxJobsPerKey
	if key == "" || limit <= 0 {
		return nil
	}
	im.kmu.Lock()
	defer im.kmu.Unlock()
	if im.active[key] >= limit {
		return fmt.Errorf("this API key already has %d image jobs queued or running (the limit); wait for one to end", limit)
	}
	im.active[key]++
	return nil
}

// own records that job id holds one of key's slots; with id "" the
// reserved slot is given back (the submit failed).
func (im *images) own(key, id string) {
	if key == "" || im.s.cfg.MaxJobsPerKey <= 0 {
		return
	}
	im.kmu.Lock()
	if id == "" {
		if im.active[key]--; im.active[key] <= 0 {
			delete(im.active, key)
		}
		im.kmu.Unlock()
		return
	}
	im.owner[id] = key
	im.kmu.Unlock()
	// The job may have ended before it was recorded: release it then.
	if j, err := im.q.Get(id); err == nil && j.State.Terminal() {
		im.kmu.Lock()
		if _, ok := im.owner[id]; ok {
			delete(im.owner, id)
			if im.active[key]--; im.active[key] <= 0 {
				delete(im.active, key)
			}
		}
		im.kmu.Unlock()
	}
}

// close stops the job queue (running jobs are re-queued for the next
// start); the residency unloads the models.
func (im *images) close() error {
	im.done()
	return im.q.Close()
}

// list returns the image checkpoints of the models folder: .safetensors
// files and diffusers folders (those with a model_index.json).
func (im *images) list() ([]imageModel, error) {
	ents, err := os.ReadDir(im.s.cfg.ModelsDir)
	if err != nil {
		return nil, err
	}
	var out []imageModel
	for _, e := range ents {
		p := filepath.Join(im.s.cfg.ModelsDir, e.Name())
		switch {
		case e.IsDir():
			if _, err := os.Stat(filepath.Join(p, "model_index.json")); err == nil {
				out = append(out, imageModel{Name: e.Name(), Path: p, Size: pathSize(p)})
			}
		case strings.HasSuffix(strings.ToLower(e.Name()), ".safetensors"):
			fi, err := e.Info()
			if err != nil {
				continue
			}
			out = append(out, imageModel{Name: strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())), Path: p, Size: fi.Size()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// lookup finds a checkpoint by name, A1111 title ("name.safetensors
// [hash]") or file name; "" means the current default.
func (im *images) lookup(name string) (imageModel, error) {
	ms, err := im.list()
	if err != nil {
		return imageModel{}, err
	}
	if name == "" {
		name = im.option("sd_model_checkpoint")
	}
	if i := strings.Index(name, " ["); i > 0 {
		name = name[:i]
	}
	name = strings.TrimSuffix(name, ".safetensors")
	for _, m := range ms {
		if m.Name == name {
			return m, nil
		}
	}
	if name == "" && len(ms) > 0 {
		return ms[0], nil
	}
	if len(ms) == 0 {
		return imageModel{}, fmt.Errorf("no image models: put Stable Diffusion checkpoints (.safetensors or diffusers folders) in %s", im.s.cfg.ModelsDir)
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return imageModel{}, fmt.Errorf("image model %q not found (available: %s)", name, strings.Join(names, ", "))
}

func (im *images) resolve(model string) (jobs.Runner, error) {
	if _, err := im.lookup(model); err != nil {
		return nil, err
	}
	return jobs.RunnerFunc(im.run), nil
}

// loadedImage is a loaded image model and its backend.
type loadedImage struct {
	model   *imagegen.Model
	backend *cpu.Backend
}

// imageSpec says how to load checkpoint m within the memory budget.
func (im *images) imageSpec(m imageModel) loadSpec {
	var version time.Time
	if st, err := os.Stat(m.Path); err == nil {
		version = st.ModTime()
	}
	return loadSpec{kind: kindImage, name: m.Name, path: m.Path, version: version, need: imageNeed(m.Size),
		load: func() (any, func() error, func() int64, error) {
			li, err := im.loadModel(m)
			if err != nil {
				return nil, nil, nil, err
			}
			closeFn := func() error {
				err := li.model.Close()
				li.backend.Close()
				return err
			}
			measure := func() int64 {
				st := li.backend.Memory()
				return st.Wrapped + st.Peak
			}
			return li, closeFn, measure, nil
		}}
}

// acquire returns the image model name ("": the default) in use, loading
// it when needed; the caller must release it.
func (im *images) acquire(ctx context.Context, name string) (*imagegen.Model, *resident, error) {
	m, err := im.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	res, _, err := im.s.res.acquire(ctx, im.imageSpec(m))
	if err != nil {
		return nil, nil, err
	}
	return res.value.(*loadedImage).model, res, nil
}

// acquireRefiner returns the refiner checkpoint called name, in use beside
// base (which the caller holds); a nil resident when it is base itself. Both must fit in
// the budget together: the refiner's load unloads idle models, never base
// (in use), and waits while models in use by others leave too little. Image
// jobs run one at a time (jobs.Options.MaxParallel 1), so no other job can
// hold a model this one waits for while waiting for this one's.
func (im *images) acquireRefiner(ctx context.Context, base *resident, name string) (*imagegen.Model, *resident, error) {
	rm, err := im.lookup(name)
	if err != nil {
		return nil, nil, fmt.Errorf("refiner_checkpoint: %w", err)
	}
	if rm.Path == base.path {
		return nil, nil, nil
	}
	sp := im.imageSpec(rm)
	if held := im.s.res.needOf(base); !im.s.res.fits(held + sp.need) {
		return nil, nil, im.s.res.tooBigPair(base.name, held, rm.Name, sp.need)
	}
	res, _, err := im.s.res.acquire(ctx, sp)
	if err != nil {
		return nil, nil, fmt.Errorf("refiner %s: %w", rm.Name, err)
	}
	return res.value.(*loadedImage).model, res, nil
}

// release ends a job's use of an image model: it stays loaded for the
// server's keep-alive.
func (im *images) release(res *resident) { im.s.res.release(res, im.s.cfg.KeepAlive) }

// loadModel loads checkpoint m on a backend of its own.
func (im *images) loadModel(m imageModel) (*loadedImage, error) {
	b := cpu.New(im.s.cfg.Threads)
	o := imagegen.Options{Tokenizer: im.s.cfg.CLIPTokenizer, TokenizerSearch: []string{filepath.Join(im.data, "tokenizers", "clip")},
		// The background hash cache: a refiner's infotext never waits for
		// its file to be read.
		ShortHash: func() string { return shortHash(im.hashes.sha256(m.Path)) }}
	model, err := imagegen.Load(b, m.Path, o)
	if errors.Is(err, imagegen.ErrNoTokenizer) && !im.s.cfg.Offline {
		// As A1111 does: fetch the standard CLIP tokenizer once.
		im.s.log.Info("fetching the CLIP tokenizer", "repo", hub.CLIPRepo, "into", o.TokenizerSearch[0])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = hub.FetchCLIPTokenizer(ctx, nil, o.TokenizerSearch[0])
		cancel()
		if err == nil {
			model, err = imagegen.Load(b, m.Path, o)
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	im.s.log.Info("image model loaded", "model", m.Name, "kind", model.Kind.String())
	return &loadedImage{model: model, backend: b}, nil
}

// request converts a decoded A1111 request into the pipeline's, decoding
// its pictures (errors here are the client's: 422).
func toImagegen(r *sdapi.Request) (imagegen.Request, error) {
	ir := imagegen.Request{
		Prompt: r.Prompt, Negative: r.Negative, Width: r.Width, Height: r.Height, Steps: r.Steps,
		CFG: float32(r.CFG), Sampler: r.Sampler, Scheduler: r.Scheduler, Seed: r.Seed,
		Subseed: r.Subseed, SubseedStrength: float32(r.SubseedStrength), ClipSkip: r.ClipSkip,
		BatchSize: r.BatchSize, BatchCount: r.NIter,
		RefinerCheckpoint: r.RefinerCheckpoint, RefinerSwitchAt: float32(r.RefinerSwitchAt),
	}
	if ir.Sampler == "Default" {
		ir.Sampler = ""
	}
	switch strings.ToLower(r.RNG) {
	case "cpu":
		ir.RNG = "cpu"
	case "", "gpu", "nv", "philox":
		ir.RNG = "philox"
	default:
		return ir, fmt.Errorf("randn_source %q: use GPU (Philox, A1111's default) or CPU", r.RNG)
	}
	if r.EnableHR {
		hd := r.HRDenoise
		if hd == 0 && r.DenoiseGiven && !r.Img2Img {
			hd = r.Denoise // A1111's hires pass uses denoising_strength
		}
		up := "latent"
		switch strings.ToLower(r.HRUpscaler) {
		case "latent (nearest)", "latent (nearest-exact)":
			up = "latent-nearest"
		case "", "latent", "latent (bilinear)", "latent (antialiased)", "latent (bicubic)", "latent (bicubic antialiased)":
		default:
			up = "image"
		}
		ir.Hires = &imagegen.Hires{Scale: float32(r.HRScale), Width: r.HRResizeX, Height: r.HRResizeY, Steps: r.HRSteps,
			Denoise: float32(hd), Upscaler: up}
	}
	if r.Img2Img {
		img, err := decodeImage("init_images[0]", r.InitImages[0])
		if err != nil {
			return ir, err
		}
		ir.Init, ir.Strength = img, float32(r.Denoise)
		if ir.Strength == 0 {
			ir.Strength = 0.01
		}
		if r.Mask != nil {
			m, err := decodeImage("mask", r.Mask)
			if err != nil {
				return ir, err
			}
			if r.MaskInvert {
				m = invert(m)
			}
			ir.Mask, ir.MaskBlur, ir.InpaintFullRes, ir.Padding = m, r.MaskBlur, r.InpaintFullRes, r.Padding
			ir.InpaintFill = []string{"fill", "original", "noise", "nothing"}[r.InpaintFill]
		}
	}
	return ir, nil
}

// decodeImage reads a PNG, JPEG or WebP picture within the size limit.
func decodeImage(field string, b []byte) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: not a PNG, JPEG or WebP picture (%v)", field, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > 8192*8192 {
		return nil, fmt.Errorf("%s: %dx%d picture: the limit is 8192x8192", field, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	return img, nil
}

func invert(m image.Image) image.Image {
	b := m.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl, _ := m.At(b.Min.X+x, b.Min.Y+y).RGBA()
			out.Pix[y*out.Stride+x] = 255 - uint8((r+g+bl)/3>>8)
		}
	}
	return out
}

// loaded reports the loaded image models' names.
func (im *images) loaded() []string {
	var out []string
	for _, m := range im.s.res.list() {
		if m.kind == kindImage && !m.loading {
			out = append(out, m.name)
		}
	}
	return out
}

// run is the job runner: one generation request of one model.
func (im *images) run(ctx context.Context, j *jobs.Job, p jobs.Progress) (jobs.Result, error) {
	req, err := sdapi.Decode(j.Params, j.Kind == "img2img", im.apiLimits())
	if err != nil {
		return jobs.Result{}, err
	}
	ir, err := toImagegen(req)
	if err != nil {
		return jobs.Result{}, err
	}
	p.Text("loading " + j.Model)
	m, lease, err := im.acquire(ctx, j.Model)
	if err != nil {
		return jobs.Result{}, err
	}
	defer im.release(lease)
	if req.RefinerCheckpoint != "" {
		p.Text("loading the refiner " + req.RefinerCheckpoint)
		rm, rlease, err := im.acquireRefiner(ctx, lease, req.RefinerCheckpoint)
		if err != nil {
			return jobs.Result{}, err
		}
		if rlease != nil {
			defer im.release(rlease)
			ir.Refiner = rm
		} else {
			ir.Refiner = m // the refiner is the model itself: nothing to switch to (A1111)
		}
	}
	p.Text("")
	started := time.Now()
	current, stepModel := -1, m.Name
	res, genErr := m.Generate(ctx, ir, im.lim, func(pr imagegen.Progress) imagegen.Action {
		if pr.Image != current {
			p.Batch(pr.Image, pr.Images)
			current = pr.Image
		}
		if pr.Model != "" && pr.Model != stepModel {
			// The refiner took over (or the next image starts on the base again).
			stepModel = pr.Model
			if stepModel == m.Name {
				p.Text("")
			} else {
				p.Text("refiner: " + stepModel)
			}
		}
		p.Step(pr.Step, pr.Steps)
		if pr.Latent != nil {
			var buf bytes.Buffer
			if png.Encode(&buf, m.Preview(pr.Latent, pr.LatentW, pr.LatentH)) == nil {
				p.Preview(buf.Bytes(), "image/png")
			}
		}
		switch {
		case p.Interrupted():
			return imagegen.Interrupt
		case p.Skipped():
			return imagegen.Skip
		}
		return imagegen.Continue
	})
	if res != nil {
		for _, n := range res.Notices {
			im.s.log.Info("image job notice", "job", j.ID, "model", j.Model, "notice", string(n))
		}
	}
	var out jobs.Result
	info := sdapi.NewInfo(req, started)
	info.SDModelName = j.Model
	hash := shortHash(im.hashes.sha256(lease.path)) // the leased file: no second folder listing
	info.SDModelHash = hash
	info.Version = "mica " + im.s.cfg.Version
	if res != nil {
		for i, img := range res.Images {
			img.Infotext = withModelHash(img.Infotext, hash)
			var buf bytes.Buffer
			if err := pngtext.Encode(&buf, img.RGBA, []pngtext.KV{{Key: "parameters", Value: img.Infotext}}); err != nil {
				return out, err
			}
			name := fmt.Sprintf("%s-%d-%d.png", started.Format("150405"), img.Seed, i)
			var path string
			if req.SaveImages {
				path, err = p.SaveImage(name, buf.Bytes(), img.Infotext)
			} else {
				path, err = p.KeepImage(name, buf.Bytes()) // not in the outputs or the history
			}
			if err != nil {
				return out, err
			}
			out.Images = append(out.Images, path)
			info.AllSeeds = append(info.AllSeeds, img.Seed)
			info.AllSubseeds = append(info.AllSubseeds, img.Subseed)
			info.AllPrompts = append(info.AllPrompts, req.Prompt)
			info.AllNegativePrompts = append(info.AllNegativePrompts, req.Negative)
			info.Infotexts = append(info.Infotexts, img.Infotext)
		}
		if len(res.Images) > 0 {
			info.Seed, info.Subseed = res.Images[0].Seed, res.Images[0].Subseed
			w, h := res.Images[0].RGBA.Bounds().Dx(), res.Images[0].RGBA.Bounds().Dy()
			info.Width, info.Height = w, h
		}
	}
	if b, err := json.Marshal(info); err == nil {
		out.Info = b
	}
	return out, genErr
}

// withModelHash adds "Model hash: HASH" before "Model:" in an infotext,
// as A1111 writes it (unchanged when the hash is not known yet).
func withModelHash(text, hash string) string {
	if hash == "" {
		return text
	}
	p, err := infotext.Parse(text)
	if err != nil {
		return text
	}
	if _, ok := p.Get("Model hash"); ok {
		return text
	}
	kv := infotext.KV{Key: "Model hash", Value: hash}
	at := len(p.Settings)
	for i, s := range p.Settings {
		if s.Key == "Model" {
			at = i
			break
		}
	}
	p.Settings = append(p.Settings[:at], append([]infotext.KV{kv}, p.Settings[at:]...)...)
	return infotext.Format(p)
}

func (im *images) apiLimits() sdapi.Limits {
	return sdapi.Limits{MaxImageBytes: int(im.s.cfg.ImageBodyBytes), MaxSteps: im.lim.MaxSteps, MaxBatch: im.lim.MaxBatch, MaxPixels: im.lim.MaxPixels}
}

// options: A1111's settings the image API honours, persisted as JSON in the
// data folder (write-then-rename).
func (im *images) loadOptions() {
	im.options = map[string]any{
		"sd_model_checkpoint": "", "samples_format": "png", "CLIP_stop_at_last_layers": 1,
		"randn_source": "GPU", "eta_noise_seed_delta": 0, "sd_vae": "Automatic",
	}
	b, err := os.ReadFile(filepath.Join(im.data, "options.json"))
	if err != nil {
		return
	}
	var saved map[string]any
	if json.Unmarshal(b, &saved) == nil {
		for k, v := range saved {
			im.options[k] = v
		}
	}
}

func (im *images) option(key string) string {
	im.omu.Lock()
	defer im.omu.Unlock()
	if s, ok := im.options[key].(string); ok {
		return s
	}
	return ""
}

func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	err := png.Encode(&buf, img)
	return buf.Bytes(), err
}
