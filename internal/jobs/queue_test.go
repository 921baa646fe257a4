package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestIDsSortAndDiffer(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	now := time.Now()
	for i := range 20000 {
		// Include a clock step backwards: order must still hold.
		at := now.Add(time.Duration(i/100) * time.Millisecond)
		if i == 10000 {
			at = now
		}
		id := newID(at)
		if !validID(id) || seen[id] || id <= prev {
			t.Fatalf("id %d %q: valid %v, dup %v, after %q", i, id, validID(id), seen[id], prev)
		}
		seen[id], prev = true, id
	}
	for _, bad := range []string{"", "x", "../../etc/passwd", strings.Repeat("Z", 26), strings.Repeat("0", 25) + "U"} {
		if validID(bad) {
			t.Errorf("validID(%q)", bad)
		}
	}
}

func TestSubmitRunFinish(t *testing.T) {
	q := openTest(t, "", Options{})
	q.Register("m", RunnerFunc(func(ctx context.Context, j *Job, p Progress) (Result, error) {
		if j.Kind != "txt2img" || string(j.Params) != `{"prompt":"x"}` || j.Attempts != 1 {
			return Result{}, fmt.Errorf("runner got %+v", j)
		}
		p.Batch(0, 1)
		for s := 1; s <= 4; s++ {
			p.Step(s, 4)
		}
		p.Text("done")
		rel, err := p.SaveImage("00001-42.png", []byte("png"), "a cat\nSteps: 4")
		if err != nil {
			return Result{}, err
		}
		return Result{Images: []string{rel}, Info: json.RawMessage(`{"seed":42}`)}, nil
	}))
	j := submit(t, q, "m", 0)
	if j.State != Queued || !validID(j.ID) || j.Created.IsZero() {
		t.Fatalf("submitted %+v", j)
	}
	j = wait(t, q, j.ID)
	if j.State != Finished || j.Error != "" || len(j.Result.Images) != 1 || string(j.Result.Info) != `{"seed":42}` {
		t.Fatalf("finished job %+v", j)
	}
	if j.Progress.Step != 4 || j.Progress.Steps != 4 || j.Progress.Fraction != 1 || j.Progress.TextInfo != "done" {
		t.Fatalf("final progress %+v", j.Progress)
	}
	if j.Started.Before(j.Created) || j.Finished.Before(j.Started) {
		t.Fatalf("timestamps %v %v %v", j.Created, j.Started, j.Finished)
	}
	h, next, err := q.History("", 10)
	if err != nil || next != "" || len(h) != 1 || h[0].JobID != j.ID || h[0].Path != j.Result.Images[0] || h[0].Infotext != "a cat\nSteps: 4" {
		t.Fatalf("history %+v %q %v", h, next, err)
	}
	p, err := ResolveOutput(q.Dir(), h[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "png" {
		t.Fatalf("saved image %q %v", b, err)
	}
}

func TestSubmitRejectsBadRequests(t *testing.T) {
	q := openTest(t, "", Options{MaxParams: 100, MaxQueued: 2})
	q.Register("m", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, nil }))
	for _, r := range []Request{
		{Kind: "", Model: "m"},
		{Kind: "txt2img", Model: ""},
		{Kind: "txt2img", Model: "m", Params: json.RawMessage(`{"a":`)},
		{Kind: "txt2img", Model: "m", Params: json.RawMessage(`"` + strings.Repeat("a", 200) + `"`)},
	} {
		if _, err := q.Submit(r); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Submit(%+v): %v", r, err)
		}
	}
	if _, err := q.Submit(Request{Kind: "txt2img", Model: "unknown"}); !errors.Is(err, ErrNoRunner) {
		t.Errorf("unknown model: %v", err)
	}
	// One job runs, two wait: a third waiting one is refused.
	g := newGate()
	q.Register("m", g)
	submit(t, q, "m", 0)
	g.waitStart(t)
	for i := range 3 {
		_, err := q.Submit(Request{Kind: "txt2img", Model: "m"})
		if i < 2 && err != nil || i == 2 && !errors.Is(err, ErrQueueFull) {
			t.Errorf("submit %d: %v", i, err)
		}
	}
}

func TestPriorityThenArrival(t *testing.T) {
	q := openTest(t, "", Options{})
	g := newGate()
	q.Register("m", g)
	first := submit(t, q, "m", 0)
	g.waitStart(t)
	b := submit(t, q, "m", 0)
	c := submit(t, q, "m", 5)
	d := submit(t, q, "m", 0)
	e := submit(t, q, "m", 5)
	f := submit(t, q, "m", -1)
	h := submit(t, q, "m", 0)
	// Move h before b and d among the priority-0 jobs; lift f to the top.
	if err := q.Reorder([]string{h.ID, b.ID, d.ID}); err != nil {
		t.Fatal(err)
	}
	if err := q.SetPriority(f.ID, 10); err != nil {
		t.Fatal(err)
	}
	want := []string{first.ID, f.ID, c.ID, e.ID, h.ID, b.ID, d.ID}
	queued, err := q.Queued("m")
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range queued {
		if j.ID != want[i+1] || j.Position != i {
			t.Errorf("queued[%d] = %s at %d, want %s", i, j.ID, j.Position, want[i+1])
		}
	}
	if j, _ := q.Get(d.ID); j.Position != 5 {
		t.Errorf("position of d = %d, want 5", j.Position)
	}
	for range want {
		g.release <- struct{}{}
	}
	for _, id := range want {
		wait(t, q, id)
	}
	if got := g.ran(); !slices.Equal(got, want) {
		t.Fatalf("ran %v\nwant %v", got, want)
	}
	// Only queued jobs can be reordered or re-prioritised.
	if err := q.SetPriority(first.ID, 1); !errors.Is(err, ErrNotQueued) {
		t.Errorf("SetPriority of a finished job: %v", err)
	}
	if err := q.Reorder([]string{first.ID}); !errors.Is(err, ErrNotQueued) {
		t.Errorf("Reorder of a finished job: %v", err)
	}
	if err := q.Reorder([]string{"01ARZ3NDEKTSV4RRFFQ69G5FAV"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Reorder of an unknown job: %v", err)
	}
}

// TestPositionsInListAndEvents: List gives every queued job its position
// (0 included), and the events that move queued jobs other than by one
// leaving the queue carry the new positions of those that moved.
func TestPositionsInListAndEvents(t *testing.T) {
	q := openTest(t, "", Options{})
	g := newGate()
	q.Register("m", g)
	events, stop := q.Subscribe("")
	defer stop()
	first := submit(t, q, "m", 0)
	g.waitStart(t)
	a, b, c := submit(t, q, "m", 0), submit(t, q, "m", 0), submit(t, q, "m", 0)
	// next returns the next event of type typ (skipping others).
	next := func(typ EventType) Event {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Type == typ {
					return e
				}
			case <-timeout:
				t.Fatalf("no %s event", typ)
			}
		}
	}
	if e := next(EventStarted); e.JobID != first.ID || e.Positions != nil {
		t.Errorf("started: %+v, want no positions", e)
	}
	for _, want := range []map[string]int{{a.ID: 0}, {b.ID: 1}, {c.ID: 2}} {
		if e := next(EventQueued); !maps.Equal(e.Positions, want) {
			t.Errorf("queued %s: positions %v, want %v", e.JobID, e.Positions, want)
		}
	}
	listed := func() map[string]int {
		t.Helper()
		list, _, err := q.List(Filter{States: []State{Queued, Running}}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, j := range list {
			if j.State == Queued {
				out[j.ID] = j.Position
			}
		}
		return out
	}
	if got, want := listed(), map[string]int{a.ID: 0, b.ID: 1, c.ID: 2}; !maps.Equal(got, want) {
		t.Errorf("listed positions %v, want %v", got, want)
	}
	// c and a swap places; b stays where it is.
	if err := q.Reorder([]string{c.ID, a.ID}); err != nil {
		t.Fatal(err)
	}
	e := next(EventReordered)
	if want := map[string]int{c.ID: 0, a.ID: 2}; e.Model != "m" || e.JobID != "" || !maps.Equal(e.Positions, want) {
		t.Errorf("reordered: %+v, want positions %v", e, want)
	}
	if got, want := listed(), map[string]int{c.ID: 0, b.ID: 1, a.ID: 2}; !maps.Equal(got, want) {
		t.Errorf("listed after reorder %v, want %v", got, want)
	}
	if err := q.SetPriority(a.ID, 3); err != nil {
		t.Fatal(err)
	}
	if e, want := next(EventReordered), map[string]int{a.ID: 0, c.ID: 1, b.ID: 2}; !maps.Equal(e.Positions, want) {
		t.Errorf("priority change: positions %v, want %v", e.Positions, want)
	}
	// Leaving the queue moves the others up without positions.
	if err := q.Cancel(c.ID); err != nil {
		t.Fatal(err)
	}
	if e := next(EventCancelled); e.Positions != nil {
		t.Errorf("cancel: positions %v", e.Positions)
	}
	if got, want := listed(), map[string]int{a.ID: 0, b.ID: 1}; !maps.Equal(got, want) {
		t.Errorf("listed after cancel %v, want %v", got, want)
	}
	// A job of higher priority goes ahead of b, one of lower goes last.
	x := submit(t, q, "m", 2)
	if e, want := next(EventQueued), map[string]int{x.ID: 1, b.ID: 2}; !maps.Equal(e.Positions, want) {
		t.Errorf("queued ahead: positions %v, want %v", e.Positions, want)
	}
	y := submit(t, q, "m", -1)
	if e, want := next(EventQueued), map[string]int{y.ID: 3}; !maps.Equal(e.Positions, want) {
		t.Errorf("queued last: positions %v, want %v", e.Positions, want)
	}
	// A priority change that moves nothing says nothing; one-job streams
	// never get reordered events.
	one, stopOne := q.Subscribe(b.ID)
	defer stopOne()
	<-one // its current state
	if err := q.SetPriority(b.ID, 1); err != nil {
		t.Fatal(err)
	}
	if err := q.SetPriority(b.ID, 9); err != nil {
		t.Fatal(err)
	}
	if e, want := next(EventReordered), map[string]int{b.ID: 0, a.ID: 1, x.ID: 2}; !maps.Equal(e.Positions, want) {
		t.Errorf("priority change: positions %v, want %v", e.Positions, want)
	}
	select {
	case e := <-one:
		t.Errorf("one-job stream got %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
	for range 5 {
		g.release <- struct{}{}
	}
	wait(t, q, y.ID)
}

func TestCancel(t *testing.T) {
	q := openTest(t, "", Options{})
	g := newGate()
	q.Register("m", g)
	running := submit(t, q, "m", 0)
	g.waitStart(t)
	queued := submit(t, q, "m", 0)
	if err := q.Cancel(queued.ID); err != nil {
		t.Fatal(err)
	}
	if j, _ := q.Get(queued.ID); j.State != Cancelled {
		t.Fatalf("queued job after Cancel: %s", j.State)
	}
	if err := q.Cancel(running.ID); err != nil {
		t.Fatal(err)
	}
	if j := wait(t, q, running.ID); j.State != Cancelled || j.Error == "" {
		t.Fatalf("running job after Cancel: %s %q", j.State, j.Error)
	}
	if err := q.Cancel(running.ID); !errors.Is(err, ErrFinished) {
		t.Errorf("second Cancel: %v", err)
	}
	if err := q.Cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel of unknown job: %v", err)
	}
	if got := g.ran(); len(got) != 1 {
		t.Errorf("the cancelled queued job ran: %v", got)
	}
}

// stepper runs a batch of images of steps each, checking the flags at every
// step like a sampler, and saves each image that it reaches the end of or
// that is skipped/interrupted (what exists).
type stepper struct {
	images, steps int
	atStep        chan [2]int // (image, step) reached, if not nil
	proceed       chan struct{}
	skippedAt     []int
}

func (s *stepper) Run(ctx context.Context, j *Job, p Progress) (Result, error) {
	var res Result
	for img := 0; img < s.images; img++ {
		p.Batch(img, s.images)
		for st := 1; st <= s.steps; st++ {
			if err := ctx.Err(); err != nil {
				return res, context.Cause(ctx)
			}
			if p.Interrupted() || p.Skipped() {
				if p.Skipped() {
					s.skippedAt = append(s.skippedAt, img)
				}
				break
			}
			p.Step(st, s.steps)
			p.Preview([]byte{byte(img), byte(st)}, "image/png")
			if s.atStep != nil {
				s.atStep <- [2]int{img, st}
				<-s.proceed
			}
		}
		rel, err := p.SaveImage(fmt.Sprintf("%s-%d.png", j.ID, img), []byte{byte(img)}, "")
		if err != nil {
			return res, err
		}
		res.Images = append(res.Images, rel)
		if p.Interrupted() {
			break
		}
	}
	return res, nil
}

func TestInterruptAndSkip(t *testing.T) {
	q := openTest(t, "", Options{})
	s := &stepper{images: 3, steps: 5, atStep: make(chan [2]int), proceed: make(chan struct{})}
	q.Register("m", s)
	j := submit(t, q, "m", 0)
	events, cancel := q.Subscribe(j.ID)
	defer cancel()
	next := func() [2]int {
		select {
		case at := <-s.atStep:
			return at
		case <-time.After(10 * time.Second):
			t.Fatal("runner stuck")
			return [2]int{}
		}
	}
	for at := next(); at != [2]int{1, 2}; at = next() {
		s.proceed <- struct{}{}
	}
	// At image 1, step 2: the live progress is visible.
	got, err := q.Get(j.ID)
	if err != nil || got.State != Running || got.Progress.JobNo != 1 || got.Progress.Step != 2 || got.Progress.JobCount != 3 {
		t.Fatalf("live job %+v %v", got, err)
	}
	if want := (5.0*1 + 2) / 15; got.Progress.Fraction != want {
		t.Errorf("fraction %v, want %v", got.Progress.Fraction, want)
	}
	if img, mime, n := q.Preview(j.ID); string(img) != "\x01\x02" || mime != "image/png" || n != 7 || got.Progress.Preview != 7 {
		t.Errorf("preview %v %q %d, progress says %d", img, mime, n, got.Progress.Preview)
	}
	if err := q.Skip(j.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(j.ID); !got.Progress.Skipped {
		t.Error("skip flag not visible")
	}
	s.proceed <- struct{}{}
	// Image 2 starts with the skip flag cleared.
	if at := next(); at != [2]int{2, 1} {
		t.Fatalf("after skip the runner is at %v", at)
	}
	if got, _ := q.Get(j.ID); got.Progress.Skipped {
		t.Error("skip flag not cleared by the next image")
	}
	if err := q.Interrupt(""); err != nil {
		t.Fatal(err)
	}
	s.proceed <- struct{}{}
	done := wait(t, q, j.ID)
	if done.State != Interrupted || len(done.Result.Images) != 3 || !slices.Equal(s.skippedAt, []int{1}) {
		t.Fatalf("interrupted job %+v, skipped at %v", done, s.skippedAt)
	}
	var types []EventType
	for e := range events {
		types = append(types, e.Type)
	}
	if types[0] != EventQueued && types[0] != EventStep || types[len(types)-1] != EventInterrupted {
		t.Errorf("events %v", types)
	}
	if img, _, _ := q.Preview(j.ID); img != nil {
		t.Error("preview kept after the job ended")
	}
	if err := q.Interrupt(j.ID); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Interrupt of a finished job: %v", err)
	}
	if err := q.Skip(""); err != nil {
		t.Errorf("Skip with nothing running: %v", err)
	}
}

func TestTimeoutAndPanic(t *testing.T) {
	q := openTest(t, "", Options{Timeout: 30 * time.Millisecond})
	q.Register("slow", newGate())
	q.Register("bad", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { panic("boom") }))
	q.Register("info", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) {
		return Result{Info: json.RawMessage(`{`)}, nil
	}))
	slow := submit(t, q, "slow", 0)
	bad := submit(t, q, "bad", 0)
	info := submit(t, q, "info", 0)
	if j := wait(t, q, slow.ID); j.State != Failed || !strings.Contains(j.Error, "timed out after 30ms") {
		t.Errorf("slow job: %s %q", j.State, j.Error)
	}
	if j := wait(t, q, bad.ID); j.State != Failed || !strings.Contains(j.Error, "runner panicked: boom") {
		t.Errorf("panicking job: %s %q", j.State, j.Error)
	}
	if j := wait(t, q, info.ID); j.State != Failed || !strings.Contains(j.Error, "invalid info") {
		t.Errorf("bad info: %s %q", j.State, j.Error)
	}
	// A per-job limit overrides the default; negative means none.
	free, err := q.Submit(Request{Kind: "txt2img", Model: "slow", Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	for j, _ := q.Get(free.ID); j.State == Queued; j, _ = q.Get(free.ID) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(80 * time.Millisecond)
	if j, _ := q.Get(free.ID); j.State != Running || j.Timeout != 0 {
		t.Errorf("job without a limit: %s, timeout %v", j.State, j.Timeout)
	}
	q.Cancel(free.ID)
	wait(t, q, free.ID)
}

func TestResolveRunner(t *testing.T) {
	var calls atomic.Int32
	q := openTest(t, "", Options{Resolve: func(model string) (Runner, error) {
		calls.Add(1)
		if model == "missing" {
			return nil, errors.New("no such checkpoint")
		}
		return RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, nil }), nil
	}})
	if j := wait(t, q, submit(t, q, "sd15", 0).ID); j.State != Finished {
		t.Errorf("resolved job: %s %q", j.State, j.Error)
	}
	if j := wait(t, q, submit(t, q, "missing", 0).ID); j.State != Failed || j.Error != "no such checkpoint" {
		t.Errorf("unresolvable job: %s %q", j.State, j.Error)
	}
	if calls.Load() != 2 {
		t.Errorf("Resolve called %d times", calls.Load())
	}
}

// TestConcurrentSubmitters: 20 goroutines submit to 4 models; jobs of one
// model never overlap and run in arrival order, at most MaxParallel run at
// once, and every job finishes.
func TestConcurrentSubmitters(t *testing.T) {
	const submitters, perSubmitter, models, parallel = 20, 10, 4, 2
	q := openTest(t, "", Options{MaxParallel: parallel})
	var total, peak atomic.Int32
	var mu sync.Mutex
	order := map[string][]string{}
	for m := range models {
		name := fmt.Sprint("model-", m)
		var inModel atomic.Int32
		q.Register(name, RunnerFunc(func(ctx context.Context, j *Job, p Progress) (Result, error) {
			if inModel.Add(1) != 1 {
				t.Errorf("two jobs of %s at once", name)
			}
			n := total.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			mu.Lock()
			order[name] = append(order[name], j.ID)
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			p.Step(1, 1)
			total.Add(-1)
			inModel.Add(-1)
			return Result{}, nil
		}))
	}
	var wg sync.WaitGroup
	ids := make(chan string, submitters*perSubmitter)
	for s := range submitters {
		wg.Go(func() {
			for i := range perSubmitter {
				j, err := q.Submit(Request{Kind: "txt2img", Model: fmt.Sprint("model-", (s+i)%models)})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- j.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	n := 0
	for id := range ids {
		if j := wait(t, q, id); j.State != Finished {
			t.Errorf("job %s: %s %q", id, j.State, j.Error)
		}
		n++
	}
	if n != submitters*perSubmitter {
		t.Fatalf("%d jobs submitted", n)
	}
	if p := peak.Load(); p > parallel {
		t.Errorf("%d jobs ran at once, limit %d", p, parallel)
	}
	for m, ran := range order {
		// Ids are made in arrival order, so a model's jobs must run sorted.
		if !slices.IsSorted(ran) {
			t.Errorf("%s ran out of arrival order", m)
		}
	}
	jobs, _, err := q.List(Filter{States: []State{Finished}}, "", 1000)
	if err != nil || len(jobs) != n {
		t.Errorf("List finished: %d jobs, %v", len(jobs), err)
	}
}

func TestSlowSubscriberNeverStallsTheWorker(t *testing.T) {
	const steps = 20000
	q := openTest(t, "", Options{SubscriberBuffer: 16})
	q.Register("m", RunnerFunc(func(ctx context.Context, j *Job, p Progress) (Result, error) {
		for s := 1; s <= steps; s++ {
			p.Step(s, steps)
			if s%1000 == 0 {
				p.Preview([]byte{1, 2, 3}, "image/png")
			}
		}
		return Result{}, nil
	}))
	all, cancelAll := q.Subscribe("") // never read until the end
	defer cancelAll()
	var ids []string
	for range 40 {
		ids = append(ids, submit(t, q, "m", 0).ID)
	}
	start := time.Now()
	for _, id := range ids {
		if j := wait(t, q, id); j.State != Finished {
			t.Fatalf("job %s %s", id, j.State)
		}
	}
	t.Logf("40 jobs × %d steps with a stalled subscriber: %v", steps, time.Since(start))
	// The stalled subscriber holds at most the buffer; the newest events
	// (the last jobs' finished events) survive, older ones were dropped.
	var got []Event
	dropped := 0
	timeout := time.After(time.Second)
collect:
	for {
		select {
		case e := <-all:
			got = append(got, e)
			dropped += e.Dropped
		case <-timeout:
			break collect
		}
		if len(got) > 16+1 { // the buffer plus the one event in hand

			t.Fatalf("more events than the buffer: %d", len(got))
		}
		if len(got) > 0 && got[len(got)-1].Type == EventFinished && got[len(got)-1].JobID == ids[len(ids)-1] {
			break
		}
	}
	if len(got) == 0 || got[len(got)-1].Type != EventFinished || dropped == 0 {
		t.Fatalf("stalled subscriber got %d events, last %+v, dropped %d", len(got), got[len(got)-1], dropped)
	}
	// Step events of one job coalesce: a subscriber that reads slowly sees
	// few of the 20000 steps, and a preview flag is not lost.
	id := submit(t, q, "m", 0).ID
	ch, cancel := q.Subscribe(id)
	defer cancel()
	var n, previews int
	for e := range ch {
		n++
		if e.Preview {
			previews++
		}
		time.Sleep(time.Millisecond)
	}
	if n > 5000 || previews == 0 {
		t.Errorf("slow reader saw %d events, %d with previews", n, previews)
	}
}

func TestSubscribeToOneJob(t *testing.T) {
	q := openTest(t, "", Options{})
	g := newGate()
	q.Register("m", g)
	j := submit(t, q, "m", 0)
	ch, cancel := q.Subscribe(j.ID)
	defer cancel()
	g.waitStart(t)
	g.release <- struct{}{}
	var types []EventType
	for e := range ch {
		if e.JobID != j.ID {
			t.Errorf("event of another job: %+v", e)
		}
		types = append(types, e.Type)
	}
	if types[len(types)-1] != EventFinished {
		t.Errorf("events %v", types)
	}
	// A finished job's stream is its terminal event, then closed.
	ch2, cancel2 := q.Subscribe(j.ID)
	defer cancel2()
	e, ok := <-ch2
	if !ok || e.Type != EventFinished || e.Result == nil {
		t.Errorf("late subscriber got %+v", e)
	}
	if _, ok := <-ch2; ok {
		t.Error("late subscription not closed")
	}
	// Unknown job: closed at once. Cancelled subscription: closed.
	if _, ok := <-mustSub(q, "01ARZ3NDEKTSV4RRFFQ69G5FAV"); ok {
		t.Error("unknown job's channel open")
	}
	ch3, cancel3 := q.Subscribe("")
	cancel3()
	for range ch3 {
	}
}

func mustSub(q *Queue, id string) <-chan Event {
	ch, _ := q.Subscribe(id)
	return ch
}

func TestListDeleteAndPaging(t *testing.T) {
	q := openTest(t, "", Options{})
	q.Register("a", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, nil }))
	q.Register("b", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, errors.New("no") }))
	var ids []string
	for i := range 7 {
		model := "a"
		if i%3 == 2 {
			model = "b"
		}
		ids = append(ids, submit(t, q, model, 0).ID)
	}
	for _, id := range ids {
		wait(t, q, id)
	}
	var all []string
	cursor := ""
	for {
		page, next, err := q.List(Filter{}, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page {
			all = append(all, j.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(all, want) {
		t.Fatalf("paged list %v, want %v", all, want)
	}
	failed, _, err := q.List(Filter{States: []State{Failed}, Model: "b", Kind: "txt2img"}, "", 0)
	if err != nil || len(failed) != 2 || failed[0].Error != "no" {
		t.Fatalf("failed jobs %v %v", failed, err)
	}
	if _, _, err := q.List(Filter{States: []State{"bogus"}}, "", 0); err == nil {
		t.Error("unknown state accepted")
	}
	if _, _, err := q.List(Filter{}, "x", 0); err == nil {
		t.Error("bad cursor accepted")
	}
	if err := q.Delete(ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted job: %v", err)
	}
	g := newGate()
	q.Register("c", g)
	live := submit(t, q, "c", 0)
	if err := q.Delete(live.ID); !errors.Is(err, ErrNotFinished) {
		t.Errorf("Delete of a live job: %v", err)
	}
	g.waitStart(t)
	if running := q.Running(); len(running) != 1 || running[0].ID != live.ID {
		t.Errorf("Running() = %v", running)
	}
	g.release <- struct{}{}
	wait(t, q, live.ID)
}

func TestCloseRequeuesAndReopens(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "another mica process") {
		t.Fatalf("second Open of one folder: %v", err)
	}
	g := newGate()
	q.Register("m", g)
	running := submit(t, q, "m", 0)
	g.waitStart(t)
	queued := submit(t, q, "m", 3)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Submit(Request{Kind: "k", Model: "m"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v", err)
	}
	q = openTest(t, dir, Options{})
	for _, id := range []string{running.ID, queued.ID} {
		j, err := q.Get(id)
		if err != nil || j.State != Queued || j.Attempts != 0 {
			t.Errorf("after a clean restart %s: %+v %v", id, j, err)
		}
	}
	// Without a runner they wait; registering one starts them in order.
	g = newGate()
	q.Register("m", g)
	g.release <- struct{}{}
	g.release <- struct{}{}
	wait(t, q, running.ID)
	if got := g.ran(); !slices.Equal(got, []string{queued.ID, running.ID}) {
		t.Errorf("ran %v", got)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	if _, err := q.db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	q.Close()
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), filepath.Join(dir, DBName)) {
		t.Fatalf("Open of a newer database: %v", err)
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/x/data")
	if d, err := DefaultDataDir(); err != nil || d != "/x/data/mica" {
		t.Errorf("with XDG_DATA_HOME: %q %v", d, err)
	}
	t.Setenv("XDG_DATA_HOME", "relative")
	t.Setenv("HOME", "/home/u")
	if d, err := DefaultDataDir(); err != nil || d != "/home/u/.local/share/mica" {
		t.Errorf("without: %q %v", d, err)
	}
}

// With one slot, the next job is the best head over all idle models.
func TestPriorityAcrossModels(t *testing.T) {
	q := openTest(t, "", Options{MaxParallel: 1})
	g := newGate()
	q.Register("a", g)
	q.Register("b", g)
	first := submit(t, q, "a", 0)
	g.waitStart(t)
	b0 := submit(t, q, "b", 0)
	a5 := submit(t, q, "a", 5)
	b9 := submit(t, q, "b", 9)
	for range 4 {
		g.release <- struct{}{}
	}
	for _, id := range []string{first.ID, b0.ID, a5.ID, b9.ID} {
		wait(t, q, id)
	}
	if got, want := g.ran(), []string{first.ID, b9.ID, a5.ID, b0.ID}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
}

func TestCorruptDatabase(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBName), []byte(strings.Repeat("not a database ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, DBName)) {
		t.Fatalf("Open of a corrupt database: %v", err)
	}
	t.Log(err)
}
