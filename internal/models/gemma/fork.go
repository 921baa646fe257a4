package gemma

import (
	"fmt"

	"mica/internal/nn"
)

// CanShare reports whether s still holds everything a sequence continuing
// after its first n positions needs (0 < n ≤ Len): global layers keep every
// position, but a sliding-window ring keeps only its last ring positions,
// and the next query (at position n) sees positions n-Window+1 … n-1. So n
// can be shared while the ring still holds max(0, n-Window+1) … n-1: when
// s has gone on at most Step positions past n, or the whole prefix still
// lies in the ring. The same rule decides Truncate.
func (s *Sequence) CanShare(n int) bool {
	if n <= 0 || n > s.pos || s.broken || s.cap == 0 {
		return false
	}
	return s.ring == s.cap || max(0, n-s.m.Config.Window+1) >= s.pos-s.ring
}

// CopyPrefix makes the empty sequence dst hold s's first n positions, as if
// it had computed them itself: global layers' rows 0…n-1, and in the
// sliding-window rings the positions dst's own ring would hold after n
// positions that s still has, each in the slot dst would have written it to
// (so that attention sums in the same order, bit for bit). Positions s no
// longer holds stay masked in dst; CanShare(n) guarantees the window needs
// none of them. Both sequences must belong to the same model and use the
// same KV type; s is only read.
func (s *Sequence) CopyPrefix(dst *Sequence, n int) error {
	switch {
	case dst == nil || dst.m != s.m:
		return fmt.Errorf("gemma: copy prefix: the sequences belong to different models")
	case dst == s:
		return fmt.Errorf("gemma: copy prefix: a sequence cannot copy into itself")
	case dst.cap == 0 || s.cap == 0:
		return fmt.Errorf("gemma: copy prefix: a sequence was freed")
	case dst.pos != 0:
		return fmt.Errorf("gemma: copy prefix: the destination holds %d positions; it must be empty", dst.pos)
	case n > dst.cap:
		return fmt.Errorf("gemma: copy prefix: %d positions exceed the destination's capacity of %d", n, dst.cap)
	case !s.CanShare(n):
		return fmt.Errorf("gemma: copy prefix: the source (%d positions, sliding ring of %d) cannot give its first %d positions", s.pos, s.ring, n)
	}
	// The positions dst's ring holds after n positions, and the oldest
	// position s's ring still holds.
	from := max(0, n-dst.ring)
	have := 0
	if s.ring < s.cap {
		have = max(0, s.pos-s.ring)
	}
	p := &nn.Pass{B: s.m.be}
	defer p.Free()
	for il, l := range s.m.Config.Layers {
		if s.k[il] == nil {
			continue
		}
		if s.k[il].DType != dst.k[il].DType {
			return fmt.Errorf("gemma: copy prefix: layer %d: KV type %s into %s", il, s.k[il].DType, dst.k[il].DType)
		}
		if !l.Sliding {
			p.Copy(p.Rows(s.k[il], 0, n), p.Rows(dst.k[il], 0, n))
			p.Copy(p.Rows(s.v[il], 0, n), p.Rows(dst.v[il], 0, n))
			continue
		}
		// Runs of positions contiguous in both rings.
		for q := max(from, have); q < n && p.Err == nil; {
			a, b := q%s.ring, q%dst.ring
			run := min(n-q, s.ring-a, dst.ring-b)
			p.Copy(p.Rows(s.k[il], a, a+run), p.Rows(dst.k[il], b, b+run))
			p.Copy(p.Rows(s.v[il], a, a+run), p.Rows(dst.v[il], b, b+run))
			q += run
		}
	}
	if p.Err != nil {
		return fmt.Errorf("gemma: copy prefix: %w", p.Err)
	}
	for i := range dst.slot {
		dst.slot[i] = masked
	}
	for q := max(from, have); q < n; q++ {
		dst.slot[q%dst.ring] = int32(q)
	}
	dst.used = min(dst.ring, n)
	dst.pos, dst.broken = n, false
	return nil
}
