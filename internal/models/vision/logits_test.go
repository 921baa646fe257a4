package vision

import (
	"math"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/models/gemma"
	"mica/internal/tensor"
	"mica/internal/testenv"
	"mica/internal/tokenizer"
)

// TestLogitsParity: the prompt's token layout equals mtmd's chunks exactly,
// and the logits after the prompt (text, image decoded non-causally, text)
// match llama.cpp's within 1e-3 (the README's bound for an implementation
// emulating ggml's F16 roundings) with the same argmax.
func TestLogitsParity(t *testing.T) {
	for _, tc := range []struct{ mmproj, ref, model string }{
		{"mmproj-gemma3-tiny-f32.gguf", "gemma3-vision.json.gz", "gemma3-tiny-f32.gguf"},
		{"mmproj-gemma4-tiny-f32.gguf", "gemma4-vision.json.gz", "gemma4-tiny-f32.gguf"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			ref := loadReference(t, tc.ref)
			p, in, emb := encodeTiny(t, tc.mmproj)
			be := cpu.New(2)
			defer be.Close()
			f, err := gguf.Open(testenv.Shared(t, "reference", "gemma", tc.model))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tok, err := tokenizer.FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := gemma.Load(f, be)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := p.CheckPair(string(m.Config.Arch), m.Config.NEmbd); err != nil {
				t.Fatal(err)
			}

			chunks, nimg, err := p.Config.PromptChunks(tok, ref.Prompt, true)
			if err != nil {
				t.Fatal(err)
			}
			if nimg != 1 || len(chunks) != len(ref.Chunks) {
				t.Fatalf("%d chunks (%d images), want %d", len(chunks), nimg, len(ref.Chunks))
			}
			var runs []gemma.Input
			pos := 0
			for i, c := range chunks {
				rc := ref.Chunks[i]
				if rc.PosStart != pos {
					t.Errorf("chunk %d starts at %d, want %d", i, pos, rc.PosStart)
				}
				if c.Image >= 0 {
					if rc.Type != "image" || rc.NTokens != in.Tokens() || !rc.NonCausal {
						t.Errorf("chunk %d: image of %d tokens, want %+v", i, in.Tokens(), rc)
					}
					runs = append(runs, gemma.Input{Embd: emb, NonCausal: true})
					pos += in.Tokens()
					continue
				}
				if rc.Type != "text" || !equalIDs(c.Tokens, rc.Tokens) {
					t.Errorf("chunk %d: tokens %v, want %v", i, c.Tokens, rc.Tokens)
				}
				runs = append(runs, gemma.Input{Tokens: c.Tokens})
				pos += len(c.Tokens)
			}
			seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: pos, KV: tensor.F16})
			if err != nil {
				t.Fatal(err)
			}
			defer seq.Free()
			logits, err := m.Prefill(seq, runs)
			if err != nil {
				t.Fatal(err)
			}
			maxd, am, bm := 0.0, 0, 0
			for j, want := range ref.LogitsLast {
				maxd = max(maxd, math.Abs(float64(logits[j]-want)))
				if logits[j] > logits[am] {
					am = j
				}
				if want > ref.LogitsLast[bm] {
					bm = j
				}
			}
			t.Logf("logits max |Δ| %.3g, argmax %d (llama.cpp %d)", maxd, am, bm)
			if maxd > 1e-3 || am != bm {
				t.Errorf("logits differ from llama.cpp: max |Δ| %.3g (≤ 1e-3), argmax %d vs %d", maxd, am, bm)
			}
		})
	}
}

func equalIDs(a, b []int32) bool {
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

// TestRuns: a token prompt with placeholders expands to the same layout as
// PromptChunks gives for the marked text.
func TestRuns(t *testing.T) {
	f, err := gguf.Open(testenv.Shared(t, "reference", "gemma", "gemma3-tiny-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{Projector: Gemma3, ProjDim: 4}
	chunks, _, err := c.PromptChunks(tok, "Describe this image: <__media__> What is in it?", true)
	if err != nil {
		t.Fatal(err)
	}
	const ph = 7 // any id works as the placeholder in this test
	before, err := tok.Encode("Describe this image: ", tokenizer.EncodeOptions{AddBOS: true})
	if err != nil {
		t.Fatal(err)
	}
	after, err := tok.Encode(" What is in it?", tokenizer.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prompt := append(append(before, ph), after...)
	img := make([]float32, 8)
	runs, err := c.Runs(tok, prompt, ph, [][]float32{img})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || !equalIDs(runs[0].Tokens, chunks[0].Tokens) || !runs[1].NonCausal ||
		len(runs[1].Embd) != 8 || !equalIDs(runs[2].Tokens, chunks[2].Tokens) {
		t.Errorf("runs %+v, chunks %+v", runs, chunks)
	}
	if _, err := c.Runs(tok, prompt, ph, nil); err == nil {
		t.Error("a placeholder without an image was accepted")
	}
	if _, err := c.Runs(tok, before, ph, [][]float32{img}); err == nil {
		t.Error("an image without a placeholder was accepted")
	}
}
