package jobs

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB, dir string, o Options) *Queue {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	q, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func submit(t testing.TB, q *Queue, model string, priority int) Job {
	t.Helper()
	j, err := q.Submit(Request{Kind: "txt2img", Model: model, Priority: priority, Params: json.RawMessage(`{"prompt":"x"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// wait blocks until job id is terminal (or the test's patience runs out)
// and returns it.
func wait(t testing.TB, q *Queue, id string) Job {
	t.Helper()
	ch, cancel := q.Subscribe(id)
	defer cancel()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				j, err := q.Get(id)
				if err != nil {
					t.Fatal(err)
				}
				return j
			}
		case <-timeout:
			j, _ := q.Get(id)
			t.Fatalf("job %s did not end: %+v", id, j)
		}
	}
}

// gate is a runner whose jobs block until released, recording their order.
type gate struct {
	mu      sync.Mutex
	order   []string
	started chan string
	release chan struct{}
}

func newGate() *gate {
	return &gate{started: make(chan string, 1000), release: make(chan struct{}, 1000)}
}

func (g *gate) Run(ctx context.Context, j *Job, p Progress) (Result, error) {
	g.mu.Lock()
	g.order = append(g.order, j.ID)
	g.mu.Unlock()
	g.started <- j.ID
	select {
	case <-g.release:
		return Result{Info: json.RawMessage(`{"ok":true}`)}, nil
	case <-ctx.Done():
		return Result{}, context.Cause(ctx)
	}
}

func (g *gate) waitStart(t testing.TB) string {
	t.Helper()
	select {
	case id := <-g.started:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no job started")
		return ""
	}
}

func (g *gate) ran() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.order...)
}
