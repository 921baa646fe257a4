package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"mica/internal/compute/cpu"
	"mica/internal/llm/engine"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
	"mica/internal/synth"
	"mica/internal/tensor"
)

// runLLMCLI runs the commands of this issue (run, dev tokenize, bench llm)
// on their own root with stdin, returning stdout and stderr separately.
func runLLMCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "mica", SilenceUsage: true, SilenceErrors: true}
	dev := &cobra.Command{Use: "dev"}
	dev.AddCommand(newDevTokenizeCmd())
	bench := &cobra.Command{Use: "bench"}
	bench.AddCommand(newBenchLLMCmd())
	root.AddCommand(newRunCmd(), dev, bench)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

var (
	cliVocabOnce sync.Once
	cliVocab     *synth.Vocab
	cliVocabErr  error
)

// writeTinyChatModels writes gemma3-test and gemma4-test (the real 262k
// vocabulary) into dir and returns their paths by preset.
func writeTinyChatModels(t *testing.T, dir string) map[string]string {
	t.Helper()
	sh := sharedDir(t)
	cliVocabOnce.Do(func() {
		cliVocab, cliVocabErr = synth.LoadVocab(filepath.Join(sh, "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf"))
	})
	if cliVocabErr != nil {
		t.Fatal(cliVocabErr)
	}
	paths := map[string]string{}
	for _, p := range []string{"gemma3-test", "gemma4-test"} {
		paths[p] = filepath.Join(dir, p+".gguf")
		if _, err := synth.Write(paths[p], synth.Options{Preset: p, Type: tensor.F16, Seed: 3, Vocab: cliVocab, Threads: 2}); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// TestRun runs `mica run` on tiny synthetic chat models.
func TestRun(t *testing.T) {
	models := writeTinyChatModels(t, t.TempDir())
	t.Run("OneShot", func(t *testing.T) { testRunOneShot(t, models) })
	t.Run("Interactive", func(t *testing.T) { testRunInteractive(t, models["gemma3-test"]) })
	t.Run("BadInput", func(t *testing.T) { testRunBadInput(t, models["gemma3-test"]) })
}

// engineAnswer computes what `mica run` should print, through the engine.
func engineAnswer(t *testing.T, path string, raw bool, think bool, turns ...string) []string {
	t.Helper()
	be := cpu.New(2)
	defer be.Close()
	e, err := engine.Open(path, be, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var history []chat.Message
	var out []string
	for _, turn := range turns {
		var res engine.Result
		if raw {
			res, err = e.Complete(context.Background(), engine.CompletionRequest{Prompt: turn, Sampling: sample.Greedy(), MaxTokens: 6}, nil)
		} else {
			msgs := append(append([]chat.Message(nil), history...), chat.Message{Role: "user", Content: chat.Text(turn)})
			res, err = e.Chat(context.Background(), engine.ChatRequest{Messages: msgs, Think: think, Sampling: sample.Greedy(), MaxTokens: 6}, nil)
			history = append(msgs, chat.Message{Role: "assistant", Content: chat.Text(res.Text)})
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Text)
	}
	return out
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// testRunOneShot: `mica run` prints exactly the engine's greedy answer, in
// chat and raw mode, on both families.
func testRunOneShot(t *testing.T, models map[string]string) {
	for _, c := range []struct {
		preset     string
		raw, think bool
	}{{"gemma3-test", false, false}, {"gemma4-test", false, true}, {"gemma4-test", true, false}} {
		path := models[c.preset]
		want := engineAnswer(t, path, c.raw, c.think, "Why is the sky blue?")[0]
		args := []string{"run", path, "Why is the sky blue?", "--temperature", "0", "--max-tokens", "6", "--threads", "2", "-v"}
		if c.raw {
			args = append(args, "--raw")
		}
		if c.think {
			args = append(args, "--think")
		}
		out, errOut, err := runLLMCLI(t, "", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out != withNewline(want) || want == "" {
			t.Fatalf("%s raw=%v: printed %q, engine answered %q", c.preset, c.raw, out, want)
		}
		if !strings.Contains(errOut, "answer 6 tokens") && !strings.Contains(errOut, "finish: stop") {
			t.Fatalf("--verbose: %q", errOut)
		}
	}
}

// testRunInteractive: without a prompt, each line is a turn of one
// conversation; /bye ends it.
func testRunInteractive(t *testing.T, path string) {
	want := engineAnswer(t, path, false, false, "Hello", "And then?")
	out, _, err := runLLMCLI(t, "Hello\nAnd then?\n/bye\nnever\n", "run", path, "--temperature", "0", "--max-tokens", "6")
	if err != nil {
		t.Fatal(err)
	}
	if out != withNewline(want[0])+withNewline(want[1]) {
		t.Fatalf("printed %q, want %q", out, want)
	}
	// End of input without /bye ends the session too.
	if _, _, err := runLLMCLI(t, "Hello", "run", path, "--temperature", "0", "--max-tokens", "2"); err != nil {
		t.Fatal(err)
	}
}

// testRunBadInput: clear errors before or instead of generating.
func testRunBadInput(t *testing.T, path string) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", path, strings.Repeat("word ", 100), "--ctx", "32"}, "context holds 32"},
		{[]string{"run", path, "  "}, "empty prompt"},
		{[]string{"run", path, "hi", "--temperature", "-1"}, "temperature"},
		{[]string{"run", path, "hi", "--top-p", "2"}, "top_p"},
		{[]string{"run", path, "hi", "--max-tokens", "-3"}, "--max-tokens"},
		{[]string{"run", filepath.Join(t.TempDir(), "missing.gguf"), "hi"}, "missing.gguf"},
	} {
		_, _, err := runLLMCLI(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args[2:], err, c.want)
		}
	}
	// In a session, a refused turn is reported and the session goes on.
	out, errOut, err := runLLMCLI(t, strings.Repeat("word ", 100)+"\nHi\n", "run", path, "--ctx", "48", "--temperature", "0", "--max-tokens", "2")
	if err != nil || !strings.Contains(errOut, "context holds 48") || out == "" {
		t.Fatalf("err %v, stderr %q, stdout %q", err, errOut, out)
	}
}

// TestDevTokenize: the ids of the reference cases, from the GGUF vocabulary
// and from tokenizer.json; --special recognises special tokens.
func TestDevTokenize(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "testdata/gemma3-tokenizer")
	data, err := os.ReadFile(filepath.Join(dir, "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i, src := range []string{"gemma3-vocab-gemma4bpe.gguf", "tokenizer.json.gz"} {
		var c struct {
			Text string
			IDs  []int32
		}
		if err := json.Unmarshal([]byte(lines[3+i*7%len(lines)]), &c); err != nil {
			t.Fatal(err)
		}
		out, _, err := runLLMCLI(t, "", "dev", "tokenize", filepath.Join(dir, src), c.Text)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(c.IDs)
		if out != string(want)+"\n" {
			t.Errorf("%s %q: %s, want %s", src, c.Text, out, want)
		}
	}
	gg := filepath.Join(dir, "gemma3-vocab-gemma4bpe.gguf")
	special, _, err := runLLMCLI(t, "<start_of_turn>user", "dev", "tokenize", gg, "--special", "--bos")
	if err != nil {
		t.Fatal(err)
	}
	if special != "[2,105,2364]\n" {
		t.Errorf("--special --bos from stdin: %s", special)
	}
	plain, _, err := runLLMCLI(t, "", "dev", "tokenize", gg, "<start_of_turn>user")
	if err != nil || strings.Contains(plain, "105") || len(plain) < 12 {
		t.Errorf("without --special: %s %v", plain, err)
	}
	if _, _, err := runLLMCLI(t, "", "dev", "tokenize", filepath.Join(dir, "cases.jsonl"), "x"); err == nil {
		t.Errorf("a non-model file was accepted")
	}
}

// TestBenchLLM: the report has every figure, from the requested numbers of
// repetitions.
func TestBenchLLM(t *testing.T) {
	path := filepath.Join(sharedDir(t), "reference/gemma/gemma3-tiny-q8_0.gguf")
	out, _, err := runLLMCLI(t, "", "bench", "llm", path, "--prompt", "24", "--gen", "6", "--reps", "2", "--threads", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Arch, Type  string
		OpenSeconds float64 `json:"open_seconds"`
		Load        float64 `json:"load_seconds"`
		PP, TG      struct {
			Name    string
			Tokens  int
			Mean    float64 `json:"tokens_per_sec"`
			Samples []float64
		}
		RSS  int64 `json:"rss_bytes"`
		Peak int64 `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Arch != "gemma3" || r.Type != "Q8_0" || r.PP.Name != "pp24" || r.TG.Name != "tg6" || len(r.PP.Samples) != 2 || len(r.TG.Samples) != 2 ||
		r.PP.Mean <= 0 || r.TG.Mean <= 0 || r.Load < r.OpenSeconds || r.OpenSeconds <= 0 || r.RSS <= 0 || r.Peak < r.RSS {
		t.Fatalf("report %+v\n%s", r, out)
	}
	text, _, err := runLLMCLI(t, "", "bench", "llm", path, "--prompt", "8", "--gen", "0", "--reps", "1")
	if err != nil || !strings.Contains(text, "pp8") || strings.Contains(text, "tg") {
		t.Fatalf("text report %v:\n%s", err, text)
	}
	if _, _, err := runLLMCLI(t, "", "bench", "llm", path, "--prompt", "0", "--gen", "0"); err == nil {
		t.Fatalf("nothing to measure was accepted")
	}
}
