package jobs

import (
	"sync"
	"time"
)

// EventType names what happened to a job.
type EventType string

const (
	EventQueued      EventType = "queued"
	EventStarted     EventType = "started"
	EventStep        EventType = "step" // progress moved; Preview says a new preview exists
	EventFinished    EventType = "finished"
	EventFailed      EventType = "failed"
	EventCancelled   EventType = "cancelled"
	EventInterrupted EventType = "interrupted"
	EventDeleted     EventType = "deleted"
	// EventReordered: the order of a model's queued jobs changed (Reorder,
	// SetPriority); Positions holds the new places of those that moved. It
	// goes to all-jobs subscribers only (JobID is "").
	EventReordered EventType = "reordered"
)

// terminal reports whether no further event of the job follows (except deleted).
func (t EventType) terminal() bool {
	return t == EventFinished || t == EventFailed || t == EventCancelled || t == EventInterrupted || t == EventDeleted
}

// Event is one change of one job.
type Event struct {
	Type     EventType
	JobID    string
	Model    string
	State    State
	Time     time.Time
	Progress ProgressState // for started and step events, and the last progress of terminal ones
	Preview  bool          // step events: a new preview is available (Queue.Preview)
	Error    string        // failed, cancelled, interrupted: why
	Result   *Result       // finished and interrupted
	Dropped  int           // events this subscriber lost to overflow since the previous one it received
	// Positions holds the new positions (as Job.Position: from 0, per
	// model) of the queued jobs of Model that a change moved other than by
	// a job leaving the queue: on queued events, the job itself and any
	// of lower priority it went ahead of; on reordered events, the jobs
	// whose place changed. A job that leaves the queue (started, or
	// cancelled while queued) moves every job after it up one place, which
	// no event spells out. Nil on other events, and when the store could
	// not be read (logged).
	Positions map[string]int
}

// broker fans events out to subscribers without ever blocking the
// publisher: each subscriber has a bounded pending list; a newer step event
// of a job replaces an older pending one (coalescing), and when the list is
// full the oldest step event (or, failing that, the oldest event) is dropped
// and counted.
type broker struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	limit  int
	closed bool
}

type subscriber struct {
	jobID   string // "" for all jobs
	mu      sync.Mutex
	pending []Event
	dropped int
	wake    chan struct{} // capacity 1
	done    chan struct{}
	once    sync.Once
	out     chan Event
}

func newBroker(limit int) *broker {
	return &broker{subs: map[*subscriber]struct{}{}, limit: limit}
}

// subscribe registers a subscriber; initial events (if any) are queued
// before anything published after the call.
func (b *broker) subscribe(jobID string, initial []Event) (<-chan Event, func()) {
	s := &subscriber{
		jobID: jobID,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		out:   make(chan Event),
	}
	for _, e := range initial {
		s.push(e, b.limit)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.out)
		return s.out, func() {}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.forward(b)
	cancel := func() {
		s.once.Do(func() { close(s.done) })
	}
	return s.out, cancel
}

func (b *broker) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.jobID == "" || s.jobID == e.JobID {
			s.push(e, b.limit)
		}
	}
}

func (b *broker) close() {
	b.mu.Lock()
	b.closed = true
	for s := range b.subs {
		s.once.Do(func() { close(s.done) })
	}
	b.mu.Unlock()
}

func (b *broker) remove(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

func (s *subscriber) push(e Event, limit int) {
	s.mu.Lock()
	if e.Type == EventStep {
		for i := len(s.pending) - 1; i >= 0; i-- {
			p := s.pending[i]
			if p.Type == EventStep && p.JobID == e.JobID {
				e.Preview = e.Preview || p.Preview
				s.pending = append(s.pending[:i], s.pending[i+1:]...)
				break
			}
		}
	}
	if len(s.pending) >= limit {
		drop := 0
		for i, p := range s.pending {
			if p.Type == EventStep {
				drop = i
				break
			}
		}
		s.pending = append(s.pending[:drop], s.pending[drop+1:]...)
		s.dropped++
	}
	s.pending = append(s.pending, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// forward hands pending events to the channel in order. A per-job
// subscription ends after the job's terminal event; every subscription ends
// when cancelled or when the queue closes. The channel is then closed.
func (s *subscriber) forward(b *broker) {
	defer close(s.out)
	defer b.remove(s)
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		e := s.pending[0]
		s.pending = s.pending[1:]
		e.Dropped, s.dropped = s.dropped, 0
		s.mu.Unlock()
		select {
		case s.out <- e:
		case <-s.done:
			return
		}
		if s.jobID != "" && e.Type.terminal() {
			return
		}
	}
}
