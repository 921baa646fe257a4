package main

import (
	"encoding/json"
	"math"
	"mica/internal/testenv"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevImageEmbedAndLogits: the Gemma 4 reference through the CLI:
// image-embed's JSON matches llama.cpp's embeddings (≤ 2e-4, the README's
// bound with ggml's F16 roundings emulated) and logits with --image the
// final logits (≤ 1e-3); a mismatched pair is refused.
func TestDevImageEmbedAndLogits(t *testing.T) {
	v := filepath.Join(sharedDir(t), "reference", "vision")
	mmproj := filepath.Join(v, "mmproj-gemma4-tiny-f32.gguf")
	img := filepath.Join(v, "dev-512x384.png")
	var ref struct {
		Prompt     string      `json:"prompt"`
		Embeddings [][]float64 `json:"image_embeddings"`
		Logits     []float64   `json:"logits_last"`
	}
	testenv.GzipJSON(t, filepath.Join(v, "gemma4-vision.json.gz"), &ref)

	out, err := runCLI(t, "dev", "image-embed", "-t", "2", mmproj, img)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		NTokens    int         `json:"n_tokens"`
		NEmbd      int         `json:"n_embd"`
		Embeddings [][]float64 `json:"embeddings"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if e.NTokens != len(ref.Embeddings) || e.NEmbd != 256 || len(e.Embeddings) != e.NTokens {
		t.Fatalf("%d tokens × %d, want %d × 256", e.NTokens, e.NEmbd, len(ref.Embeddings))
	}
	maxd := 0.0
	for i, row := range ref.Embeddings {
		for j, want := range row {
			maxd = max(maxd, math.Abs(e.Embeddings[i][j]-want))
		}
	}
	if maxd > 2e-4 {
		t.Errorf("embeddings max |Δ| %g > 2e-4", maxd)
	}

	model := filepath.Join(sharedDir(t), "reference", "gemma", "gemma4-tiny-f32.gguf")
	out, err = runCLI(t, "dev", "logits", model, "-t", "2", "--mmproj", mmproj, "--image", img, "--prompt", ref.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Logits []float64 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	maxd = 0
	for j, want := range ref.Logits {
		maxd = max(maxd, math.Abs(l.Logits[j]-want))
	}
	if len(l.Logits) != len(ref.Logits) || maxd > 1e-3 {
		t.Errorf("%d logits, max |Δ| %g (≤ 1e-3)", len(l.Logits), maxd)
	}

	wrong := filepath.Join(v, "mmproj-gemma3-tiny-f32.gguf")
	if _, err := runCLI(t, "dev", "logits", model, "--mmproj", wrong, "--image", img, "--prompt", ref.Prompt); err == nil || !strings.Contains(err.Error(), "gemma3 projector") {
		t.Errorf("mismatched pair: %v", err)
	}
	if _, err := runCLI(t, "dev", "image-embed", mmproj, filepath.Join(v, "README.md")); err == nil || !strings.Contains(err.Error(), "unsupported image format") {
		t.Errorf("not an image: %v", err)
	}
}

// TestRunImageRaw: `mica run --raw --image` greedily continues the
// reference prompt with llama.cpp's argmax token (1086 for Gemma 3).
func TestRunImageRaw(t *testing.T) {
	v := filepath.Join(sharedDir(t), "reference", "vision")
	model := filepath.Join(sharedDir(t), "reference", "gemma", "gemma3-tiny-f32.gguf")
	out, err := runCLI(t, "run", model, "--raw", "--temperature", "0", "-n", "1", "-t", "2",
		"--mmproj", filepath.Join(v, "mmproj-gemma3-tiny-f32.gguf"), "--image", filepath.Join(v, "dev-512x384.png"),
		"Describe this image: <__media__> What is in it?")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := loadTokenizer(model)
	if err != nil {
		t.Fatal(err)
	}
	if piece := tok.Decode([]int32{1086}); strings.TrimRight(out, "\n") != piece {
		t.Errorf("answer %q, want token 1086 %q", out, piece)
	}
	if _, err := runCLI(t, "run", model, "--image", filepath.Join(v, "dev-512x384.png")); err == nil {
		t.Error("--image without a prompt accepted")
	}
}
