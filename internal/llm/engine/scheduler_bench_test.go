package engine

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mica/internal/llm/sample"
)

// TestBatchThroughput measures aggregate decode tokens/s with 1, 4 and 8
// concurrent streams through the batcher (and 4 without it: batch 1). It only runs when
// MICA_BATCH_BENCH names a model file (e.g. a `mica dev synth gemma3-270m
// --dtype q8_0` model); MICA_BATCH_THREADS sets the threads (default 2).
func TestBatchThroughput(t *testing.T) {
	path := os.Getenv("MICA_BATCH_BENCH")
	if path == "" {
		t.Skip("set MICA_BATCH_BENCH to a model file to measure batched decoding")
	}
	threads := 2
	if s := os.Getenv("MICA_BATCH_THREADS"); s != "" {
		fmt.Sscan(s, &threads)
	}
	const tokens = 32
	for _, c := range batchBenchCases() {
		streams := c.streams
		e := openEngine(t, path, threads, Options{Context: 256, Batch: c.batch})
		p := sample.Greedy()
		p.LogitBias = eogBan(e)
		var wg sync.WaitGroup
		res := make([]Result, streams)
		t0 := time.Now()
		for i := range streams {
			wg.Go(func() {
				var err error
				res[i], err = e.Complete(context.Background(), CompletionRequest{Prompt: fmt.Sprintf("Stream %d: once upon a time", i), Sampling: p, MaxTokens: tokens}, nil)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		wall := time.Since(t0)
		var gen, steps int
		var ttft time.Duration
		var lastFirst time.Duration
		for _, r := range res {
			gen += r.Usage.GeneratedTokens
			steps += r.Usage.DecodeSteps
			ttft += r.Usage.TimeToFirstToken
			lastFirst = max(lastFirst, r.Usage.TimeToFirstToken)
		}
		// Decode throughput: tokens after each stream's first, over the
		// time after the last stream's first token.
		t.Logf("batch %d, %d streams (%d threads): %d tokens in %v: aggregate %.1f tok/s overall, %.1f decode tok/s; mean TTFT %v",
			c.batch, streams, threads, gen, wall.Round(time.Millisecond), float64(gen)/wall.Seconds(),
			float64(steps)/(wall-lastFirst).Seconds(), (ttft / time.Duration(streams)).Round(time.Millisecond))
		e.Close()
	}
}

func batchBenchCases() []struct{ streams, batch int } {
	if os.Getenv("MICA_BATCH_ONLY8") != "" {
		return []struct{ streams, batch int }{{8, 8}}
	}
	return []struct{ streams, batch int }{{4, 1}, {1, 2}, {4, 4}, {8, 8}, {16, 16}}
}

// TestPrefixReuseBench measures what prefix reuse and shared prefills save
// on the MICA_BATCH_BENCH model (2 threads unless MICA_BATCH_THREADS):
// four requests one after another that share a long system prompt, with
// and without kept sequences (time to first token), and n = 4 answers in
// one request against four requests at once (wall time); then 8 streams
// with an event callback, as the server has (the outbox path), against
// none.
func TestPrefixReuseBench(t *testing.T) {
	path := os.Getenv("MICA_BATCH_BENCH")
	if path == "" {
		t.Skip("set MICA_BATCH_BENCH to a model file to measure prefix reuse")
	}
	threads := 2
	if s := os.Getenv("MICA_BATCH_THREADS"); s != "" {
		fmt.Sscan(s, &threads)
	}
	system := strings.Repeat("You are a careful assistant who answers briefly and politely. ", 40)
	p := sample.Greedy()
	for _, keep := range []int{-1, 0} {
		e := openEngine(t, path, threads, Options{Context: 1024, Batch: 8, PrefixCache: keep})
		var ttft time.Duration
		var prompt, cached int
		for i := range 4 {
			r, err := e.Complete(context.Background(), CompletionRequest{Prompt: system + fmt.Sprintf("Question %d: why is the sky blue?", i), Sampling: p, MaxTokens: 8}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				ttft += r.Usage.TimeToFirstToken
				prompt, cached = prompt+r.Usage.PromptTokens, cached+r.Usage.CachedTokens
			}
		}
		t.Logf("prefix cache %d: requests 2-4: mean TTFT %v, %d of %d prompt tokens reused", keep, (ttft / 3).Round(time.Millisecond), cached, prompt)
		e.Close()
	}
	e := openEngine(t, path, threads, Options{Context: 1024, Batch: 8, PrefixCache: -1})
	req := CompletionRequest{Prompt: system + "Tell me a story.", Sampling: sample.Params{Temperature: 1, Seed: 1}, MaxTokens: 16}
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r := req
			r.Sampling.Seed += int64(i)
			if _, err := e.Complete(context.Background(), r, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	separate := time.Since(t0)
	e.Close()
	e = openEngine(t, path, threads, Options{Context: 1024, Batch: 8, PrefixCache: -1})
	t0 = time.Now()
	r := req
	r.N = 4
	res, err := e.Complete(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("4 answers, %d-token prompt: 4 requests at once %v, n=4 in one request %v", res.Usage.PromptTokens, separate.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	e.Close()
	for _, withCallback := range []bool{false, true} {
		e := openEngine(t, path, threads, Options{Context: 256, Batch: 8})
		var wg sync.WaitGroup
		var events atomic.Int64
		var on func(Event)
		if withCallback {
			on = func(Event) { events.Add(1) }
		}
		t0 := time.Now()
		gen := make([]int, 8)
		for i := range 8 {
			wg.Go(func() {
				pp := p
				pp.LogitBias = eogBan(e)
				r, err := e.Complete(context.Background(), CompletionRequest{Prompt: fmt.Sprintf("Stream %d: once upon a time", i), Sampling: pp, MaxTokens: 32}, on)
				if err != nil {
					t.Error(err)
				}
				gen[i] = r.Usage.GeneratedTokens
			})
		}
		wg.Wait()
		n := 0
		for _, g := range gen {
			n += g
		}
		t.Logf("8 streams, callback %v: %d tokens in %v (%.1f tok/s), %d events", withCallback, n, time.Since(t0).Round(time.Millisecond), float64(n)/time.Since(t0).Seconds(), events.Load())
		e.Close()
	}
}
