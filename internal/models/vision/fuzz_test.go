package vision

import (
	"image"
	"path/filepath"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
)

// FuzzConfig: any numbers in an mmproj file's clip.* keys give a clear
// error or a configuration that loads (here: fails on its missing tensors)
// and preprocesses an image within bounded memory; nothing panics.
func FuzzConfig(f *testing.F) {
	f.Add(uint32(896), uint32(14), uint32(128), uint32(256), uint32(2), uint32(4), uint32(256), uint32(4), false)
	f.Add(uint32(224), uint32(16), uint32(128), uint32(256), uint32(2), uint32(4), uint32(256), uint32(3), true)
	f.Add(uint32(0), uint32(0), uint32(7), uint32(1), uint32(1), uint32(3), uint32(1), uint32(0), true)
	be := cpu.New(1)
	f.Cleanup(func() { be.Close() })
	src := image.NewNRGBA(image.Rect(0, 0, 37, 23))
	f.Fuzz(func(t *testing.T, size, patch, width, ff, layers, heads, proj, merge uint32, g4 bool) {
		pt := "gemma3"
		if g4 {
			pt = "gemma4v"
		}
		meta := []gguf.KV{
			gguf.String("general.architecture", "clip"),
			gguf.Bool("clip.has_vision_encoder", true),
			gguf.String("clip.vision.projector_type", pt),
			gguf.Uint32("clip.vision.image_size", size),
			gguf.Uint32("clip.vision.patch_size", patch),
			gguf.Uint32("clip.vision.embedding_length", width),
			gguf.Uint32("clip.vision.feed_forward_length", ff),
			gguf.Uint32("clip.vision.block_count", layers),
			gguf.Uint32("clip.vision.attention.head_count", heads),
			gguf.Uint32("clip.vision.projection_dim", proj),
			gguf.Uint32("clip.vision.projector.scale_factor", merge),
			gguf.Float32("clip.vision.attention.layer_norm_epsilon", 1e-6),
			gguf.Float32s("clip.vision.image_mean", []float32{0.5, 0.5, 0.5}),
			gguf.Float32s("clip.vision.image_std", []float32{0.5, 0.5, 0.5}),
		}
		path := filepath.Join(t.TempDir(), "m.gguf")
		w, err := gguf.Create(path, 3, 0, meta, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		gf, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer gf.Close()
		c, err := ParseConfig(gf)
		if err != nil {
			return
		}
		if c.Projector == Gemma4V {
			c.PosSize = 1024
		}
		if _, err := Load(gf, be); err == nil {
			t.Fatal("a file without tensors loaded")
		}
		in, err := c.Preprocess(src, PreprocessOptions{})
		if err == nil && (in.Width*in.Height > 64<<20 || in.Tokens() <= 0 && c.Projector == Gemma3) {
			t.Fatalf("canvas %d×%d, %d tokens", in.Width, in.Height, in.Tokens())
		}
	})
}
