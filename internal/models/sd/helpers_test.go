package sd

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"mica/internal/compute"
	"mica/internal/format/safetensors"
	"mica/internal/kernels/quant"
	"mica/internal/models/sd/internal/oracle"
	"mica/internal/models/sd/param"
	"mica/internal/models/sd/unet"
	"mica/internal/models/sd/vae"
	"mica/internal/tensor"
)

// recorder is a param.Random that keeps the tensors it hands out, so a
// test can write them to a checkpoint file.
type recorder struct {
	*param.Random
	got map[string]*compute.Tensor
}

func (r *recorder) Tensor(name string, role param.Role, shape ...int) *compute.Tensor {
	t := r.Random.Tensor(name, role, shape...)
	r.got[name] = t
	return t
}

func tinyUNet() unet.Config {
	return unet.Config{Family: unet.SD1, InChannels: 4, OutChannels: 4, ModelChannels: 32, ChannelMult: []int{1, 2},
		NumResBlocks: 1, Depth: []int{1, 1}, MiddleDepth: 1, ContextDim: 24}
}

func tinyVAE() vae.Config {
	return vae.Config{Ch: 32, ChMult: []int{1, 2}, NumResBlocks: 1, ZChannels: 4, InChannels: 3}
}

// tinyWeights binds a tiny SD1 UNet and VAE on random F32 weights and
// returns every tensor's values (as the Random source made them, F16
// values for convs) and shape, plus a CLIP tensor so the kind is SD1.
func tinyWeights(t *testing.T, b compute.Backend, ucfg unet.Config) (map[string][]float32, map[string][]int) {
	rec := &recorder{param.NewRandom(b, 9, 0.15), map[string]*compute.Tensor{}}
	if _, err := unet.Load(rec, UNetPrefix, ucfg); err != nil {
		t.Fatal(err)
	}
	if _, err := vae.LoadConfig(rec, VAEPrefix, tinyVAE(), vae.Options{}); err != nil {
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
	vals[SD1Text+"text_model.embeddings.token_embedding.weight"] = make([]float32, 10*ucfg.ContextDim)
	shapes[SD1Text+"text_model.embeddings.token_embedding.weight"] = []int{10, ucfg.ContextDim}
	return vals, shapes
}

// writeFile writes tensors as dtype dt (names sorted).
func writeFile(t *testing.T, path string, dt tensor.DType, vals map[string][]float32, shapes map[string][]int) {
	t.Helper()
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	infos := make([]safetensors.TensorInfo, len(names))
	for i, n := range names {
		infos[i] = safetensors.TensorInfo{Name: n, DType: dt}
		for _, d := range shapes[n] {
			infos[i].Shape = append(infos[i].Shape, int64(d))
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := safetensors.Create(path, nil, infos)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		raw, err := param.Encode(dt, vals[n], 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteTensor(n, raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// readAny reads a tensor of any dtype as F32 values.
func readAny(b compute.Backend, t *compute.Tensor) ([]float32, error) {
	v := oracle.Values(b, t)
	out := make([]float32, len(v))
	for i := range v {
		out[i] = float32(v[i])
	}
	return out, nil
}

func decode(dt tensor.DType, raw []byte) ([]float32, error) {
	out := make([]float32, 1)
	err := quant.Dequantize(dt, raw, out)
	return out, err
}
