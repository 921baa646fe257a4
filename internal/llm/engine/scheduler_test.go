package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mica/internal/llm/sample"
)

var batchPrompts = []string{
	"The quick brown fox",
	"Hello world, the cat sat on the mat and looked at the dog",
	"1 2 3",
	"Once upon a time there was a little village by the sea where",
	"a",
	"Gemma is a family of open models",
}

// batchRequest is request i of the batching tests: greedy ones and seeded
// random ones, with end-of-generation banned so that lengths are fixed.
func batchRequest(e *Engine, i int) CompletionRequest {
	p := sample.Greedy()
	if i%2 == 1 {
		p = sample.Params{Temperature: 0.9, TopK: 40, Seed: int64(100 + i)}
	}
	p.LogitBias = eogBan(e)
	return CompletionRequest{Prompt: batchPrompts[i%len(batchPrompts)], Sampling: p, MaxTokens: 10 + 3*i}
}

// alone runs the requests one after another on an engine without batching.
func alone(t *testing.T, path string, n int) []Result {
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8})
	out := make([]Result, n)
	for i := range out {
		var err error
		if out[i], err = e.Complete(context.Background(), batchRequest(e, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameResult(t *testing.T, i int, got, want Result) {
	t.Helper()
	if !slices.Equal(got.Tokens, want.Tokens) || got.Text != want.Text || got.Finish != want.Finish {
		t.Errorf("request %d batched: %v %q (%s)\nalone: %v %q (%s)", i, got.Tokens, got.Text, got.Finish, want.Tokens, want.Text, want.Finish)
	}
}

// stepLog records the batcher's steps.
type stepLog struct {
	mu    sync.Mutex
	steps []BatchStats
}

func (l *stepLog) add(s BatchStats) {
	l.mu.Lock()
	l.steps = append(l.steps, s)
	l.mu.Unlock()
}

func (l *stepLog) maxSeqs() (seqs, toks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.steps {
		seqs, toks = max(seqs, s.Sequences), max(toks, s.Tokens)
	}
	return
}

// TestBatchMatchesAlone: requests run concurrently through the batcher
// produce exactly the tokens they produce alone (greedy and seeded
// sampling): with float weights the kernels compute each row the same way
// whatever the batch, so no tolerance is needed. (Quantized weights are
// not used here: their matrix-vector path for one row and their tiled path
// for several differ in the last bit — see the matmul package's doc — and
// Q8 activation rounding can amplify that into different tokens.) A small step and token budget make
// prompts prefill in chunks interleaved with other requests' decoding.
func TestBatchMatchesAlone(t *testing.T) {
	for _, name := range []string{"gemma3-tiny-f32.gguf", "gemma4-tiny-f32.gguf", "gemma4-moe-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			path := refModel(t, name)
			const n = 6
			want := alone(t, path, n)
			var log stepLog
			e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 4, Budget: 12, OnBatch: log.add})
			got := make([]Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { got[i], errs[i] = e.Complete(context.Background(), batchRequest(e, i), nil) })
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("request %d: %v", i, errs[i])
				}
				sameResult(t, i, got[i], want[i])
			}
			seqs, toks := log.maxSeqs()
			if seqs < 2 || seqs > 4 || toks > 12 {
				t.Errorf("largest step: %d sequences, %d tokens; want 2..4 sequences within the budget of 12", seqs, toks)
			}
		})
	}
}

// TestBatchJoinWhileDecoding: requests that arrive while another decodes
// join the running batch and change nothing in any result.
func TestBatchJoinWhileDecoding(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	const n = 4
	want := alone(t, path, n)
	var log stepLog
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 8, OnBatch: log.add})
	got := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	// Request 3 (the longest) starts first; the others join after its
	// second token.
	wg.Go(func() {
		tokens := 0
		got[3], errs[3] = e.Complete(context.Background(), batchRequest(e, 3), func(Event) {
			if tokens++; tokens == 2 {
				once.Do(func() { close(started) })
			}
		})
		once.Do(func() { close(started) })
	})
	<-started
	for i := range n - 1 {
		wg.Go(func() { got[i], errs[i] = e.Complete(context.Background(), batchRequest(e, i), nil) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		sameResult(t, i, got[i], want[i])
	}
	// Some step fed a decode token and a prompt together.
	mixed := false
	for _, s := range log.steps {
		mixed = mixed || (s.Sequences > 1 && s.Tokens > s.Sequences)
	}
	if !mixed {
		t.Errorf("no step mixed decoding with a joining prompt: %+v", log.steps)
	}
}

// TestBatchCancel: a request cancelled mid-batch leaves at the next step
// with what it made; the others are unaffected, and the freed slot is used.
func TestBatchCancel(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	const n = 4
	want := alone(t, path, n)
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 3})
	got := make([]Result, n)
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var cancelled Result
	var cerr error
	wg.Go(func() {
		p := sample.Greedy()
		p.LogitBias = eogBan(e)
		k := 0
		cancelled, cerr = e.Complete(ctx, CompletionRequest{Prompt: "The quick brown fox", Sampling: p}, func(Event) {
			if k++; k == 3 {
				cancel()
			}
		})
	})
	for i := range n {
		wg.Go(func() { got[i], errs[i] = e.Complete(context.Background(), batchRequest(e, i), nil) })
	}
	wg.Wait()
	if !errors.Is(cerr, context.Canceled) || cancelled.Finish != FinishCancelled || len(cancelled.Tokens) < 3 || len(cancelled.Tokens) > 5 {
		t.Fatalf("cancelled request: err %v, finish %s, %d tokens", cerr, cancelled.Finish, len(cancelled.Tokens))
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		sameResult(t, i, got[i], want[i])
	}
}

// TestBatchKVBudget: a KV budget that holds one request at a time makes the
// others wait; nothing changes in the results.
func TestBatchKVBudget(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	const n = 3
	want := alone(t, path, n)
	var log stepLog
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 8, KVBudget: 40, OnBatch: log.add})
	got := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = e.Complete(context.Background(), batchRequest(e, i), nil) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		sameResult(t, i, got[i], want[i])
	}
	if seqs, _ := log.maxSeqs(); seqs != 1 {
		t.Errorf("largest step had %d sequences; the KV budget allows 1", seqs)
	}
}

// TestBatchClose: closing the engine ends running and waiting requests with
// ErrClosed.
func TestBatchClose(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	e := openEngine(t, path, 2, Options{Context: 2048, Batch: 2})
	var running atomic.Int32
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			p := sample.Greedy()
			p.LogitBias = eogBan(e)
			_, err := e.Complete(context.Background(), CompletionRequest{Prompt: "x", Sampling: p}, func(Event) { running.Add(1) })
			errs <- err
		}()
	}
	for running.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	e.Close()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
	if _, err := e.Complete(context.Background(), CompletionRequest{Prompt: "x", MaxTokens: 1}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Complete after Close: %v, want ErrClosed", err)
	}
}

// TestBatchPanickingCallback: a request whose event callback panics ends
// with an error; the others finish normally.
func TestBatchPanickingCallback(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	want := alone(t, path, 2)
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 4})
	var wg sync.WaitGroup
	var perr error
	got := make([]Result, 2)
	errs := make([]error, 2)
	wg.Go(func() {
		_, perr = e.Complete(context.Background(), batchRequest(e, 3), func(Event) { panic("callback") })
	})
	for i := range 2 {
		wg.Go(func() { got[i], errs[i] = e.Complete(context.Background(), batchRequest(e, i), nil) })
	}
	wg.Wait()
	if perr == nil || !strings.Contains(perr.Error(), "panic") {
		t.Errorf("panicking callback: %v", perr)
	}
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		sameResult(t, i, got[i], want[i])
	}
}

// TestBatchKVUse: while the batcher runs a request, KVUse reports its
// sequence's reservation and the positions it has filled; idle, zero
// (without a prefix cache: TestBatchPrefixReuse covers the kept sequences).
// Events are delivered beside the batch, so the request is held (its
// one-event stream buffer full) while the test looks.
func TestBatchKVUse(t *testing.T) {
	path := refModel(t, "gemma3-tiny-f32.gguf")
	e := openEngine(t, path, 2, Options{Context: 128, Step: 8, Batch: 3, KVBudget: 1000, PrefixCache: -1, StreamBuffer: 1})
	p := sample.Greedy()
	p.LogitBias = eogBan(e)
	first, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	done := make(chan error)
	go func() {
		_, err := e.Complete(context.Background(), CompletionRequest{Prompt: "The quick brown fox", Sampling: p, MaxTokens: 6}, func(Event) {
			once.Do(func() {
				close(first)
				<-release
			})
		})
		done <- err
	}()
	<-first
	filled, reserved, budget := e.KVUse()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if reserved <= 0 || filled <= 0 || filled > reserved {
		t.Fatalf("while running: KV filled %d, reserved %d", filled, reserved)
	}
	if budget != 1000 {
		t.Fatalf("budget %d", budget)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if f, r, _ := e.KVUse(); f == 0 && r == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("KV use did not return to zero when idle")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
