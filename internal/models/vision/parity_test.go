package vision

import (
	"image"
	"image/png"
	"math"
	"os"
	"sync"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/testenv"
)

// reference is the part of gemma*-vision.json.gz the tests use.
type reference struct {
	Projector    string `json:"projector"`
	Preprocessed struct {
		PNG        string                   `json:"png"`
		Width      int                      `json:"width"`
		Height     int                      `json:"height"`
		ContentBox struct{ X, Y, W, H int } `json:"content_box"`
	} `json:"preprocessed"`
	Prompt string `json:"prompt"`
	Chunks []struct {
		Type      string   `json:"type"`
		PosStart  int      `json:"pos_start"`
		NTokens   int      `json:"n_tokens"`
		Tokens    []int32  `json:"tokens"`
		Pieces    []string `json:"pieces"`
		NonCausal bool     `json:"non_causal"`
	} `json:"chunks"`
	NImageTokens int         `json:"n_image_tokens"`
	Grid         [2]int      `json:"image_token_grid"`
	NEmbd        int         `json:"n_embd"`
	Embeddings   [][]float32 `json:"image_embeddings"`
	LogitsLast   []float32   `json:"logits_last"`
}

func loadReference(t testing.TB, name string) *reference {
	t.Helper()
	var r reference
	testenv.GzipJSON(t, testenv.Shared(t, "reference", "vision", name), &r)
	return &r
}

func loadPNG(t testing.TB, name string) image.Image {
	t.Helper()
	f, err := os.Open(testenv.Shared(t, "reference", "vision", name))
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

var parityCases = []struct{ mmproj, ref string }{
	{"mmproj-gemma3-tiny-f32.gguf", "gemma3-vision.json.gz"},
	{"mmproj-gemma4-tiny-f32.gguf", "gemma4-vision.json.gz"},
}

// TestPreprocessExact: the canvas equals llama.cpp's preprocessed PNG
// byte for byte, with the same content box and token grid.
func TestPreprocessExact(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	src := loadPNG(t, "dev-512x384.png")
	for _, tc := range parityCases {
		t.Run(tc.ref, func(t *testing.T) {
			ref := loadReference(t, tc.ref)
			p, err := Open(testenv.Shared(t, "reference", "vision", tc.mmproj), be)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			in, err := p.Preprocess(src, PreprocessOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := rgbOf(loadPNG(t, ref.Preprocessed.PNG))
			if in.Width != ref.Preprocessed.Width || in.Height != ref.Preprocessed.Height {
				t.Fatalf("canvas %d×%d, want %d×%d", in.Width, in.Height, ref.Preprocessed.Width, ref.Preprocessed.Height)
			}
			cb := ref.Preprocessed.ContentBox
			if in.Content != image.Rect(cb.X, cb.Y, cb.X+cb.W, cb.Y+cb.H) {
				t.Errorf("content %v, want %+v", in.Content, cb)
			}
			if in.GridW != ref.Grid[0] || in.GridH != ref.Grid[1] || in.Tokens() != ref.NImageTokens {
				t.Errorf("grid %d×%d, want %v (%d tokens)", in.GridW, in.GridH, ref.Grid, ref.NImageTokens)
			}
			bad := 0
			for i := range want {
				if in.RGB[i] != want[i] {
					if bad < 5 {
						px := i / 3
						t.Errorf("pixel (%d,%d) channel %d = %d, want %d", px%in.Width, px/in.Width, i%3, in.RGB[i], want[i])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d bytes differ", bad, len(want))
			}
		})
	}
}

// TestEmbeddingsParity: the embeddings llama.cpp computes, to the README's
// tolerance for an implementation that emulates ggml's F16 roundings (F16
// im2col, F16-table GELU): max |Δ| ≤ 2e-4. The RMS bound (1e-4) is tighter
// than the README's 1e-3 for exact maths, because we do emulate them.
func TestEmbeddingsParity(t *testing.T) {
	for _, tc := range parityCases {
		t.Run(tc.ref, func(t *testing.T) {
			ref := loadReference(t, tc.ref)
			p, _, emb := encodeTiny(t, tc.mmproj)
			D := p.Config.ProjDim
			if len(emb) != len(ref.Embeddings)*D || D != ref.NEmbd {
				t.Fatalf("%d values, want %d×%d", len(emb), len(ref.Embeddings), ref.NEmbd)
			}
			var maxd, ss float64
			for i, row := range ref.Embeddings {
				for j, want := range row {
					d := math.Abs(float64(emb[i*D+j] - want))
					maxd = max(maxd, d)
					ss += d * d
				}
			}
			rms := math.Sqrt(ss / float64(len(emb)))
			t.Logf("max |Δ| %.3g, rms %.3g", maxd, rms)
			if maxd > 2e-4 || rms > 1e-4 {
				t.Errorf("embeddings differ from llama.cpp: max |Δ| %.3g (≤ 2e-4), rms %.3g (≤ 1e-4)", maxd, rms)
			}
		})
	}
}

// openTiny opens a reference projector on a 2-thread backend and
// preprocesses the reference image with o; both are closed after the test.
func openTiny(t testing.TB, mmproj string, o PreprocessOptions) (*Projector, *Input) {
	t.Helper()
	be := cpu.New(2)
	p, err := Open(testenv.Shared(t, "reference", "vision", mmproj), be)
	if err != nil {
		be.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); be.Close() })
	in, err := p.Preprocess(loadPNG(t, "dev-512x384.png"), o)
	if err != nil {
		t.Fatal(err)
	}
	return p, in
}

// tinyEmbeddings encodes the reference image once per projector file for
// all the tests that need it (the Gemma 3 tower takes seconds).
var tinyEmbeddings sync.Map

func encodeTiny(t testing.TB, mmproj string) (*Projector, *Input, []float32) {
	t.Helper()
	p, in := openTiny(t, mmproj, PreprocessOptions{})
	if emb, ok := tinyEmbeddings.Load(mmproj); ok {
		return p, in, emb.([]float32)
	}
	emb, err := p.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	tinyEmbeddings.Store(mmproj, emb)
	return p, in, emb
}
