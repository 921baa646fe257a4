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

// slot is a request handed to the scheduler.
type slot struct {
	ctx  context.Context
	g    *generation
	err  error
	done chan struct{}
}

// scheduler is the continuous batcher: one goroutine owns the model and
// runs every active generation's pending tokens through one ForwardLast per
// step. Requests join and leave between steps.
type scheduler struct {
	e     *Engine
	joins chan *slot
	quit  chan struct{}
	exit  chan struct{}
	once  sync.Once
}

func (e *Engine) startScheduler() {
	s := &scheduler{e: e, joins: make(chan *slot), quit: make(chan struct{}), exit: make(chan struct{})}
	e.sched = s
	go s.loop()
}

// stop ends the loop; requests still there get ErrClosed.
func (s *scheduler) stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.exit
}

// submit runs g through the scheduler and waits for its end.
func (s *scheduler) submit(ctx context.Context, g *generation) (Result, error) {
	sl := &slot{ctx: ctx, g: g, done: make(chan struct{})}
	select {
	case s.joins <- sl:
	case <-s.quit:
		return Result{}, ErrClosed
	}
	<-sl.done
	if sl.err != nil {
		return g.res, sl.err
	}
	return g.res, g.parseErr()
}

// end finishes a slot: frees its sequence and wakes its caller.
func (s *scheduler) end(sl *slot, why Finish, err error) {
	func() {
		defer func() {
			if r := recover(); r != nil && err == nil {
				err = fmt.Errorf("engine: panic while handling the output: %v", r)
			}
		}()
		sl.g.finish(why)
	}()
	if sl.g.seq != nil {
		sl.g.seq.Free()
		sl.g.seq = nil
	}
	sl.err = err
	close(sl.done)
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

// publishKV records the KV use of the active sequences (Engine.KVUse).
func (s *scheduler) publishKV(active []*slot, reserved int) {
	filled := 0
	for _, sl := range active {
		filled += sl.g.seq.Len()
	}
	s.e.kvFilled.Store(int64(filled))
	s.e.kvReserved.Store(int64(reserved))
}

func (s *scheduler) loop() {
	defer close(s.exit)
	e := s.e
	var active, waiting []*slot
	kvUsed := 0 // positions reserved by the active sequences
	defer func() {
		for _, sl := range append(active, waiting...) {
			s.end(sl, FinishError, ErrClosed)
		}
	}()
	kv := tensor.F16
	if e.opts.F32KV {
		kv = tensor.F32
	}
	for {
		// Wait for work when idle, else take whatever joined.
		if len(active) == 0 && len(waiting) == 0 {
			s.publishKV(nil, 0)
			select {
			case sl := <-s.joins:
				waiting = append(waiting, sl)
			case <-s.quit:
				return
			}
		}
	drain:
		for {
			select {
			case sl := <-s.joins:
				waiting = append(waiting, sl)
			case <-s.quit:
				return
			default:
				break drain
			}
		}
		// Cancelled requests leave (waiting ones without ever running).
		keep := waiting[:0]
		for _, sl := range waiting {
			if err := sl.ctx.Err(); err != nil {
				s.end(sl, FinishCancelled, err)
			} else {
				keep = append(keep, sl)
			}
		}
		waiting = keep
		keep = active[:0]
		for _, sl := range active {
			if err := sl.ctx.Err(); err != nil {
				kvUsed -= sl.g.seq.Cap()
				s.end(sl, FinishCancelled, err)
			} else {
				keep = append(keep, sl)
			}
		}
		active = keep
		// Admission: a free slot and room in the KV budget, first come
		// first served (an oversized request waits until it runs alone).
		for len(waiting) > 0 && len(active) < e.opts.Batch {
			sl := waiting[0]
			c := s.capacity(sl.g)
			if len(active) > 0 && e.opts.KVBudget > 0 && kvUsed+c > e.opts.KVBudget {
				break
			}
			waiting = waiting[1:]
			seq, err := e.model.NewSequence(gemma.SequenceOptions{Capacity: c, KV: kv, Step: e.opts.Step})
			if err != nil {
				s.end(sl, FinishError, err)
				continue
			}
			sl.g.seq = seq
			kvUsed += c
			if err := sl.g.prepare(); err != nil {
				// Encoding an image failed: this request ends, the
				// others go on.
				kvUsed -= c
				s.end(sl, FinishError, err)
				continue
			}
			active = append(active, sl)
		}
		s.publishKV(active, kvUsed)
		if len(active) == 0 {
			continue
		}
		// Gather: every decoding generation's token first, then prompt
		// chunks within the step's token budget, oldest request first.
		// An image is fed whole (its rows attend to each other), even
		// past the budget.
		budget := e.opts.Budget
		d := e.model.Config.NEmbd
		var seqs []*gemma.Sequence
		var ins []gemma.Input
		var fed []*slot
		for _, sl := range active {
			if sl.g.fed >= len(sl.g.prompt.keys) {
				seqs, ins, fed = append(seqs, sl.g.seq), append(ins, sl.g.pending()), append(fed, sl)
				budget--
			}
		}
		for _, sl := range active {
			if sl.g.fed < len(sl.g.prompt.keys) && (budget > 0 || len(fed) == 0) {
				in := sl.g.pending()
				if len(in.Tokens) > max(budget, 1) {
					in.Tokens = in.Tokens[:max(budget, 1)]
				}
				budget -= in.Len(d)
				seqs, ins, fed = append(seqs, sl.g.seq), append(ins, in), append(fed, sl)
			}
		}
		t0 := time.Now()
		logits, err := e.model.ForwardInputs(seqs, ins, false)
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
				kvUsed -= sl.g.seq.Cap()
				s.end(sl, FinishError, err)
			}
			active = without(active, fed)
			continue
		}
		var gone []*slot
		for i, sl := range fed {
			if err := safeConsume(sl.g, ins[i].Len(d), logits[i]); err != nil {
				kvUsed -= sl.g.seq.Cap()
				s.end(sl, FinishError, err)
				gone = append(gone, sl)
			} else if sl.g.done {
				kvUsed -= sl.g.seq.Cap()
				s.end(sl, sl.g.res.Finish, nil)
				gone = append(gone, sl)
			}
		}
		active = without(active, gone)
	}
}

// safeConsume is consume with a panic (in the caller's event callback, say)
// turned into that request's error, so that the other requests go on.
func safeConsume(g *generation, n int, logits []float32) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine: panic while handling the output: %v", r)
		}
	}()
	return g.consume(n, logits)
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
