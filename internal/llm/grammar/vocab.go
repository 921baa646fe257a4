package grammar

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"mica/internal/tokenizer"
)

// Vocab is a model vocabulary prepared for masking: a byte trie over every
// token's decoded bytes, laid out in preorder so that a mask is one linear
// walk that skips whole subtrees as soon as the grammar rejects a prefix.
// Build it once per tokenizer and share it; it is immutable.
type Vocab struct {
	size   int
	pieces [][]byte // token id -> decoded bytes (nil: never allowed as text)
	eog    []int32
	isEOG  []bool

	// trie, preorder; node 0 is the root
	nb       []byte  // byte on the edge into the node
	depth    []int32 // root = 0
	end      []int32 // index just past the node's subtree
	tokStart []int32 // tokens ending at node i: toks[tokStart[i]:tokStart[i+1]]
	toks     []int32
	// sum[i] has a bit per byte class (see byteClass) occurring in the
	// suffixes, from node i on, of the tokens in node i's subtree.
	sum []uint64
	// maxChars[i] is the most characters in any such suffix (capped at 255).
	maxChars []uint8
	textMask []uint64 // every token in the trie
}

// Byte classes for subtree summaries: control bytes, a-z, A-Z, 0-9, each
// other printable ASCII byte, DEL, and two classes for non-ASCII bytes:
// classHighOK when every suffix from the node is complete valid UTF-8,
// classHighBad otherwise.
const (
	classHighOK  = 38
	classHighBad = 39
)

var byteClass = func() (t [128]uint8) {
	n := uint8(4)
	for b := 0; b < 128; b++ {
		switch {
		case b < 0x20:
			t[b] = 0
		case b >= 'a' && b <= 'z':
			t[b] = 1
		case b >= 'A' && b <= 'Z':
			t[b] = 2
		case b >= '0' && b <= '9':
			t[b] = 3
		case b == 0x7f:
			t[b] = 37
		default:
			t[b] = n
			n++
		}
	}
	return
}()

// NewVocab prepares a tokenizer's vocabulary. Control, unknown, unused and
// user-defined tokens and tokens that decode to no bytes are never allowed
// as text;
// end-of-generation tokens are allowed exactly when the grammar can end.
func NewVocab(t *tokenizer.Tokenizer) *Vocab {
	n := t.VocabSize()
	pieces := make([][]byte, n)
	eog := make([]bool, n)
	for id := 0; id < n; id++ {
		i := int32(id)
		eog[id] = t.IsEOG(i)
		switch t.Type(i) {
		case tokenizer.TypeControl, tokenizer.TypeUnknown, tokenizer.TypeUnused, tokenizer.TypeUserDefined:
			// never text: markers such as <start_of_turn>, and Gemma's
			// user-defined <unusedN> placeholders
			continue
		}
		pieces[id] = t.AppendPiece(nil, i)
	}
	return NewVocabFromPieces(pieces, eog)
}

// NewVocabFromPieces prepares a vocabulary given each token's bytes (nil or
// empty: not allowed as text) and which tokens end generation.
func NewVocabFromPieces(pieces [][]byte, isEOG []bool) *Vocab {
	v := &Vocab{size: len(pieces), pieces: pieces, isEOG: make([]bool, len(pieces))}
	for id, e := range isEOG {
		if e && id < len(pieces) {
			v.eog = append(v.eog, int32(id))
			v.isEOG[id] = true
		}
	}
	var ids []int32
	for id, p := range pieces {
		if len(p) > 0 && !v.isEOG[id] {
			ids = append(ids, int32(id))
		}
	}
	slices.SortFunc(ids, func(a, b int32) int {
		if c := bytes.Compare(pieces[a], pieces[b]); c != 0 {
			return c
		}
		return int(a - b)
	})
	v.nb = []byte{0}
	v.depth = []int32{0}
	v.tokStart = []int32{0}
	v.sum = []uint64{0}
	v.maxChars = []uint8{0}
	var prev []byte
	path := []int32{0}
	for _, id := range ids {
		s := pieces[id]
		l := 0
		for l < len(prev) && l < len(s) && prev[l] == s[l] {
			l++
		}
		path = path[:l+1]
		for k := l; k < len(s); k++ {
			path = append(path, int32(len(v.nb)))
			v.nb = append(v.nb, s[k])
			v.depth = append(v.depth, int32(k+1))
			v.tokStart = append(v.tokStart, int32(len(v.toks)))
			v.sum = append(v.sum, 0)
			v.maxChars = append(v.maxChars, 0)
		}
		v.toks = append(v.toks, id)
		prev = s
		// summaries of this token's suffixes on its path
		var acc uint64
		high := false
		chars := 0
		for k := len(s); k >= 1; k-- {
			c := s[k-1]
			if c&0xc0 != 0x80 && chars < 255 {
				chars++
			}
			if uint8(chars) > v.maxChars[path[k]] {
				v.maxChars[path[k]] = uint8(chars)
			}
			if c < 0x80 {
				acc |= 1 << byteClass[c]
			} else {
				high = true
			}
			bits := acc
			if high {
				if utf8.Valid(s[k-1:]) {
					bits |= 1 << classHighOK
				} else {
					bits |= 1 << classHighBad
				}
			}
			v.sum[path[k]] |= bits
		}
	}
	v.tokStart = append(v.tokStart, int32(len(v.toks)))
	// subtree ends: the next node whose depth is not deeper
	nn := len(v.nb)
	v.end = make([]int32, nn)
	var stack []int32
	for i := 0; i < nn; i++ {
		for len(stack) > 0 && v.depth[stack[len(stack)-1]] >= v.depth[i] {
			v.end[stack[len(stack)-1]] = int32(i)
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, int32(i))
	}
	for _, s := range stack {
		v.end[s] = int32(nn)
	}
	v.textMask = make([]uint64, v.MaskWords())
	for _, id := range v.toks {
		v.textMask[id>>6] |= 1 << (id & 63)
	}
	return v
}

// Size is the number of token ids; masks hold MaskWords(Size) words.
func (v *Vocab) Size() int { return v.size }

// MaskWords is the number of uint64 words in a mask over the vocabulary.
func (v *Vocab) MaskWords() int { return (v.size + 63) / 64 }

// Piece returns a token's bytes as the vocabulary sees them.
func (v *Vocab) Piece(id int32) []byte { return v.pieces[id] }

// IsEOG reports whether id ends generation.
func (v *Vocab) IsEOG(id int32) bool { return id >= 0 && int(id) < v.size && v.isEOG[id] }

// maskCache keeps computed masks per automaton state for one vocabulary.
type maskCache struct {
	m      map[int32][]uint64
	depth  []int32 // scratch: set id per trie depth
	ranges []int32 // scratch: accepted trie-position ranges
}

// maxCachedMasks bounds the per-grammar mask cache (each mask is
// Size/8 bytes, 32 KiB for a 262k vocabulary).
const maxCachedMasks = 512

// Mask writes into dst (MaskWords words) the tokens allowed next: a token is
// allowed when the grammar accepts all of its bytes from this state; EOG
// tokens are allowed when the grammar can end here. Masks are cached per
// automaton state, so repeated states cost one copy.
func (s *State) Mask(v *Vocab, dst []uint64) error {
	if len(dst) < v.MaskWords() {
		return fmt.Errorf("grammar: mask has %d words, vocabulary needs %d", len(dst), v.MaskWords())
	}
	dst = dst[:v.MaskWords()]
	if s.done {
		clear(dst)
		return nil
	}
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	mc := g.dfa.masks[v]
	if mc == nil {
		mc = &maskCache{m: map[int32][]uint64{}}
		g.dfa.masks[v] = mc
	}
	if m, ok := mc.m[s.set]; ok {
		copy(dst, m)
		return nil
	}
	clear(dst)
	if err := g.walk(v, s.set, dst, mc); err != nil {
		return err
	}
	if len(mc.m) >= maxCachedMasks {
		clear(mc.m)
	}
	mc.m[s.set] = slices.Clone(dst)
	return nil
}

// walk collects allowed tokens by walking the trie in lock-step with the
// automaton. The caller holds g.mu.
func (g *Grammar) walk(v *Vocab, start int32, dst []uint64, mc *maskCache) error {
	d := &g.dfa
	if d.canEnd[start] {
		for _, id := range v.eog {
			dst[id>>6] |= 1 << (id & 63)
		}
	}
	cur := mc.depth[:0]
	cur = append(cur, start)
	// Accepted tokens form ranges of trie positions (toks indices); they
	// are collected first and written as set bits, or, when most of the
	// vocabulary is accepted, as the text-token mask minus the gaps.
	ranges := mc.ranges[:0]
	add := func(a, b int32) {
		if a == b {
			return
		}
		if n := len(ranges); n > 0 && ranges[n-1] == a {
			ranges[n-1] = b
			return
		}
		ranges = append(ranges, a, b)
	}
	nb, depth, end, tokStart := v.nb, v.depth, v.end, v.tokStart
	nn := int32(len(nb))
	for i := int32(1); i < nn; {
		dp := depth[i]
		from := cur[dp-1]
		// A subtree whose every token is accepted is taken whole.
		if g.subtreeAccepted(v, i, from) {
			add(tokStart[i], tokStart[end[i]])
			i = end[i]
			continue
		}
		t := d.trans[int(from)<<8|int(nb[i])]
		if t == 0 {
			var err error
			if t, err = g.step(from, nb[i]); err != nil {
				mc.depth, mc.ranges = cur, ranges
				return err
			}
		}
		if t < 0 {
			i = end[i]
			continue
		}
		if int(dp) < len(cur) {
			cur[dp] = t
		} else {
			cur = append(cur, t)
		}
		add(tokStart[i], tokStart[i+1])
		i++
	}
	mc.depth, mc.ranges = cur, ranges
	toks := v.toks
	accepted := int32(0)
	for k := 0; k < len(ranges); k += 2 {
		accepted += ranges[k+1] - ranges[k]
	}
	if 2*int(accepted) < len(toks) {
		for k := 0; k < len(ranges); k += 2 {
			for _, id := range toks[ranges[k]:ranges[k+1]] {
				dst[id>>6] |= 1 << (id & 63)
			}
		}
		return nil
	}
	for w, x := range v.textMask {
		dst[w] |= x
	}
	prev := int32(0)
	for k := 0; k <= len(ranges); k += 2 {
		next := int32(len(toks))
		if k < len(ranges) {
			next = ranges[k]
		}
		for _, id := range toks[prev:next] {
			dst[id>>6] &^= 1 << (id & 63)
		}
		if k < len(ranges) {
			prev = ranges[k+1]
		}
	}
	return nil
}

// AcceptToken advances the state by one token's bytes; an EOG token is
// accepted only where the grammar can end, and finishes the state. On error
// the state is unchanged.
func (s *State) AcceptToken(v *Vocab, id int32) error {
	if id < 0 || int(id) >= v.size {
		return fmt.Errorf("grammar: token id %d is outside the vocabulary (size %d)", id, v.size)
	}
	if s.done {
		return errors.New("grammar: token after end of generation")
	}
	if v.isEOG[id] {
		if !s.CanEnd() {
			return fmt.Errorf("grammar: end-of-generation token %d before the grammar is complete", id)
		}
		s.done = true
		return nil
	}
	p := v.pieces[id]
	if len(p) == 0 {
		return fmt.Errorf("grammar: token %d has no text and is never allowed", id)
	}
	if err := s.Accept(p); err != nil {
		return fmt.Errorf("grammar: token %d (%q) is not allowed here: %w", id, p, err)
	}
	return nil
}
