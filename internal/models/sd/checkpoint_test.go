package sd

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/param"
	"mica/internal/models/sd/unet"
	"mica/internal/models/sd/vae"
	"mica/internal/tensor"
)

// runUNet loads the UNet from src and runs it on fixed inputs.
func runUNet(t *testing.T, b compute.Backend, src param.Source, fam unet.Family) []float32 {
	t.Helper()
	cfg := tinyUNet()
	if _, random := src.(*param.Random); !random {
		var err error
		if cfg, err = unet.DetectConfig(src, UNetPrefix, fam); err != nil {
			t.Fatal(err)
		}
	}
	m, err := unet.Load(src, UNetPrefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	xv := make([]float32, 4*8*8)
	cv := make([]float32, 3*cfg.ContextDim)
	for i := range xv {
		xv[i] = float32(rng.NormFloat64())
	}
	for i := range cv {
		cv[i] = float32(rng.NormFloat64())
	}
	x, _ := nn.UploadF32(b, xv, 1, 4, 8, 8)
	ctx, _ := nn.UploadF32(b, cv, 3, cfg.ContextDim)
	out, _ := b.Alloc(tensor.F32, 1, 4, 8, 8)
	if err := m.Forward(b, x, 500, ctx, nil, out); err != nil {
		t.Fatal(err)
	}
	v, _ := nn.ReadF32(b, out)
	return v
}

func maxRelDiff(a, b []float32) float64 {
	var mx, ss float64
	for i := range a {
		mx = math.Max(mx, math.Abs(float64(a[i])-float64(b[i])))
		ss += float64(b[i]) * float64(b[i])
	}
	return mx / math.Sqrt(ss/float64(len(b)))
}

// TestSingleFileDTypePolicy writes a tiny SD1 checkpoint as F32, F16 and
// BF16 and checks the kind, the dtypes the roles get, zero-copy wrapping,
// and that the UNet computes what it computes on the same weights from a
// Random source.
func TestSingleFileDTypePolicy(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	vals, shapes := tinyWeights(t, b, tinyUNet())
	dir := t.TempDir()
	var outputs = map[tensor.DType][]float32{}
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		path := filepath.Join(dir, dt.String()+".safetensors")
		writeFile(t, path, dt, vals, shapes)
		ck, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if ck.Kind != SD1 || ck.VAEConvScale() != 1 || ck.LatentScale() != 0.18215 {
			t.Errorf("%s: kind %v, conv scale %v, latent scale %v", dt, ck.Kind, ck.VAEConvScale(), ck.LatentScale())
		}
		src, err := ck.Source(b, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := b.Memory()
		outputs[dt] = runUNet(t, b, src, ck.Kind.Family())
		after := b.Memory()
		checks := map[string]tensor.DType{
			UNetPrefix + "input_blocks.0.0.weight":             tensor.F16,
			UNetPrefix + "time_embed.0.weight":                 dt,
			UNetPrefix + "input_blocks.1.0.in_layers.0.weight": tensor.F32,
			UNetPrefix + "out.2.bias":                          tensor.F32,
		}
		for name, want := range checks {
			role := param.Linear
			switch {
			case strings.HasSuffix(name, ".0.0.weight"):
				role = param.Conv
			case strings.HasSuffix(name, "bias"):
				role = param.Bias
			case strings.Contains(name, "in_layers.0"):
				role = param.Norm
			}
			got := src.Tensor(name, role, shapes[name]...)
			if got == nil || got.DType != want {
				t.Errorf("%s file: %s (%v) served as %v, want %s", dt, name, role, got, want)
			}
			// Values: the file's value converted by the policy.
			if got != nil {
				v, _ := readAny(b, got)
				w := vals[name][0]
				if dt == tensor.F16 || want == tensor.F16 {
					w = roundTo(tensor.F16, w)
				}
				if dt == tensor.BF16 {
					w = roundTo(tensor.BF16, vals[name][0])
					if want == tensor.F16 {
						w = roundTo(tensor.F16, w)
					}
				}
				if v[0] != w {
					t.Errorf("%s file: %s[0] = %v, want %v", dt, name, v[0], w)
				}
			}
		}
		if after.Wrapped <= before.Wrapped {
			t.Errorf("%s: nothing was wrapped (zero-copy) from the file", dt)
		}
		t.Logf("%s: wrapped %d bytes, converted %d bytes", dt, after.Wrapped-before.Wrapped, after.Allocated-before.Allocated)
		if err := src.Err(); err != nil {
			t.Fatal(err)
		}
		src.Free()
		ck.Close()
	}
	// F32 and F16 files hold the same conv values (F16 either way); the F16
	// file's Linear weights and norms are rounded, so the outputs differ by
	// F16 rounding only (measured ~1e-3 of the RMS through the tiny UNet).
	if d := maxRelDiff(outputs[tensor.F16], outputs[tensor.F32]); d > 2e-2 {
		t.Errorf("F16 file output differs from F32 file output by %.2e of the RMS", d)
	}
	if d := maxRelDiff(outputs[tensor.BF16], outputs[tensor.F32]); d > 1e-1 {
		t.Errorf("BF16 file output differs from F32 file output by %.2e of the RMS", d)
	}
	// F32 file against the same values from param.Random (conv F16, the
	// rest F32, as the policy serves an F32 file): bit-identical.
	rs := param.NewRandom(b, 9, 0.15)
	if got := runUNet(t, b, rs, unet.SD1); !reflect.DeepEqual(got, outputs[tensor.F32]) {
		t.Errorf("F32 file output differs from the Random source's (max diff %.2e of RMS)", maxRelDiff(got, outputs[tensor.F32]))
	}
}

// roundTo is v stored as dt and read back.
func roundTo(dt tensor.DType, v float32) float32 {
	raw, _ := param.Encode(dt, []float32{v}, 1)
	out, _ := decode(dt, raw)
	return out[0]
}

// TestQuantize: Q8_0 for UNet Linear weights whose rows are whole blocks
// and conv kernels whose ic·k·k values are (as [oc, ic·k·k] matrices); the
// others stay and are noted.
func TestQuantize(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	vals, shapes := tinyWeights(t, b, tinyUNet())
	path := filepath.Join(t.TempDir(), "m.safetensors")
	writeFile(t, path, tensor.F16, vals, shapes)
	ck, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	plain, _ := ck.Source(b, SourceOptions{})
	want := runUNet(t, b, plain, unet.SD1)
	src, err := ck.Source(b, SourceOptions{Quantize: tensor.Q8_0})
	if err != nil {
		t.Fatal(err)
	}
	got := runUNet(t, b, src, unet.SD1)
	if w := src.Tensor(UNetPrefix+"time_embed.0.weight", param.Linear, 128, 32); w.DType != tensor.Q8_0 {
		t.Errorf("time_embed.0.weight is %v, want Q8_0", w)
	}
	if w := src.Tensor(UNetPrefix+"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", param.Linear, 32, 24); w.DType != tensor.F16 {
		t.Errorf("attn2.to_k (rows of 24) is %v, want F16", w)
	}
	if w := src.Tensor(UNetPrefix+"input_blocks.1.0.in_layers.2.weight", param.Conv, 32, 32, 3, 3); w.DType != tensor.Q8_0 || len(w.Shape) != 2 || w.Shape[1] != 288 {
		t.Errorf("resblock conv is %v %v, want a Q8_0 [32, 288] matrix", w.DType, w.Shape)
	}
	if w := src.Tensor(UNetPrefix+"input_blocks.0.0.weight", param.Conv, 32, 4, 3, 3); w.DType != tensor.F16 || len(w.Shape) != 4 {
		t.Errorf("input conv (4·3·3 = 36 values a row) is %v %v, want F16 4-D", w.DType, w.Shape)
	}
	notes := strings.Join(src.Notes, "\n")
	if !strings.Contains(notes, "attn2.to_k.weight stays F16") || !strings.Contains(notes, "input_blocks.0.0.weight stays F16") {
		t.Errorf("no note for the unquantizable weights: %q", src.Notes)
	}
	// Q8_0 keeps ~8 bits per weight: measured ~1e-2 of the RMS here.
	if d := maxRelDiff(got, want); d > 0.1 || d == 0 {
		t.Errorf("Q8_0 UNet differs from F16 by %.2e of the RMS", d)
	}
	if _, err := ck.Source(b, SourceOptions{Quantize: tensor.Q4_K}); err == nil {
		t.Error("Q4_K quantization accepted")
	}
}

// TestBadFiles: truncated files, missing and mis-shaped tensors give
// errors naming the file and every tensor.
func TestBadFiles(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	vals, shapes := tinyWeights(t, b, tinyUNet())
	dir := t.TempDir()

	path := filepath.Join(dir, "trunc.safetensors")
	writeFile(t, path, tensor.F16, vals, shapes)
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-10); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "trunc.safetensors") {
		t.Errorf("truncated file: %v", err)
	}

	bad := filepath.Join(dir, "bad.safetensors")
	v2, s2 := map[string][]float32{}, map[string][]int{}
	for k, v := range vals {
		v2[k], s2[k] = v, shapes[k]
	}
	missing := UNetPrefix + "output_blocks.0.0.emb_layers.1.weight"
	delete(v2, missing)
	wrong := UNetPrefix + "input_blocks.1.0.in_layers.2.weight"
	s2[wrong] = []int{32, 32, 1, 9}
	writeFile(t, bad, tensor.F16, v2, s2)
	ck, err := Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	src, _ := ck.Source(b, SourceOptions{})
	_, err = unet.Load(src, UNetPrefix, tinyUNet())
	if err == nil {
		t.Fatal("loaded a UNet with a missing and a mis-shaped tensor")
	}
	for _, w := range []string{missing + ": missing from " + bad, wrong + " has shape [32 32 1 9], want [32 32 3 3]"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
}

// TestDetect covers every kind from marker tensors, and the refusals.
func TestDetect(t *testing.T) {
	dir := t.TempDir()
	unetMarkers := func(in, ctx, adm int) map[string][]int {
		m := map[string][]int{
			UNetPrefix + "input_blocks.0.0.weight":                                 {32, in, 3, 3},
			UNetPrefix + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": {64, ctx},
		}
		if adm > 0 {
			m[UNetPrefix+"label_emb.0.0.weight"] = []int{128, adm}
		}
		return m
	}
	// with adds text-encoder token embeddings [10, width] under prefixes.
	with := func(m map[string][]int, enc ...any) map[string][]int {
		for i := 0; i < len(enc); i += 2 {
			m[enc[i].(string)+"token_embedding.weight"] = []int{10, enc[i+1].(int)}
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		shapes map[string][]int
		kind   Kind
		err    string
	}{
		{"sd1", with(unetMarkers(4, 768, 0), SD1Text+"text_model.embeddings.", 768), SD1, ""},
		{"sd1-tiny", with(unetMarkers(4, 128, 0), SD1Text+"text_model.embeddings.", 128), SD1, ""},
		{"sd1-inpaint", with(unetMarkers(9, 768, 0), SD1Text+"text_model.embeddings.", 768), SD1Inpaint, ""},
		{"sd1-wrong-context", with(unetMarkers(4, 512, 0), SD1Text+"text_model.embeddings.", 768), Unknown, "unknown layout (UNet input 4 channels, context 512, ADM 0"},
		{"sdxl", with(unetMarkers(4, 2048, 2816), SDXLText1+"text_model.embeddings.", 768, SDXLText2, 1280), SDXL, ""},
		{"sdxl-tiny", with(unetMarkers(4, 192, 1664), SDXLText1+"text_model.embeddings.", 64, SDXLText2, 128), SDXL, ""},
		{"sdxl-inpaint", with(unetMarkers(9, 2048, 2816), SDXLText1+"text_model.embeddings.", 768, SDXLText2, 1280), SDXLInpaint, ""},
		{"refiner", with(unetMarkers(4, 1280, 2560), RefinerText, 1280), SDXLRefiner, ""},
		{"sd2", with(unetMarkers(4, 1024, 0), SD2Text, 1024), SD2, "SD 2.x checkpoint (UNet input 4 channels, context 1024, ADM 0, text encoders cond_stage_model.model): not supported yet"},
		{"sd2-diffusers-names", with(unetMarkers(4, 1024, 0), SD1Text+"text_model.embeddings.", 1024), SD2, "not supported yet"},
		{"pix2pix", with(unetMarkers(8, 768, 0), SD1Text+"text_model.embeddings.", 768), Unknown, "unknown layout (UNet input 8 channels"},
		{"sd1-no-text", unetMarkers(4, 768, 0), Unknown, "unknown layout (UNet input 4 channels, context 768, ADM 0, text encoders none)"},
		{"not-sd", map[string][]int{"model.layers.0.weight": {2, 2}, "lm_head.weight": {2, 2}}, Unknown, "no UNet (model.diffusion_model.input_blocks.0.0.weight) found; the file holds 2 tensors: lm_head.* (1), model.layers.* (1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := map[string][]float32{}
			for n, s := range tc.shapes {
				k := 1
				for _, d := range s {
					k *= d
				}
				vals[n] = make([]float32, k)
			}
			path := filepath.Join(dir, tc.name+".safetensors")
			writeFile(t, path, tensor.F16, vals, tc.shapes)
			ck, err := Open(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Open: %v\nwant an error containing %q", err, tc.err)
				}
				if tc.kind == SD2 && !errors.Is(err, ErrUnsupported) {
					t.Errorf("SD2 error does not wrap ErrUnsupported")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if ck.Kind != tc.kind {
				t.Errorf("kind %v, want %v", ck.Kind, tc.kind)
			}
			if tc.kind.IsSDXL() && (ck.VAEConvScale() != 1.0/32 || ck.LatentScale() != 0.13025) {
				t.Errorf("SDXL: conv scale %v, latent scale %v", ck.VAEConvScale(), ck.LatentScale())
			}
		})
	}
}

// TestSeparateVAE: SetVAE replaces first_stage_model.* with a bare
// single-file VAE and turns SDXL's conv scale off.
func TestSeparateVAE(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	vals, shapes := tinyWeights(t, b, tinyUNet())
	dir := t.TempDir()
	main := filepath.Join(dir, "m.safetensors")
	writeFile(t, main, tensor.F16, vals, shapes)
	vv, vs := map[string][]float32{}, map[string][]int{}
	for k, v := range vals {
		if n, ok := strings.CutPrefix(k, VAEPrefix); ok {
			w := make([]float32, len(v))
			for i := range v {
				w[i] = v[i] + 1 // different values, to see which VAE is served
			}
			vv[n], vs[n] = w, shapes[k]
		}
	}
	sep := filepath.Join(dir, "vae.safetensors")
	writeFile(t, sep, tensor.F32, vv, vs)
	ck, err := Open(main)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if err := ck.SetVAE(sep); err != nil {
		t.Fatal(err)
	}
	src, _ := ck.Source(b, SourceOptions{})
	m, err := vae.Load(src, VAEPrefix, vae.Options{ConvScale: ck.VAEConvScale()})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readAny(b, m.Decoder.NormOut.B)
	if want := vals[VAEPrefix+"decoder.norm_out.bias"][0] + 1; got[0] != want {
		t.Errorf("decoder.norm_out.bias[0] = %v, want the separate VAE's %v", got[0], want)
	}
	if err := ck.SetVAE(main + ".missing"); err == nil {
		t.Error("SetVAE accepted a missing file")
	}
}
