package vision

import (
	"image"
	"image/color"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/testenv"
)

// TestTargetSizes: the README's worked examples of both resize rules, and
// Gemma 4's budget limits for odd shapes.
func TestTargetSizes(t *testing.T) {
	g3 := &Config{Projector: Gemma3, ImageSize: 896, PatchSize: 14, Merge: 4}
	g4 := &Config{Projector: Gemma4V, PatchSize: 16, Merge: 3, MinTokens: 40, MaxTokens: 280, PosSize: 1024}
	img := func(w, h int) image.Image { return image.NewNRGBA(image.Rect(0, 0, w, h)) }

	in, err := g3.Preprocess(img(600, 400), PreprocessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Width != 896 || in.Height != 896 || in.Content != image.Rect(0, 149, 896, 747) {
		t.Errorf("gemma3 600×400: %d×%d content %v, want 896×896 at y=149 height 598", in.Width, in.Height, in.Content)
	}
	if in.Tokens() != 256 {
		t.Errorf("gemma3: %d tokens", in.Tokens())
	}
	if _, err := g3.Preprocess(img(10, 10), PreprocessOptions{MaxTokens: 100}); err == nil {
		t.Error("gemma3 accepted a token budget")
	}

	for _, c := range []struct {
		w, h     int
		o        PreprocessOptions
		minT     int
		maxT     int
		wantW, H int
	}{
		{512, 384, PreprocessOptions{}, 40, 280, 528, 384},
		{4000, 3000, PreprocessOptions{}, 40, 280, 0, 0},
		{20, 20, PreprocessOptions{}, 40, 280, 0, 0},
		{5000, 30, PreprocessOptions{}, 1, 280, 0, 0},
		{4000, 3000, PreprocessOptions{MaxTokens: 70}, 1, 70, 0, 0},
		{4000, 3000, PreprocessOptions{MaxTokens: 1120}, 40, 1120, 0, 0},
		{100, 100, PreprocessOptions{MinTokens: 100, MaxTokens: 200}, 100, 200, 0, 0},
	} {
		in, err := g4.Preprocess(img(c.w, c.h), c.o)
		if err != nil {
			t.Errorf("%d×%d %+v: %v", c.w, c.h, c.o, err)
			continue
		}
		if in.Width%48 != 0 || in.Height%48 != 0 || in.Tokens() < c.minT || in.Tokens() > c.maxT ||
			(c.wantW != 0 && (in.Width != c.wantW || in.Height != c.H)) {
			t.Errorf("%d×%d %+v: canvas %d×%d, %d tokens (want %d…%d)", c.w, c.h, c.o, in.Width, in.Height, in.Tokens(), c.minT, c.maxT)
		}
	}
	for _, o := range []PreprocessOptions{{MaxTokens: 5000}, {MinTokens: 300, MaxTokens: 200}, {MinTokens: -1}} {
		if _, err := g4.Preprocess(img(100, 100), o); err == nil || !strings.Contains(err.Error(), "budget") {
			t.Errorf("budget %+v: error %v", o, err)
		}
	}
	if _, err := g4.Preprocess(img(0, 5), PreprocessOptions{}); err == nil {
		t.Error("empty image accepted")
	}
}

// TestResizeCorners: corner-aligned bilinear resize keeps the corner
// pixels and truncates interpolated values.
func TestResizeCorners(t *testing.T) {
	src := []uint8{0, 0, 0, 255, 255, 255} // 2×1: black, white
	out := resizeBilinear(src, 2, 1, 4, 1)
	// x ratios 0, 1/3, 2/3, 1 → 0, 85, 170, 255 (255/3 = 85 exactly; 2·255/3 = 170).
	want := []uint8{0, 85, 170, 255}
	for i, w := range want {
		if out[3*i] != w {
			t.Errorf("pixel %d = %d, want %d (row %v)", i, out[3*i], w, out)
		}
	}
}

// TestAlphaIgnored: transparent pixels keep their colour channels, as
// stb_image's 3-channel decode does.
func TestAlphaIgnored(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	m.SetNRGBA(0, 0, color.NRGBA{9, 8, 7, 0})
	if got := rgbOf(m); got[0] != 9 || got[1] != 8 || got[2] != 7 {
		t.Errorf("got %v", got)
	}
}

// TestBadFiles: a text model, a truncated projector and mismatched pairs
// are clear errors.
func TestBadFiles(t *testing.T) {
	be := cpu.New(1)
	defer be.Close()
	if _, err := Open(testenv.Shared(t, "reference", "gemma", "gemma3-tiny-f32.gguf"), be); err == nil || !strings.Contains(err.Error(), "mmproj") {
		t.Errorf("text model as projector: %v", err)
	}
	// A projector missing a tensor names it.
	c := tinyConfig(t, "mmproj-gemma4-tiny-f32.gguf")
	c.Layers = 1
	path := filepath.Join(t.TempDir(), "one-layer.gguf")
	if err := WriteSynth(path, c, 1); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Layers = 2 // ask for a block the file does not have
	if _, _, err := bindWeights(f, be, cfg); err == nil || !strings.Contains(err.Error(), "v.blk.1.ln1.weight: missing") {
		t.Errorf("missing block: %v", err)
	}

	p, _ := openTiny(t, "mmproj-gemma3-tiny-f32.gguf", PreprocessOptions{})
	for _, tc := range []struct {
		arch  string
		width int
		want  string
	}{
		{"gemma4", 256, "gemma3 projector"},
		{"gemma3", 640, "projects to width 256"},
	} {
		if err := p.CheckPair(tc.arch, tc.width); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pair %s/%d: %v", tc.arch, tc.width, err)
		}
	}
	if err := p.CheckPair("gemma3", 256); err != nil {
		t.Error(err)
	}
	// An input from another projector is refused.
	_, in4 := openTiny(t, "mmproj-gemma4-tiny-f32.gguf", PreprocessOptions{})
	if _, err := p.Encode(in4); err == nil {
		t.Error("gemma3 encoded a gemma4 input")
	}
}

// TestBudget: OpenAI's detail and the explicit image token budget map to
// Gemma 4's budgets within its limits; Gemma 3 ignores detail and takes
// only its own 256.
func TestBudget(t *testing.T) {
	g3 := &Config{Projector: Gemma3, ImageSize: 896, PatchSize: 14, Merge: 4}
	g4 := &Config{Projector: Gemma4V, PatchSize: 16, Merge: 3, MinTokens: 40, MaxTokens: 280, PosSize: 1024}
	for _, c := range []struct {
		c      *Config
		detail string
		tokens int
		want   PreprocessOptions
		err    string // a piece of the error, "" for none
	}{
		{g4, "", 0, PreprocessOptions{}, ""},
		{g4, "auto", 0, PreprocessOptions{}, ""},
		{g4, "low", 0, PreprocessOptions{MinTokens: 40, MaxTokens: 70}, ""},
		{g4, "high", 0, PreprocessOptions{MinTokens: 40, MaxTokens: 1120}, ""},
		{g4, "high", 560, PreprocessOptions{MinTokens: 40, MaxTokens: 560}, ""}, // the explicit budget wins
		{g4, "", 20, PreprocessOptions{MinTokens: 20, MaxTokens: 20}, ""},       // the minimum never exceeds the cap
		{g4, "", 1121, PreprocessOptions{}, "outside 1…1120"},
		{g4, "", -3, PreprocessOptions{}, "outside 1…1120"},
		{g4, "medium", 0, PreprocessOptions{}, `detail "medium"`},
		{g3, "low", 0, PreprocessOptions{}, ""},
		{g3, "high", 0, PreprocessOptions{}, ""},
		{g3, "", 256, PreprocessOptions{}, ""},
		{g3, "", 280, PreprocessOptions{}, "always take 256 tokens"},
		{g3, "sharp", 0, PreprocessOptions{}, `detail "sharp"`},
	} {
		got, err := c.c.Budget(c.detail, c.tokens)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s detail %q tokens %d: %v", c.c.Projector, c.detail, c.tokens, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s detail %q tokens %d: error %v, want one saying %q", c.c.Projector, c.detail, c.tokens, err, c.err)
		case got != c.want:
			t.Errorf("%s detail %q tokens %d: %+v, want %+v", c.c.Projector, c.detail, c.tokens, got, c.want)
		}
	}
	// A budget that picks a larger canvas gives more tokens, and the input
	// records the budget it was sized for (the cache key hashes it).
	img := image.NewNRGBA(image.Rect(0, 0, 4000, 3000))
	o, _ := g4.Budget("low", 0)
	low, err := g4.Preprocess(img, o)
	if err != nil {
		t.Fatal(err)
	}
	o, _ = g4.Budget("high", 0)
	high, err := g4.Preprocess(img, o)
	if err != nil {
		t.Fatal(err)
	}
	if low.Tokens() > 70 || high.Tokens() <= 280 || high.Tokens() > 1120 || low.MaxTokens != 70 || high.MaxTokens != 1120 {
		t.Errorf("4000×3000: low %d tokens (budget %d), high %d tokens (budget %d)", low.Tokens(), low.MaxTokens, high.Tokens(), high.MaxTokens)
	}
}
