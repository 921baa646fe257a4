package engine

import (
	"mica/internal/models/gemma"
)

// Prefix reuse in the batcher. A joining request looks for the longest
// prefix of its prompt that some sequence holds: the running requests'
// (their prompts as fed so far, then their answers' tokens) and up to
// Options.PrefixCache finished ones kept after their requests ended
// (normally or cancelled; never after an error). Positions compare by
// posKey, so image positions match by the image's content and a
// conversation that goes on after an image reuses the cache through it.
// The rules, the single sequence's included:
//   - at least the prompt's last position is always fed again (its logits
//     are needed);
//   - an image is reused whole or not at all (its rows see each other);
//   - sliding-window layers: a prefix of n positions can be taken only
//     while the source's ring still holds the window the next position
//     sees, positions max(0, n-Window+1) … n-1 (gemma.Sequence.CanShare):
//     the source went on at most Step positions past n, or the whole
//     prefix lies in its ring. Otherwise nothing is reused from that
//     source (a shorter prefix would need older positions still).
//
// A kept sequence with room for the request (capacity ≥ prompt + max
// tokens) is taken over, cut to the prefix; otherwise the request gets a
// sequence of its own and the prefix is copied into it
// (gemma.Sequence.CopyPrefix puts every position where a fresh sequence
// would have it, so the answer is bit for bit the one computed without
// reuse). Kept sequences never make the running and kept ones more than
// Options.Batch, so the memory of Batch full sequences bounds them all
// (but for the moment a prefix is copied out of a kept sequence about to
// be dropped), nor pass the KV budget: they are dropped, oldest first, to
// make room.

// MinWaitShare is the shortest shared prefix a joining request waits for:
// when another request is still prefilling at least that many of the
// joining prompt's first positions, the joining one stays in the queue
// until they are computed and then copies them (requests that arrive
// together with one long system prompt compute it once).
const MinWaitShare = 32

// DefaultPrefixCache is Options.PrefixCache when unset.
const DefaultPrefixCache = 4

// idleSeq is a finished request's sequence kept for prefix reuse, with
// what its positions hold.
type idleSeq struct {
	seq  *gemma.Sequence
	keys []posKey
}

// keyAt is what position i (< g.seq.Len()) of g's sequence holds: the
// prompt, then the answer's tokens as they were fed.
func (g *generation) keyAt(i int) posKey {
	if i < len(g.prompt.keys) {
		return g.prompt.keys[i]
	}
	return posKey{tok: g.res.Tokens[i-len(g.prompt.keys)]}
}

// shared is the longest prefix of p (short of its last position) that a
// sequence of have positions, holding key(i) at i, can give.
func shared(p *plan, seq *gemma.Sequence, key func(int) posKey) int {
	have := seq.Len()
	n := 0
	for n < len(p.keys)-1 && n < have && p.keys[n] == key(n) {
		n++
	}
	n = p.imageStart(n)
	if n == 0 || !seq.CanShare(n) {
		return 0
	}
	return n
}

// keep files a finished request's sequence for prefix reuse, dropping the
// oldest beyond Options.PrefixCache.
func (s *scheduler) keep(seq *gemma.Sequence, g *generation) {
	if s.e.opts.PrefixCache < 0 || seq.Len() == 0 {
		seq.Free()
		return
	}
	keys := make([]posKey, seq.Len())
	for i := range keys {
		keys[i] = g.keyAt(i)
	}
	s.idle = append(s.idle, idleSeq{seq, keys})
	for len(s.idle) > s.e.opts.PrefixCache {
		s.drop(0)
	}
}

// drop frees kept sequence i.
func (s *scheduler) drop(i int) {
	s.idle[i].seq.Free()
	s.idle = append(s.idle[:i], s.idle[i+1:]...)
}

// admit gives a waiting slot its sequence, with the longest prompt prefix
// any sequence can give, and prepares its inputs. It reports false when
// the KV budget has no room while others run (the slot waits).
func (s *scheduler) admit(sl *slot, active []*slot) (bool, error) {
	e, g := s.e, sl.g
	c := s.capacity(g)
	// The best source: a running sequence or a kept one.
	var src *gemma.Sequence
	n, from := 0, -1 // from: index in s.idle, or -1
	for _, a := range active {
		if k := shared(g.prompt, a.g.seq, a.g.keyAt); k > n {
			n, src, from = k, a.g.seq, -1
		}
	}
	for i, is := range s.idle {
		if k := shared(g.prompt, is.seq, func(j int) posKey { return is.keys[j] }); k > n {
			n, src, from = k, is.seq, i
		}
	}
	var seq *gemma.Sequence
	if from >= 0 && src.Cap() >= c {
		// Take the kept sequence over: no copy, no new memory.
		if err := src.Truncate(n); err != nil {
			return false, err
		}
		seq = src
		s.idle = append(s.idle[:from], s.idle[from+1:]...)
	} else {
		// Make room by dropping kept sequences, oldest first: the running
		// and kept sequences together stay within Batch (the memory a
		// batch of full sequences takes) and within the KV budget. The
		// source goes last, once copied.
		b := e.opts.KVBudget
		_, used := s.kvUse(active)
		over := func() bool {
			return len(active)+1+len(s.idle) > e.opts.Batch || (b > 0 && used+c > b)
		}
		for i := 0; over() && i < len(s.idle); {
			if s.idle[i].seq == src {
				i++
				continue
			}
			used -= s.idle[i].seq.Cap()
			s.drop(i)
		}
		dropSrc := over() && from >= 0 // only the source is left to drop
		if dropSrc {
			used -= src.Cap()
		}
		if b > 0 && used+c > b && len(active) > 0 {
			return false, nil // wait for a running request to end
		}
		if dropSrc {
			defer s.dropSeq(src)
		}
		var err error
		seq, err = e.model.NewSequence(gemma.SequenceOptions{Capacity: c, KV: s.kv, Step: e.opts.Step})
		if err != nil {
			return false, err
		}
		if n > 0 {
			if err := src.CopyPrefix(seq, n); err != nil {
				seq.Free()
				return false, err
			}
		}
	}
	g.seq, g.fed, g.res.Usage.CachedTokens = seq, n, n
	if err := g.prepare(); err != nil {
		// Encoding an image failed: this request ends, the others go on.
		return false, err
	}
	e.reused.Add(int64(n))
	return true, nil
}

// dropSeq frees the kept sequence seq, if it is still kept.
func (s *scheduler) dropSeq(seq *gemma.Sequence) {
	for i, is := range s.idle {
		if is.seq == seq {
			s.drop(i)
			return
		}
	}
}

// soon reports whether a waiting slot should wait for a running request
// that is still prefilling a prefix of at least MinWaitShare positions of
// the slot's prompt.
func (s *scheduler) soon(sl *slot, active []*slot) bool {
	p := sl.g.prompt
	for _, a := range active {
		q := a.g.prompt
		if a.g.fed >= len(q.keys) || a.g.fed >= len(p.keys)-1 {
			continue // a is decoding, or already holds what sl could take
		}
		n := 0
		for n < len(p.keys)-1 && n < len(q.keys) && p.keys[n] == q.keys[n] {
			n++
		}
		if n = p.imageStart(n); n >= MinWaitShare && n > a.g.fed {
			return true
		}
	}
	return false
}
