// Package vision runs the image encoders of Gemma 3 and Gemma 4 ("mmproj"
// files, as llama.cpp's converter writes them) on the compute backend: it
// reads the projector's configuration and weights, turns a decoded image into
// the encoder's exact input (resize rule, letterbox, normalisation, Gemma 4's
// token budget), and runs the vision tower and projector to the embeddings
// the text model takes in place of image tokens.
package vision

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/format/gguf"
)

// ProjectorType names the projector (llama.cpp's clip.projector_type).
type ProjectorType string

// Supported projectors.
const (
	// Gemma3 is SigLIP with Gemma 3's pooling projector.
	Gemma3 ProjectorType = "gemma3"
	// Gemma4V is Gemma 4's vision tower and projector.
	Gemma4V ProjectorType = "gemma4v"
)

// Gemma 4's default image token budget (llama.cpp's gemma4v defaults).
const (
	Gemma4DefaultMinTokens = 40
	Gemma4DefaultMaxTokens = 280
	// Gemma4MaxTokensLimit is the largest budget a request may ask for (the
	// largest of Gemma 4's published budgets).
	Gemma4MaxTokensLimit = 1120
)

// Config is an mmproj file's geometry.
type Config struct {
	Projector ProjectorType
	ImageSize int // Gemma 3: the square canvas side; Gemma 4: unused (the file says 224)
	PatchSize int
	Width     int // vision embedding width E
	FF        int // feed-forward width
	Layers    int
	Heads     int
	Eps       float32
	ProjDim   int // output width: the text model's embedding width
	Mean, Std [3]float32
	Act       compute.UnaryKind // FFN activation: GELU (tanh), SiLU or QuickGELU
	Merge     int               // pooling window (clip.vision.projector.scale_factor)
	PosSize   int               // Gemma 4: rows of each position table
	// MinTokens and MaxTokens bound Gemma 4's image token count (the budget
	// that picks the image size); zero for Gemma 3.
	MinTokens, MaxTokens int
	// FileType is general.file_type (0 F32, 1 F16), used by WriteSynth.
	FileType int
}

// HeadDim is the attention head width.
func (c *Config) HeadDim() int { return c.Width / c.Heads }

// Tokens is the number of image tokens Gemma 3 always produces.
func (c *Config) gemma3Tokens() int {
	side := c.ImageSize / c.PatchSize / c.Merge
	return side * side
}

// SigLIP400MConfig is Gemma 3's vision encoder (SigLIP-So400m/14 at 896 px)
// with its projector into a text model of width projDim (Gemma 3 27B: 5376).
func SigLIP400MConfig(projDim int) *Config {
	return &Config{Projector: Gemma3, ImageSize: 896, PatchSize: 14, Width: 1152, FF: 4304,
		Layers: 27, Heads: 16, Eps: 1e-6, ProjDim: projDim, Mean: [3]float32{0.5, 0.5, 0.5},
		Std: [3]float32{0.5, 0.5, 0.5}, Act: compute.GELU, Merge: 4, FileType: 1}
}

// Gemma4VisionConfig31B is the vision tower of Gemma 4 26B/31B (about 550M
// parameters) with its projector into a text model of width projDim
// (31B: 5376).
func Gemma4VisionConfig31B(projDim int) *Config {
	return &Config{Projector: Gemma4V, ImageSize: 224, PatchSize: 16, Width: 1152, FF: 4304,
		Layers: 27, Heads: 16, Eps: 1e-6, ProjDim: projDim, Std: [3]float32{1, 1, 1},
		Act: compute.QuickGELU, Merge: 3, PosSize: 10240,
		MinTokens: Gemma4DefaultMinTokens, MaxTokens: Gemma4DefaultMaxTokens, FileType: 1}
}

// ParseConfig reads the clip.* keys of an mmproj file.
func ParseConfig(f *gguf.File) (*Config, error) {
	fail := func(format string, args ...any) (*Config, error) {
		return nil, fmt.Errorf("vision: %s: %s", f.Path, fmt.Sprintf(format, args...))
	}
	if arch, _ := f.String("general.architecture"); arch != "clip" {
		return fail("general.architecture is %q, want \"clip\" (is this an mmproj file?)", arch)
	}
	if ok, err := f.Bool("clip.has_vision_encoder"); err != nil || !ok {
		return fail("clip.has_vision_encoder is not true: the file has no vision encoder")
	}
	pt, err := f.String("clip.vision.projector_type")
	if err != nil {
		pt, err = f.String("clip.projector_type")
	}
	if err != nil {
		return fail("no clip.vision.projector_type or clip.projector_type")
	}
	c := &Config{Projector: ProjectorType(pt)}
	switch c.Projector {
	case Gemma3:
		c.Merge = 4
	case Gemma4V:
		c.Merge = 3
		c.MinTokens, c.MaxTokens = Gemma4DefaultMinTokens, Gemma4DefaultMaxTokens
	default:
		return fail("projector type %q is not supported (mica supports gemma3 and gemma4v)", pt)
	}
	ints := []struct {
		key string
		dst *int
	}{
		{"clip.vision.image_size", &c.ImageSize},
		{"clip.vision.patch_size", &c.PatchSize},
		{"clip.vision.embedding_length", &c.Width},
		{"clip.vision.feed_forward_length", &c.FF},
		{"clip.vision.block_count", &c.Layers},
		{"clip.vision.attention.head_count", &c.Heads},
		{"clip.vision.projection_dim", &c.ProjDim},
	}
	for _, k := range ints {
		v, err := f.Int(k.key)
		if err != nil {
			return nil, fmt.Errorf("vision: %w", err)
		}
		if v <= 0 || v > 1<<20 {
			return fail("%s = %d is out of range", k.key, v)
		}
		*k.dst = int(v)
	}
	if f.Has("clip.vision.projector.scale_factor") {
		v, err := f.Int("clip.vision.projector.scale_factor")
		if err != nil || v <= 0 || v > 64 {
			return fail("clip.vision.projector.scale_factor: want a small positive integer")
		}
		c.Merge = int(v)
	}
	eps, err := f.Float("clip.vision.attention.layer_norm_epsilon")
	if err != nil {
		return nil, fmt.Errorf("vision: %w", err)
	}
	c.Eps = float32(eps)
	for _, k := range []struct {
		key string
		dst *[3]float32
	}{{"clip.vision.image_mean", &c.Mean}, {"clip.vision.image_std", &c.Std}} {
		v, err := f.Float32s(k.key)
		if err != nil || len(v) != 3 {
			return fail("%s: want 3 float32 values", k.key)
		}
		copy(k.dst[:], v)
	}
	for i, s := range c.Std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fail("clip.vision.image_std[%d] = %v must be positive", i, s)
		}
	}
	// llama.cpp's FFN activation rule: use_gelu, else use_silu, else GELU-quick.
	c.Act = compute.QuickGELU
	if v, err := f.Bool("clip.use_gelu"); err == nil && v {
		c.Act = compute.GELU
	} else if v, err := f.Bool("clip.use_silu"); err == nil && v {
		c.Act = compute.SiLU
	}
	if ft, err := f.Int("general.file_type"); err == nil {
		c.FileType = int(ft)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("vision: %s: %w", f.Path, err)
	}
	return c, nil
}

// validate checks the geometry is one the graphs can run.
func (c *Config) validate() error {
	switch {
	case c.PatchSize > 64 || c.Merge > 16 || c.PatchSize*c.Merge > 128:
		return fmt.Errorf("patch size %d and pooling %d are beyond what mica supports (≤ 64, ≤ 16)", c.PatchSize, c.Merge)
	case c.Projector == Gemma3 && c.ImageSize > 4096:
		return fmt.Errorf("image size %d is beyond what mica supports (≤ 4096)", c.ImageSize)
	case c.Layers > 1024 || c.Heads > c.Width || c.Width > 1<<16 || c.FF > 1<<18 || c.ProjDim > 1<<18:
		return fmt.Errorf("geometry (%d layers, %d heads, width %d, FFN %d, projection %d) is out of range",
			c.Layers, c.Heads, c.Width, c.FF, c.ProjDim)
	case c.Width%c.Heads != 0 || c.HeadDim()%2 != 0:
		return fmt.Errorf("embedding width %d is not %d heads of an even width", c.Width, c.Heads)
	case c.Projector == Gemma3 && c.ImageSize%(c.PatchSize*c.Merge) != 0:
		return fmt.Errorf("image size %d is not a multiple of patch %d × pooling %d", c.ImageSize, c.PatchSize, c.Merge)
	case c.Projector == Gemma4V && c.HeadDim()%4 != 0:
		return fmt.Errorf("head width %d: 2-D RoPE needs a multiple of 4", c.HeadDim())
	}
	return nil
}

// EncodeFLOPs counts the multiply-adds (×2) of one encode of in: the
// patch embedding, every block's projections, attention products and FFN,
// and the output projection (norms, pooling and softmax are left out).
func (c *Config) EncodeFLOPs(in *Input) float64 {
	n := float64(in.NX * in.NY)
	E, F := float64(c.Width), float64(c.FF)
	P := float64(c.PatchSize)
	ffn := 2 * E * F // up, down
	if c.Projector == Gemma4V {
		ffn = 3 * E * F // gate, up, down
	}
	perBlock := n*(4*E*E+ffn) + 2*n*n*E // q, k, v, out; FFN; q·kᵀ and a·v
	total := n*3*P*P*E + float64(c.Layers)*perBlock + float64(in.Tokens())*E*float64(c.ProjDim)
	return 2 * total
}
