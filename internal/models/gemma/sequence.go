package gemma

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/tensor"
)

// SequenceOptions configure a sequence's KV cache.
type SequenceOptions struct {
	// Capacity is the most positions the sequence holds (its context).
	Capacity int
	// KV is the cache type, tensor.F32 (the zero value) or tensor.F16
	// (llama.cpp's default, and what its reference logits use).
	KV tensor.DType
	// Step is the most tokens of this sequence one internal step processes
	// (default 512); Forward splits longer inputs. Sliding-window layers
	// keep a ring of Window+Step-1 positions instead of Capacity.
	Step int
}

// DefaultStep is SequenceOptions.Step when unset.
const DefaultStep = 512

// Sequence is one token stream's state: its position and KV cache. Global
// layers cache every position ([capacity, kvHeads, headDim] for K and for
// V); sliding-window layers cache a ring of the last ring positions, which is
// all their attention can see. KV-shared layers own no cache.
type Sequence struct {
	m      *Model
	cap    int
	pos    int
	step   int
	ring   int     // slots of the sliding layers' caches (== cap: no ring)
	used   int     // ring slots ever written
	slot   []int32 // position held by each ring slot
	broken bool    // a failed Forward left the cache inconsistent
	k, v   []*compute.Tensor
}

// masked is a ring-slot position no query can see (far outside any window).
const masked = math.MinInt32 / 2

// NewSequence allocates a sequence's cache.
func (m *Model) NewSequence(o SequenceOptions) (*Sequence, error) {
	c := m.Config
	if o.Capacity <= 0 {
		return nil, fmt.Errorf("gemma: sequence capacity %d must be positive", o.Capacity)
	}
	if o.KV != tensor.F32 && o.KV != tensor.F16 {
		return nil, fmt.Errorf("gemma: KV cache type %s: want F32 or F16", o.KV)
	}
	if o.Step <= 0 {
		o.Step = DefaultStep
	}
	s := &Sequence{m: m, cap: o.Capacity, step: min(o.Step, o.Capacity), ring: o.Capacity,
		k: make([]*compute.Tensor, c.NLayer), v: make([]*compute.Tensor, c.NLayer)}
	if c.Window > 0 && c.Window+s.step-1 < s.ring {
		s.ring = c.Window + s.step - 1
	}
	s.slot = make([]int32, s.ring)
	for il, l := range c.Layers {
		if !c.OwnsKV(il) {
			continue
		}
		rows := s.cap
		if l.Sliding {
			rows = s.ring
		}
		var err error
		if s.k[il], err = m.be.Alloc(o.KV, rows, l.NHeadKV, l.HeadDim); err == nil {
			s.v[il], err = m.be.Alloc(o.KV, rows, l.NHeadKV, l.HeadDim)
		}
		if err != nil {
			s.Free()
			return nil, fmt.Errorf("gemma: KV cache for %d positions: %w", o.Capacity, err)
		}
	}
	if len(m.kpos) < s.cap {
		m.kpos = make([]int32, s.cap)
		for i := range m.kpos {
			m.kpos[i] = int32(i)
		}
	}
	return s, nil
}

// Len is the number of positions the sequence holds.
func (s *Sequence) Len() int { return s.pos }

// Cap is the most positions the sequence can hold.
func (s *Sequence) Cap() int { return s.cap }

// Truncate drops positions n and later (n ≤ Len), e.g. to reuse a prompt
// prefix. Sliding-window rings only keep recent positions, so n must leave
// a full window still cached (n = 0 always works).
func (s *Sequence) Truncate(n int) error {
	if n < 0 || n > s.pos {
		return fmt.Errorf("gemma: truncate to %d of %d positions", n, s.pos)
	}
	if s.broken && n != 0 {
		return fmt.Errorf("gemma: truncate to %d: a failed Forward left the cache inconsistent; only Truncate(0) is possible", n)
	}
	if n > 0 && s.ring < s.cap && max(0, n-s.m.Config.Window+1) < s.pos-s.ring {
		return fmt.Errorf("gemma: cannot truncate to %d of %d positions: the sliding-window cache (%d slots) no longer holds positions %d…%d",
			n, s.pos, s.ring, max(0, n-s.m.Config.Window+1), n-1)
	}
	for i, p := range s.slot[:s.used] {
		if int(p) >= n {
			s.slot[i] = masked
		}
	}
	if n == 0 {
		s.used = 0
	}
	s.pos, s.broken = n, false
	return nil
}

// Free releases the cache; the sequence cannot be used afterwards.
func (s *Sequence) Free() {
	for _, ts := range [][]*compute.Tensor{s.k, s.v} {
		for i, t := range ts {
			if t != nil {
				s.m.be.Free(t)
				ts[i] = nil
			}
		}
	}
	s.cap, s.pos = 0, 0
}

// stepSlots returns the ring's slot positions after writing n positions
// from s.pos (not yet committed) and the number of slots attention reads.
func (s *Sequence) stepSlots(n int) (slots []int32, used int) {
	slots = append([]int32(nil), s.slot...)
	for j := 0; j < n; j++ {
		p := s.pos + j
		slots[p%s.ring] = int32(p)
	}
	return slots, min(s.ring, max(s.used, s.pos+n))
}

// store writes rows [r0, r0+n) of k and v (the step's new positions) into
// layer il's cache: at their positions, or wrapped around the ring.
func (s *Sequence) store(p *fwd, il int, k, v *compute.Tensor, r0, n int) {
	rows := s.cap
	if s.m.Config.Layers[il].Sliding {
		rows = s.ring
	}
	for j := 0; j < n && p.Err == nil; {
		dst := (s.pos + j) % rows
		run := min(n-j, rows-dst)
		p.Copy(p.Rows(k, r0+j, r0+j+run), p.Rows(s.k[il], dst, dst+run))
		p.Copy(p.Rows(v, r0+j, r0+j+run), p.Rows(s.v[il], dst, dst+run))
		j += run
	}
}
