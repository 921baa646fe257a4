package jobs

import (
	"context"
	"testing"
	"time"
)

// BenchmarkJobOverhead: submit → run (no-op runner) → finished, one job at a
// time; the time per op is the queue's whole overhead per job (three
// transactions, the events, the dispatch hand-offs).
func BenchmarkJobOverhead(b *testing.B) {
	b.Run("normal", func(b *testing.B) { benchOverhead(b, Options{}) })
	b.Run("durable", func(b *testing.B) { benchOverhead(b, Options{Durable: true}) })
}

func benchOverhead(b *testing.B, o Options) {
	q := openTest(b, "", o)
	q.Register("m", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, nil }))
	all, cancel := q.Subscribe("")
	defer cancel()
	var latency time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		j, err := q.Submit(Request{Kind: "txt2img", Model: "m"})
		if err != nil {
			b.Fatal(err)
		}
		for e := range all {
			if e.JobID != j.ID {
				continue
			}
			if e.Type == EventStarted {
				latency += e.Time.Sub(t0)
			}
			if e.Type == EventFinished {
				break
			}
		}
	}
	b.ReportMetric(float64(latency.Microseconds())/float64(b.N), "µs-submit→start")
}

// BenchmarkJobThroughput: b.N jobs submitted at once, then all run; per-job
// cost when the queue is busy.
func BenchmarkJobThroughput(b *testing.B) {
	q := openTest(b, "", Options{})
	q.Register("m", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, nil }))
	b.ResetTimer()
	var last string
	for range b.N {
		j, err := q.Submit(Request{Kind: "txt2img", Model: "m"})
		if err != nil {
			b.Fatal(err)
		}
		last = j.ID
	}
	wait(b, q, last)
}

// BenchmarkGetWhileRunning: Get of a running job whose runner reports steps
// as fast as it can (the progress endpoint's path), and of a queued job
// (the database path).
func BenchmarkGetWhileRunning(b *testing.B) {
	q := openTest(b, "", Options{})
	q.Register("m", RunnerFunc(func(ctx context.Context, j *Job, p Progress) (Result, error) {
		for s := 0; ctx.Err() == nil; s++ {
			p.Step(s%20, 20)
			time.Sleep(10 * time.Microsecond)
		}
		return Result{}, nil
	}))
	run := submit(b, q, "m", 0)
	queued := submit(b, q, "m", 0)
	for {
		if j, _ := q.Get(run.ID); j.State == Running {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.Run("running", func(b *testing.B) {
		for range b.N {
			if j, err := q.Get(run.ID); err != nil || j.State != Running {
				b.Fatal(j.State, err)
			}
		}
	})
	b.Run("queued", func(b *testing.B) {
		for range b.N {
			if j, err := q.Get(queued.ID); err != nil || j.State != Queued {
				b.Fatal(j.State, err)
			}
		}
	})
	q.Cancel(queued.ID)
	q.Cancel(run.ID)
}
