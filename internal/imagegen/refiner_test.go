package imagegen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/diffusion/sample"
	"mica/internal/diffusion/schedule"
	"mica/internal/format/safetensors"
	"mica/internal/models/sd"
	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

var (
	xlOnce             sync.Once
	xlPath, refPath    string
	xlErr              error
	refinerTestPresets = [2]string{"sdxl-test", "sdxl-refiner-test"}
)

// tinyXL loads the tiny SDXL base and refiner (written once per test
// binary) on one backend.
func tinyXL(t *testing.T) (base, ref *Model) {
	t.Helper()
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	xlOnce.Do(func() {
		xlPath = filepath.Join(testDir, "xl-base.safetensors")
		refPath = filepath.Join(testDir, refinerTestPresets[1]+".safetensors")
		if _, xlErr = synth.WriteSD(xlPath, synth.SDOptions{Preset: refinerTestPresets[0], Type: tensor.F16, Threads: 2}); xlErr == nil {
			_, xlErr = synth.WriteSD(refPath, synth.SDOptions{Preset: refinerTestPresets[1], Type: tensor.F16, Threads: 2})
		}
	})
	if xlErr != nil {
		t.Fatal(xlErr)
	}
	b := cpu.New(2)
	var err error
	if base, err = Load(b, xlPath, Options{Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	if ref, err = Load(b, refPath, Options{Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close(); ref.Close(); b.Close() })
	return base, ref
}

// steps records which model made each step of each pass.
func genSteps(t *testing.T, m *Model, r Request) (*Result, []string) {
	t.Helper()
	var who []string
	res, err := m.Generate(context.Background(), r, DefaultLimits(), func(p Progress) Action {
		who = append(who, p.Pass+":"+p.Model)
		return Continue
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, who
}

// TestRefinerDue pins A1111's switch rule at its boundary and on the
// schedules its documentation-free behaviour is usually described with.
func TestRefinerDue(t *testing.T) {
	tb, err := schedule.NewScaledLinear(0.00085, 0.012, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// Timestep 199 is progress (999−199)/1000 = 0.8: due at 0.8; 200 is
	// 0.799: not yet. A σ between two entries takes the nearer one.
	for _, c := range []struct {
		sigma, at float32
		want      bool
	}{
		{tb.Sigma(199), 0.8, true}, {tb.Sigma(200), 0.8, false},
		{tb.Sigma(199)*0.6 + tb.Sigma(200)*0.4, 0.8, true}, {tb.Sigma(199)*0.4 + tb.Sigma(200)*0.6, 0.8, false},
		{tb.Sigma(0), 1, false}, {tb.SigmaMax(), 0.001, false}, {tb.Sigma(998), 0.001, true},
		{0, 0.99, true}, // σ = 0 is nearest to timestep 0: 0.999
	} {
		if got := refinerDue(tb, c.sigma, c.at); got != c.want {
			t.Errorf("σ %v at %v: due %v, want %v", c.sigma, c.at, got, c.want)
		}
	}
	// Discrete ("Automatic" for Euler) schedules: timesteps
	// linspace(999, 0, n). 20 steps at 0.8: the first timestep ≤ 199 is
	// 999 − 16·999/19 ≈ 157.7 (step 16; step 15 is ≈ 210.3). 10 steps at
	// 0.8: 999 − 8·111 = 111 (step 8; step 7 is 222).
	for _, c := range []struct {
		steps int
		at    float32
		first int
	}{{20, 0.8, 16}, {10, 0.8, 8}, {6, 0.5, 3}, {10, 1, -1}} {
		sig, err := sample.Sigmas(tb, sample.Euler, schedule.Discrete, c.steps)
		if err != nil {
			t.Fatal(err)
		}
		first := -1
		for i, s := range sig[:len(sig)-1] {
			if refinerDue(tb, s, c.at) {
				first = i
				break
			}
		}
		if first != c.first {
			t.Errorf("%d discrete steps, switch at %v: refiner from step %d, want %d", c.steps, c.at, first, c.first)
		}
	}
}

// TestRefinerVector: the refiner's ADM input is pooled, then emb(h),
// emb(w), emb(0), emb(0), emb(aesthetic score).
func TestRefinerVector(t *testing.T) {
	pooled := []float32{1, 2, 3}
	y := refinerVector(pooled, 768, 1024, 2.5)
	if len(y) != 3+5*256 {
		t.Fatalf("%d values", len(y))
	}
	want := append([]float32{1, 2, 3}, sinusoid(768, 256)...)
	want = append(want, sinusoid(1024, 256)...)
	want = append(want, sinusoid(0, 256)...)
	want = append(want, sinusoid(0, 256)...)
	want = append(want, sinusoid(2.5, 256)...)
	if !reflect.DeepEqual(y, want) {
		t.Error("refiner vector layout differs")
	}
	// emb(0) is 128 ones then 128 zeros (cosine first).
	if y[3+2*256] != 1 || y[3+2*256+128] != 0 {
		t.Error("crop embedding is not cos-first")
	}
}

// TestRefinerTiny: a tiny base → refiner run hands over at A1111's step,
// changes the picture, is deterministic, and says so in the infotext; a
// switch point that is never reached gives exactly the base picture.
func TestRefinerTiny(t *testing.T) {
	base, ref := tinyXL(t)
	if ref.Kind != sd.SDXLRefiner || ref.clip != nil || ref.bigG == nil || ref.ucfg.ContextDim != 128 || ref.ucfg.ADMDim != 128+5*256 {
		t.Fatalf("refiner loaded as %v, UNet %+v", ref.Kind, ref.ucfg)
	}
	r := Request{Prompt: "a photo of a cat", Negative: "blurry", Width: 64, Height: 64, Steps: 6, Sampler: "Euler", Scheduler: "discrete", Seed: 42}
	alone, whoAlone := genSteps(t, base, r)
	r.Refiner, r.RefinerSwitchAt = ref, 0.5
	a, who := genSteps(t, base, r)
	b, _ := genSteps(t, base, r)
	// 6 discrete steps: timesteps 999, 799.2, 599.4, 399.6, 199.8, 0;
	// progress reaches 0.5 at 399.6 (nearest table entry 400: 0.599).
	want := []string{"txt2img:xl-base", "txt2img:xl-base", "txt2img:xl-base", "txt2img:sdxl-refiner-test", "txt2img:sdxl-refiner-test", "txt2img:sdxl-refiner-test"}
	if !reflect.DeepEqual(who, want) {
		t.Errorf("steps made by %v, want %v", who, want)
	}
	if whoAlone[5] != "txt2img:xl-base" {
		t.Errorf("base alone: %v", whoAlone)
	}
	if samePixels(a.Images[0].RGBA, alone.Images[0].RGBA) {
		t.Error("the refiner changed nothing")
	}
	if !samePixels(a.Images[0].RGBA, b.Images[0].RGBA) {
		t.Error("the same request gave two different refined pictures")
	}
	raw, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	tag := "Refiner: sdxl-refiner-test [" + hex.EncodeToString(sum[:])[:10] + "], Refiner switch at: 0.5"
	if !strings.Contains(a.Images[0].Infotext, tag) {
		t.Errorf("infotext %q lacks %q", a.Images[0].Infotext, tag)
	}
	if strings.Contains(alone.Images[0].Infotext, "Refiner") {
		t.Errorf("base-only infotext %q names a refiner", alone.Images[0].Infotext)
	}

	// Switch at 1: never reached (progress tops out at 0.999).
	r.RefinerSwitchAt = 1
	never, _ := genSteps(t, base, r)
	if !samePixels(never.Images[0].RGBA, alone.Images[0].RGBA) || strings.Contains(never.Images[0].Infotext, "Refiner") {
		t.Error("an unreached switch point changed the picture or the infotext")
	}

	// A second-order sampler and a stochastic one continue across the
	// switch too.
	r.RefinerSwitchAt = 0.5
	for _, s := range []string{"Heun", "DPM++ 2M", "Euler a"} {
		r.Sampler = s
		res, who := genSteps(t, base, r)
		if !strings.Contains(who[len(who)-1], "refiner") || !strings.Contains(res.Images[0].Infotext, "Refiner:") {
			t.Errorf("%s: steps by %v", s, who)
		}
	}
}

// TestRefinerAlone: a refiner as the main model does img2img (its
// aesthetic score matters); txt2img works with a notice; bad pairings are
// refused.
func TestRefinerAlone(t *testing.T) {
	base, ref := tinyXL(t)
	init := gradient(64, 64)
	r := Request{Prompt: "a photo of a cat", Init: init, Strength: 0.3, Steps: 4, Sampler: "Euler", Seed: 7}
	a := gen(t, ref, r)
	if len(a.Notices) != 0 || a.Images[0].RGBA.Bounds() != image.Rect(0, 0, 64, 64) {
		t.Errorf("img2img on the refiner: notices %v, %v", a.Notices, a.Images[0].RGBA.Bounds())
	}
	r.AestheticScore = 9
	if b := gen(t, ref, r); samePixels(a.Images[0].RGBA, b.Images[0].RGBA) {
		t.Error("the aesthetic score changed nothing")
	}
	txt := gen(t, ref, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "Euler", Seed: 1})
	if len(txt.Notices) != 1 || !strings.Contains(string(txt.Notices[0]), "unusual") {
		t.Errorf("txt2img on a refiner: notices %v", txt.Notices)
	}
	// The refiner as its own refiner: nothing to switch to (A1111 too).
	same := gen(t, ref, Request{Prompt: "x", Width: 64, Height: 64, Steps: 2, Sampler: "Euler", Seed: 1, Refiner: ref, RefinerSwitchAt: 0.01})
	if !samePixels(same.Images[0].RGBA, txt.Images[0].RGBA) {
		t.Error("a model refining itself changed the picture")
	}
	sd1 := tiny(t, 2)
	for _, c := range []struct {
		m    *Model
		r    Request
		want string
	}{
		{base, Request{Prompt: "x", RefinerCheckpoint: "sd_xl_refiner_1.0"}, `refiner "sd_xl_refiner_1.0" is not loaded`},
		{base, Request{Prompt: "x", Refiner: sd1}, "their latents differ"},
		{base, Request{Prompt: "x", Refiner: ref, RefinerSwitchAt: 1.5}, "refiner switch at 1.5"},
	} {
		c.r.Width, c.r.Height, c.r.Steps = 64, 64, 2
		_, err := c.m.Generate(context.Background(), c.r, DefaultLimits(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.r.RefinerCheckpoint, err, c.want)
		}
	}
	// "None" is A1111's no-refiner value.
	gen(t, base, Request{Prompt: "x", Width: 64, Height: 64, Steps: 1, Sampler: "Euler", RefinerCheckpoint: "None"})
}

// TestRefinerHires: with a hires fix the refiner joins the second pass
// only (A1111's default "second pass").
func TestRefinerHires(t *testing.T) {
	base, ref := tinyXL(t)
	r := Request{Prompt: "x", Width: 64, Height: 64, Steps: 4, Sampler: "Euler", Scheduler: "discrete", Seed: 3,
		Refiner: ref, RefinerSwitchAt: 0.5, Hires: &Hires{Scale: 1.5, Steps: 4, Denoise: 0.9}}
	res, who := genSteps(t, base, r)
	for _, w := range who {
		if strings.HasPrefix(w, "txt2img:") && w != "txt2img:xl-base" {
			t.Errorf("first pass step by %s", w)
		}
	}
	if !strings.Contains(who[len(who)-1], "hires:sdxl-refiner-test") || res.Images[0].RGBA.Bounds().Dx() != 96 {
		t.Errorf("steps %v, size %v", who, res.Images[0].RGBA.Bounds())
	}
}

// TestRefinerRealShapesLong: the real SDXL refiner's tensor list (the
// sdxl-refiner preset: 1858 tensors, F16) loads through the same code,
// with the architecture read from the shapes. The file is the preset's
// header followed by a sparse hole (zeros), so nothing of its 6 GB is
// generated or stored. MICA_LONG=1 only.
func TestRefinerRealShapesLong(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" {
		t.Skip("MICA_LONG=1 loads the real-shape SDXL refiner tensor list")
	}
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	l, err := synth.PlanSD(synth.SDOptions{Preset: "sdxl-refiner", Type: tensor.F16})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sd_xl_refiner_shapes.safetensors")
	f, err := os.Create(path)
	if err == nil {
		_, err = f.Write(l.Header)
	}
	if err == nil {
		err = f.Truncate(l.Bytes)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(2)
	defer b.Close()
	m, err := Load(b, path, Options{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	u := m.ucfg
	if m.Kind != sd.SDXLRefiner || u.ModelChannels != 384 || !reflect.DeepEqual(u.ChannelMult, []int{1, 2, 4, 4}) ||
		!reflect.DeepEqual(u.Depth, []int{0, 4, 4, 0}) || u.MiddleDepth != 4 || u.ContextDim != 1280 || u.ADMDim != 2560 ||
		u.NumResBlocks != 2 || !u.LinearProj || u.Heads(768) != 12 || u.Heads(1536) != 24 {
		t.Errorf("kind %v, UNet %+v", m.Kind, u)
	}
	g := m.bigG.Config
	if m.clip != nil || g.Hidden != 1280 || g.Layers != 32 || g.Heads != 20 || g.MLP != 5120 || g.ProjDim != 1280 {
		t.Errorf("text encoders: CLIP-L %v, bigG %+v", m.clip != nil, g)
	}
	// Everything is bound but logit_scale, which no one reads.
	if unused := m.src.Unused(""); !reflect.DeepEqual(unused, []string{"conditioner.embedders.0.model.logit_scale"}) {
		t.Errorf("unbound tensors: %v", unused)
	}
	t.Logf("%d tensors, %d parameters, %d bytes", len(l.Tensors), l.Params, l.Bytes)
}

// TestRefinerBadFile: a refiner file with tensors missing or mis-shaped
// is refused with one error naming each of them.
func TestRefinerBadFile(t *testing.T) {
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	var infos []safetensors.TensorInfo
	var data int64
	for _, x := range synth.SDTensors(synth.SDXLRefinerTestConfig()) {
		switch x.Name {
		case "conditioner.embedders.0.model.transformer.resblocks.1.mlp.c_fc.bias",
			"model.diffusion_model.input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight":
			continue // missing
		case "model.diffusion_model.middle_block.1.proj_out.weight":
			x.Shape = []int{128, 64} // mis-shaped
		}
		info := safetensors.TensorInfo{Name: x.Name, DType: tensor.F16}
		for _, d := range x.Shape {
			info.Shape = append(info.Shape, int64(d))
		}
		infos = append(infos, info)
		data += 2 * info.Elements()
	}
	head, err := safetensors.Header(nil, infos)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bad-refiner.safetensors")
	if err := os.WriteFile(path, head, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(len(head))+data); err != nil {
		t.Fatal(err)
	}
	b := cpu.New(1)
	defer b.Close()
	_, err = Load(b, path, Options{Tokenizer: tok})
	t.Log(err)
	if err == nil {
		t.Fatal("a refiner with missing tensors loaded")
	}
	for _, want := range []string{"resblocks.1.mlp.c_fc.bias", "input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight", "middle_block.1.proj_out.weight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}
