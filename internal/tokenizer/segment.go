package tokenizer

import (
	"math"
	"unicode/utf8"
)

// symbol is one piece of a word during merging: a span of the word's bytes,
// linked to its live neighbours.
type symbol struct {
	id         int32 // BPE: symbol id (vocabulary or extra), -1 unknown, -2 merged away
	start, end int32 // bytes of the word
	prev, next int32 // neighbours, -1 at the ends
}

// candidate is a possible merge of the symbols at pos and rpos.
type candidate struct {
	key  uint64 // order: priority in the high half, pos in the low half
	rpos int32  // right symbol
	a, b int32  // BPE: the ids the pair had when queued
	res  int32  // BPE: the merged id; SPM: the merged length in bytes
}

func (c *candidate) pos() int32 { return int32(uint32(c.key)) }

// bpeKey orders by merge rank, lower first, then by position.
func bpeKey(rank, pos int32) uint64 { return uint64(uint32(rank))<<32 | uint64(uint32(pos)) }

// spmKey orders by score, higher first, then by position.
func spmKey(score float32, pos int32) uint64 {
	b := math.Float32bits(score)
	if b>>31 != 0 {
		b = ^b
	} else {
		b |= 1 << 31
	} // now ascending with the score
	return uint64(^b)<<32 | uint64(uint32(pos))
}

// queue is a binary min-heap of candidates by key.
type queue struct {
	c []candidate
}

func (q *queue) less(i, j int) bool { return q.c[i].key < q.c[j].key }

func (q *queue) push(c candidate) {
	q.c = append(q.c, c)
	i := len(q.c) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.c[i], q.c[p] = q.c[p], q.c[i]
		i = p
	}
}

func (q *queue) pop() candidate {
	top := q.c[0]
	last := len(q.c) - 1
	q.c[0] = q.c[last]
	q.c = q.c[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= last {
			break
		}
		m := l
		if r := l + 1; r < last && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.c[i], q.c[m] = q.c[m], q.c[i]
		i = m
	}
	return top
}

// symID is the symbol id of a character (or of a malformed byte sequence):
// a vocabulary token or an extra merge text, -1 if neither.
func (t *Tokenizer) symID(s string) int32 {
	if r, n := utf8.DecodeRuneInString(s); n == len(s) && (r != utf8.RuneError || n > 1) {
		if id, ok := t.runeSym[r]; ok {
			return id
		}
		return -1
	}
	if id, ok := t.toID[s]; ok {
		return id
	}
	if id, ok := t.extraID[s]; ok {
		return id
	}
	return -1
}

// splitChars fills st.syms with one symbol per character of word, as
// llama.cpp splits (lead-byte lengths, so malformed UTF-8 never panics).
// With hfBytes, a character that is not a token becomes one symbol per byte
// token first (Hugging Face byte_fallback).
func (t *Tokenizer) splitChars(st *state, word string, withIDs bool) {
	syms := st.syms[:0]
	for i := 0; i < len(word); {
		n := charLen(word, i)
		id := int32(-1)
		if withIDs {
			id = t.symID(word[i : i+n])
			if id < 0 && t.hfBytes {
				for k := i; k < i+n; k++ {
					bid := t.byteID[word[k]]
					if bid < 0 {
						bid = t.unk
					}
					syms = append(syms, symbol{id: bid, start: int32(k), end: int32(k + 1)})
				}
				i += n
				continue
			}
		}
		syms = append(syms, symbol{id: id, start: int32(i), end: int32(i + n)})
		i += n
	}
	for k := range syms {
		syms[k].prev = int32(k - 1)
		syms[k].next = int32(k + 1)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	st.syms = syms
}

// bpe appends the tokens of one word, merging by rank.
func (t *Tokenizer) bpe(st *state, out []int32, word string) []int32 {
	if word == "" {
		return out
	}
	if t.ignoreMerges {
		if id, ok := t.toID[word]; ok {
			return t.emit(st, out, id, word)
		}
	}
	t.splitChars(st, word, true)
	syms := st.syms
	q := queue{c: st.heap[:0]}
	try := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		a, b := syms[l].id, syms[r].id
		if a < 0 || b < 0 {
			return
		}
		if m, ok := t.merges.get(pairKey(a, b)); ok {
			q.push(candidate{key: bpeKey(m.rank, l), rpos: r, a: a, b: b, res: m.result})
		}
	}
	for i := 1; i < len(syms); i++ {
		try(int32(i-1), int32(i))
	}
	for len(q.c) > 0 {
		c := q.pop()
		pos := c.pos()
		l := &syms[pos]
		if l.id != c.a || l.next != c.rpos {
			continue // stale: the left symbol changed
		}
		r := &syms[c.rpos]
		if r.id != c.b {
			continue // stale: the right symbol changed
		}
		l.id = c.res
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = pos
		}
		r.id = -2
		try(l.prev, pos)
		try(pos, l.next)
	}
	st.heap = q.c
	nv := int32(len(t.tokens))
	for i := int32(0); i >= 0 && int(i) < len(syms); i = syms[i].next {
		s := syms[i]
		if s.id >= 0 && s.id < nv {
			out = t.emit(st, out, s.id, word[s.start:s.end])
		} else {
			out = t.appendBytes(out, word[s.start:s.end])
		}
	}
	return out
}

// spm appends the tokens of one fragment, SentencePiece style: the pair
// whose joined text is the highest-scoring token is joined first.
func (t *Tokenizer) spm(st *state, out []int32, frag string) []int32 {
	if frag == "" {
		return out
	}
	t.splitChars(st, frag, false)
	syms := st.syms
	q := queue{c: st.heap[:0]}
	try := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		id, ok := t.toID[frag[syms[l].start:syms[r].end]]
		if !ok {
			return
		}
		q.push(candidate{key: spmKey(t.scores[id], l), rpos: r, res: syms[r].end - syms[l].start})
	}
	for i := 1; i < len(syms); i++ {
		try(int32(i-1), int32(i))
	}
	for len(q.c) > 0 {
		c := q.pop()
		pos := c.pos()
		l := &syms[pos]
		r := &syms[c.rpos]
		// llama.cpp's test: both alive and their lengths still add up.
		if l.id == -2 || r.id == -2 || l.next != c.rpos || r.end-l.start != c.res {
			continue
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = pos
		}
		r.id = -2
		try(l.prev, pos)
		try(pos, l.next)
	}
	st.heap = q.c
	for i := int32(0); i >= 0 && int(i) < len(syms); i = syms[i].next {
		s := frag[syms[i].start:syms[i].end]
		if id, ok := t.toID[s]; ok {
			out = t.emit(st, out, id, s)
		} else {
			out = t.appendBytes(out, s)
		}
	}
	return out
}
