package clip

import (
	"encoding/json"
	"math"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/kernels/quant"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

// The reference checkpoints are defined by a recipe (reference/sd/README.md,
// "Values"): element i of tensor N is a function of N and i. recipeSource
// computes the F16 checkpoint's text-encoder weights from it, as
// stable-diffusion.cpp holds them (linear and embedding weights in F16, norm
// weights and biases widened to F32), so mica's encoders can be compared
// with the values sd.cpp tapped (reference/sdxl/cases.json).

func fnv1a(name string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 0x100000001b3
	}
	return h
}

// recipeValue is element i's float32 value.
func recipeValue(seed uint64, i int, offset, scale float64) float32 {
	z := seed + uint64(i+1)*0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	z ^= z >> 31
	u := float64(z>>11) * (1.0 / (1 << 53))
	return float32(offset + float64(scale*(2*u-1)))
}

// recipeTensor returns e's values, rounded to F16 (the F16 file).
func recipeTensor(e ckptTensor) []float32 {
	n := 1
	for _, d := range e.Shape {
		n *= d
	}
	seed := fnv1a(e.Name)
	v := make([]float32, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w * n / workers; i < (w+1)*n/workers; i++ {
				k := i
				if e.Symmetric { // element (r, c) takes flat index min·cols + max
					cols := e.Shape[1]
					r, c := i/cols, i%cols
					k = min(r, c)*cols + max(r, c)
				}
				x := recipeValue(seed, k, e.Offset, e.Scale)
				v[i] = quant.FP16ToFP32(quant.FP32ToFP16(x))
			}
		})
	}
	wg.Wait()
	return v
}

func TestRecipeWorkedExamples(t *testing.T) {
	// reference/sd/README.md and reference/sdxl/README.md, "Values".
	if got := recipeValue(fnv1a("model.diffusion_model.input_blocks.0.0.weight"), 0, 0, 0.0346410161513775); math.Float32bits(got) != 0x3c38ab08 {
		t.Errorf("input_blocks.0.0.weight[0] = %#x, want 0x3c38ab08", math.Float32bits(got))
	}
	tp := ckptTensor{Name: "conditioner.embedders.1.model.text_projection", Shape: []int{1280, 1280}, Scale: 0.0346410161513775, Symmetric: true}
	if fnv1a(tp.Name) != 0x3aad838d50b588c3 {
		t.Errorf("FNV-1a of %s = %#x", tp.Name, fnv1a(tp.Name))
	}
	v := recipeTensor(ckptTensor{Name: tp.Name, Shape: []int{2, 1280}, Scale: tp.Scale, Symmetric: true})
	for _, c := range []struct {
		i    int
		want uint16
	}{{0, 0x21d4}, {1, 0xa7ca}, {1280, 0xa7ca}} {
		if got := quant.FP32ToFP16(v[c.i]); got != c.want {
			t.Errorf("text_projection flat %d = F16 %#x, want %#x", c.i, got, c.want)
		}
	}
}

// recipeSource serves the recipe checkpoint's tensors.
type recipeSource struct {
	b       compute.Backend
	entries map[string]ckptTensor
	param.Errors
}

func (s *recipeSource) Shape(name string) ([]int, bool) {
	e, ok := s.entries[name]
	return e.Shape, ok
}

func (s *recipeSource) Tensor(name string, role param.Role, shape ...int) *compute.Tensor {
	e, ok := s.entries[name]
	if !ok {
		s.Add("tensor %s is missing", name)
		return nil
	}
	if !s.CheckShape(name, e.Shape, shape) {
		return nil
	}
	dt := tensor.F16
	if role == param.Norm || role == param.Bias {
		dt = tensor.F32
	}
	x, err := param.Upload(s.b, dt, recipeTensor(e), shape...)
	if err != nil {
		s.Add("tensor %s: %v", name, err)
	}
	return x
}

// tapStats are the values sd.cpp recorded for a tensor.
type tapStats struct {
	Mean, Std, Absmax float64
	Token0First8      []float64 `json:"token0_first8"`
	EOSFirst8         []float64 `json:"eos_token_first8"`
	First8            []float64 `json:"first8"`
}

type tapPrompt struct {
	FirstEOS int     `json:"first_eos_index"`
	ClipL    []int32 `json:"clip_l_77"`
	ClipG    []int32 `json:"clip_g_77"`
}

// TestSDXLRecipeMatchesSDCpp encodes case a's prompt and negative with both
// SDXL text encoders of the recipe checkpoint and compares the hidden
// states and pooled vectors with what stable-diffusion.cpp computed. It
// builds the 817M-parameter encoders from the recipe (about 1.6 GB), so it
// runs only with MICA_LONG=1.
func TestSDXLRecipeMatchesSDCpp(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" {
		t.Skip("MICA_LONG=1 builds SDXL's real-size text encoders from the recipe")
	}
	var cases struct {
		Cases []struct {
			ID     string `json:"id"`
			Tokens struct {
				Prompt, Negative tapPrompt
			} `json:"clip_token_ids"`
			Internals struct {
				Conditioning map[string]struct {
					ClipL  tapStats `json:"clip_l_penultimate"`
					ClipG  tapStats `json:"clip_g_penultimate"`
					Pooled tapStats `json:"pooled"`
				} `json:"conditioning"`
			} `json:"internals"`
		} `json:"cases"`
	}
	raw, err := os.ReadFile(testenv.Shared(t, "reference", "sdxl", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	b := cpu.New(2)
	defer b.Close()
	src := &recipeSource{b: b, entries: map[string]ckptTensor{}}
	for _, e := range readCheckpointList(t, "sdxl") {
		src.entries[e.Name] = e
	}
	type encoder struct {
		m    *Model
		name string
	}
	var encs [2]encoder
	for i, prefix := range []string{"conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model."} {
		start := time.Now()
		c, err := DetectConfig(src, prefix)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Load(src, prefix, c)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		encs[i] = encoder{m, prefix}
		t.Logf("%s: built from the recipe in %.1fs", prefix, time.Since(start).Seconds())
	}

	// Tolerances: sd.cpp and mica round at the same points (F16 weights'
	// inputs, the F16 activation tables) but sum in different orders, so a
	// value near an F16 rounding boundary can round the other way; 31 and 32
	// layers amplify those flips (one F16 ulp at |x| ≈ 8–16, bigG's range, is
	// 0.0078). Measured: first-8 differences ≤ 0.0082 for bigG (std 4.43),
	// ≤ 0.0019 for CLIP-L (std 1.51), ≤ 0.00078 pooled (std 0.73), so ≤ 2e-3
	// of the std. The bounds are 1 % of the std (5 % for absmax), far below
	// what a real error does (h·T vs T·h, a skipped norm or a wrong clip
	// skip move values by about their std).
	c := cases.Cases[0]
	for which, tok := range map[string]tapPrompt{"prompt": c.Tokens.Prompt, "negative": c.Tokens.Negative} {
		want := c.Internals.Conditioning[which]
		check := func(what string, got []float64, row int, st tapStats, first8 []float64, width int) {
			var sum, sum2, amax, dmax float64
			for _, v := range got {
				sum += v
				sum2 += v * v
				amax = math.Max(amax, math.Abs(v))
			}
			n := float64(len(got))
			mean := sum / n
			std := math.Sqrt(sum2/n - mean*mean)
			for j, w := range first8 {
				dmax = math.Max(dmax, math.Abs(got[row*width+j]-w))
			}
			t.Logf("%s %s: first8 max diff %.3g; mean %.5g/%.5g std %.5g/%.5g absmax %.5g/%.5g (mica/sd.cpp)",
				which, what, dmax, mean, st.Mean, std, st.Std, amax, st.Absmax)
			tol := 0.01 * st.Std
			if dmax > tol || math.Abs(mean-st.Mean) > tol || math.Abs(std-st.Std) > tol || math.Abs(amax-st.Absmax) > 5*tol {
				t.Errorf("%s %s: differs from sd.cpp beyond %.3g", which, what, tol)
			}
		}
		// CLIP-L: penultimate layer, no final norm.
		l, _, err := encs[0].m.Encode(b, tok.ClipL, EncodeOptions{Layers: 11, PooledAt: NoPool})
		if err != nil {
			t.Fatal(err)
		}
		lv := readF64(t, b, l)
		b.Free(l)
		check("clip_l token 0", lv, 0, want.ClipL, want.ClipL.Token0First8, 768)
		check("clip_l eos", lv, tok.FirstEOS, want.ClipL, want.ClipL.EOSFirst8, 768)
		// bigG: penultimate layer, no final norm; pooled from the full stack.
		g, pooled, err := encs[1].m.Encode(b, tok.ClipG, EncodeOptions{Layers: 31, PooledAt: tok.FirstEOS})
		if err != nil {
			t.Fatal(err)
		}
		gv := readF64(t, b, g)
		b.Free(g)
		check("clip_g token 0", gv, 0, want.ClipG, want.ClipG.Token0First8, 1280)
		check("clip_g eos", gv, tok.FirstEOS, want.ClipG, want.ClipG.EOSFirst8, 1280)
		check("pooled", f32s(pooled), 0, want.Pooled, want.Pooled.First8, 1280)
	}
}
