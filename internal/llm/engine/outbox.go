package engine

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Slow readers. The batcher never calls a request's event callback itself:
// it appends events to the request's outbox, and a goroutine of the request
// delivers them. A callback that blocks (a client that reads slowly, or not
// at all, behind a full TCP window) therefore delays only its own request.
// The outbox is bounded: while it holds Options.StreamBuffer events or
// more, the batcher pauses that request (feeds it nothing, so it samples
// nothing; it keeps its sequence) and feeds the others at full pace. A
// request paused for Options.StallTimeout is cancelled with ErrSlowReader,
// freeing its sequence. One step may add several events (a flushed stop
// string, a parsed tool call), so the bound can be passed by one step's
// events.

// Defaults of Options.StreamBuffer and Options.StallTimeout.
const (
	DefaultStreamBuffer = 256
	DefaultStallTimeout = 30 * time.Second
)

// ErrSlowReader ends a batched request whose events were not taken for
// Options.StallTimeout while its buffer was full.
var ErrSlowReader = errors.New("engine: the request's output was not read in time (its stream buffer stayed full); it was cancelled so that others go on")

// outbox is a request's bounded event queue and its delivery goroutine.
type outbox struct {
	mu      sync.Mutex
	queue   []Event
	closed  bool          // no more events will come
	ready   chan struct{} // wakes the delivery goroutine (1 buffered)
	drained chan struct{} // closed when the goroutine has returned
	bound   int
	// wake (1 buffered) is told when the queue drops below bound, so that
	// a batcher with only paused requests steps again.
	wake    chan<- struct{}
	err     error // a panic in the callback
	onPanic func(error)
}

// newOutbox starts delivering events to onEvent. onPanic is called (once,
// from the delivery goroutine) when onEvent panics; later events are
// dropped.
func newOutbox(onEvent func(Event), bound int, wake chan<- struct{}, onPanic func(error)) *outbox {
	o := &outbox{ready: make(chan struct{}, 1), drained: make(chan struct{}), bound: bound, wake: wake, onPanic: onPanic}
	go o.deliver(onEvent)
	return o
}

// put queues an event (never blocks).
func (o *outbox) put(ev Event) {
	o.mu.Lock()
	o.queue = append(o.queue, ev)
	o.mu.Unlock()
	signal(o.ready)
}

// full reports whether the request must pause.
func (o *outbox) full() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue) >= o.bound && o.err == nil
}

// close says no more events come; wait then returns once every event was
// delivered (or dropped after a panic).
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	signal(o.ready)
}

func (o *outbox) wait() { <-o.drained }

// discard drops the events not yet delivered (the request was cancelled:
// nobody reads them).
func (o *outbox) discard() {
	o.mu.Lock()
	o.queue = nil
	o.mu.Unlock()
}

func (o *outbox) deliver(onEvent func(Event)) {
	defer close(o.drained)
	for {
		o.mu.Lock()
		evs, closed := o.queue, o.closed
		o.queue = nil
		wasFull := len(evs) >= o.bound
		o.mu.Unlock()
		if wasFull {
			signal(o.wake) // the batcher may resume this request now
		}
		for _, ev := range evs {
			if err := o.call(onEvent, ev); err != nil {
				o.mu.Lock()
				o.err = err
				o.mu.Unlock()
				o.onPanic(err)
				o.drop()
				return
			}
		}
		if closed && len(evs) == 0 {
			return
		}
		if len(evs) == 0 {
			<-o.ready
		}
	}
}

// drop discards the rest after a panic, until closed.
func (o *outbox) drop() {
	for {
		o.mu.Lock()
		o.queue = nil
		closed := o.closed
		o.mu.Unlock()
		if closed {
			return
		}
		<-o.ready
	}
}

func (o *outbox) call(onEvent func(Event), ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine: panic while handling the output: %v", r)
		}
	}()
	onEvent(ev)
	return nil
}

// signal wakes a 1-buffered channel's reader without blocking.
func signal(c chan<- struct{}) {
	if c == nil {
		return
	}
	select {
	case c <- struct{}{}:
	default:
	}
}
