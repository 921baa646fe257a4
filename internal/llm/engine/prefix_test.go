package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
)

// firstRows records the logits after each request's prompt.
type firstRows struct {
	mu   sync.Mutex
	rows [][]float32
}

func (f *firstRows) hook(l []float32) {
	f.mu.Lock()
	f.rows = append(f.rows, slices.Clone(l))
	f.mu.Unlock()
}

// freshComplete runs r on a new batched engine with nothing to reuse and
// returns its result and the logits after the prompt.
func freshComplete(t *testing.T, path string, o Options, r CompletionRequest) (Result, []float32) {
	t.Helper()
	e := openEngine(t, path, 2, o)
	var f firstRows
	e.firstLogits = f.hook
	res, err := e.Complete(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Usage.CachedTokens != 0 {
		t.Fatalf("a fresh engine reused %d positions", res.Usage.CachedTokens)
	}
	return res, f.rows[0]
}

// TestBatchPrefixReuse: in batched mode a request copies the prompt prefix
// a running request's sequence holds, and takes over a finished one's;
// tokens and the logits after the prompt are bit-identical to a fresh
// engine's (no tolerance: CopyPrefix lays every position out as a fresh
// sequence would, and float weights compute each row the same in any
// batch — see TestBatchMatchesAlone). Sliding-window layers: a source
// that went on too far past the shared prefix for its ring gives nothing.
func TestBatchPrefixReuse(t *testing.T) {
	for _, name := range []string{"gemma3-tiny-f32.gguf", "gemma4-tiny-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			path := refModel(t, name)
			o := Options{Context: 128, Step: 8, Batch: 4, Budget: 16}
			e := openEngine(t, path, 2, o)
			var f firstRows
			e.firstLogits = f.hook
			ban := eogBan(e)
			greedy := sample.Greedy()
			greedy.LogitBias = ban
			base := "Once upon a time there was a little village by the sea where the fishermen"
			req := func(p string, max int) CompletionRequest {
				return CompletionRequest{Prompt: p, Sampling: greedy, MaxTokens: max}
			}
			a := req(base, 30)
			b := req(base+" sang every morning", 8)
			var resA, resB Result
			var errA, errB error
			var wg sync.WaitGroup
			startB := make(chan struct{})
			wg.Go(func() {
				k := 0
				resA, errA = e.Complete(context.Background(), a, func(Event) {
					if k++; k == 2 {
						close(startB) // B joins while A decodes
					}
				})
			})
			<-startB
			resB, errB = e.Complete(context.Background(), b, nil)
			wg.Wait()
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if resB.Usage.CachedTokens < 10 {
				t.Fatalf("B reused %d of %d prompt positions from the running A", resB.Usage.CachedTokens, resB.Usage.PromptTokens)
			}
			// C continues A's finished answer: it takes A's kept sequence
			// over, through A's generated tokens.
			ids, err := e.CompletionPrompt(a)
			if err != nil {
				t.Fatal(err)
			}
			c := CompletionRequest{Tokens: append(append(ids, resA.Tokens...), 1000, 1001), Sampling: greedy, MaxTokens: 6}
			resC, err := e.Complete(context.Background(), c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(ids) + len(resA.Tokens) - 1; resC.Usage.CachedTokens < want {
				t.Errorf("C reused %d positions, want at least %d (A's prompt and answer)", resC.Usage.CachedTokens, want)
			}
			// D shares only A's prompt, but A's sequence (kept, 30 tokens
			// on) no longer holds the window after it.
			resD, err := e.Complete(context.Background(), req(base+" and the boats", 4), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resD.Usage.CachedTokens != 0 {
				t.Errorf("D reused %d positions from a sequence whose ring no longer holds them", resD.Usage.CachedTokens)
			}
			// E continues B's answer within B's reservation: it takes B's
			// kept sequence over (no copy: the kept count stays).
			idsB, err := e.CompletionPrompt(b)
			if err != nil {
				t.Fatal(err)
			}
			ereq := CompletionRequest{Tokens: append(idsB, resB.Tokens[:3]...), Sampling: greedy, MaxTokens: 2}
			kept := len(e.sched.idle)
			resE, err := e.Complete(context.Background(), ereq, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(e.sched.idle) != kept || resE.Usage.CachedTokens != len(idsB)+2 {
				t.Errorf("E: %d kept sequences after, %d before; reused %d positions, want %d", len(e.sched.idle), kept, resE.Usage.CachedTokens, len(idsB)+2)
			}
			if got, want := e.ReusedTokens(), int64(resB.Usage.CachedTokens+resC.Usage.CachedTokens+resE.Usage.CachedTokens); got != want {
				t.Errorf("ReusedTokens %d, want %d", got, want)
			}
			t.Logf("reused: B %d/%d, C %d/%d", resB.Usage.CachedTokens, resB.Usage.PromptTokens, resC.Usage.CachedTokens, resC.Usage.PromptTokens)
			// Each equals a fresh engine's answer, logits included.
			f.mu.Lock()
			rows := f.rows
			f.mu.Unlock()
			if len(rows) != 5 {
				t.Fatalf("%d prompt logits rows", len(rows))
			}
			for i, r := range []struct {
				req CompletionRequest
				got Result
			}{{b, resB}, {c, resC}, {ereq, resE}} {
				want, wantRow := freshComplete(t, path, o, r.req)
				if !slices.Equal(r.got.Tokens, want.Tokens) {
					t.Errorf("request %d with reuse: %v, fresh: %v", i, r.got.Tokens, want.Tokens)
				}
				if !slices.ContainsFunc(rows, func(row []float32) bool { return slices.Equal(row, wantRow) }) {
					t.Errorf("request %d: the logits after the prompt differ from a fresh engine's", i)
				}
			}
			// The kept sequences show in KVUse.
			if filled, reserved, _ := e.KVUse(); filled == 0 || reserved < filled {
				t.Errorf("KV use with kept sequences: %d filled, %d reserved", filled, reserved)
			}
		})
	}
}

// TestBatchPrefixImage: a conversation that goes on after an image reuses
// the KV through the image in batched mode (no new encode), and answers
// what a fresh engine answers.
func TestBatchPrefixImage(t *testing.T) {
	o := Options{Batch: 3}
	e := visionEngine(t, "gemma3", o)
	img := devImage(t)
	first := ChatRequest{Messages: []chat.Message{imageTurn("What is this?", 1)}, Images: []Image{img},
		Sampling: sample.Greedy(), MaxTokens: 4}
	r1, err := e.Chat(context.Background(), first, nil)
	if err != nil {
		t.Fatal(err)
	}
	follow := first
	follow.Messages = append(append([]chat.Message(nil), first.Messages...),
		chat.Message{Role: "assistant", Content: chat.Text(r1.Text)},
		chat.Message{Role: "user", Content: chat.Text("And the colours?")})
	var f firstRows
	e.firstLogits = f.hook
	r2, err := e.Chat(context.Background(), follow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _, _, _ := e.ImageStats(); n != 1 {
		t.Errorf("%d encodes after the follow-up turn, want 1", n)
	}
	if r2.Usage.CachedTokens < r1.Usage.PromptTokens-1 {
		t.Errorf("follow-up reused %d positions, want at least the first prompt's %d (through the image)", r2.Usage.CachedTokens, r1.Usage.PromptTokens-1)
	}
	fresh := visionEngine(t, "gemma3", o)
	var g firstRows
	fresh.firstLogits = g.hook
	want, err := fresh.Chat(context.Background(), follow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.Usage.CachedTokens != 0 || want.Text != r2.Text || !slices.Equal(want.Tokens, r2.Tokens) {
		t.Errorf("follow-up with reuse %q %v; fresh %q %v (cached %d)", r2.Text, r2.Tokens, want.Text, want.Tokens, want.Usage.CachedTokens)
	}
	if !slices.Equal(f.rows[0], g.rows[0]) {
		t.Error("the follow-up's logits differ from a fresh engine's")
	}
}

// TestBatchPrefixBudget: kept sequences give way, oldest first, to a
// request the KV budget (or the batch size) has no other room for;
// answers do not change.
func TestBatchPrefixBudget(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	want := alone(t, path, 3)
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 4, KVBudget: 70})
	for i := range 3 {
		got, err := e.Complete(context.Background(), batchRequest(e, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, i, got, want[i])
		if _, reserved, _ := e.KVUse(); reserved > 70 {
			t.Errorf("after request %d: %d positions reserved, over the budget of 70", i, reserved)
		}
	}
	if len(e.sched.idle) == 0 || len(e.sched.idle) == 3 {
		t.Errorf("%d kept sequences: want some, not all three (the budget)", len(e.sched.idle))
	}
	// Running and kept sequences stay within Batch.
	e = openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 2, PrefixCache: 4})
	for i := range 4 {
		if _, err := e.Complete(context.Background(), batchRequest(e, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.sched.idle) != 2 {
		t.Errorf("%d kept sequences with a batch of 2", len(e.sched.idle))
	}
}

// TestBatchPrefixTogether: requests that arrive together with one long
// shared beginning compute it once: the later ones wait for the first's
// prefill of it and copy it; answers are unchanged.
func TestBatchPrefixTogether(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	o := Options{Context: 256, Step: 8, Batch: 4, Budget: 16}
	e := openEngine(t, path, 2, o)
	greedy := sample.Greedy()
	greedy.LogitBias = eogBan(e)
	system := "You are a careful assistant who answers briefly and politely, always. "
	reqs := make([]CompletionRequest, 3)
	for i := range reqs {
		reqs[i] = CompletionRequest{Prompt: system + fmt.Sprintf("Question %d?", i), Sampling: greedy, MaxTokens: 5}
	}
	got := make([]Result, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() {
			var err error
			if got[i], err = e.Complete(context.Background(), reqs[i], nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	reused := 0
	for i, r := range got {
		if r.Usage.CachedTokens >= MinWaitShare {
			reused++
		}
		want, _ := freshComplete(t, path, o, reqs[i])
		if !slices.Equal(r.Tokens, want.Tokens) {
			t.Errorf("request %d: %v, fresh %v", i, r.Tokens, want.Tokens)
		}
	}
	if reused != len(reqs)-1 {
		t.Errorf("%d requests reused the shared beginning, want %d: %+v %+v %+v", reused, len(reqs)-1, got[0].Usage, got[1].Usage, got[2].Usage)
	}
}
