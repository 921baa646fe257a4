package synth

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"mica/internal/format/safetensors"
	"mica/internal/tensor"
)

// sdPreset is a named Stable Diffusion checkpoint.
type sdPreset struct {
	config func() SDConfig
	recipe bool // reproduces a reference file: no seed
	desc   string
}

var sdPresets = map[string]sdPreset{
	"sd15":              {config: SD15Config, desc: "SD 1.5 shapes (seed 0: the sd15-recipe values)"},
	"sd15-recipe":       {config: SD15Config, recipe: true, desc: "SD 1.5, the reference recipe checkpoint bit for bit"},
	"sd15-inpaint":      {config: sd15Inpaint, desc: "SD 1.5 inpainting shapes (9-channel UNet input)"},
	"sdxl":              {config: SDXLConfig, desc: "SDXL base shapes (seed 0: the sdxl-recipe values)"},
	"sdxl-recipe":       {config: SDXLConfig, recipe: true, desc: "SDXL base, the reference recipe checkpoint bit for bit"},
	"sd-test":           {config: SDTestConfig, desc: "tiny SD 1.x structure for tests"},
	"sdxl-test":         {config: SDXLTestConfig, desc: "tiny SDXL structure for tests"},
	"sdxl-refiner":      {config: SDXLRefinerConfig, desc: "SDXL refiner 1.0 shapes (bigG only, 384-channel UNet)"},
	"sdxl-refiner-test": {config: SDXLRefinerTestConfig, desc: "tiny SDXL refiner structure for tests"},
}

func sd15Inpaint() SDConfig {
	c := SD15Config().Inpainting()
	c.Name = "sd15-inpaint"
	c.Note = "mica synth sd15-inpaint: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SD1.5 inpainting shapes"
	return c
}

// SDPresets lists the Stable Diffusion preset names, sorted.
func SDPresets() []string {
	out := make([]string, 0, len(sdPresets))
	for k := range sdPresets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IsSDPreset reports whether name is a Stable Diffusion preset.
func IsSDPreset(name string) bool {
	_, ok := sdPresets[strings.ToLower(name)]
	return ok
}

// SDPresetConfig returns the named preset's configuration.
func SDPresetConfig(name string) (SDConfig, error) {
	p, ok := sdPresets[strings.ToLower(name)]
	if !ok {
		return SDConfig{}, fmt.Errorf("synth: unknown Stable Diffusion preset %q (presets: %s)", name, strings.Join(SDPresets(), ", "))
	}
	return p.config(), nil
}

// SDOptions says what WriteSD writes.
type SDOptions struct {
	Preset   string       // one of SDPresets; ignored when Config is set
	Config   *SDConfig    // an explicit configuration instead of a preset
	Type     tensor.DType // F32, F16 or BF16 (position ids are always I64)
	Seed     uint64       // 0: the recipe; other values change every tensor's hash basis
	Threads  int          // goroutines generating values (at least 1)
	Progress func(done, total int64)
}

// SDLayout is what a checkpoint holds.
type SDLayout struct {
	Config   SDConfig
	Tensors  []SDTensor
	Metadata map[string]string
	Type     tensor.DType
	Header   []byte // the file's first bytes: length, JSON header, padding
	Params   int64  // elements of the float tensors
	Bytes    int64  // the whole file
	infos    []safetensors.TensorInfo
}

// PlanSD resolves the options into the file's layout without writing.
func PlanSD(o SDOptions) (*SDLayout, error) {
	var c SDConfig
	if o.Config != nil {
		c = *o.Config
	} else {
		p, ok := sdPresets[strings.ToLower(o.Preset)]
		if !ok {
			return nil, fmt.Errorf("synth: unknown Stable Diffusion preset %q (presets: %s)", o.Preset, strings.Join(SDPresets(), ", "))
		}
		if p.recipe && o.Seed != 0 {
			return nil, fmt.Errorf("synth: preset %s reproduces the reference checkpoint and takes no seed (use %s for other seeds)",
				o.Preset, strings.TrimSuffix(strings.ToLower(o.Preset), "-recipe"))
		}
		c = p.config()
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	if err := checkSDType(o.Type); err != nil {
		return nil, err
	}
	note := c.Note
	if o.Seed != 0 {
		note += fmt.Sprintf("; seed %d (hash basis FNV-1a-64(name) XOR splitmix64-mix(seed))", o.Seed)
	}
	l := &SDLayout{Config: c, Tensors: SDTensors(c), Type: o.Type,
		Metadata: map[string]string{"format": "pt", "note": note}}
	for _, t := range l.Tensors {
		if t.Kind != KindPos {
			l.Params += t.Elements()
		}
	}
	l.infos = l.sdInfos(o.Type)
	var err error
	if l.Header, err = safetensors.Header(l.Metadata, l.infos); err != nil {
		return nil, fmt.Errorf("synth: %s: %w", c.Name, err)
	}
	l.Bytes = int64(len(l.Header)) + l.infos[len(l.infos)-1].End
	return l, nil
}

// sdInfos is the safetensors declaration of l's tensors.
func (l *SDLayout) sdInfos(dt tensor.DType) []safetensors.TensorInfo {
	infos := make([]safetensors.TensorInfo, len(l.Tensors))
	for i, t := range l.Tensors {
		shape := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = int64(d)
		}
		infos[i] = safetensors.TensorInfo{Name: t.Name, DType: SDStoredType(t, dt), Shape: shape}
	}
	return infos
}

const sdChunkElems = 1 << 20 // values per work item (4 MiB as float32)

// WriteSD writes the checkpoint to path (through a temporary file renamed
// into place when complete). o.Threads goroutines compute chunks of about a
// million values; a few chunks per thread are in memory, never a whole
// tensor. o.Progress hears the data bytes written so far and their total.
func WriteSD(path string, o SDOptions) (*SDLayout, error) {
	l, err := PlanSD(o)
	if err != nil {
		return nil, err
	}
	w, err := safetensors.Create(path, l.Metadata, l.infos)
	if err != nil {
		return nil, err
	}
	if err := l.stream(w, o, l.infos[len(l.infos)-1].End); err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return l, nil
}

type sdJob struct {
	ti   int
	e0   int64
	n    int64
	done chan []byte
}

// stream computes the chunks on o.Threads workers and writes them in order.
func (l *SDLayout) stream(w *safetensors.Writer, o SDOptions, total int64) error {
	threads := max(o.Threads, 1)
	quit := make(chan struct{})
	defer close(quit)
	todo := make(chan *sdJob)
	order := make(chan *sdJob, 2*threads)
	bufs := sync.Pool{}
	go func() { // producer
		defer close(todo)
		defer close(order)
		for ti, t := range l.Tensors {
			total := t.Elements()
			for e0 := int64(0); e0 < total; e0 += sdChunkElems {
				job := &sdJob{ti: ti, e0: e0, n: min(sdChunkElems, total-e0), done: make(chan []byte, 1)}
				select {
				case order <- job:
				case <-quit:
					return
				}
				select {
				case todo <- job:
				case <-quit:
					return
				}
			}
		}
	}()
	for range threads {
		go func() {
			scratch := make([]float32, sdChunkElems)
			for job := range todo {
				t := l.Tensors[job.ti]
				size := job.n * sdElemSize(t, o.Type)
				var b []byte
				if p, _ := bufs.Get().(*[]byte); p != nil && int64(cap(*p)) >= size {
					b = (*p)[:size]
				} else {
					b = make([]byte, size, max(size, 4*sdChunkElems))
				}
				sdEncodeInto(t, o.Seed, o.Type, job.e0, b, scratch)
				job.done <- b
			}
		}()
	}
	var written int64
	for ti, t := range l.Tensors {
		r := &sdChunkReader{order: order, ti: ti, release: func(b []byte) {
			written += int64(len(b))
			bufs.Put(&b)
			if o.Progress != nil {
				o.Progress(written, total)
			}
		}}
		if err := w.WriteTensorFrom(t.Name, r); err != nil {
			if r.err != nil {
				return r.err
			}
			return err
		}
	}
	return nil
}

// sdChunkReader reads one tensor's chunks in order.
type sdChunkReader struct {
	order   <-chan *sdJob
	ti      int
	buf     []byte
	cur     []byte
	err     error
	release func([]byte)
}

func (r *sdChunkReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.cur) == 0 {
		job, ok := <-r.order
		if !ok || job.ti != r.ti {
			r.err = fmt.Errorf("synth: internal error: chunk order (tensor %d)", r.ti)
			return 0, r.err
		}
		r.buf = <-job.done
		r.cur = r.buf
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	if len(r.cur) == 0 { // the tensor's last chunk ends here: hand it back now
		r.release(r.buf)
		r.buf = nil
	}
	return n, nil
}
