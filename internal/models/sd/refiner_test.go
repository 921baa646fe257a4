package sd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/oracle"
	"mica/internal/models/sd/param"
	"mica/internal/models/sd/unet"
	"mica/internal/tensor"
)

// tinyRefinerUNet has the refiner's structure at small widths: four
// levels, attention only at the middle two, 64-wide heads, Linear
// projections, ADM = pooled (64) + 5·256.
func tinyRefinerUNet() unet.Config {
	return unet.Config{Family: unet.SDXL, InChannels: 4, OutChannels: 4, ModelChannels: 32, ChannelMult: []int{1, 2, 4, 4},
		NumResBlocks: 1, Depth: []int{0, 1, 1, 0}, MiddleDepth: 1, ContextDim: 64, ADMDim: 64 + 5*256, LinearProj: true}
}

// TestDiffusersRefiner: a diffusers SDXL refiner folder (unet/ with
// add_embedding, text_encoder_2/ without text_encoder/, tokenizer_2/, vae/)
// opens as SDXLRefiner with the single-file names: the UNet's exactly as
// the single-file layout names them, bigG under
// conditioner.embedders.0.model., the tokenizer from tokenizer_2/.
func TestDiffusersRefiner(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	ucfg := tinyRefinerUNet()
	rec := &recorder{param.NewRandom(b, 5, 0.1), map[string]*compute.Tensor{}}
	if _, err := unet.Load(rec, UNetPrefix, ucfg); err != nil {
		t.Fatal(err)
	}
	vals, shapes := map[string][]float32{}, map[string][]int{}
	for name, tt := range rec.got {
		v := oracle.Values(b, tt)
		f := make([]float32, len(v))
		for i := range v {
			f[i] = float32(v[i])
		}
		vals[name], shapes[name] = f, tt.Shape
	}
	root := t.TempDir()
	umods, _ := diffusersLayout(4, 1, []bool{false, true, true, false}, 1, 1)
	umods = append(umods, [2]string{"add_embedding.linear_1", "label_emb.0.0"}, [2]string{"add_embedding.linear_2", "label_emb.0.2"})
	uv, us, _ := toDiffusers(t, UNetPrefix, umods, unetResSub, vals, shapes)
	writeFile(t, filepath.Join(root, "unet", "diffusion_pytorch_model.safetensors"), tensor.F16, uv, us)
	te := map[string][]int{
		"text_model.embeddings.token_embedding.weight":    {10, 64},
		"text_model.embeddings.position_embedding.weight": {77, 64},
		"text_model.final_layer_norm.weight":              {64},
		"text_model.final_layer_norm.bias":                {64},
		"text_projection.weight":                          {64, 64},
	}
	tv := map[string][]float32{}
	for n, s := range te {
		k := 1
		for _, d := range s {
			k *= d
		}
		tv[n] = make([]float32, k)
	}
	writeFile(t, filepath.Join(root, "text_encoder_2", "model.safetensors"), tensor.F16, tv, te)
	if err := os.MkdirAll(filepath.Join(root, "tokenizer_2"), 0o755); err != nil {
		t.Fatal(err)
	}

	ck, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Kind != SDXLRefiner || !ck.Kind.IsSDXL() || ck.TokenizerDir != filepath.Join(root, "tokenizer_2") || ck.LatentScale() != 0.13025 {
		t.Errorf("kind %v, tokenizer %q, latent scale %v", ck.Kind, ck.TokenizerDir, ck.LatentScale())
	}
	var unetNames []string
	for _, n := range ck.Names() {
		if strings.HasPrefix(n, UNetPrefix) {
			unetNames = append(unetNames, n)
			if want := shapes[n]; !reflect.DeepEqual(ck.tensors[n].shape, want) {
				t.Errorf("%s: shape %v, want %v", n, ck.tensors[n].shape, want)
			}
		} else if !strings.HasPrefix(n, RefinerText) {
			t.Errorf("%s: neither UNet nor the refiner's bigG", n)
		}
	}
	if len(unetNames) != len(vals) {
		t.Errorf("%d UNet tensors, want %d", len(unetNames), len(vals))
	}
	for _, n := range []string{"token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection"} {
		if _, ok := ck.Shape(RefinerText + n); !ok {
			t.Errorf("no %s%s", RefinerText, n)
		}
	}
	src, _ := ck.Source(b, SourceOptions{})
	got, err := unet.DetectConfig(src, UNetPrefix, ck.Kind.Family())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ucfg) {
		t.Errorf("detected %+v\nwant %+v", got, ucfg)
	}
	if _, err := unet.Load(src, UNetPrefix, got); err != nil {
		t.Fatal(err)
	}
	if unused := src.Unused(UNetPrefix); len(unused) > 0 {
		t.Errorf("unbound: %v", unused)
	}
}
