package sd

import (
	"math"
	"os"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/unet"
	"mica/internal/models/sd/vae"
	"mica/internal/tensor"
)

// TestCheckpointFiles opens the checkpoints listed in MICA_SD_CKPT
// (comma-separated; e.g. the output of `mica dev synth sd-test` and
// `sdxl-test`), detects their kind, binds the UNet and VAE through the
// checkpoint's Source and runs one UNet evaluation and a decode at a
// 16×16 latent, checking the outputs are finite and the binders used
// every UNet and VAE tensor.
func TestCheckpointFiles(t *testing.T) {
	list := os.Getenv("MICA_SD_CKPT")
	if list == "" {
		t.Skip("MICA_SD_CKPT=file[,file] runs this on real checkpoint files")
	}
	b := cpu.New(2)
	defer b.Close()
	for _, path := range strings.Split(list, ",") {
		ck, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		src, err := ck.Source(b, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := unet.DetectConfig(src, UNetPrefix, ck.Kind.Family())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v, UNet %+v", path, ck.Kind, cfg)
		m, err := unet.Load(src, UNetPrefix, cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vae.Load(src, VAEPrefix, vae.Options{ConvScale: ck.VAEConvScale(), NoEncoder: false})
		if err != nil {
			t.Fatal(err)
		}
		side := 16
		x, _ := nn.UploadF32(b, ramp(cfg.InChannels*side*side), 1, cfg.InChannels, side, side)
		ctx, _ := nn.UploadF32(b, ramp(77*cfg.ContextDim), 77, cfg.ContextDim)
		var y *compute.Tensor
		if cfg.ADMDim > 0 {
			y, _ = nn.UploadF32(b, ramp(cfg.ADMDim), cfg.ADMDim)
		}
		out, _ := b.Alloc(tensor.F32, 1, cfg.OutChannels, side, side)
		if err := m.Forward(b, x, 999, ctx, y, out); err != nil {
			t.Fatal(err)
		}
		eps, _ := nn.ReadF32(b, out)
		img, _ := b.Alloc(tensor.F32, 1, 3, 8*side, 8*side)
		z, _ := nn.UploadF32(b, eps[:4*side*side], 1, 4, side, side)
		if err := v.Decode(b, z, img); err != nil {
			t.Fatal(err)
		}
		pix, _ := nn.ReadF32(b, img)
		t.Logf("ε std %.3f, image std %.3f", std(eps), std(pix))
		for _, s := range []float64{std(eps), std(pix)} {
			if math.IsNaN(s) || math.IsInf(s, 0) || s == 0 {
				t.Errorf("%s: degenerate output (std %v)", path, s)
			}
		}
		unused := append(src.Unused(UNetPrefix), src.Unused(VAEPrefix)...)
		if len(unused) > 0 {
			t.Errorf("%s: %d UNet/VAE tensors not bound, e.g. %v", path, len(unused), unused[:min(5, len(unused))])
		}
		src.Free()
		ck.Close()
	}
}

func ramp(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.Sin(float64(i) * 0.37))
	}
	return v
}

func std(v []float32) float64 {
	var s, ss float64
	for _, x := range v {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	m := s / float64(len(v))
	return math.Sqrt(ss/float64(len(v)) - m*m)
}
