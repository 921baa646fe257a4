package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/format/gguf"
	"mica/internal/format/safetensors"
)

func runSynth(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newDevSynthCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestSynthCmd(t *testing.T) {
	sh := sharedDir(t)
	path := filepath.Join(t.TempDir(), "g4.gguf")
	out, err := runSynth(t, "gemma4-test", "-o", path, "--dtype", "q8_0", "--seed", "5",
		"--vocab", filepath.Join(sh, "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf"),
		"--chat-template", filepath.Join(sh, "testdata/chat-templates/google-gemma-4-31B-it.jinja"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "wrote "+path) {
		t.Fatalf("output %q", out)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if s, _ := f.String("mica.synth.preset"); s != "gemma4-test" {
		t.Errorf("mica.synth.preset %q", s)
	}
	if ti, ok := f.Tensor("blk.0.attn_q.weight"); !ok || ti.Type.String() != "Q8_0" {
		t.Errorf("blk.0.attn_q.weight: %+v", ti)
	}
}

func TestSynthCmdErrors(t *testing.T) {
	t.Setenv("MICA_VOCAB", "")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gemma3-test", "-o", filepath.Join(dir, "x.gguf")}, "--vocab"},
		{[]string{"gemma3-test"}, "-o FILE"},
		{[]string{"gemma9", "-o", filepath.Join(dir, "x.gguf"), "--vocab", "v"}, "gemma3-270m"},
		{[]string{"gemma3-test", "-o", filepath.Join(dir, "x.gguf"), "--dtype", "q9", "--vocab", "v"}, "q4_0"},
		{[]string{"gemma3-test", "-o", filepath.Join(dir, "x.gguf"), "--vocab", filepath.Join(dir, "missing")}, "missing"},
	} {
		out, err := runSynth(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v (output %q), want one mentioning %q", c.args, err, out, c.want)
		}
	}
}

func TestSynthCmdSD(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sd-test.safetensors")
	out, err := runSynth(t, "sd-test", "-o", path, "--dtype", "f32", "-q")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "wrote "+path) || !strings.Contains(out, "987 tensors") {
		t.Fatalf("output %q", out)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, ok := f.Tensor("model.diffusion_model.input_blocks.0.0.weight")
	if !ok || ti.RawDType != "F32" || len(ti.Shape) != 4 || ti.Shape[0] != 32 {
		t.Errorf("input conv: %+v", ti)
	}
	if ti, ok := f.Tensor("cond_stage_model.transformer.text_model.embeddings.position_ids"); !ok || ti.RawDType != "I64" {
		t.Errorf("position_ids: %+v", ti)
	}
	// The default seed is the recipe's (0): the note is the plain one.
	if note := f.Metadata["note"]; strings.Contains(note, "seed") {
		t.Errorf("note %q", note)
	}
	// --seed changes the values and is recorded.
	p2 := filepath.Join(dir, "sd-test-7.safetensors")
	if out, err := runSynth(t, "sd-test", "-o", p2, "--seed", "7", "-q"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f2, err := safetensors.Open(p2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if !strings.Contains(f2.Metadata["note"], "seed 7") {
		t.Errorf("note %q", f2.Metadata["note"])
	}
}

func TestSynthCmdSDErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sd15-recipe", "-o", filepath.Join(dir, "x.safetensors"), "--seed", "3"}, "no seed"},
		{[]string{"sd-test", "-o", filepath.Join(dir, "x.safetensors"), "--dtype", "q8_0"}, "f32, f16 or bf16"},
		{[]string{"sd-test", "-o", filepath.Join(dir, "x.safetensors"), "--vocab", "v.gguf"}, "--vocab"},
		{[]string{"sdxl-test"}, "-o FILE"},
		{[]string{"sd99", "-o", filepath.Join(dir, "x.safetensors")}, "sd15-recipe"},
	} {
		out, err := runSynth(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v (output %q), want one mentioning %q", c.args, err, out, c.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left behind", len(ents))
	}
}
