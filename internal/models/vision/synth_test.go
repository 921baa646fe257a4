package vision

import (
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/testenv"
)

// tinyConfig is the geometry of the reference tiny files.
func tinyConfig(t testing.TB, mmproj string) *Config {
	t.Helper()
	f, err := gguf.Open(testenv.Shared(t, "reference", "vision", mmproj))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	c.PosSize = 0
	if ti, ok := f.Tensor("v.position_embd.weight"); ok && len(ti.Shape) == 3 {
		c.PosSize = int(ti.Shape[1])
	}
	return c
}

// TestSynthLayout: a synthetic file of the tiny configs has the keys,
// names, shapes and order of the llama.cpp-converted reference files (less
// the optional clamp bounds), loads, and encodes to finite embeddings.
func TestSynthLayout(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	src := loadPNG(t, "dev-512x384.png")
	for _, name := range []string{"mmproj-gemma3-tiny-f32.gguf", "mmproj-gemma4-tiny-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			c := tinyConfig(t, name)
			for _, ft := range []int{0, 1} {
				c.FileType = ft
				path := filepath.Join(t.TempDir(), "synth.gguf")
				if err := WriteSynth(path, c, 7); err != nil {
					t.Fatal(err)
				}
				ref, err := gguf.Open(testenv.Shared(t, "reference", "vision", name))
				if err != nil {
					t.Fatal(err)
				}
				got, err := gguf.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				var want []gguf.TensorInfo
				for _, ti := range ref.Tensors {
					if n := ti.Name; !hasSuffixAny(n, ".input_min", ".input_max", ".output_min", ".output_max") {
						want = append(want, ti)
					}
				}
				if len(got.Tensors) != len(want) {
					t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want))
				}
				for i, ti := range got.Tensors {
					if ti.Name != want[i].Name || !equalShape(ti.Shape, want[i].Shape) {
						t.Errorf("tensor %d: %s %v, want %s %v", i, ti.Name, ti.Shape, want[i].Name, want[i].Shape)
					}
				}
				for _, kv := range ref.Meta {
					if kv.Key != "general.name" && !got.Has(kv.Key) {
						t.Errorf("key %s missing", kv.Key)
					}
				}
				ref.Close()
				got.Close()

				if ft == 0 {
					continue // encoding the F16 file is enough
				}
				if c.Projector == Gemma3 { // a 224-pixel canvas keeps the test fast
					small := *c
					small.ImageSize = 224
					if err := WriteSynth(path, &small, 7); err != nil {
						t.Fatal(err)
					}
				}
				p, err := Open(path, be)
				if err != nil {
					t.Fatal(err)
				}
				in, err := p.Preprocess(src, PreprocessOptions{})
				if err == nil {
					var emb []float32
					emb, err = p.Encode(in)
					for _, v := range emb {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("file type %d: non-finite embedding", ft)
						}
					}
				}
				p.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func hasSuffixAny(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if len(s) >= len(x) && s[len(s)-len(x):] == x {
			return true
		}
	}
	return false
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkEncodeRealShape times one encode on the real towers' shapes
// with random F16 weights: SigLIP-400M at 896×896 (Gemma 3) and Gemma 4
// 31B's tower at its default 280-token budget (a 1024×768 image: 266
// tokens). The files (about 0.9 and 1.2 GB) are written to a temporary
// directory first. MICA_LONG=1 only.
func BenchmarkEncodeRealShape(b *testing.B) {
	if os.Getenv("MICA_LONG") == "" {
		b.Skip("set MICA_LONG=1: writes ~0.9 GB files and runs for minutes")
	}
	// A 1024×768 gradient: Gemma 3 letterboxes it to 896×896; Gemma 4's
	// default budget (280) sizes it 912×672, 266 tokens.
	src := image.NewNRGBA(image.Rect(0, 0, 1024, 768))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	for _, tc := range []struct {
		name string
		c    *Config
	}{
		{"siglip400m-896", SigLIP400MConfig(2560)},
		{"gemma4-31b-266tok", Gemma4VisionConfig31B(5376)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "mmproj.gguf")
			if err := WriteSynth(path, tc.c, 1); err != nil {
				b.Fatal(err)
			}
			be := cpu.New(2)
			defer be.Close()
			p, err := Open(path, be)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			in, err := p.Preprocess(src, PreprocessOptions{})
			if err != nil {
				b.Fatal(err)
			}
			flops := p.Config.EncodeFLOPs(in)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := p.Encode(in); err != nil {
					b.Fatal(err)
				}
				s := time.Since(start).Seconds()
				b.ReportMetric(s, "s/encode")
				b.ReportMetric(flops/s/1e9, "GFLOP/s")
				b.Logf("%s: %d patches, %.0f GFLOP in %.1f s = %.1f GFLOP/s", tc.name, in.NX*in.NY, flops/1e9, s, flops/s/1e9)
			}
		})
	}
}
