package imagegen

import (
	"context"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mica/internal/compute/cpu"
	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

// psnr compares two 8-bit RGB pictures: 10·log10(255²/MSE) over H·W·3
// values (the measure ../shared/reference/sd/README.md uses).
func psnr(a, b image.Image) float64 {
	bd := a.Bounds()
	var se float64
	n := 0
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for _, d := range [3]float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				se += d * d
				n++
			}
		}
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// recipeCheckpoint writes (once, into MICA_SD_CACHE or the temp folder)
// the SD 1.5 recipe checkpoint the references were made from.
func recipeCheckpoint(t *testing.T, preset string, dt tensor.DType, name string) string {
	dir := os.Getenv("MICA_SD_CACHE")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, name)
	plan, err := synth.PlanSD(synth.SDOptions{Preset: preset, Type: dt})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == plan.Bytes {
		return path
	}
	t0 := time.Now()
	if _, err := synth.WriteSD(path, synth.SDOptions{Preset: preset, Type: dt, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s in %s", path, time.Since(t0).Round(time.Second))
	return path
}

// TestSD15ReferenceCases runs the cases of ../shared/reference/sd on the
// recipe checkpoint and compares the pictures with stable-diffusion.cpp's
// (PSNR ≥ 35 dB; below that the README says a semantic difference is to
// blame). MICA_LONG=1: it writes a 4.3 GB checkpoint and runs minutes.
func TestSD15ReferenceCases(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" {
		t.Skip("MICA_LONG=1 runs the SD 1.5 reference cases (writes a 4.3 GB checkpoint)")
	}
	referenceCases(t, "sd", "sd15-recipe", tensor.F32, "sd15-recipe-f32.safetensors")
}

// TestSDXLReferenceCases does the same for ../shared/reference/sdxl (a 6.9
// GB F16 checkpoint, 512×512: tens of minutes on two cores).
func TestSDXLReferenceCases(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" || os.Getenv("MICA_SDXL") == "" {
		t.Skip("MICA_LONG=1 MICA_SDXL=1 runs the SDXL reference cases (writes a 6.9 GB checkpoint)")
	}
	referenceCases(t, "sdxl", "sdxl-recipe", tensor.F16, "sdxl-recipe-f16.safetensors")
}

func referenceCases(t *testing.T, folder, preset string, dt tensor.DType, ckpt string) {
	ref := testenv.Shared(t, "reference", folder)
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	var cases struct {
		Cases []struct {
			ID     string
			Params struct {
				Mode, Prompt, Negative, Sampler, Scheduler string
				Width, Height, Steps                       int
				CFG                                        float32
				Seed                                       int64
				Strength                                   float32
				ClipSkip                                   int `json:"clip_skip"`
			}
			Outputs []struct {
				Model, PNG string
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(ref, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	path := recipeCheckpoint(t, preset, dt, ckpt)
	be := cpu.New(0)
	defer be.Close()
	m, err := Load(be, path, Options{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	only := os.Getenv("MICA_SD_CASE")
	for _, c := range cases.Cases {
		if only != "" && only != c.ID {
			continue
		}
		p := c.Params
		r := Request{Prompt: p.Prompt, Negative: p.Negative, Width: p.Width, Height: p.Height, Steps: p.Steps, CFG: p.CFG,
			Sampler: p.Sampler, Scheduler: p.Scheduler, Seed: p.Seed, ClipSkip: p.ClipSkip, RNG: "philox",
			EmptyNegative: "sdcpp"} // the references are stable-diffusion.cpp's
		if p.Mode == "img2img" {
			r.Init = readPNG(t, filepath.Join(ref, "img2img-input-gradient-256.png"))
			r.Strength = p.Strength
			// mica's default step rule is A1111's; for these cases it picks
			// the same sigmas as stable-diffusion.cpp's (⌊N·s⌋+1 steps).
			r.StepRule = os.Getenv("MICA_IMG2IMG_RULE")
		}
		t0 := time.Now()
		res, err := m.Generate(context.Background(), r, DefaultLimits(), nil)
		if err != nil {
			t.Fatalf("case %s: %v", c.ID, err)
		}
		got := res.Images[0].RGBA
		if dump := os.Getenv("MICA_SD_DUMP"); dump != "" {
			f, _ := os.Create(filepath.Join(dump, folder+"-case-"+c.ID+".png"))
			png.Encode(f, got)
			f.Close()
		}
		compared := 0
		for _, o := range c.Outputs {
			if o.Model != ckpt {
				continue
			}
			compared++
			db := psnr(got, readPNG(t, filepath.Join(ref, o.PNG)))
			t.Logf("case %s: %.2f dB against %s (text %s, sampling %s for %d steps, decode %s, total %s)", c.ID, db, o.PNG,
				res.Timings.Text.Round(time.Millisecond), res.Timings.Sampling.Round(time.Millisecond), res.Timings.Steps,
				res.Timings.Decode.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
			if db < 35 {
				t.Errorf("case %s: PSNR %.2f dB < 35 dB against stable-diffusion.cpp", c.ID, db)
			}
		}
		if compared == 0 {
			t.Errorf("case %s: cases.json has no picture from %s to compare with", c.ID, ckpt)
		}
	}
}
