package engine

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"unicode/utf8"

	"mica/internal/llm/grammar"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
)

const testSchema = `{"type":"object","properties":{
 "name":{"type":"string","minLength":1,"maxLength":8},
 "age":{"type":"integer","minimum":0,"maximum":120},
 "tags":{"type":"array","items":{"enum":["red","green","blue"]},"maxItems":3},
 "ok":{"type":"boolean"}},
 "required":["name","age","ok"],"additionalProperties":false}`

// checkTestSchema reports why text is not a valid instance of testSchema.
func checkTestSchema(text string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return "not a JSON object: " + err.Error()
	}
	for k := range m {
		if !slices.Contains([]string{"name", "age", "tags", "ok"}, k) {
			return "unexpected property " + k
		}
	}
	name, ok := m["name"].(string)
	if n := utf8.RuneCountInString(name); !ok || n < 1 || n > 8 {
		return "name is not a string of 1 to 8 characters"
	}
	age, ok := m["age"].(float64)
	if !ok || age != float64(int(age)) || age < 0 || age > 120 {
		return "age is not an integer in [0, 120]"
	}
	if _, ok := m["ok"].(bool); !ok {
		return "ok is not a boolean"
	}
	if v, has := m["tags"]; has {
		tags, ok := v.([]any)
		if !ok || len(tags) > 3 {
			return "tags is not an array of at most 3 items"
		}
		for _, x := range tags {
			if s, _ := x.(string); s != "red" && s != "green" && s != "blue" {
				return "a tag is not red, green or blue"
			}
		}
	}
	return ""
}

// TestConstrainedChat: a random-weight model sampling at a high temperature
// only ever writes instances of the schema, and stops when the grammar is
// complete.
func TestConstrainedChat(t *testing.T) {
	g, err := grammar.CompileSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	e := openEngine(t, synthModel(t, "gemma4-test"), 2, Options{Context: 512})
	for seed := int64(1); seed <= 4; seed++ {
		p := sample.Params{Temperature: 1.5, TopP: 1, RepeatPenalty: 1, Seed: seed}
		c := &collector{t: t}
		res, err := e.Chat(context.Background(), ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Text("Describe a person.")}},
			Sampling: p, MaxTokens: 300, Grammar: g}, c.add)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Finish != FinishStop {
			t.Fatalf("seed %d: finish %q after %d tokens, want stop; text %q", seed, res.Finish, len(res.Tokens), res.Text)
		}
		if why := checkTestSchema(res.Text); why != "" {
			t.Fatalf("seed %d: %q: %s", seed, res.Text, why)
		}
		if c.content != res.Text || res.Thinking != "" || len(res.ToolCalls) != 0 {
			t.Fatalf("seed %d: streamed %q, thinking %q, calls %v", seed, c.content, res.Thinking, res.ToolCalls)
		}
		t.Logf("seed %d: %d tokens: %s", seed, len(res.Tokens), res.Text)
	}
}

// TestConstrainedCompletion: json_object mode on a raw completion with
// greedy sampling.
func TestConstrainedCompletion(t *testing.T) {
	g, err := grammar.Compile(grammar.JSONObjectGBNF())
	if err != nil {
		t.Fatal(err)
	}
	e := openEngine(t, synthModel(t, "gemma3-test"), 2, Options{Context: 512})
	for seed := int64(1); seed <= 3; seed++ {
		p := sample.Params{Temperature: 1, TopK: 5, TopP: 1, RepeatPenalty: 1, Seed: seed}
		res, err := e.Complete(context.Background(), CompletionRequest{Prompt: "JSON:", Sampling: p, MaxTokens: 64, Grammar: g}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A free JSON object need not end within 64 tokens; every prefix
		// must still be accepted by the grammar, and a finished one must
		// parse.
		if res.Finish == FinishStop {
			var v map[string]any
			if err := json.Unmarshal([]byte(res.Text), &v); err != nil {
				t.Fatalf("seed %d: %q: %v", seed, res.Text, err)
			}
		}
		s := g.NewState()
		if err := s.Accept([]byte(res.Text)); err != nil {
			t.Fatalf("seed %d: %q is not a prefix of the grammar: %v", seed, res.Text, err)
		}
		if res.Finish == FinishStop && !s.CanEnd() {
			t.Fatalf("seed %d: stopped on an incomplete sentence %q", seed, res.Text)
		}
		t.Logf("seed %d: %s %q", seed, res.Finish, res.Text)
	}
}

func TestConstrainedRefusesThinking(t *testing.T) {
	g, err := grammar.Compile(grammar.JSONObjectGBNF())
	if err != nil {
		t.Fatal(err)
	}
	e := openEngine(t, synthModel(t, "gemma4-test"), 1, Options{Context: 128})
	_, err = e.Chat(context.Background(), ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Text("x")}}, Think: true, Grammar: g}, nil)
	if !errors.Is(err, ErrThinkGrammar) {
		t.Fatalf("got %v, want ErrThinkGrammar", err)
	}
}

// TestToolCallGrammar: with the tool-call grammar a random-weight Gemma 4
// model always makes exactly one well-formed call to an allowed function,
// and the marker tokens are its own special tokens.
func TestToolCallGrammar(t *testing.T) {
	e := openEngine(t, synthModel(t, "gemma4-test"), 2, Options{Context: 1024})
	tools := []chat.Tool{
		{Name: "get_weather", Description: "Weather in a city", Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`)},
		{Name: "lookup", Description: "Look up a word"},
	}
	for _, names := range [][]string{{"get_weather"}, {"get_weather", "lookup"}} {
		g, err := grammar.Compile(ToolCallGBNF(names))
		if err != nil {
			t.Fatal(err)
		}
		for seed := int64(1); seed <= 3; seed++ {
			p := sample.Params{Temperature: 1, TopP: 1, RepeatPenalty: 1, Seed: seed}
			res, err := e.Chat(context.Background(), ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Text("Weather in Paris?")}},
				Tools: tools, Sampling: p, MaxTokens: 900, Grammar: g, MarkerGrammar: true}, nil)
			if err != nil {
				t.Fatalf("%v seed %d: %v (%d tokens, finish %s)", names, seed, err, len(res.Tokens), res.Finish)
			}
			if res.Finish != FinishStop || len(res.ToolCalls) != 1 || !slices.Contains(names, res.ToolCalls[0].Name) || res.Text != "" {
				t.Fatalf("%v seed %d: finish %s, calls %+v, text %q", names, seed, res.Finish, res.ToolCalls, res.Text)
			}
			var args map[string]any
			if err := json.Unmarshal(res.ToolCalls[0].Arguments, &args); err != nil {
				t.Fatalf("arguments %s: %v", res.ToolCalls[0].Arguments, err)
			}
			if start, _ := e.Tokenizer().ID(chat.ToolCallStart); res.Tokens[0] != start {
				t.Fatalf("first token %d is not %s", res.Tokens[0], chat.ToolCallStart)
			}
			t.Logf("%v seed %d: %d tokens: %s %s", names, seed, len(res.Tokens), res.ToolCalls[0].Name, res.ToolCalls[0].Arguments)
		}
	}
}

// BenchmarkConstraintStep is the per-token cost of a constraint on the
// 262k vocabulary: the mask (cached per automaton state after the first
// time) applied to a row of logits, inside a free JSON string.
func BenchmarkConstraintStep(b *testing.B) {
	e := openEngine(b, synthModel(b, "gemma4-test"), 1, Options{Context: 128})
	g, err := grammar.Compile(grammar.JSONObjectGBNF())
	if err != nil {
		b.Fatal(err)
	}
	c := newConstraint(e, g, false)
	if err := c.st.Accept([]byte(`{"key":"some text`)); err != nil {
		b.Fatal(err)
	}
	logits := make([]float32, e.Model().Config.NVocab)
	b.ResetTimer()
	for range b.N {
		c.fresh = false
		if err := c.apply(logits); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConstrainedBatched: constrained requests sharing one Grammar and
// sampled in parallel by the batcher (each step's samplings run at once)
// give exactly the answers they give one at a time.
func TestConstrainedBatched(t *testing.T) {
	g, err := grammar.CompileSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	path := synthModel(t, "gemma4-test")
	req := func(seed int64) ChatRequest {
		return ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Text("Describe a person.")}},
			Sampling: sample.Params{Temperature: 1.5, TopP: 0.95, Seed: seed}, MaxTokens: 40, Grammar: g}
	}
	const n = 4
	e := openEngine(t, path, 2, Options{Context: 256})
	want := make([]Result, n)
	for i := range want {
		if want[i], err = e.Chat(context.Background(), req(int64(i+1)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var log stepLog
	b := openEngine(t, path, 2, Options{Context: 256, Batch: n, OnBatch: log.add})
	got := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = b.Chat(context.Background(), req(int64(i+1)), nil) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		sameResult(t, i, got[i], want[i])
	}
	if seqs, _ := log.maxSeqs(); seqs < 2 {
		t.Errorf("at most %d sequences in a step: the requests did not run together", seqs)
	}
}
