package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"mica/internal/compute/cpu"
	"mica/internal/llm/engine"
	"mica/internal/server/canon"
)

// Runner is a loaded model as the server uses it; *engine.Engine behind
// EngineLoader, a scripted fake in tests.
type Runner interface {
	Chat(ctx context.Context, r engine.ChatRequest, onEvent func(engine.Event)) (engine.Result, error)
	Complete(ctx context.Context, r engine.CompletionRequest, onEvent func(engine.Event)) (engine.Result, error)
	ChatPrompt(r engine.ChatRequest) ([]int32, error)
	CompletionPrompt(r engine.CompletionRequest) ([]int32, error)
	// Context is the most positions one request may use.
	Context() int
	// VocabSize is the number of token ids (for logit_bias checks).
	VocabSize() int
	// Family is the chat format, "gemma3" or "gemma4" (which has thinking
	// and tools).
	Family() string
	Close() error
}

// LoadOptions configure how a model is loaded.
type LoadOptions struct {
	Threads int
	Context int
	// Batch is the most requests the model runs together (continuous
	// batching, engine.Options.Batch); 0 or 1: one at a time.
	Batch int
	// OnBatch, if set, is told about each batched step (metrics).
	OnBatch func(engine.BatchStats)
	// Projector is the model's vision projector (mmproj file), "" for
	// none. When ProjectorExplicit (configured), a projector that does not
	// fit fails the load; a found one only makes image requests fail.
	Projector         string
	ProjectorExplicit bool
	// MaxImages is the most images one request may hold (0: the engine's
	// default).
	MaxImages int
}

// Loader loads the model file at path.
type Loader func(path string, o LoadOptions) (Runner, error)

// EngineLoader loads a model with mica's engine on a CPU backend of its own.
func EngineLoader(path string, o LoadOptions) (Runner, error) {
	be := cpu.New(o.Threads)
	e, err := engine.Open(path, be, engine.Options{Context: o.Context, Batch: o.Batch, OnBatch: o.OnBatch, MaxImages: o.MaxImages})
	if err != nil {
		be.Close()
		return nil, err
	}
	if o.Projector != "" {
		// A found projector that does not fit leaves the model text-only:
		// the engine answers image requests with the reason.
		if err := e.OpenVision(o.Projector); err != nil && o.ProjectorExplicit {
			e.Close()
			be.Close()
			return nil, err
		}
	}
	return &engineRunner{Engine: e, be: be}, nil
}

type engineRunner struct {
	*engine.Engine
	be *cpu.Backend
}

func (r *engineRunner) VocabSize() int { return r.Model().Config.NVocab }

func (r *engineRunner) Close() error {
	err := r.Engine.Close()
	r.be.Close()
	return err
}

// queue admits requests to the engine: n run at once (1, or the batch size
// of the model's continuous batcher, which schedules them), at most limit
// wait.
type queue struct {
	slot    chan struct{}
	n       int
	all     sync.Mutex // one taker of every slot at a time
	waiting atomic.Int64
	limit   int64
}

func newQueue(limit, n int) *queue {
	n = max(n, 1)
	return &queue{slot: make(chan struct{}, n), n: n, limit: int64(limit)}
}

// acquire waits for the engine; it fails at once with Busy when the queue
// is full, and with ctx's error when the client leaves while waiting.
func (q *queue) acquire(ctx context.Context) error {
	select {
	case q.slot <- struct{}{}:
		return nil
	default:
	}
	if q.waiting.Add(1) > q.limit {
		q.waiting.Add(-1)
		return &canon.Error{Kind: canon.Busy, RetryAfter: time.Second,
			Msg: fmt.Sprintf("the server is busy: %d requests are already waiting; retry later", q.limit)}
	}
	defer q.waiting.Add(-1)
	select {
	case q.slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue) release() { <-q.slot }

// take waits for every slot, so that no request is running, without
// counting against the queue limit (for housekeeping: keep-alive unloads,
// switching models and shutdown). releaseAll gives them back.
func (q *queue) take() {
	q.all.Lock()
	defer q.all.Unlock()
	for range q.n {
		q.slot <- struct{}{}
	}
}

// releaseAll gives back the slots of take, keeping keep of them.
func (q *queue) releaseAll(keep int) {
	for range q.n - keep {
		<-q.slot
	}
}

// errSwitch: ensure needs every slot to unload the model others may be
// running.
var errSwitch = errors.New("switching models needs the whole engine")

// resident is the loaded model.
type resident struct {
	info     ModelInfo
	runner   Runner
	loadedAt time.Time
	expires  time.Time // zero: never
	timer    *time.Timer
}

// residency keeps at most one model loaded and unloads it after its
// keep-alive. Its methods are called with the queue's slot held.
type residency struct {
	load   Loader
	opts   LoadOptions
	q      *queue
	logf   func(msg string, args ...any)
	mu     sync.Mutex // guards cur for readers without the slot (/api/ps)
	cur    *resident
	closed bool
}

// ensure returns the runner of model m, loading it (and unloading another)
// when needed, and how long loading took. Unloading another model needs
// every slot of the queue (exclusive): without them ensure returns
// errSwitch.
func (r *residency) ensure(m ModelInfo, exclusive bool) (Runner, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, 0, canon.New(canon.Unavailable, "the server is shutting down")
	}
	if r.cur != nil && r.cur.info.Path == m.Path && r.cur.info.Modified.Equal(m.Modified) {
		if r.cur.timer != nil {
			r.cur.timer.Stop()
		}
		return r.cur.runner, 0, nil
	}
	if r.cur != nil && !exclusive && r.q.n > 1 {
		return nil, 0, errSwitch
	}
	r.unloadLocked()
	start := time.Now()
	o := r.opts
	o.Projector, o.ProjectorExplicit, o.MaxImages = m.Projector, m.ProjectorExplicit, m.MaxImages
	run, err := r.load(m.Path, o)
	if err != nil {
		return nil, 0, &canon.Error{Kind: canon.Unavailable, Msg: fmt.Sprintf("model %q failed to load: %v", m.Name, err)}
	}
	r.logf("model loaded", "model", m.Name, "seconds", time.Since(start).Seconds())
	r.cur = &resident{info: m, runner: run, loadedAt: time.Now()}
	return run, time.Since(start), nil
}

// keep sets the loaded model's keep-alive after a request: 0 unloads it now
// (the caller must hold every slot of the queue), a negative duration keeps
// it loaded.
func (r *residency) keep(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur
	if cur == nil {
		return
	}
	if d == 0 {
		// The caller holds every slot (job.done): nothing else runs.
		r.unloadLocked()
		return
	}
	if d < 0 {
		cur.expires = time.Time{}
		return
	}
	cur.expires = time.Now().Add(d)
	cur.timer = time.AfterFunc(d, func() {
		// Take every slot so that no request is running on the model.
		r.q.take()
		defer r.q.releaseAll(0)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.cur == cur && !cur.expires.IsZero() && !time.Now().Before(cur.expires) {
			r.logf("model unloaded after keep-alive", "model", cur.info.Name)
			r.unloadLocked()
		}
	})
}

func (r *residency) unloadLocked() {
	if r.cur == nil {
		return
	}
	if r.cur.timer != nil {
		r.cur.timer.Stop()
	}
	if err := r.cur.runner.Close(); err != nil {
		r.logf("closing model", "model", r.cur.info.Name, "err", err)
	}
	r.cur = nil
}

// loaded returns the loaded model, if any, and when it expires.
func (r *residency) loaded() (ModelInfo, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return ModelInfo{}, time.Time{}, false
	}
	return r.cur.info, r.cur.expires, true
}

// close unloads the model and refuses further loads.
func (r *residency) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.cur == nil {
		return nil
	}
	err := r.cur.runner.Close()
	if r.cur.timer != nil {
		r.cur.timer.Stop()
	}
	r.cur = nil
	return errors.Join(err)
}
