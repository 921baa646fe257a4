package grammar

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"
)

// Limits on the lazily built automaton. A grammar whose stack sets keep
// growing (deeply nested input) fails with ErrTooComplex instead of using
// unbounded memory.
const (
	maxNodes = 1 << 22
	maxSets  = 1 << 15 // each set carries a 1 KiB transition row
)

// ErrTooComplex is returned when the automaton outgrows its limits.
var ErrTooComplex = errors.New("grammar: automaton grew past its state limit (input nested too deeply?)")

// Grammar is a compiled grammar. It is safe for concurrent use; the
// automaton it builds lazily (and its mask cache) is shared by every State
// created from it, so reuse one Grammar for requests with the same grammar.
type Grammar struct {
	p   *ir
	mu  sync.Mutex
	dfa dfa
	// rep[b] is the smallest byte belonging to exactly the same byte sets
	// as b: such bytes have identical transitions everywhere.
	rep [256]byte
}

// byteClasses fills g.rep.
func (g *Grammar) byteClasses() {
	first := map[string]byte{}
	sig := make([]byte, (len(g.p.sets)+7)/8)
	for b := 0; b < 256; b++ {
		clear(sig)
		for k := range g.p.sets {
			if g.p.sets[k].has(byte(b)) {
				sig[k>>3] |= 1 << (k & 7)
			}
		}
		r, ok := first[string(sig)]
		if !ok {
			r = byte(b)
			first[string(sig)] = r
		}
		g.rep[b] = r
	}
}

// node is one frame of a parse stack, stored as an interned linked list:
// pos is the element to match next, parent the frame below (0 = none).
type node struct{ pos, parent int32 }

// dfa holds the interned stacks, the interned sets of stacks (the states of
// the lazily determinised pushdown automaton), and their byte transitions.
type dfa struct {
	nodes    []node
	nodeIdx  map[node]int32
	sets     [][]int32 // set id -> sorted stack ids; id 0 unused
	setIdx   map[string]int32
	canEnd   []bool
	trans    []int32 // set*256+b -> 0 unknown, -1 dead, else next set id
	start    int32
	buf      []int32
	masks    map[*Vocab]*maskCache
	uni      []uint64        // set -> classes with a uniform target (see uniform); bit 63: computed
	fwd      []int32         // set -> that target
	ands     [][]uint64      // set -> memoised chainAnd prefixes
	chainEnd []int32         // set -> chain state after len(ands[set]) steps
	seen     map[node]uint32 // resolve visits, valid when equal to epoch
	epoch    uint32
}

// Compile parses GBNF grammar text (llama.cpp dialect) into a Grammar.
func Compile(text string) (*Grammar, error) {
	p, err := parseGBNF(text)
	if err != nil {
		return nil, err
	}
	return newGrammar(p)
}

func newGrammar(p *ir) (*Grammar, error) {
	g := &Grammar{p: p}
	g.byteClasses()
	d := &g.dfa
	d.nodes = []node{{-1, -1}} // node 0: the empty stack
	d.nodeIdx = map[node]int32{}
	d.sets = [][]int32{nil}
	d.setIdx = map[string]int32{}
	d.canEnd = []bool{false}
	d.trans = make([]int32, 256)
	d.uni = []uint64{0}
	d.fwd = []int32{0}
	d.ands = [][]uint64{nil}
	d.chainEnd = []int32{0}
	d.masks = map[*Vocab]*maskCache{}
	d.seen = map[node]uint32{}
	g.beginResolve()
	var out []int32
	for _, a := range p.alts[p.root] {
		out = g.resolve(a, 0, out)
	}
	s, err := g.internSet(out)
	if err != nil {
		return nil, err
	}
	if s < 0 {
		return nil, fmt.Errorf("grammar: the root rule matches nothing")
	}
	d.start = s
	return g, nil
}

func (g *Grammar) intern(pos, parent int32) int32 {
	d := &g.dfa
	k := node{pos, parent}
	if i, ok := d.nodeIdx[k]; ok {
		return i
	}
	i := int32(len(d.nodes))
	d.nodes = append(d.nodes, k)
	d.nodeIdx[k] = i
	return i
}

// resolve appends to out the stacks that result from being at element pos
// with the given parent frame, expanding rule references until each stack's
// top is a byte element; the empty stack (0) means the input may end.
func (g *Grammar) resolve(pos, parent int32, out []int32) []int32 {
	p := g.p
	d := &g.dfa
	for {
		// Each (pos, parent) is expanded once per top-level expansion
		// (see beginResolve): repeats would add the same stacks, and
		// nullable alternatives could otherwise make the work exponential.
		k := node{pos, parent}
		if d.seen[k] == d.epoch {
			return out
		}
		d.seen[k] = d.epoch
		e := p.elems[pos]
		switch e.kind {
		case kByte:
			return append(out, g.intern(pos, parent))
		case kEnd:
			if parent == 0 {
				return append(out, 0)
			}
			n := d.nodes[parent]
			pos, parent = n.pos, n.parent
		case kRef:
			ret := parent
			if p.elems[pos+1].kind != kEnd { // tail calls push no frame
				ret = g.intern(pos+1, parent)
			}
			for _, a := range p.alts[e.arg] {
				out = g.resolve(a, ret, out)
			}
			return out
		}
	}
}

// beginResolve starts a top-level expansion (one step of one stack set).
func (g *Grammar) beginResolve() {
	d := &g.dfa
	d.epoch++
	if d.epoch == 0 || len(d.seen) > 1<<16 {
		clear(d.seen)
		d.epoch = 1
	}
}

// internSet sorts and dedups stacks and returns the set's id, or -1 when
// empty.
func (g *Grammar) internSet(stacks []int32) (int32, error) {
	if len(stacks) == 0 {
		return -1, nil
	}
	slices.Sort(stacks)
	stacks = slices.Compact(stacks)
	d := &g.dfa
	key := unsafe.String((*byte)(unsafe.Pointer(&stacks[0])), len(stacks)*4)
	if i, ok := d.setIdx[key]; ok {
		return i, nil
	}
	if len(d.sets) >= maxSets || len(d.nodes) >= maxNodes {
		return -1, ErrTooComplex
	}
	own := slices.Clone(stacks)
	i := int32(len(d.sets))
	d.sets = append(d.sets, own)
	d.setIdx[string(unsafe.Slice((*byte)(unsafe.Pointer(&own[0])), len(own)*4))] = i
	d.canEnd = append(d.canEnd, own[0] == 0)
	d.trans = append(d.trans, make([]int32, 256)...)
	d.uni = append(d.uni, 0)
	d.fwd = append(d.fwd, 0)
	d.ands = append(d.ands, nil)
	d.chainEnd = append(d.chainEnd, 0)
	return i, nil
}

// step returns the set reached from set s on byte b (-1: rejected).
// The caller holds g.mu.
func (g *Grammar) step(s int32, b byte) (int32, error) {
	d := &g.dfa
	if t := d.trans[int(s)<<8|int(b)]; t != 0 {
		return t, nil
	}
	if r := g.rep[b]; r != b {
		t, err := g.step(s, r)
		if err == nil {
			g.dfa.trans[int(s)<<8|int(b)] = t
		}
		return t, err
	}
	out := d.buf[:0]
	g.beginResolve()
	for _, st := range d.sets[s] {
		if st == 0 {
			continue
		}
		n := d.nodes[st]
		if g.p.sets[g.p.elems[n.pos].arg].has(b) {
			out = g.resolve(n.pos+1, n.parent, out)
		}
	}
	t, err := g.internSet(out)
	d.buf = out[:0]
	if err != nil {
		return -1, err
	}
	d.trans[int(s)<<8|int(b)] = t
	return t, nil
}

// State is a position in a grammar: the set of parse stacks consistent with
// the input accepted so far. States are values; copying one (Clone) is how
// to check input speculatively. A State may be used by one goroutine at a
// time; different States of one Grammar may be used concurrently.
type State struct {
	g    *Grammar
	set  int32
	done bool // an end-of-generation token was accepted
}

// NewState returns the grammar's start state.
func (g *Grammar) NewState() *State { return &State{g: g, set: g.dfa.start} }

// Clone returns an independent copy of the state.
func (s *State) Clone() *State { c := *s; return &c }

// Accept consumes input bytes. On error the state is unchanged.
func (s *State) Accept(b []byte) error {
	if s.done {
		return errors.New("grammar: input after end of generation")
	}
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := s.set
	for i, c := range b {
		n, err := g.step(cur, c)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("grammar: byte %d (%q) of the input is not allowed here", i, c)
		}
		cur = n
	}
	s.set = cur
	return nil
}

// CanEnd reports whether the input accepted so far is a complete sentence
// of the grammar.
func (s *State) CanEnd() bool {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.g.dfa.canEnd[s.set]
}

// Done reports whether the state can end here; it is CanEnd, named for
// byte-level matching.
func (s *State) Done() bool { return s.CanEnd() }

// Finished reports whether an end-of-generation token was accepted.
func (s *State) Finished() bool { return s.done }

// Match reports whether the whole text is a sentence of the grammar.
func (g *Grammar) Match(text []byte) bool {
	s := g.NewState()
	return s.Accept(text) == nil && s.CanEnd()
}

const (
	uniKnown  = 1 << 63
	highKnown = 1 << 62
)

// uniform returns, for set s, a target set f and the byte classes (see
// byteClass) every byte of which takes s to f, plus classHighOK when every
// complete non-ASCII UTF-8 character takes s to f. f is the most common
// target of printable ASCII bytes; f == s for states that loop (inside a
// free string), f is the next counter state inside bounded repetitions.
// The caller holds g.mu.
func (g *Grammar) uniform(s int32) (uint64, int32) {
	d := &g.dfa
	if m := d.uni[s]; m&uniKnown != 0 {
		return m, d.fwd[s]
	}
	// Successors are computed as transient stack lists so that only the
	// chosen target becomes an automaton state.
	var keys [128]string
	counts := map[string]int{}
	bestKey, bestN := "", 0
	selfKey := setKey(d.sets[s])
	for b := 0; b < 128; b++ {
		var k string
		if r := g.rep[b]; int(r) != b {
			k = keys[r]
		} else if t := d.trans[int(s)<<8|b]; t > 0 {
			k = setKey(d.sets[t])
		} else if t == 0 {
			k = setKey(g.stepList(d.sets[s], byte(b)))
		}
		keys[b] = k
		if k == "" {
			continue
		}
		counts[k]++
		if n := counts[k]; n > bestN || n == bestN && k == selfKey {
			bestKey, bestN = k, n
		}
	}
	m := uint64(uniKnown)
	best := int32(-1)
	if bestKey != "" {
		var bad uint64
		for b := 0; b < 128; b++ {
			if keys[b] != bestKey {
				bad |= 1 << byteClass[b]
			}
		}
		var err error
		if best, err = g.internSet(keyStacks(bestKey)); err != nil {
			best = -1
		} else {
			// classHighOK is decided lazily (see subtreeAccepted)
			m |= (1<<classHighOK - 1) &^ bad
		}
	}
	d = &g.dfa
	d.uni[s], d.fwd[s] = m, best
	return m, best
}

// stepList is step on a transient stack list, without making a state.
func (g *Grammar) stepList(stacks []int32, b byte) []int32 {
	var out []int32
	g.beginResolve()
	for _, st := range stacks {
		if st == 0 {
			continue
		}
		n := g.dfa.nodes[st]
		if g.p.sets[g.p.elems[n.pos].arg].has(b) {
			out = g.resolve(n.pos+1, n.parent, out)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// setKey is a string key for a sorted stack list ("" for the empty list).
func setKey(stacks []int32) string {
	if len(stacks) == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(&stacks[0])), len(stacks)*4))
}

func keyStacks(k string) []int32 {
	out := make([]int32, len(k)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(k)), k)
	return out
}

// subtreeAccepted reports whether every token in trie node i's subtree is
// accepted from set s, using the node's byte-class summary and the chain
// of uniform transitions.
func (g *Grammar) subtreeAccepted(v *Vocab, i, s int32) bool {
	c := v.sum[i]
	u, _ := g.uniform(s)
	if c&^(u|1<<classHighOK) != 0 {
		return false // fails at the first character already
	}
	m := max(1, int(v.maxChars[i]))
	return c&^g.chainAnd(s, m) == 0
}

// maxChain bounds the memoised chain of uniform transitions per set.
const maxChain = 64

// chainAnd returns the byte classes that are uniform at each of the first
// m states of s's chain of uniform transitions (0 beyond maxChain).
func (g *Grammar) chainAnd(s int32, m int) uint64 {
	d := &g.dfa
	a := d.ands[s]
	if n := len(a); n > 0 && a[n-1]&stableBit != 0 {
		return a[n-1] &^ stableBit // reached a self-loop: constant from there
	}
	if m > maxChain {
		return 0
	}
	if len(a) >= m {
		return a[m-1]
	}
	cur, acc := s, ^uint64(0)
	if n := len(a); n > 0 {
		cur, acc = d.chainEnd[s], a[n-1]
	}
	for len(a) < m {
		if cur < 0 || acc == 0 {
			a = append(a, 0)
			continue
		}
		u := g.fullUniform(cur)
		_, f := g.uniform(cur)
		acc &= u &^ (uniKnown | highKnown | stableBit)
		if f == cur {
			a = append(a, acc|stableBit)
			d = &g.dfa
			d.ands[s] = a
			return acc
		}
		a = append(a, acc)
		cur = f
	}
	d = &g.dfa
	d.ands[s] = a
	d.chainEnd[s] = cur
	return a[m-1]
}

const stableBit = 1 << 61

// fullUniform is uniform's class mask with classHighOK decided.
func (g *Grammar) fullUniform(s int32) uint64 {
	u, f := g.uniform(s)
	if u&highKnown != 0 || f < 0 {
		return u
	}
	u |= highKnown
	if g.utf8Uniform(s, setKey(g.dfa.sets[f])) {
		u |= 1 << classHighOK
	}
	g.dfa.uni[s] = u
	return u
}

// utf8Seqs are byte-range sequences covering every non-ASCII scalar value.
var utf8Seqs = func() (out [][2][]byte) {
	utf8Split(0x80, 0xd7ff, func(lo, hi []byte) { out = append(out, [2][]byte{lo, hi}) })
	utf8Split(0xe000, 0x10ffff, func(lo, hi []byte) { out = append(out, [2][]byte{lo, hi}) })
	return
}()

// utf8Uniform reports whether every non-ASCII character takes s to the
// stack list with key fkey.
func (g *Grammar) utf8Uniform(s int32, fkey string) bool {
	var front, next [][]int32
	for _, seq := range utf8Seqs {
		front = append(front[:0], g.dfa.sets[s])
		for k := range seq[0] {
			next = next[:0]
			seen := map[string]bool{}
			for _, f := range front {
				for b := int(seq[0][k]); b <= int(seq[1][k]); b++ {
					if r := int(g.rep[b]); r != b && r >= int(seq[0][k]) {
						continue // same transitions as an earlier byte
					}
					t := g.stepList(f, byte(b))
					key := setKey(t)
					if key == "" {
						return false
					}
					if !seen[key] {
						if len(seen) > 8 {
							return false
						}
						seen[key] = true
						next = append(next, t)
					}
				}
			}
			front, next = next, front
		}
		if len(front) != 1 || setKey(front[0]) != fkey {
			return false
		}
	}
	return true
}
