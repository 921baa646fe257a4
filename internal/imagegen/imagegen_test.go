package imagegen

import (
	"context"
	"errors"
	"image"
	"image/color"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/diffusion/infotext"
	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

var (
	tinyOnce sync.Once
	tinyPath string
	tinyErr  error
)

// tiny loads the sd-test checkpoint (SD 1 structure, small channels),
// written once per test binary.
func tiny(t *testing.T, threads int) *Model {
	t.Helper()
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	tinyOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			tinyErr = err
			return
		}
		tinyPath = filepath.Join(dir, "sd-test.safetensors")
		_, tinyErr = synth.WriteSD(tinyPath, synth.SDOptions{Preset: "sd-test", Type: tensor.F32, Threads: 2})
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	b := cpu.New(threads)
	m, err := Load(b, tinyPath, Options{Tokenizer: tok})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); b.Close() })
	return m
}

func gen(t *testing.T, m *Model, r Request) *Result {
	t.Helper()
	res, err := m.Generate(context.Background(), r, DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func samePixels(a, b *image.RGBA) bool {
	return a.Bounds() == b.Bounds() && string(a.Pix) == string(b.Pix)
}

func TestTxt2ImgDeterministic(t *testing.T) {
	m1, m2 := tiny(t, 1), tiny(t, 2)
	r := Request{Prompt: "a photo of a cat", Width: 64, Height: 64, Steps: 3, Sampler: "Euler a", Seed: 42}
	a := gen(t, m1, r).Images[0]
	b := gen(t, m2, r).Images[0]
	if !samePixels(a.RGBA, b.RGBA) {
		t.Fatal("the same seed gave different pictures at 1 and 2 threads")
	}
	if a.RGBA.Bounds().Dx() != 64 || a.Seed != 42 {
		t.Fatalf("picture %v seed %d", a.RGBA.Bounds(), a.Seed)
	}
	r.Seed = 43
	c := gen(t, m1, r).Images[0]
	if samePixels(a.RGBA, c.RGBA) {
		t.Fatal("seeds 42 and 43 gave the same picture")
	}
	// Not a flat picture: random weights give noise, but structured noise.
	var lo, hi uint8 = 255, 0
	for i, v := range a.RGBA.Pix {
		if i%4 != 3 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi-lo < 8 {
		t.Fatalf("flat picture: values %d..%d", lo, hi)
	}
	p, err := infotext.Parse(a.Infotext)
	if err != nil {
		t.Fatal(err)
	}
	if p.Prompt != "a photo of a cat" {
		t.Fatalf("infotext prompt %q", p.Prompt)
	}
	for k, want := range map[string]string{"Steps": "3", "Sampler": "Euler a", "Seed": "42", "Size": "64x64", "CFG scale": "7"} {
		if got, _ := p.Get(k); got != want {
			t.Errorf("infotext %s = %q, want %q (%s)", k, got, want, a.Infotext)
		}
	}
}

func TestBatchSeedsAndSamplers(t *testing.T) {
	m := tiny(t, 2)
	res := gen(t, m, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "DPM++ 2M Karras", Seed: 7, BatchSize: 2})
	if len(res.Images) != 2 || res.Images[0].Seed != 7 || res.Images[1].Seed != 8 {
		t.Fatalf("batch seeds: %d images", len(res.Images))
	}
	single := gen(t, m, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "DPM++ 2M Karras", Seed: 8})
	if !samePixels(res.Images[1].RGBA, single.Images[0].RGBA) {
		t.Fatal("image 2 of a batch from seed 7 differs from seed 8 alone")
	}
	for _, s := range []string{"Euler", "Heun", "DPM2", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DDIM", "LCM", "UniPC"} {
		if _, err := m.Generate(context.Background(), Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: s, Seed: 1}, DefaultLimits(), nil); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := m.Generate(context.Background(), Request{Prompt: "x", Sampler: "Nope"}, DefaultLimits(), nil); err == nil {
		t.Error("unknown sampler accepted")
	}
}

func TestVariationSeed(t *testing.T) {
	m := tiny(t, 2)
	base := Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "Euler", Seed: 3}
	a := gen(t, m, base).Images[0]
	v := base
	v.Subseed, v.SubseedStrength = 9, 0.5
	b := gen(t, m, v).Images[0]
	if samePixels(a.RGBA, b.RGBA) {
		t.Fatal("a variation seed changed nothing")
	}
	if !strings.Contains(b.Infotext, "Variation seed: 9") {
		t.Fatalf("infotext lacks the variation seed: %s", b.Infotext)
	}
}

func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), uint8(2 * (x + y)), 255})
		}
	}
	return img
}

func TestImg2ImgAndInpaint(t *testing.T) {
	m := tiny(t, 2)
	init := gradient(64, 64)
	res := gen(t, m, Request{Prompt: "oil painting", Init: init, Strength: 0.5, Steps: 4, Sampler: "Euler", Seed: 5})
	if got := res.Images[0].RGBA.Bounds(); got.Dx() != 64 || got.Dy() != 64 {
		t.Fatalf("img2img size %v (the size defaults to the init picture's)", got)
	}
	if !strings.Contains(res.Images[0].Infotext, "Denoising strength: 0.5") {
		t.Fatalf("infotext: %s", res.Images[0].Infotext)
	}
	// Inpainting with a hard mask: every pixel outside it is the original's.
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 16; y < 48; y++ {
		for x := 16; x < 48; x++ {
			mask.SetGray(x, y, color.Gray{255})
		}
	}
	for _, full := range []bool{false, true} {
		res = gen(t, m, Request{Prompt: "a hat", Init: init, Mask: mask, Strength: 0.75, Steps: 2, Sampler: "Euler", Seed: 5, InpaintFullRes: full, Padding: 8})
		out := res.Images[0].RGBA
		changed := false
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				o, g := init.RGBAAt(x, y), out.RGBAAt(x, y)
				if mask.GrayAt(x, y).Y == 0 && o != g {
					t.Fatalf("only-masked=%v: unmasked pixel (%d,%d) changed: %v → %v", full, x, y, o, g)
				}
				if mask.GrayAt(x, y).Y == 255 && o != g {
					changed = true
				}
			}
		}
		if !changed {
			t.Fatalf("only-masked=%v: the masked area did not change", full)
		}
	}
}

func TestHiresFix(t *testing.T) {
	m := tiny(t, 2)
	res := gen(t, m, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "Euler", Seed: 1,
		Hires: &Hires{Scale: 1.5, Steps: 2, Denoise: 0.5}})
	if got := res.Images[0].RGBA.Bounds(); got.Dx() != 96 || got.Dy() != 96 {
		t.Fatalf("hires size %v, want 96x96", got)
	}
	if !strings.Contains(res.Images[0].Infotext, "Hires upscale: 1.5") {
		t.Fatalf("infotext: %s", res.Images[0].Infotext)
	}
}

func TestInterruptAndSkip(t *testing.T) {
	m := tiny(t, 2)
	calls := 0
	res, err := m.Generate(context.Background(), Request{Prompt: "x", Width: 64, Height: 64, Steps: 5, Sampler: "Euler", Seed: 1, BatchSize: 3},
		DefaultLimits(), func(p Progress) Action {
			calls++
			if p.Image == 0 && p.Step == 2 {
				return Skip
			}
			if p.Image == 1 && p.Step == 3 {
				return Interrupt
			}
			return Continue
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 || !res.Interrupted || calls != 5 {
		t.Fatalf("%d images, interrupted %v, %d progress calls; want 2, true, 5", len(res.Images), res.Interrupted, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Generate(ctx, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2}, DefaultLimits(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	m := tiny(t, 1)
	lim := Limits{MaxPixels: 128 * 128, MaxSteps: 10, MaxBatch: 2}
	for _, r := range []Request{
		{Width: 512, Height: 512},
		{Steps: 11},
		{BatchSize: 3},
		{Width: -8},
		{CFG: -1},
		{Mask: image.NewGray(image.Rect(0, 0, 8, 8))},
		{Init: gradient(64, 64), Mask: image.NewGray(image.Rect(0, 0, 8, 8))},
		{Init: gradient(64, 64), Strength: 2},
		{RNG: "quantum"},
		{Hires: &Hires{Scale: 0.5}},
	} {
		r.Prompt = "x"
		if r.Width == 0 && r.Init == nil {
			r.Width, r.Height = 64, 64
		}
		if _, err := m.Generate(context.Background(), r, lim, nil); err == nil {
			t.Errorf("request %+v accepted", r)
		}
	}
	// Sizes not multiples of 8 are rounded down, with a notice.
	res, err := m.Generate(context.Background(), Request{Prompt: "x", Width: 70, Height: 65, Steps: 1}, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Images[0].RGBA.Bounds(); b.Dx() != 64 || b.Dy() != 64 || len(res.Notices) != 1 {
		t.Fatalf("size %v, notices %v", b, res.Notices)
	}
}

func TestOutpaint(t *testing.T) {
	m := tiny(t, 2)
	init := gradient(64, 64)
	res := gen(t, m, Request{Prompt: "a wide landscape", Init: init, Outpaint: &Outpaint{Left: 16, Right: 16, Bottom: 8}, Steps: 2, Sampler: "Euler", Seed: 2, MaskBlur: 4})
	out := res.Images[0].RGBA
	if b := out.Bounds(); b.Dx() != 96 || b.Dy() != 72 {
		t.Fatalf("outpainted size %v, want 96x72", b)
	}
	// Beyond the seam (mask overlap 4 + blur reach 3σ = 12) nothing changed.
	for y := 0; y < 64-16; y++ {
		for x := 16 + 16; x < 16+64-16; x++ {
			if out.RGBAAt(x, y) != init.RGBAAt(x-16, y) {
				t.Fatalf("original pixel (%d,%d) changed", x-16, y)
			}
		}
	}
	if _, err := m.Generate(context.Background(), Request{Prompt: "x", Outpaint: &Outpaint{Left: 8}}, DefaultLimits(), nil); err == nil {
		t.Fatal("outpainting without a picture accepted")
	}
}

// TestInpaintingCheckpoint: a 9-channel inpainting UNet gets the mask and
// the masked picture's latent as extra input, for inpainting and txt2img.
func TestInpaintingCheckpoint(t *testing.T) {
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	cfg := synth.SDTestConfig().Inpainting()
	path := filepath.Join(testDir, "sd-test-inpaint.safetensors")
	if _, err := synth.WriteSD(path, synth.SDOptions{Config: &cfg, Type: tensor.F16, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	b := cpu.New(2)
	defer b.Close()
	m, err := Load(b, path, Options{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Kind.String() == "" || m.ucfg.InChannels != 9 {
		t.Fatalf("kind %v, UNet input %d channels", m.Kind, m.ucfg.InChannels)
	}
	gen(t, m, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "Euler", Seed: 1})
	init := gradient(64, 64)
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 32; x < 64; x++ {
			mask.SetGray(x, y, color.Gray{255})
		}
	}
	res := gen(t, m, Request{Prompt: "x", Init: init, Mask: mask, Strength: 1, Steps: 2, Sampler: "Euler", Seed: 1})
	out := res.Images[0].RGBA
	for y := 0; y < 64; y++ {
		for x := 0; x < 32; x++ {
			if out.RGBAAt(x, y) != init.RGBAAt(x, y) {
				t.Fatalf("unmasked pixel (%d,%d) changed", x, y)
			}
		}
	}
}

// TestSDXLTiny runs the SDXL path (two text encoders, pooled vector and
// size conditioning, the zeroed context of an empty negative prompt) on
// the tiny sdxl-test checkpoint: it must work and be deterministic, and the
// negative prompt must matter.
func TestSDXLTiny(t *testing.T) {
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	path := filepath.Join(testDir, "sdxl-test.safetensors")
	if _, err := synth.WriteSD(path, synth.SDOptions{Preset: "sdxl-test", Type: tensor.F16, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	b := cpu.New(2)
	defer b.Close()
	m, err := Load(b, path, Options{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Kind.IsSDXL() || m.NativeSize() != 1024 {
		t.Fatalf("kind %v", m.Kind)
	}
	r := Request{Prompt: "a photo of a cat", Width: 64, Height: 64, Steps: 2, Sampler: "Euler", Seed: 42}
	a, c := gen(t, m, r).Images[0], gen(t, m, r).Images[0]
	if !samePixels(a.RGBA, c.RGBA) {
		t.Fatal("same seed, different pictures")
	}
	r.Negative = "blurry"
	if d := gen(t, m, r).Images[0]; samePixels(a.RGBA, d.RGBA) {
		t.Fatal("the negative prompt changed nothing")
	}
	// An empty negative: A1111 zeroes the context and the pooled part of y
	// (not the size embeddings); sd.cpp keeps the pooled vector of "".
	pooled := m.bigG.Config.ProjDim
	for _, rule := range []string{"", "sdcpp"} {
		_, u, err := m.conditioning(&Request{Prompt: "a cat", EmptyNegative: rule}, 64, 64)
		if err != nil {
			t.Fatal(err)
		}
		nz := func(v []float32) bool {
			for _, x := range v {
				if x != 0 {
					return true
				}
			}
			return false
		}
		if nz(u.ctx) {
			t.Errorf("rule %q: the empty negative's context is not zero", rule)
		}
		if nz(u.y[:pooled]) != (rule == "sdcpp") {
			t.Errorf("rule %q: pooled part non-zero = %v", rule, nz(u.y[:pooled]))
		}
		if !nz(u.y[pooled:]) {
			t.Errorf("rule %q: the size embeddings were zeroed", rule)
		}
	}
	r.Negative = ""
	r.EmptyNegative = "sdcpp"
	if d := gen(t, m, r).Images[0]; samePixels(a.RGBA, d.RGBA) {
		t.Fatal("zeroing the pooled vector changed nothing")
	}
}
