package synth

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"mica/internal/format/gguf"
	"mica/internal/tensor"
	"mica/internal/tokenizer"
)

// TestVocabTokenizes: the tokenizer stored in generated files reproduces
// every case of the real Gemma tokenizer (cases.jsonl, made by Hugging Face
// tokenizers with special-token parsing on). For gemma3 files this checks
// the SentencePiece scores derived from the merge ranks; for gemma4 files
// the copied merges, with ids whose tokens Gemma 4 replaces left out.
func TestVocabTokenizes(t *testing.T) {
	type tcase struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	}
	f, err := os.Open(filepath.Join(findShared(t), "testdata/gemma3-tokenizer/cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []tcase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c tcase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	replaced := map[int32]bool{}
	for _, s := range gemma4Special {
		replaced[int32(s.id)] = true
	}
	for _, preset := range []string{"gemma3-test", "gemma4-test"} {
		t.Run(preset, func(t *testing.T) {
			path := writeTest(t, preset, tensor.Q8_0, 1)
			g, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			tok, err := tokenizer.FromGGUF(g)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
		next:
			for _, c := range cases {
				if preset == "gemma4-test" {
					for _, id := range c.IDs {
						if replaced[id] {
							continue next
						}
					}
				}
				n++
				got, err := tok.Encode(c.Text, tokenizer.EncodeOptions{ParseSpecial: true})
				if err != nil {
					t.Errorf("%q: %v", c.Text, err)
				} else if !slices.Equal(got, c.IDs) {
					t.Errorf("%q:\n got  %v\n want %v", c.Text, got, c.IDs)
				}
			}
			t.Logf("%d of %d cases checked", n, len(cases))
		})
	}
}

// TestHFVocabMatchesGGUF: the tokenizer.json source gives the same tokens,
// types, merges and special ids as the GGUF holding the same vocabulary, and
// picks up the chat template from tokenizer_config.json beside it.
func TestHFVocabMatchesGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("parses a 30 MB JSON file")
	}
	g := testVocab(t)
	h, err := LoadVocab(filepath.Join(findShared(t), "testdata/gemma3-tokenizer/tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Tokens, h.Tokens) {
		t.Fatal("tokens differ")
	}
	if !slices.Equal(g.Types, h.Types) {
		for i := range g.Types {
			if g.Types[i] != h.Types[i] {
				t.Fatalf("type of %d %q: GGUF %d, tokenizer.json %d", i, g.Tokens[i], g.Types[i], h.Types[i])
			}
		}
	}
	if !slices.Equal(g.Merges, h.Merges) {
		t.Fatal("merges differ")
	}
	// tokenizer_config.json (of the instruction-tuned model) names
	// <end_of_turn> as eos_token, as llama.cpp's converter would read it.
	if h.EOS != 106 {
		t.Errorf("EOS from tokenizer_config.json: %d, want 106", h.EOS)
	}
	if g.BOS != h.BOS || g.UNK != h.UNK || g.PAD != h.PAD {
		t.Fatalf("special ids: GGUF %d %d %d %d, tokenizer.json %d %d %d %d", g.BOS, g.EOS, g.UNK, g.PAD, h.BOS, h.EOS, h.UNK, h.PAD)
	}
	if !templateFits(ArchGemma3, h.ChatTemplate) {
		t.Fatal("no Gemma 3 chat template from tokenizer_config.json")
	}
}

// TestSPMSource: a SentencePiece ("llama") vocabulary with real scores is
// copied as it is for gemma3, and refused for gemma4 (which needs merges).
func TestSPMSource(t *testing.T) {
	v, err := LoadVocab(filepath.Join(findShared(t), "reference/gemma/gemma3-tiny-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := LookupPreset("gemma3-test")
	p.NVocab = len(v.Tokens)
	tok, _, err := tokenizerMeta(p, v, "")
	if err != nil {
		t.Fatal(err)
	}
	var scores []float32
	for _, kv := range tok {
		if kv.Key == "tokenizer.ggml.scores" {
			scores, _ = kv.Value.Float32s()
		}
	}
	if !slices.Equal(scores, v.Scores) {
		t.Error("SentencePiece scores were not copied")
	}
	p4, _ := LookupPreset("gemma4-test")
	p4.NVocab = len(v.Tokens)
	if _, _, err := tokenizerMeta(p4, v, ""); err == nil {
		t.Error("gemma4 from a vocabulary without merges: no error")
	}
}

// TestChatTemplateFamily: a Gemma 3 template given for a Gemma 4 preset is
// an error; one that comes with the vocabulary is left out with a warning.
func TestChatTemplateFamily(t *testing.T) {
	v := *testVocab(t)
	if _, err := Plan(Options{Preset: "gemma4-test", Vocab: &v, ChatTemplate: gemma3Template(t)}); err == nil {
		t.Error("Gemma 3 template for gemma4: no error")
	}
	v.ChatTemplate = gemma3Template(t)
	l, err := Plan(Options{Preset: "gemma4-test", Vocab: &v})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := metaOf(l, "tokenizer.chat_template"); ok || len(l.Warnings) == 0 {
		t.Errorf("template copied (%v) or no warning (%q)", ok, l.Warnings)
	}
	l, err = Plan(Options{Preset: "gemma3-test", Vocab: &v})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := metaOf(l, "tokenizer.chat_template"); !ok {
		t.Error("the vocabulary's Gemma 3 template was not copied to a gemma3 file")
	}
}
