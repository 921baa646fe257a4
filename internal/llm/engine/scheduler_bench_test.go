package engine

import (
	"context"
	"fmt"
	"os"
	"sync"
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
