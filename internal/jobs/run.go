package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// run is a job being worked on: its live progress, preview and flags.
type run struct {
	q      *Queue
	job    Job // fixed fields; progress lives below
	ctx    context.Context
	cancel context.CancelCauseFunc

	interrupted atomic.Bool
	skipped     atomic.Bool

	mu        sync.Mutex
	progress  ProgressState
	preview   []byte
	mime      string
	cancelled bool // Cancel was called
	closing   bool // Close was called (guarded by q.mu)
}

// dispatcher starts jobs whenever something may have become runnable.
func (q *Queue) dispatcher() {
	defer q.wg.Done()
	for {
		select {
		case <-q.wake:
		case <-q.stop:
			return
		}
		for q.startNext() {
		}
	}
}

// startNext starts the best queued job whose model is idle and has a
// runner, if a slot is free; it reports whether it started one.
func (q *Queue) startNext() bool {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	if q.closed || len(q.running) >= q.opt.MaxParallel {
		q.mu.Unlock()
		return false
	}
	idle := func(model string) bool {
		return !q.busy[model] && (q.runners[model] != nil || q.opt.Resolve != nil)
	}
	q.mu.Unlock()

	var best Job
	var bestOrd int64
	found := false
	for m := range q.queued {
		q.mu.Lock()
		ok := idle(m)
		q.mu.Unlock()
		if !ok {
			continue
		}
		var ord int64
		j, err := scanJob(seqScanner{q.st.head.QueryRow(m), &ord})
		if err != nil {
			q.opt.Logger.Error("jobs: choosing the next job", "model", m, "err", err)
			continue
		}
		if !found || j.Priority > best.Priority || (j.Priority == best.Priority && ord < bestOrd) {
			best, bestOrd, found = j, ord, true
		}
	}
	if !found {
		return false
	}
	now := time.Now()
	if _, err := q.st.start.Exec(now.UnixNano(), best.ID); err != nil {
		q.opt.Logger.Error("jobs: starting a job", "job", best.ID, "err", err)
		return false
	}
	q.dequeued(best.Model)
	best.State = Running
	best.Attempts++
	best.Started = time.Unix(0, now.UnixNano())
	best.Progress = ProgressState{}
	r := &run{q: q, job: best}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	q.mu.Lock()
	q.running[best.ID] = r
	q.busy[best.Model] = true
	q.mu.Unlock()
	q.events.publish(Event{Type: EventStarted, JobID: best.ID, Model: best.Model, State: Running, Time: now})
	q.wg.Add(1)
	go q.execute(r)
	return true
}

var errTimeout = errors.New("timed out")

// execute runs one job and records how it ended.
func (q *Queue) execute(r *run) {
	defer q.wg.Done()
	ctx := r.ctx
	if r.job.Timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, r.job.Timeout, errTimeout)
		defer stop()
	}
	var res Result
	runner, err := q.runnerFor(r.job.Model)
	if err == nil {
		job := r.job // the runner gets its own copy
		res, err = safeRun(ctx, runner, &job, r)
	}
	cause := context.Cause(ctx)
	if ctx.Err() == nil {
		cause = nil
	}
	q.finish(r, res, err, cause)
}

func (q *Queue) runnerFor(model string) (Runner, error) {
	q.mu.Lock()
	r := q.runners[model]
	resolve := q.opt.Resolve
	q.mu.Unlock()
	if r != nil {
		return r, nil
	}
	if resolve == nil {
		return nil, fmt.Errorf("%w %q", ErrNoRunner, model)
	}
	r, err := resolve(model)
	if err == nil && r == nil {
		err = fmt.Errorf("%w %q", ErrNoRunner, model)
	}
	return r, err
}

// safeRun calls the runner, turning a panic into an error so that one bad
// job cannot take the server down.
func safeRun(ctx context.Context, runner Runner, j *Job, p Progress) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("runner panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return runner.Run(ctx, j, p)
}

// finish records the end of a run. cause is why ctx ended (nil if it did not).
func (q *Queue) finish(r *run, res Result, runErr, cause error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	r.mu.Lock()
	prog := r.progress
	cancelled := r.cancelled
	r.mu.Unlock()
	q.mu.Lock()
	closing := r.closing
	q.mu.Unlock()

	state, msg := Finished, ""
	switch {
	case cancelled:
		state, msg = Cancelled, "cancelled while running"
	case closing:
		state = Queued // shutting down: run it again next time
	case r.interrupted.Load():
		state, msg = Interrupted, "interrupted"
		if runErr != nil {
			msg = "interrupted: " + runErr.Error()
		}
	case errors.Is(cause, errTimeout) && runErr != nil:
		state, msg = Failed, fmt.Sprintf("timed out after %v: %v", r.job.Timeout, runErr)
	case runErr != nil:
		state, msg = Failed, runErr.Error()
	}
	if state == Finished {
		prog.Fraction = 1
	}
	if res.Images == nil {
		res.Images = []string{}
	}
	images, _ := json.Marshal(res.Images)
	var info []byte
	if len(res.Info) > 0 && json.Valid(res.Info) {
		info = res.Info
	} else if len(res.Info) > 0 {
		state, msg = Failed, "runner returned invalid info JSON"
	}
	now := time.Now()
	var err error
	var before map[string]int
	if state == Queued {
		before = q.positions(r.job.Model)
		if _, err = q.st.requeue.Exec(r.job.ID); err == nil {
			q.queued[r.job.Model]++
			q.nqueued++
		}
	} else {
		_, err = q.st.finish.Exec(state, now.UnixNano(), msg, string(images), info,
			prog.Step, prog.Steps, prog.JobNo, prog.JobCount, prog.TextInfo, r.job.ID)
	}
	if err != nil {
		// The row still says running: the next Open treats it as a crash.
		q.opt.Logger.Error("jobs: recording the end of a job", "job", r.job.ID, "state", state, "err", err)
	}
	q.mu.Lock()
	delete(q.running, r.job.ID)
	delete(q.busy, r.job.Model)
	q.mu.Unlock()
	r.cancel(nil)

	e := Event{JobID: r.job.ID, Model: r.job.Model, State: state, Time: now, Progress: prog, Error: msg}
	if state == Queued {
		e.Type = EventQueued
		if before != nil {
			e.Positions = q.moved(r.job.Model, before)
		}
	} else {
		e.Type = terminalEvent(state)
	}
	if state == Finished || state == Interrupted {
		e.Result = &res
	}
	q.events.publish(e)
	q.kick()
}

// snapshot is the job with its live progress.
func (r *run) snapshot() Job {
	j := r.job
	r.mu.Lock()
	p := r.progress
	r.mu.Unlock()
	p.Interrupted = r.interrupted.Load()
	p.Skipped = r.skipped.Load()
	p.Fraction = p.fraction()
	if p.Fraction > 0 {
		elapsed := time.Since(j.Started)
		p.ETA = time.Duration(float64(elapsed)/p.Fraction) - elapsed
	}
	j.Progress = p
	return j
}

func (r *run) publishStep(preview bool) {
	j := r.snapshot()
	r.q.events.publish(Event{Type: EventStep, JobID: j.ID, Model: j.Model, State: Running,
		Time: time.Now(), Progress: j.Progress, Preview: preview})
}

func (r *run) interrupt() {
	r.interrupted.Store(true)
	r.publishStep(false)
}

func (r *run) skip() {
	r.skipped.Store(true)
	r.publishStep(false)
}

// Progress, as the runner sees it.

func (r *run) Batch(no, count int) {
	r.skipped.Store(false)
	r.mu.Lock()
	r.progress.JobNo, r.progress.JobCount, r.progress.Step = max(no, 0), max(count, 0), 0
	r.mu.Unlock()
	r.publishStep(false)
}

func (r *run) Step(step, steps int) {
	r.mu.Lock()
	r.progress.Step, r.progress.Steps = max(step, 0), max(steps, 0)
	r.mu.Unlock()
	r.publishStep(false)
}

func (r *run) Text(s string) {
	r.mu.Lock()
	r.progress.TextInfo = s
	r.mu.Unlock()
	r.publishStep(false)
}

func (r *run) Preview(img []byte, mime string) {
	r.mu.Lock()
	r.preview, r.mime = img, mime
	r.progress.Preview++
	r.mu.Unlock()
	r.publishStep(true)
}

func (r *run) Interrupted() bool { return r.interrupted.Load() }
func (r *run) Skipped() bool     { return r.skipped.Load() }

func (r *run) SaveImage(name string, data []byte, infotext string) (string, error) {
	return r.q.SaveImage(r.job.ID, time.Now(), name, data, infotext)
}

func (r *run) KeepImage(name string, data []byte) (string, error) {
	return KeepImage(r.q.dir, r.job.ID, name, data)
}
