package gemma

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

// TestPLEEmbeddingInput checks the rule for per-layer embeddings (Gemma 4
// E2B/E4B) at embedding (image) positions, on the tiny PLE model. The rule,
// from HF transformers (models/gemma3n and gemma4 modeling: multimodal
// positions take the pad token, id 0, for embed_tokens_per_layer, while
// project_per_layer_inputs reads the merged input embeddings) and llama.cpp
// (ggml-org/llama.cpp src/models/gemma4*.cpp build_inp_per_layer: a batch
// of embeddings uses row 0 of per_layer_tok_embd, scaled by √P, and the
// projection of the embeddings themselves):
//
//	ple = (N(W·x/√d) + E_ple[0]·√P)/√2   where x is the image embedding row.
//
// So an embedding row equal to the pad token's scaled embedding gives the
// pad token's logits exactly (both halves are the same numbers), and a row
// equal to another token's embedding does not give that token's logits
// (its per-layer token half is the pad's). No reference logits exist for
// images with PLE; these checks pin the rule, not llama.cpp's numbers.
func TestPLEEmbeddingInput(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	f, err := gguf.Open(filepath.Join(refDir(t), "gemma4-ple-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Load(f, be)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.EmbdPerLayer == 0 {
		t.Fatal("the PLE reference model has no per-layer embeddings")
	}
	run := func(in ...Input) [][]float32 {
		t.Helper()
		seq, err := m.NewSequence(SequenceOptions{Capacity: 32, KV: tensor.F16})
		if err != nil {
			t.Fatal(err)
		}
		defer seq.Free()
		var rows [][]float32
		for _, r := range in {
			out, err := m.ForwardInputs([]*Sequence{seq}, []Input{r}, true)
			if err != nil && len(r.Embd) > 0 && strings.Contains(err.Error(), "not supported yet") {
				t.Skipf("the forward pass still refuses embedding input with per-layer embeddings: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, out[0])
		}
		return rows
	}
	V := m.Config.NVocab
	head := []int32{2, 17, 400}
	tail := []int32{33, 1000, 5}
	pads := []int32{0, 0, 0, 0}
	all := append(append(append([]int32{}, head...), pads...), tail...)
	tokens := run(Input{Tokens: all})[0]

	// 1. Rows equal to the pad token's scaled embedding: exactly the
	// pad tokens' logits, before, at and after them (causal and, for the
	// image's usual non-causal decode, at the positions after).
	padRows := embeddingRows(t, f, m.Config, pads)
	mixed := run(Input{Tokens: head}, Input{Embd: padRows}, Input{Tokens: tail})
	var got []float32
	for _, r := range mixed {
		got = append(got, r...)
	}
	if d := maxDiff(got, tokens); d != 0 {
		t.Errorf("pad-embedding rows differ from pad tokens by %g (the per-layer input at an embedding position is not the pad row's)", d)
	}

	// 2. Rows equal to token 17's embedding: not token 17's logits, since
	// their per-layer token half is the pad's.
	ids17 := []int32{17, 17, 17, 17}
	tok17 := run(Input{Tokens: append(append(append([]int32{}, head...), ids17...), tail...)})[0]
	emb17 := run(Input{Tokens: head}, Input{Embd: embeddingRows(t, f, m.Config, ids17)}, Input{Tokens: tail})
	if d := maxDiff(emb17[1], tok17[len(head)*V:(len(head)+len(ids17))*V]); d < 1e-4 {
		t.Errorf("embedding rows of token 17 give token 17's logits (%g): the per-layer token half should be the pad's", d)
	}
	// The text before the image is untouched by it.
	if d := maxDiff(emb17[0], tok17[:len(head)*V]); d != 0 {
		t.Errorf("text before the image changed by %g", d)
	}

	// 3. An image run (non-causal, arbitrary rows) runs and changes what
	// follows; the logits stay finite.
	img := make([]float32, 5*m.Config.NEmbd)
	for i := range img {
		img[i] = float32(math.Sin(float64(i))) * 3
	}
	withImage := run(Input{Tokens: head}, Input{Embd: img, NonCausal: true}, Input{Tokens: tail})
	noImage := run(Input{Tokens: head}, Input{Tokens: tail})
	for _, r := range withImage {
		for _, v := range r {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatal("non-finite logits after an image")
			}
		}
	}
	if d := maxDiff(withImage[2], noImage[1]); d < 1e-4 {
		t.Errorf("the image did not change the text after it (%g)", d)
	}
}
