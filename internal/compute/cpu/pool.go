package cpu

import (
	"runtime"
	"sync"
)

// Pool is a fixed set of persistent worker goroutines. Work is split into
// contiguous chunks by index, deterministically: the chunk boundaries depend
// only on the item count and the grain, never on timing, so results that are
// computed per item are identical whatever the thread count.
//
// A Pool runs one parallel section at a time; concurrent callers are
// serialized (the models drive one step at a time per backend).
type Pool struct {
	threads int
	mu      sync.Mutex // one section at a time
	work    chan task
	wg      sync.WaitGroup
	closed  bool
}

type task struct {
	fn         func(start, end int)
	start, end int
	done       *sync.WaitGroup
}

// NewPool starts threads workers (threads <= 0 means runtime.NumCPU()). The
// calling goroutine also works, so threads-1 goroutines are started.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &Pool{threads: threads, work: make(chan task, threads)}
	for i := 0; i < threads-1; i++ {
		p.wg.Add(1)
		go p.worker()
	}
	return p
}

func (p *Pool) worker() {
	defer p.wg.Done()
	for t := range p.work {
		t.fn(t.start, t.end)
		t.done.Done()
	}
}

// Threads is the number of threads that run a section (the caller included).
func (p *Pool) Threads() int { return p.threads }

// Parallel calls fn over [0,n) split into at most Threads() contiguous
// ranges whose sizes are multiples of grain (except the last). It returns
// when every range is done. fn must not call Parallel on the same pool.
func (p *Pool) Parallel(n, grain int, fn func(start, end int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	units := (n + grain - 1) / grain
	parts := p.threads
	if parts > units {
		parts = units
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var done sync.WaitGroup
	done.Add(parts - 1)
	// Split units as evenly as possible; the first parts get one more unit.
	per, extra := units/parts, units%parts
	bound := func(i int) int {
		u := i*per + min(i, extra)
		return min(u*grain, n)
	}
	for i := 1; i < parts; i++ {
		p.work <- task{fn: fn, start: bound(i), end: bound(i + 1), done: &done}
	}
	fn(bound(0), bound(1))
	done.Wait()
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.work)
	p.wg.Wait()
}
