package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
)

// TestChoices: N answers share the prompt (the later ones copy all of it
// but its last position) and each is exactly the answer a request with
// seed+i gives on its own; events carry their answer's index; usage counts
// the prompt once. Batched and one at a time alike.
func TestChoices(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	for _, batch := range []int{4, 0} {
		t.Run(map[int]string{4: "batched", 0: "single"}[batch], func(t *testing.T) {
			o := Options{Context: 128, Step: 8, Batch: batch}
			e := openEngine(t, path, 2, o)
			p := sample.Params{Temperature: 1.5, Seed: 11}
			p.LogitBias = eogBan(e)
			const n = 3
			r := CompletionRequest{Prompt: "Once upon a time there was", Sampling: p, MaxTokens: 12, N: n}
			var mu sync.Mutex
			texts := make([]string, n)
			res, err := e.Complete(context.Background(), r, func(ev Event) {
				mu.Lock()
				texts[ev.Choice] += ev.Text
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Choices) != n {
				t.Fatalf("%d choices", len(res.Choices))
			}
			L := res.Usage.PromptTokens
			gen := 0
			for i, c := range res.Choices {
				alone := r
				alone.N, alone.Sampling.Seed = 0, p.Seed+int64(i)
				want, _ := freshComplete(t, path, Options{Context: 128, Step: 8, Batch: 4}, alone)
				if !slices.Equal(c.Tokens, want.Tokens) || c.Text != want.Text {
					t.Errorf("choice %d: %v %q; alone with seed %d: %v %q", i, c.Tokens, c.Text, alone.Sampling.Seed, want.Tokens, want.Text)
				}
				if texts[i] != c.Text {
					t.Errorf("choice %d: streamed %q, result %q", i, texts[i], c.Text)
				}
				if i > 0 && c.Usage.CachedTokens != L-1 {
					t.Errorf("choice %d reused %d positions, want %d (the prompt but its last)", i, c.Usage.CachedTokens, L-1)
				}
				gen += c.Usage.GeneratedTokens
			}
			if res.Text != res.Choices[0].Text || res.Usage.PromptTokens != L || res.Usage.GeneratedTokens != gen || res.Usage.CachedTokens != 0 {
				t.Errorf("combined result %q, usage %+v (generated %d in all)", res.Text, res.Usage, gen)
			}
			if texts[0] == texts[1] && texts[1] == texts[2] {
				t.Errorf("three seeds gave the same answer %q", texts[0])
			}
			if got := e.ReusedTokens(); got != int64((n-1)*(L-1)) {
				t.Errorf("ReusedTokens %d, want %d", got, (n-1)*(L-1))
			}
			if _, err := e.Complete(context.Background(), CompletionRequest{Prompt: "x", N: MaxChoices + 1}, nil); err == nil ||
				!strings.Contains(err.Error(), "answers") {
				t.Errorf("N over the limit: %v", err)
			}
		})
	}
}

// TestSlowReader: a batched request whose reader is stuck pauses (its
// stream buffer is full) while another request streams to its end at full
// pace; once the reader goes on, its answer is unchanged. Stuck for longer
// than the stall timeout, it is cancelled with ErrSlowReader.
func TestSlowReader(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	want := alone(t, path, 4)
	for _, stall := range []time.Duration{time.Minute, 300 * time.Millisecond} {
		t.Run(stall.String(), func(t *testing.T) {
			var log stepLog
			e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 4, StreamBuffer: 2, StallTimeout: stall, OnBatch: log.add})
			release := make(chan struct{})
			blocked := make(chan struct{})
			var once sync.Once
			var slow Result
			var slowErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				slow, slowErr = e.Complete(context.Background(), batchRequest(e, 3), func(Event) {
					once.Do(func() {
						close(blocked)
						<-release // the client stops reading
					})
				})
			})
			<-blocked
			// Another request runs to its end while the reader is stuck.
			if !completesAlone(t, e, want[2]) {
				t.Fatal("a stuck reader stalled the other request")
			}
			if stall < time.Minute {
				time.Sleep(2 * stall)
			}
			close(release)
			wg.Wait()
			if stall < time.Minute {
				if !errors.Is(slowErr, ErrSlowReader) || slow.Finish != FinishCancelled {
					t.Fatalf("stuck past the stall timeout: %v (%s)", slowErr, slow.Finish)
				}
				if len(slow.Tokens) > 8 {
					t.Errorf("the stuck request made %d tokens with a buffer of 2 events", len(slow.Tokens))
				}
				return
			}
			if slowErr != nil {
				t.Fatal(slowErr)
			}
			sameResult(t, 3, slow, want[3])
		})
	}
}

// TestChoicesChat: each chat answer has its own output parser (an answer
// that ends its turn does not end the others) and equals the answer of a
// request with its seed alone.
func TestChoicesChat(t *testing.T) {
	path := refModel(t, "gemma4-tiny-f32.gguf")
	o := Options{Context: 128, Step: 8, Batch: 4}
	e := openEngine(t, path, 2, o)
	r := ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Text("Tell me a story")}},
		Sampling: sample.Params{Temperature: 1.5, Seed: 3}, MaxTokens: 10, N: 3}
	res, err := e.Chat(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := openEngine(t, path, 2, o)
	for i, c := range res.Choices {
		alone := r
		alone.N, alone.Sampling.Seed = 1, r.Sampling.Seed+int64(i)
		want, err := fresh.Chat(context.Background(), alone, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.Tokens, want.Tokens) || c.Text != want.Text || c.Finish != want.Finish {
			t.Errorf("choice %d: %v %q (%s); alone: %v %q (%s)", i, c.Tokens, c.Text, c.Finish, want.Tokens, want.Text, want.Finish)
		}
	}
}

// TestSlowReaderFreesPlace: when every batch place is held by a stuck
// reader, a waiting request runs once they are cancelled for stalling.
// (It passed before the batcher re-looped right after ending stalled
// requests too — another wake-up came in time here — so it guards the
// behaviour, not that one line.)
func TestSlowReaderFreesPlace(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	want := alone(t, path, 3)
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 2, StreamBuffer: 2, StallTimeout: 200 * time.Millisecond})
	release := make(chan struct{})
	var wg sync.WaitGroup
	slowErr := make([]error, 2)
	for i := range 2 {
		blocked := make(chan struct{})
		var once sync.Once
		wg.Go(func() {
			_, slowErr[i] = e.Complete(context.Background(), batchRequest(e, 3), func(Event) {
				once.Do(func() {
					close(blocked)
					<-release
				})
			})
		})
		<-blocked
	}
	if !completesAlone(t, e, want[2]) {
		close(release)
		t.Fatal("the waiting request never ran after the stuck ones were cancelled")
	}
	close(release)
	wg.Wait()
	for i, err := range slowErr {
		if !errors.Is(err, ErrSlowReader) {
			t.Fatalf("stuck request %d: %v", i, err)
		}
	}
}

// completesAlone runs batch request 2 and checks its result against want;
// false when it has not finished within 20 seconds.
func completesAlone(t *testing.T, e *Engine, want Result) bool {
	t.Helper()
	done := make(chan Result, 1)
	go func() {
		r, err := e.Complete(context.Background(), batchRequest(e, 2), nil)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	select {
	case r := <-done:
		sameResult(t, 2, r, want)
		return true
	case <-time.After(20 * time.Second):
		return false
	}
}
