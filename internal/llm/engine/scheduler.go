package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"mica/internal/models/gemma"
	"mica/internal/tensor"
)

// DefaultBudget is Options.Budget when unset: the most tokens one batched
// step feeds.
const DefaultBudget = 512

// ErrClosed is returned to requests still running or waiting when the engine
// is closed.
var ErrClosed = errors.New("engine: the engine was closed")

// BatchStats describes one batched forward step, for metrics.
type BatchStats struct {
	// Sequences is the batch size: the generations fed in the step.
	Sequences int
	// Tokens is the tokens fed (decode tokens plus prompt chunks).
	Tokens int
	// Waiting is the requests queued for a free slot after the step.
	Waiting int
	// Duration is the forward call's time.
	Duration time.Duration
}

// slot is one answer of a request handed to the scheduler.
type slot struct {
	ctx  context.Context
	g    *generation
	err  error
	done chan struct{}
	// leader is the request's first answer when it asked for several:
	// this one joins once the leader has fed the prompt but its last
	// position, and copies it (choices.go).
	leader *slot
	out    *outbox // nil: no callback
	ended  bool
	// pausedAt is when the slot was first found with a full outbox
	// (zero: not paused).
	pausedAt time.Time
}

// scheduler is the continuous batcher: one goroutine owns the model and
// runs every active generation's pending tokens through one ForwardLast per
// step. Requests join and leave between steps.
type scheduler struct {
	e     *Engine
	joins chan []*slot
	quit  chan struct{}
	exit  chan struct{}
	// wake (1 buffered) rouses a loop with nothing to feed: an outbox
	// drained, a request was cancelled.
	wake chan struct{}
	once sync.Once
	idle []idleSeq // finished sequences kept for prefix reuse, oldest first
	kv   tensor.DType
	// Reused from step to step: the logits rows, the step's samplings and
	// the errors of the generations that failed in it.
	logits []float32
	picks  []pickJob
	errs   map[*slot]error
}

func (e *Engine) startScheduler() {
	s := &scheduler{e: e, joins: make(chan []*slot), quit: make(chan struct{}), exit: make(chan struct{}),
		wake: make(chan struct{}, 1), kv: e.kvType(), errs: map[*slot]error{}}
	e.sched = s
	go s.loop()
}

// stop ends the loop; requests still there get ErrClosed.
func (s *scheduler) stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.exit
}

// submit runs a request's answers through the scheduler and waits for
// their end. Events go to onEvent through an outbox (outbox.go), so a slow
// callback never holds up the batch.
func (s *scheduler) submit(ctx context.Context, gens []*generation, onEvent func(Event)) ([]Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var out *outbox
	if onEvent != nil {
		out = newOutbox(onEvent, s.e.opts.StreamBuffer, s.wake, cancel)
		defer func() {
			if ctx.Err() != nil {
				out.discard() // cancelled: nobody reads the rest
			}
			out.close()
			out.wait()
		}()
	}
	slots := make([]*slot, len(gens))
	for i, g := range gens {
		slots[i] = &slot{ctx: ctx, g: g, done: make(chan struct{}), out: out}
		if i > 0 {
			slots[i].leader = slots[0]
		}
		if out != nil {
			g.onEvent = out.put
		}
	}
	stop := context.AfterFunc(ctx, func() { signal(s.wake) })
	defer stop()
	select {
	case s.joins <- slots:
	case <-s.quit:
		return nil, ErrClosed
	}
	res := make([]Result, len(slots))
	var err error
	for i, sl := range slots {
		<-sl.done
		res[i] = sl.g.res
		if err == nil {
			err = sl.err
		}
	}
	if errors.Is(err, ErrSlowReader) {
		// Nobody reads this request's events any more: the deferred
		// close discards them instead of waiting for the reader.
		cancel(ErrSlowReader)
	}
	if err == nil {
		for _, sl := range slots {
			if err = sl.g.parseErr(); err != nil {
				break
			}
		}
	}
	return res, err
}

// end finishes a slot: keeps its sequence for prefix reuse (or frees it)
// and wakes its caller.
func (s *scheduler) end(sl *slot, why Finish, err error) {
	func() {
		defer func() {
			if r := recover(); r != nil && err == nil {
				err = fmt.Errorf("engine: panic while handling the output: %v", r)
			}
		}()
		sl.g.finish(why)
	}()
	if seq := sl.g.seq; seq != nil {
		sl.g.seq = nil
		if err == nil || why == FinishCancelled {
			s.keep(seq, sl.g)
		} else {
			seq.Free()
		}
	}
	sl.err, sl.ended = err, true
	close(sl.done)
}

// cancelled returns why a slot's context ended: a panic in its callback
// (FinishError) or the caller's cancellation.
func cancelled(sl *slot) (Finish, error) {
	err := context.Cause(sl.ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return FinishCancelled, err
	}
	return FinishError, err
}

// capacity is the positions a request's sequence needs: the prompt plus its
// token limit, within the context.
func (s *scheduler) capacity(g *generation) int {
	c := s.e.opts.Context
	if g.maxTokens > 0 {
		c = min(c, len(g.prompt.keys)+g.maxTokens)
	}
	return c
}

// kvUse sums the positions the active and the kept sequences fill and
// reserve.
func (s *scheduler) kvUse(active []*slot) (filled, reserved int) {
	for _, sl := range active {
		filled, reserved = filled+sl.g.seq.Len(), reserved+sl.g.seq.Cap()
	}
	for _, is := range s.idle {
		filled, reserved = filled+is.seq.Len(), reserved+is.seq.Cap()
	}
	return filled, reserved
}

// publishKV records the KV use (Engine.KVUse).
func (s *scheduler) publishKV(active []*slot) {
	filled, reserved := s.kvUse(active)
	s.e.kvFilled.Store(int64(filled))
	s.e.kvReserved.Store(int64(reserved))
}

// ready reports whether a waiting slot may join: an answer after the first
// waits until the first has fed all of the prompt but its last position.
func ready(sl *slot) bool {
	l := sl.leader
	return l == nil || l.ended || (l.g.seq != nil && l.g.fed >= len(l.g.prompt.keys)-1)
}

func (s *scheduler) loop() {
	defer close(s.exit)
	e := s.e
	var active, waiting []*slot
	defer func() {
		for _, sl := range append(active, waiting...) {
			s.end(sl, FinishError, ErrClosed)
		}
		for _, is := range s.idle {
			is.seq.Free()
		}
		s.idle = nil
		s.publishKV(nil)
	}()
	for {
		// Wait for work when idle, else take whatever joined.
		if len(active) == 0 && len(waiting) == 0 {
			s.publishKV(nil)
			select {
			case sls := <-s.joins:
				waiting = append(waiting, sls...)
			case <-s.quit:
				return
			}
		}
	drain:
		for {
			select {
			case sls := <-s.joins:
				waiting = append(waiting, sls...)
			case <-s.quit:
				return
			default:
				break drain
			}
		}
		// Cancelled requests leave (waiting ones without ever running).
		keep := waiting[:0]
		for _, sl := range waiting {
			if sl.ctx.Err() != nil {
				why, err := cancelled(sl)
				s.end(sl, why, err)
			} else {
				keep = append(keep, sl)
			}
		}
		waiting = keep
		keep = active[:0]
		for _, sl := range active {
			if sl.ctx.Err() != nil {
				why, err := cancelled(sl)
				s.end(sl, why, err)
			} else {
				keep = append(keep, sl)
			}
		}
		active = keep
		// Admission: a free slot and room in the KV budget, first come
		// first served (an oversized request waits until it runs alone);
		// later answers of a request wait for the first one's prefill, and
		// a request whose prompt starts like one being prefilled waits for
		// that part (prefix.go).
		keep = waiting[:0]
		for i, sl := range waiting {
			if len(active) >= e.opts.Batch {
				keep = append(keep, waiting[i:]...)
				break
			}
			if !ready(sl) || s.soon(sl, active) {
				keep = append(keep, sl)
				continue
			}
			ok, err := s.admit(sl, active)
			if err != nil {
				s.end(sl, FinishError, err)
				continue
			}
			if !ok {
				keep = append(keep, waiting[i:]...)
				break
			}
			active = append(active, sl)
		}
		waiting = keep
		s.publishKV(active)
		if len(active) == 0 {
			continue
		}
		// Gather: every decoding generation's token first, then prompt
		// chunks within the step's token budget, oldest request first.
		// An image is fed whole (its rows attend to each other), even
		// past the budget. A request whose reader is behind (a full
		// outbox) is paused, and cancelled once paused for too long.
		budget := e.opts.Budget
		d := e.model.Config.NEmbd
		var seqs []*gemma.Sequence
		var ins []gemma.Input
		var fed, stalled []*slot
		var nextStall time.Duration
		now := time.Now()
		paused := func(sl *slot) bool {
			if sl.out == nil || !sl.out.full() {
				sl.pausedAt = time.Time{}
				return false
			}
			if sl.pausedAt.IsZero() {
				sl.pausedAt = now
			}
			left := e.opts.StallTimeout - now.Sub(sl.pausedAt)
			if left <= 0 {
				stalled = append(stalled, sl)
			} else if nextStall == 0 || left < nextStall {
				nextStall = left
			}
			return true
		}
		for _, sl := range active {
			if sl.g.fed >= len(sl.g.prompt.keys) && !paused(sl) {
				seqs, ins, fed = append(seqs, sl.g.seq), append(ins, sl.g.pending()), append(fed, sl)
				budget--
			}
		}
		for _, sl := range active {
			if sl.g.fed < len(sl.g.prompt.keys) && (budget > 0 || len(fed) == 0) && !paused(sl) {
				in := sl.g.pending()
				if len(in.Tokens) > max(budget, 1) {
					in.Tokens = in.Tokens[:max(budget, 1)]
				}
				budget -= in.Len(d)
				seqs, ins, fed = append(seqs, sl.g.seq), append(ins, in), append(fed, sl)
			}
		}
		for _, sl := range stalled {
			s.end(sl, FinishCancelled, ErrSlowReader)
		}
		active = without(active, stalled)
		if len(fed) == 0 && len(stalled) > 0 {
			continue // their places are free: admit the waiting requests
		}
		if len(fed) == 0 {
			// Every running request is paused: wait for a reader, a
			// cancellation, a new request or the next stall deadline.
			var timer <-chan time.Time
			var t *time.Timer
			if nextStall > 0 {
				t = time.NewTimer(nextStall)
				timer = t.C
			}
			quit := false
			select {
			case sls := <-s.joins:
				waiting = append(waiting, sls...)
			case <-s.wake:
			case <-timer:
			case <-s.quit:
				quit = true
			}
			if t != nil {
				t.Stop()
			}
			if quit {
				return
			}
			continue
		}
		t0 := time.Now()
		var logits [][]float32
		var err error
		logits, s.logits, err = e.model.ForwardLastInto(seqs, ins, s.logits)
		if e.opts.OnBatch != nil {
			n := 0
			for _, in := range ins {
				n += in.Len(d)
			}
			e.opts.OnBatch(BatchStats{Sequences: len(seqs), Tokens: n, Waiting: len(waiting), Duration: time.Since(t0)})
		}
		if err != nil {
			// The sequences may be inconsistent: end every fed request.
			for _, sl := range fed {
				s.end(sl, FinishError, err)
			}
			active = without(active, fed)
			continue
		}
		s.consume(fed, ins, logits)
		var gone []*slot
		for _, sl := range fed {
			if err := s.errs[sl]; err != nil {
				s.end(sl, FinishError, err)
				gone = append(gone, sl)
			} else if sl.g.done {
				s.end(sl, sl.g.res.Finish, nil)
				gone = append(gone, sl)
			}
		}
		clear(s.errs)
		active = without(active, gone)
	}
}

// consume hands each fed generation its logits (generation.consume), with
// the samplers of the generations that sample in this step run in
// parallel, on as many goroutines as the backend has threads (the backend
// is idle meanwhile). Errors are left in s.errs.
func (s *scheduler) consume(fed []*slot, ins []gemma.Input, logits [][]float32) {
	d := s.e.model.Config.NEmbd
	picks := s.picks[:0]
	for i, sl := range fed {
		want, err := safeCall(func() (bool, error) { return sl.g.advance(ins[i].Len(d), logits[i]) })
		if err != nil {
			s.errs[sl] = err
		} else if want {
			picks = append(picks, pickJob{sl: sl, logits: logits[i]})
		}
	}
	s.picks = picks
	parallel(len(picks), s.e.model.Backend().Threads(), func(i int) {
		j := &picks[i]
		j.id, j.err = j.sl.g.pick(j.logits)
	})
	for _, j := range picks {
		err := j.err
		if err == nil {
			_, err = safeCall(func() (bool, error) { return false, j.sl.g.take(j.id) })
		}
		if err != nil {
			s.errs[j.sl] = err
		}
	}
	clear(picks) // hold no finished request until the next step
}

// pickJob is one generation's sampling in a step.
type pickJob struct {
	sl     *slot
	logits []float32
	id     int32
	err    error
}

// parallel calls f(i) for every i in [0, n) on up to threads goroutines,
// the caller's included.
func parallel(n, threads int, f func(i int)) {
	threads = min(threads, n)
	if threads <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	for t := 1; t < threads; t++ {
		wg.Go(func() {
			for i := t; i < n; i += threads {
				f(i)
			}
		})
	}
	for i := 0; i < n; i += threads {
		f(i)
	}
	wg.Wait()
}

// safeCall runs f with a panic (in the caller's event callback, say)
// turned into an error, so that the other requests go on.
func safeCall(f func() (bool, error)) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine: panic while handling the output: %v", r)
		}
	}()
	return f()
}

// without returns l less the slots in drop.
func without(l, drop []*slot) []*slot {
	if len(drop) == 0 {
		return l
	}
	gone := map[*slot]bool{}
	for _, sl := range drop {
		gone[sl] = true
	}
	keep := l[:0]
	for _, sl := range l {
		if !gone[sl] {
			keep = append(keep, sl)
		}
	}
	return keep
}
