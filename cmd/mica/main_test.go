package main

import (
	"bytes"
	"encoding/json"
	"mica/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/format/gguf"
)

func sharedDir(t *testing.T) string { return testenv.Shared(t) }

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestDevTensorsJSON(t *testing.T) {
	zoo := filepath.Join(sharedDir(t), "reference/gemma/gemma3-tiny-zoo.gguf")
	out, err := runCLI(t, "dev", "tensors", "--json", "--meta", zoo)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Format  string
		Tensors []struct {
			Name   string
			Type   string
			Shape  []int64
			Offset int64
		}
		Meta []struct{ Key, Type string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Format != "gguf" || len(r.Tensors) != 80 || len(r.Meta) != 29 {
		t.Fatalf("format %q, %d tensors, %d keys", r.Format, len(r.Tensors), len(r.Meta))
	}
	if tt := r.Tensors[1]; tt.Name != "token_embd.weight" || tt.Type != "Q6_K" || len(tt.Shape) != 2 || tt.Shape[0] != 256 || tt.Shape[1] != 2048 {
		t.Fatalf("token_embd row: %+v", tt)
	}
}

// TestDevDequantMatchesReference: the bytes mica prints for a quantized
// tensor are exactly the reference dequantization's.
func TestDevDequantMatchesReference(t *testing.T) {
	ref := filepath.Join(sharedDir(t), "reference/gemma")
	for _, name := range []string{"token_embd.weight", "blk.0.attn_output.weight", "blk.2.ffn_gate.weight"} {
		got, err := runCLI(t, "dev", "dequant", filepath.Join(ref, "gemma3-tiny-zoo.gguf"), name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := runCLI(t, "dev", "dequant", filepath.Join(ref, "gemma3-tiny-zoo.dequant.gguf"), name)
		if err != nil {
			t.Fatal(err)
		}
		if got != want || len(got) == 0 {
			t.Errorf("%s: dequantized bytes differ from the reference (%d vs %d bytes)", name, len(got), len(want))
		}
	}
	if _, err := runCLI(t, "dev", "dequant", filepath.Join(ref, "gemma3-tiny-zoo.gguf"), "missing.weight"); err == nil || !strings.Contains(err.Error(), "missing.weight") {
		t.Errorf("missing tensor: error %v", err)
	}
}

// TestDevQuantizeMatchesLlamaQuantize: quantizing the F32 reference model to
// Q8_0 reproduces llama-quantize's Q8_0 file tensor for tensor.
func TestDevQuantizeMatchesLlamaQuantize(t *testing.T) {
	ref := filepath.Join(sharedDir(t), "reference/gemma")
	out := filepath.Join(t.TempDir(), "q8.gguf")
	if _, err := runCLI(t, "dev", "quantize", filepath.Join(ref, "gemma3-tiny-f32.gguf"), out, "--type", "q8_0"); err != nil {
		t.Fatal(err)
	}
	mine, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	theirs, err := gguf.Open(filepath.Join(ref, "gemma3-tiny-q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	compared := 0
	for _, ti := range theirs.Tensors {
		mi, ok := mine.Tensor(ti.Name)
		if !ok {
			t.Fatalf("%s missing", ti.Name)
		}
		if mi.Type != ti.Type {
			t.Errorf("%s: type %v, llama-quantize wrote %v", ti.Name, mi.Type, ti.Type)
			continue
		}
		a, _ := mine.TensorData(ti.Name)
		b, _ := theirs.TensorData(ti.Name)
		if !bytes.Equal(a, b) {
			t.Errorf("%s (%v): bytes differ", ti.Name, ti.Type)
		}
		compared++
	}
	if compared != len(theirs.Tensors) {
		t.Fatalf("compared %d of %d tensors", compared, len(theirs.Tensors))
	}
	if _, err := runCLI(t, "dev", "quantize", out, out+"2", "--type", "q9_9"); err == nil {
		t.Error("unknown type accepted")
	}
}

func TestDemoRuns(t *testing.T) {
	out, err := runCLI(t, "demo", "--size", "256")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Q4_K", "IQ4_XS", "memory-mapped"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDevChatFormat renders every shared chat-template case through the
// command and compares with the official templates' output.
func TestDevChatFormat(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(sharedDir(t), "testdata/chat-templates/cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var c struct {
			Input  json.RawMessage `json:"input"`
			Gemma4 *string         `json:"gemma4"`
			Gemma3 *string         `json:"gemma3"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		for family, want := range map[string]*string{"gemma4": c.Gemma4, "gemma3": c.Gemma3} {
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetIn(bytes.NewReader(c.Input))
			root.SetArgs([]string{"dev", "chat-format", family})
			err := root.Execute()
			if want == nil {
				if err == nil {
					t.Errorf("%s: expected the template's refusal", family)
				}
				continue
			}
			if err != nil || out.String() != *want {
				t.Errorf("%s: got %q (err %v), want %q", family, out.String(), err, *want)
			}
			n++
		}
	}
	if n < 8 {
		t.Fatalf("only %d renders compared", n)
	}
}
