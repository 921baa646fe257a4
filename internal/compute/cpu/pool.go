package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a fixed set of persistent worker goroutines. Work is split into
// contiguous chunks by index, deterministically: the chunk boundaries depend
// only on the item count, the grain, the minimum per chunk and the thread
// count, never on timing, so results that are computed per item are
// identical whatever the thread count.
//
// A Pool runs one parallel section at a time; concurrent callers are
// serialized (the models drive one step at a time per backend).
//
// A decode step runs hundreds of short sections back to back, so handing
// a range over must cost well under a microsecond: a worker that finished
// watches its mailbox for a while (spinFor) before it goes to sleep, and the
// caller watches for the workers' ends the same way. Only a sleeping side
// is woken through a channel (a wake-up costs microseconds, and much more
// when the machine is busy).
type Pool struct {
	threads int
	spin    time.Duration
	mu      sync.Mutex // one section at a time
	dyn     ranges     // the section running
	workers []*worker
	wg      sync.WaitGroup
	closed  bool
}

// spinFor is how long an idle worker (or a caller waiting for a worker) keeps
// checking before it sleeps: longer than the gaps between the sections of
// one forward pass, short against the time between requests.
const spinFor = 50 * time.Microsecond

// worker is one worker goroutine's mailbox. The caller writes the index of
// the worker's first range, then counts the section in posted; the worker
// runs its ranges and sets done to posted.
type worker struct {
	posted, done atomic.Uint64
	first        int
	quit         bool
	// asleep and waiting say that the worker (for posted) or the caller
	// (for done) sleeps, or is about to, on wake or finished (each
	// buffered 1).
	asleep, waiting atomic.Bool
	wake, finished  chan struct{}
	_               [64]byte // keep workers' counters off one cache line
}

// NewPool starts threads workers (threads <= 0 means runtime.NumCPU()). The
// calling goroutine also works, so threads-1 goroutines are started.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &Pool{threads: threads, spin: spinFor}
	if threads > runtime.GOMAXPROCS(0) {
		// More threads than the Go scheduler runs at once: a spinning
		// goroutine would hold a processor another one needs.
		p.spin = 0
	}
	for i := 0; i < threads-1; i++ {
		w := &worker{wake: make(chan struct{}, 1), finished: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go p.work(w)
	}
	return p
}

func (p *Pool) work(w *worker) {
	defer p.wg.Done()
	var seen uint64
	for {
		seen++
		await(func() bool { return w.posted.Load() >= seen }, &w.asleep, w.wake, p.spin)
		if w.quit {
			return
		}
		p.takeRanges(w.first)
		w.done.Store(seen)
		notify(&w.waiting, w.finished)
	}
}

// await returns once ready() holds, which the other side makes true and
// then calls notify(flag, ch). It checks for up to spin, then sleeps on ch.
func await(ready func() bool, flag *atomic.Bool, ch chan struct{}, spin time.Duration) {
	if ready() {
		return
	}
	if spin > 0 {
		t0 := time.Now()
		for i := 1; !ready(); i++ {
			if i%128 == 0 {
				if time.Since(t0) > spin {
					break
				}
				runtime.Gosched() // let the goroutines waiting for a processor run
			}
		}
	}
	for !ready() {
		// Announce the sleep before the last check: the other side
		// makes ready() true before it reads flag, so one of the two
		// sees the other (sync/atomic is sequentially consistent). A
		// token left over from an earlier round only costs a loop.
		flag.Store(true)
		if !ready() {
			<-ch
		}
		flag.Store(false)
	}
}

// notify wakes the other side of await if it sleeps (after ready() was made
// true).
func notify(flag *atomic.Bool, ch chan struct{}) {
	if flag.Load() {
		select {
		case ch <- struct{}{}:
		default: // a token is there already
		}
	}
}

// Threads is the number of threads that run a section (the caller included).
func (p *Pool) Threads() int { return p.threads }

// Parallel calls fn over [0,n) split into at most Threads() contiguous
// ranges whose sizes are multiples of grain (except the last). It returns
// when every range is done. fn must not call Parallel on the same pool.
func (p *Pool) Parallel(n, grain int, fn func(start, end int)) { p.ParallelMin(n, grain, 1, fn) }

// ParallelMin is Parallel with about minItems items or more in every range
// (as far as n and grain allow): work too small to be worth handing to
// another thread runs on the caller's alone. The ranges still depend only on n, grain,
// minItems and the thread count.
func (p *Pool) ParallelMin(n, grain, minItems int, fn func(start, end int)) {
	p.section(n, grain, minItems, 1, fn)
}

// ParallelBalanced is ParallelMin with the work cut into balanceChunks
// ranges per thread, which the threads take one after another: a thread
// that runs slower (another process on its core, a colder cache) does
// fewer of them instead of keeping the others waiting. The ranges are
// fixed as before (they depend on n, grain, minItems and the thread count
// only); which thread computes one is not, so fn's result for a range
// must not depend on the thread (true of the matrix products: each output
// row is computed on its own).
func (p *Pool) ParallelBalanced(n, grain, minItems int, fn func(start, end int)) {
	p.section(n, grain, minItems, balanceChunks, fn)
}

// balanceChunks is ParallelBalanced's ranges per thread.
const balanceChunks = 4

// section runs fn over [0, n) in ranges of whole grains of at least
// minItems items: one range per thread, or chunks ranges per thread that
// the threads take from a shared counter.
func (p *Pool) section(n, grain, minItems, chunks int, fn func(start, end int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	units := (n + grain - 1) / grain
	parts := min(p.threads, units, max(1, n/max(minItems, 1)))
	if parts <= 1 {
		fn(0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed { // no workers left: the caller does it all
		fn(0, n)
		return
	}
	// Split units as evenly as possible; the first ranges get one more unit.
	d := &p.dyn
	d.fn, d.n, d.grain, d.parts = fn, n, grain, parts
	d.ranges = min(units, parts*max(chunks, 1))
	d.per, d.extra = units/d.ranges, units%d.ranges
	d.next.Store(int64(parts))
	for i := 1; i < parts; i++ {
		w := p.workers[i-1]
		w.first = i
		w.posted.Add(1)
		notify(&w.asleep, w.wake)
	}
	// The workers are waited for even when fn panics on the caller's
	// ranges (a recovered panic must not leave them reading this section
	// while the next one is set up).
	defer func() {
		for _, w := range p.workers[:parts-1] {
			target := w.posted.Load()
			await(func() bool { return w.done.Load() >= target }, &w.waiting, w.finished, p.spin)
		}
		d.fn = nil
	}()
	p.takeRanges(0)
}

// ranges is the current section: fn over ranges of units of grain items,
// the first extra ranges one unit longer; next is the next range to take.
type ranges struct {
	fn                                  func(start, end int)
	n, grain, parts, ranges, per, extra int
	next                                atomic.Int64
}

// bound is where range i starts.
func (d *ranges) bound(i int) int {
	u := i*d.per + min(i, d.extra)
	return min(u*d.grain, d.n)
}

// takeRanges runs range first (each thread's own first range, so that
// with one range per thread the split is the static one), then ranges from
// the shared counter until none is left.
func (p *Pool) takeRanges(first int) {
	d := &p.dyn
	d.fn(d.bound(first), d.bound(first+1))
	if d.ranges == d.parts {
		return // one range each: the static split
	}
	for i := int(d.next.Add(1) - 1); i < d.ranges; i = int(d.next.Add(1) - 1) {
		d.fn(d.bound(i), d.bound(i+1))
	}
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, w := range p.workers {
		w.quit = true
		w.posted.Add(1)
		notify(&w.asleep, w.wake)
	}
	p.wg.Wait()
}
