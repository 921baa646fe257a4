package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"mica/internal/llm/sample"
	"mica/internal/models/gemma"
	"mica/internal/tensor"
	"mica/internal/tokenizer"
)

// referenceGreedy recomputes greedy decoding the slow, independent way: the
// whole sequence from position 0 in one Forward call per step (what
// `mica dev logits` prints), taking the argmax of the last row. It returns
// the tokens and, per step, the gap between the best and second-best logit.
func referenceGreedy(t *testing.T, e *Engine, prompt []int32, n int) ([]int32, []float32) {
	t.Helper()
	m := e.Model()
	seqTokens := slices.Clone(prompt)
	var out []int32
	var gaps []float32
	for len(out) < n {
		s, err := m.NewSequence(gemma.SequenceOptions{Capacity: len(seqTokens), KV: tensor.F16})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := m.Forward([]*gemma.Sequence{s}, [][]int32{seqTokens})
		s.Free()
		if err != nil {
			t.Fatal(err)
		}
		V := m.Config.NVocab
		id, gap := argmax(rows[0][len(rows[0])-V:])
		gaps = append(gaps, gap)
		if e.isStop(id) {
			break
		}
		out = append(out, id)
		seqTokens = append(seqTokens, id)
	}
	return out, gaps
}

// TestCompleteGreedyMatchesForward: greedy decoding through the engine
// (chunked prefill, KV cache, one token per step) picks the argmax of the
// full-sequence logits at every step, on every reference architecture.
func TestCompleteGreedyMatchesForward(t *testing.T) {
	for _, name := range []string{"gemma3-tiny-f32.gguf", "gemma3-tiny-q8_0.gguf", "gemma4-tiny-f32.gguf", "gemma4-ple-f32.gguf", "gemma4-moe-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			// Step 4 makes the 7-token prompt take two prefill chunks
			// plus a partial one.
			e := openEngine(t, refModel(t, name), 2, Options{Context: 64, Step: 4})
			c := &collector{t: t}
			const n = 12
			res, err := e.Complete(context.Background(), CompletionRequest{Prompt: "Hello world, the cat", Sampling: sample.Greedy(), MaxTokens: n}, c.add)
			if err != nil {
				t.Fatal(err)
			}
			prompt, _ := e.CompletionPrompt(CompletionRequest{Prompt: "Hello world, the cat"})
			if res.Usage.PromptTokens != len(prompt) || prompt[0] != e.Tokenizer().BOS() {
				t.Fatalf("prompt %v (%d tokens reported)", prompt, res.Usage.PromptTokens)
			}
			want, gaps := referenceGreedy(t, e, prompt, n)
			for i := range min(len(want), len(res.Tokens)) {
				if res.Tokens[i] != want[i] {
					// Incremental and whole-sequence logits differ by
					// rounding (≤ 1e-3, the reference parity bound): only a
					// near-tie may flip the choice, and then the rest differs.
					if gaps[i] > 2e-3 {
						t.Fatalf("token %d: engine %d, argmax %d (gap %g); engine %v, reference %v", i, res.Tokens[i], want[i], gaps[i], res.Tokens, want)
					}
					t.Logf("token %d: near-tie (gap %g), stopping the comparison", i, gaps[i])
					return
				}
			}
			if len(res.Tokens) != len(want) {
				t.Fatalf("engine made %d tokens (%s), reference %d", len(res.Tokens), res.Finish, len(want))
			}
			wantFinish := FinishLength
			if len(want) < n {
				wantFinish = FinishStop
			}
			if res.Finish != wantFinish {
				t.Fatalf("finish %s, want %s", res.Finish, wantFinish)
			}
			if got := e.Tokenizer().Decode(res.Tokens); res.Text != c.content || !strings.HasPrefix(decodeSkip(e.Tokenizer(), res.Tokens), res.Text) || got == "" && res.Text != "" {
				t.Fatalf("text %q, streamed %q, decoded %q", res.Text, c.content, got)
			}
			u := res.Usage
			if u.GeneratedTokens != len(res.Tokens) || u.Prefill <= 0 || u.TimeToFirstToken < u.Prefill || u.DecodeSteps != len(res.Tokens)-1+btoi(res.Finish == FinishStop) || u.DecodeTokensPerSec() <= 0 {
				t.Fatalf("usage %+v", u)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func decodeSkip(tok *tokenizer.Tokenizer, ids []int32) string {
	d := tok.NewDecoder()
	d.SkipSpecial = true
	var s string
	for _, id := range ids {
		s += d.Add(id)
	}
	return s + d.Flush()
}

// TestSeedsReproducible: the same seed gives the same tokens (also at
// another thread count); another seed gives other tokens.
func TestSeedsReproducible(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	p := sample.DefaultParams()
	p.Temperature = 1.5 // a flat distribution, so that seeds matter
	p.TopK, p.TopP, p.MinP = 0, 1, 0
	run := func(threads int, seed int64) []int32 {
		e := openEngine(t, path, threads, Options{Context: 64})
		p.Seed = seed
		res, err := e.Complete(context.Background(), CompletionRequest{Prompt: "Once upon a time", Sampling: p, MaxTokens: 16}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Tokens
	}
	a, b, c := run(2, 42), run(1, 42), run(2, 43)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 42: %v with 2 threads, %v with 1", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same %v", a)
	}
	if len(a) < 4 {
		t.Fatalf("only %d tokens", len(a))
	}
}

// TestPromptLongerThanContext: an error that says so, never truncation.
func TestPromptLongerThanContext(t *testing.T) {
	e := openEngine(t, refModel(t, "gemma3-tiny-f32.gguf"), 2, Options{Context: 8})
	_, err := e.Complete(context.Background(), CompletionRequest{Prompt: strings.Repeat("hello ", 20), Sampling: sample.Greedy()}, nil)
	if err == nil || !strings.Contains(err.Error(), "context holds 8") {
		t.Fatalf("error %v", err)
	}
	for _, r := range []CompletionRequest{{Prompt: ""}, {Tokens: []int32{}}} {
		if _, err := e.Complete(context.Background(), r, nil); !errors.Is(err, ErrEmptyPrompt) {
			t.Errorf("%+v: error %v", r, err)
		}
	}
	if _, err := e.Complete(context.Background(), CompletionRequest{Tokens: []int32{2, 99999}}, nil); err == nil || !strings.Contains(err.Error(), "99999") {
		t.Errorf("bad id: error %v", err)
	}
	if _, err := e.Complete(context.Background(), CompletionRequest{Prompt: "hi", Sampling: sample.Params{Temperature: -1}}, nil); err == nil {
		t.Errorf("negative temperature accepted")
	}
	if _, err := e.Complete(context.Background(), CompletionRequest{Prompt: "hi", Stop: []string{""}}, nil); err == nil {
		t.Errorf("empty stop string accepted")
	}
}

// TestContextFull: generation stops when the context is full.
func TestContextFull(t *testing.T) {
	e := openEngine(t, refModel(t, "gemma3-tiny-f32.gguf"), 2, Options{Context: 10})
	res, err := e.Complete(context.Background(), CompletionRequest{Tokens: []int32{2, 400, 500}, Sampling: sample.Params{Temperature: 1, Seed: 1, LogitBias: eogBan(e)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 3 prompt positions + 7 fed tokens fill 10; the 8th sampled token
	// cannot be fed.
	if res.Finish != FinishContext || len(res.Tokens) != 8 {
		t.Fatalf("finish %s after %d tokens", res.Finish, len(res.Tokens))
	}
}

// eogBan bans the end-of-generation tokens.
func eogBan(e *Engine) map[int32]float32 {
	b := map[int32]float32{}
	for id := int32(0); int(id) < e.Tokenizer().VocabSize(); id++ {
		if e.isStop(id) {
			b[id] = float32(negInf())
		}
	}
	return b
}

func negInf() float64 { return -1 / zero }

var zero = 0.0

// TestStopStringAndCache: a stop string cuts the text where it starts; the
// next request with the same prompt reuses the cached prompt positions and
// gives the same greedy answer.
func TestStopStringAndCache(t *testing.T) {
	e := openEngine(t, refModel(t, "gemma3-tiny-f32.gguf"), 2, Options{Context: 128})
	g := sample.Greedy()
	g.LogitBias = eogBan(e)
	req := CompletionRequest{Prompt: "The quick brown fox", Sampling: g, MaxTokens: 24}
	full, err := e.Complete(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Text) < 12 {
		t.Fatalf("text %q too short for the test", full.Text)
	}
	if full.Usage.CachedTokens != 0 {
		t.Fatalf("first request: %d cached tokens", full.Usage.CachedTokens)
	}
	stop := full.Text[len(full.Text)/2 : len(full.Text)/2+3]
	req.Stop = []string{"\x00never", stop}
	c := &collector{t: t}
	cut, err := e.Complete(context.Background(), req, c.add)
	if err != nil {
		t.Fatal(err)
	}
	want := full.Text[:strings.Index(full.Text, stop)]
	if cut.Text != want || c.content != want || cut.Finish != FinishStopString || cut.StopString != stop {
		t.Fatalf("stop %q: text %q (streamed %q, %s), want %q", stop, cut.Text, c.content, cut.Finish, want)
	}
	if cut.Usage.CachedTokens != cut.Usage.PromptTokens-1 {
		t.Fatalf("second request reused %d of %d prompt tokens", cut.Usage.CachedTokens, cut.Usage.PromptTokens)
	}
	if !slices.Equal(cut.Tokens, full.Tokens[:len(cut.Tokens)]) {
		t.Fatalf("cached run gave %v, first run %v", cut.Tokens, full.Tokens)
	}
	// A longer prompt sharing the prefix: the cache is reused too.
	req.Stop = nil
	req.Prompt += " jumps"
	ext, err := e.Complete(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ext.Usage.CachedTokens == 0 {
		t.Fatalf("extended prompt reused nothing")
	}
}

// TestCancel: cancelling stops the generation and returns what was made.
func TestCancel(t *testing.T) {
	e := openEngine(t, refModel(t, "gemma3-tiny-f32.gguf"), 2, Options{Context: 128})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	g := sample.Greedy()
	g.LogitBias = eogBan(e)
	res, err := e.Complete(ctx, CompletionRequest{Prompt: "The quick brown fox", Sampling: g}, func(Event) {
		if n++; n == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res.Finish != FinishCancelled || len(res.Tokens) < 3 || len(res.Tokens) > 6 {
		t.Fatalf("err %v, finish %s, %d tokens", err, res.Finish, len(res.Tokens))
	}
	// The engine still works afterwards.
	if _, err := e.Complete(context.Background(), CompletionRequest{Prompt: "again", Sampling: g, MaxTokens: 2}, nil); err != nil {
		t.Fatal(err)
	}
}
