package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/format/gguf"
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
