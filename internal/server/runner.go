package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	// PrefixCache is the most finished sequences a batching model keeps
	// for prefix reuse (engine.Options.PrefixCache: 0 the engine's default,
	// negative none).
	PrefixCache int
	// StreamBuffer and StallTimeout bound a slow client of a batching
	// model (engine.Options): the events its request may fall behind
	// before it pauses, and how long it may stay paused before it is
	// cancelled (0: the engine's defaults).
	StreamBuffer int
	StallTimeout time.Duration
}

// Loader loads the model file at path.
type Loader func(path string, o LoadOptions) (Runner, error)

// EngineLoader loads a model with mica's engine on a CPU backend of its own.
func EngineLoader(path string, o LoadOptions) (Runner, error) {
	be := cpu.New(o.Threads)
	e, err := engine.Open(path, be, engine.Options{Context: o.Context, Batch: o.Batch, OnBatch: o.OnBatch, MaxImages: o.MaxImages,
		PrefixCache: o.PrefixCache, StreamBuffer: o.StreamBuffer, StallTimeout: o.StallTimeout})
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

// queue admits LLM requests: n run at once, over all loaded LLMs (1, or the batch size
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
// counting against the queue limit (shutdown). releaseAll gives them back.
// Models are not switched under it: the residency counts each model's uses.
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

// The kinds of model the residency holds.
const (
	kindLLM   = "llm"
	kindImage = "image"
)

// resident is one loaded (or loading) model, LLM or image.
type resident struct {
	kind, name, path string
	version          time.Time // the file's modification time at load
	info             ModelInfo // LLMs: the catalog's entry
	estimate         int64     // the need estimated from the file
	need             int64     // what the budget counts: max(estimate, measured)

	value   any          // Runner (LLM) or *loadedImage (image)
	close   func() error // unloads it
	measure func() int64 // bytes the loaded model holds; nil: unknown

	ready   chan struct{} // closed when the load has ended
	lastUse time.Time
	inUse   int           // requests or jobs using it now
	keep    time.Duration // the keep-alive applied when inUse falls to 0 (the last request's)
	expires time.Time     // zero: no expiry (in use, or kept forever)
	timer   *time.Timer
	evict   bool // unload as soon as it is idle (asked for while in use)
	drain   int  // loads waiting for its memory: new uses wait behind them
	stale   bool // its file changed: never handed out again, unloaded once idle
}

func (m *resident) loading() bool {
	select {
	case <-m.ready:
		return false
	default:
		return true
	}
}

// loadSpec says how to load one model and what it needs.
type loadSpec struct {
	kind, name, path string
	version          time.Time
	info             ModelInfo
	need             int64
	// load loads the model: its value, how to close it and, optionally,
	// how to measure what it holds.
	load func() (value any, close func() error, measure func() int64, err error)
}

// residency keeps the loaded models, LLMs and image models alike, within
// one memory budget. A model is in use from acquire to release; one in use
// is never unloaded. Loading one that does not fit first unloads idle
// models, least recently used first; when the models in use leave too
// little, the load waits until they finish. After its last use a model
// stays loaded for its keep-alive (0: unload at once; negative: until the
// memory is needed).
type residency struct {
	load   Loader // LLMs
	opts   LoadOptions
	budget int64 // bytes; <= 0: no limit
	logf   func(msg string, args ...any)

	mu      sync.Mutex
	models  []*resident
	changed chan struct{} // closed (and replaced) when memory may have been freed
	closed  bool
}

func newResidency(load Loader, opts LoadOptions, budget int64, logf func(string, ...any)) *residency {
	return &residency{load: load, opts: opts, budget: budget, logf: logf, changed: make(chan struct{})}
}

// tooBig is the error of a model that cannot fit even in an empty budget.
func (r *residency) tooBig(kind, name string, need int64) error {
	return &canon.Error{Kind: canon.Unavailable, RetryAfter: time.Minute, Code: "model_too_large",
		Msg: fmt.Sprintf("%s %q needs about %s (weights, caches and buffers) but the memory budget is %s: raise --memory-budget (MICA_MEMORY_BUDGET) or use a smaller model or context",
			map[string]string{kindLLM: "LLM", kindImage: "image model"}[kind], name, gib(need), gib(r.budget))}
}

// tooBigPair is the error of a second model (an SDXL refiner) that cannot
// fit beside the first, in use, even in an otherwise empty budget.
func (r *residency) tooBigPair(first string, firstNeed int64, second string, secondNeed int64) error {
	return &canon.Error{Kind: canon.Unavailable, RetryAfter: time.Minute, Code: "model_too_large",
		Msg: fmt.Sprintf("image model %q (about %s) and its refiner %q (about %s) must be loaded together but the memory budget is %s: raise --memory-budget (MICA_MEMORY_BUDGET) or leave out refiner_checkpoint",
			first, gib(firstNeed), second, gib(secondNeed), gib(r.budget))}
}

// needOf is what loaded model m takes of the budget now.
func (r *residency) needOf(m *resident) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m.need
}

// fits reports whether a model needing need bytes can ever be loaded.
func (r *residency) fits(need int64) bool { return r.budget <= 0 || need <= r.budget }

// acquire returns model sp in use, loading it first when needed (then
// also how long loading took). The caller must release it.
func (r *residency) acquire(ctx context.Context, sp loadSpec) (*resident, time.Duration, error) {
	waited := false
	// marked are the models in use whose memory this load waits for: new
	// uses of them wait behind it (drain), so that a busy model cannot
	// starve a waiting load.
	var marked []*resident
	unmark := func() {
		for _, m := range marked {
			m.drain--
		}
		marked = nil
	}
	// wait waits (r.mu held, and held again on return) for memory to be
	// freed; it fails, with r.mu released, when the caller gives up.
	wait := func() error {
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
			r.mu.Lock()
			return nil
		case <-ctx.Done():
			r.mu.Lock()
			if len(marked) > 0 {
				unmark()
				r.notifyLocked()
			}
			r.mu.Unlock()
			return ctx.Err()
		}
	}
	r.mu.Lock()
	for {
		unmark() // recomputed below while the lock is held
		if r.closed {
			r.notifyLocked()
			r.mu.Unlock()
			return nil, 0, canon.New(canon.Unavailable, "the server is shutting down")
		}
		if m := r.findLocked(sp.kind, sp.path, sp.version); m != nil {
			if m.loading() {
				ready := m.ready
				r.mu.Unlock()
				select {
				case <-ready:
				case <-ctx.Done():
					return nil, 0, ctx.Err()
				}
				r.mu.Lock()
				continue // loaded, or failed and gone
			}
			if m.drain > 0 {
				// A load waits for this model's memory: queue behind it.
				if err := wait(); err != nil {
					return nil, 0, err
				}
				continue
			}
			m.inUse++
			m.lastUse, m.expires = time.Now(), time.Time{}
			if m.timer != nil {
				m.timer.Stop()
				m.timer = nil
			}
			r.mu.Unlock()
			return m, 0, nil
		}
		// An older version of the file stays only while in use.
		for _, m := range append([]*resident(nil), r.models...) {
			if m.kind == sp.kind && m.path == sp.path && !m.version.Equal(sp.version) {
				m.stale = true
				if m.inUse == 0 && !m.loading() {
					r.unloadLocked(m, "because its file changed")
				}
			}
		}
		if !r.fits(sp.need) {
			r.notifyLocked()
			r.mu.Unlock()
			return nil, 0, r.tooBig(sp.kind, sp.name, sp.need)
		}
		if r.makeRoomLocked(sp.need) {
			r.notifyLocked() // uses queued behind this load may go on
			break
		}
		marked = r.markLocked(sp.need)
		if !waited {
			waited = true
			r.logf("waiting for memory: the models in use leave too little of the budget", "model", sp.name, "kind", sp.kind,
				"need", sp.need, "used", r.usedLocked(), "budget", r.budget)
		}
		if err := wait(); err != nil {
			return nil, 0, err
		}
	}
	m := &resident{kind: sp.kind, name: sp.name, path: sp.path, version: sp.version, info: sp.info,
		estimate: sp.need, need: sp.need, ready: make(chan struct{}), inUse: 1}
	r.models = append(r.models, m)
	r.mu.Unlock()

	start := time.Now()
	v, closeFn, measure, err := sp.load()
	took := time.Since(start)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.closed {
		closeFn()
		err = canon.New(canon.Unavailable, "the server is shutting down")
	}
	if err != nil {
		r.removeLocked(m)
		close(m.ready)
		r.notifyLocked()
		return nil, 0, err
	}
	m.value, m.close, m.measure = v, closeFn, measure
	m.lastUse = time.Now()
	r.measureLocked(m)
	close(m.ready)
	r.logf("model loaded", "model", sp.name, "kind", sp.kind, "seconds", took.Seconds(),
		"memory_estimate", m.estimate, "memory", m.need, "budget_used", r.usedLocked(), "budget", r.budget, "process_rss", processRSS())
	return m, took, nil
}

// release ends one use of m; the last use starts its keep-alive.
func (r *residency) release(m *resident, keep time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.inUse <= 0 {
		return
	}
	m.inUse--
	m.lastUse, m.keep = time.Now(), keep
	r.measureLocked(m)
	if m.inUse > 0 {
		return
	}
	switch {
	case m.stale || m.evict || keep == 0 || r.closed:
		r.unloadLocked(m, "at the end of its use (keep-alive 0 or asked to unload)")
		return
	case keep < 0:
		m.expires = time.Time{}
	default:
		m.expires = m.lastUse.Add(keep)
		m.timer = time.AfterFunc(keep, func() { r.expire(m) })
	}
	r.notifyLocked() // an idle model can now make room
}

// expire unloads m if it is still idle and its keep-alive has passed.
func (r *residency) expire(m *resident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.indexLocked(m) >= 0 && m.inUse == 0 && !m.expires.IsZero() && !time.Now().Before(m.expires) {
		r.unloadLocked(m, "after keep-alive")
	}
}

// makeRoomLocked unloads idle models, least recently used first (those
// kept with keep-alive -1 last), until need bytes fit; false (unloading
// nothing) when they cannot.
func (r *residency) makeRoomLocked(need int64) bool {
	if r.budget <= 0 {
		return true
	}
	free := r.budget - r.usedLocked()
	if need <= free {
		return true
	}
	var idle []*resident
	for _, m := range r.models {
		if m.inUse == 0 && !m.loading() {
			idle = append(idle, m)
		}
	}
	// Models kept "forever" (keep-alive -1) go last, then least recently
	// used first.
	sort.SliceStable(idle, func(i, j int) bool {
		if fi, fj := idle[i].keep < 0, idle[j].keep < 0; fi != fj {
			return fj
		}
		return idle[i].lastUse.Before(idle[j].lastUse)
	})
	for i, m := range idle {
		free += m.need
		if need <= free {
			for _, v := range idle[:i+1] {
				r.unloadLocked(v, "to make room for another model")
			}
			return true
		}
	}
	return false
}

// markLocked marks the models in use that must become idle for need bytes
// to fit (least recently used first, after the idle ones) and returns them.
func (r *residency) markLocked(need int64) []*resident {
	free := r.budget - r.usedLocked()
	var cands []*resident
	for _, m := range r.models {
		if !m.loading() {
			cands = append(cands, m)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if (cands[i].inUse == 0) != (cands[j].inUse == 0) {
			return cands[i].inUse == 0
		}
		return cands[i].lastUse.Before(cands[j].lastUse)
	})
	var out []*resident
	for _, m := range cands {
		if need <= free {
			break
		}
		free += m.need
		if m.inUse > 0 {
			m.drain++
			out = append(out, m)
		}
	}
	return out
}

func (r *residency) usedLocked() int64 {
	var n int64
	for _, m := range r.models {
		n += m.need
	}
	return n
}

func (r *residency) measureLocked(m *resident) {
	if m.measure != nil {
		m.need = max(m.need, m.measure())
	}
}

func (r *residency) findLocked(kind, path string, version time.Time) *resident {
	for _, m := range r.models {
		if m.kind == kind && m.path == path && m.version.Equal(version) && !m.stale {
			return m
		}
	}
	return nil
}

func (r *residency) indexLocked(m *resident) int {
	for i, x := range r.models {
		if x == m {
			return i
		}
	}
	return -1
}

func (r *residency) removeLocked(m *resident) {
	if i := r.indexLocked(m); i >= 0 {
		r.models = append(r.models[:i], r.models[i+1:]...)
	}
}

func (r *residency) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// unloadLocked closes an idle model and frees its share of the budget.
func (r *residency) unloadLocked(m *resident, why string) {
	if r.indexLocked(m) < 0 {
		return
	}
	r.removeLocked(m)
	if m.timer != nil {
		m.timer.Stop()
	}
	if m.close != nil {
		if err := m.close(); err != nil {
			r.logf("closing model", "model", m.name, "kind", m.kind, "err", err)
		}
	}
	r.logf("model unloaded "+why, "model", m.name, "kind", m.kind, "memory", m.need)
	r.notifyLocked()
}

// residentInfo is a loaded model as listings show it.
type residentInfo struct {
	kind, name, path string
	info             ModelInfo
	need, estimate   int64
	expires          time.Time
	inUse            int
	loading          bool
}

// list returns the loaded and loading models, in load order.
func (r *residency) list() []residentInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]residentInfo, 0, len(r.models))
	for _, m := range r.models {
		out = append(out, residentInfo{kind: m.kind, name: m.name, path: m.path, info: m.info, need: m.need,
			estimate: m.estimate, expires: m.expires, inUse: m.inUse, loading: m.loading()})
	}
	return out
}

// used is the memory the loaded models take from the budget.
func (r *residency) used() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usedLocked()
}

// errInUse: a model asked to unload is running requests or jobs.
var errInUse = errors.New("model in use")

// unload unloads the loaded models of a kind with path (any version). A
// model in use is unloaded when its last use ends, and errInUse says so;
// found is false when none was loaded.
func (r *residency) unload(kind, path string) (found bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range append([]*resident(nil), r.models...) {
		if m.kind != kind || m.path != path {
			continue
		}
		found = true
		if m.inUse > 0 {
			m.evict = true
			err = fmt.Errorf("%w: %s model %q is running %d requests or jobs; it is unloaded as soon as they end", errInUse, kind, m.name, m.inUse)
			continue
		}
		r.unloadLocked(m, "on request")
	}
	return found, err
}

// close unloads every model and refuses further loads. The caller has
// made sure nothing is in use.
func (r *residency) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for _, m := range append([]*resident(nil), r.models...) {
		if m.loading() {
			continue // acquire closes it when its load ends
		}
		r.removeLocked(m)
		if m.timer != nil {
			m.timer.Stop()
		}
		if m.close != nil {
			errs = append(errs, m.close())
		}
	}
	r.notifyLocked()
	return errors.Join(errs...)
}

// LLMs.

// ensure returns the runner of model m in use, loading it when needed, and
// how long loading took. The caller must call keep when done with it.
func (r *residency) ensure(ctx context.Context, m ModelInfo) (Runner, time.Duration, error) {
	sp := loadSpec{kind: kindLLM, name: m.Name, path: m.Path, version: m.Modified, info: m,
		need: llmNeed(m, r.opts.Context, r.opts.Batch),
		load: func() (any, func() error, func() int64, error) {
			o := r.opts
			o.Projector, o.ProjectorExplicit, o.MaxImages = m.Projector, m.ProjectorExplicit, m.MaxImages
			run, err := r.load(m.Path, o)
			if err != nil {
				return nil, nil, nil, &canon.Error{Kind: canon.Unavailable, Msg: fmt.Sprintf("model %q failed to load: %v", m.Name, err)}
			}
			var measure func() int64
			if mr, ok := run.(memoryReporter); ok {
				measure = mr.MemoryBytes
			}
			return run, run.Close, measure, nil
		}}
	res, took, err := r.acquire(ctx, sp)
	if err != nil {
		return nil, 0, err
	}
	return res.value.(Runner), took, nil
}

// keep ends a request's use of model m (as ensure returned it) and sets its
// keep-alive: 0 unloads it once no other request uses it, a negative
// duration keeps it loaded until its memory is needed.
func (r *residency) keep(m ModelInfo, d time.Duration) {
	r.mu.Lock()
	var res *resident
	for _, x := range r.models {
		if x.kind == kindLLM && x.path == m.Path && x.version.Equal(m.Modified) && x.inUse > 0 && !x.loading() {
			res = x
			break
		}
	}
	r.mu.Unlock()
	if res != nil {
		r.release(res, d)
	}
}

// runners returns the loaded LLMs' runners (tests, metrics).
func (r *residency) runners() []Runner {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Runner
	for _, m := range r.models {
		if run, ok := m.value.(Runner); ok && m.kind == kindLLM && !m.loading() {
			out = append(out, run)
		}
	}
	return out
}

// memoryReporter is a runner that reports the memory it holds.
type memoryReporter interface {
	MemoryBytes() int64
}

// MemoryBytes is what the engine's backend holds: the mapped weights and
// the peak of its allocations (KV caches, activations).
func (r *engineRunner) MemoryBytes() int64 {
	st := r.be.Memory()
	return st.Wrapped + st.Peak
}

// nameOf is the name of a loaded LLM's runner ("" when not loaded).
func (r *residency) nameOf(run Runner) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.models {
		if m.value == any(run) {
			return m.name
		}
	}
	return ""
}
