package grammar

import (
	"fmt"
	"unicode/utf8"
)

// elemKind is the kind of one grammar element.
type elemKind uint8

const (
	kEnd  elemKind = iota // end of an alternative
	kByte                 // one byte from a byte set
	kRef                  // a reference to a rule
)

// elem is one element of the flattened grammar. Alternatives are stored as
// runs of elements terminated by kEnd.
type elem struct {
	kind elemKind
	arg  int32 // byte-set index for kByte, rule index for kRef
}

// byteSet is a set of byte values.
type byteSet [4]uint64

func (s *byteSet) has(b byte) bool { return s[b>>6]>>(b&63)&1 != 0 }
func (s *byteSet) add(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s[c>>6] |= 1 << (c & 63)
	}
}

// ir is a grammar under construction and, once finished, the immutable
// program the matcher runs.
type ir struct {
	names   []string  // rule names (generated rules get derived names)
	alts    [][]int32 // rule -> start positions of its alternatives in elems
	defined []bool
	elems   []elem
	sets    []byteSet
	setIdx  map[byteSet]int32
	byName  map[string]int32
	root    int32
}

func newIR() *ir {
	return &ir{setIdx: map[byteSet]int32{}, byName: map[string]int32{}}
}

// rule returns the index of the named rule, creating an undefined entry.
func (g *ir) rule(name string) int32 {
	if i, ok := g.byName[name]; ok {
		return i
	}
	i := int32(len(g.names))
	g.names = append(g.names, name)
	g.alts = append(g.alts, nil)
	g.defined = append(g.defined, false)
	g.byName[name] = i
	return i
}

// newRule creates a fresh generated rule named after base.
func (g *ir) newRule(base string) int32 {
	for k := len(g.names); ; k++ {
		n := fmt.Sprintf("%s-%d", base, k)
		if _, ok := g.byName[n]; !ok {
			return g.rule(n)
		}
	}
}

// define sets the alternatives of rule r, each a sequence of elements.
func (g *ir) define(r int32, alts [][]elem) {
	starts := make([]int32, 0, len(alts))
	for _, a := range alts {
		starts = append(starts, int32(len(g.elems)))
		g.elems = append(g.elems, a...)
		g.elems = append(g.elems, elem{kind: kEnd})
	}
	g.alts[r] = starts
	g.defined[r] = true
}

func (g *ir) byteElem(s byteSet) elem {
	i, ok := g.setIdx[s]
	if !ok {
		i = int32(len(g.sets))
		g.sets = append(g.sets, s)
		g.setIdx[s] = i
	}
	return elem{kind: kByte, arg: i}
}

func (g *ir) literalByte(b byte) elem {
	var s byteSet
	s.add(b, b)
	return g.byteElem(s)
}

// runeRange is an inclusive range of code points.
type runeRange struct{ lo, hi rune }

// classElems returns the elements matching one code point from the given
// ranges (already normalised: sorted, non-overlapping, no surrogates): a
// single byte set when all are ASCII, else a reference to a generated rule
// whose alternatives are UTF-8 byte sequences.
func (g *ir) classElems(rs []runeRange, base string) []elem {
	var ascii byteSet
	var hasASCII bool
	var seqs [][]elem
	for _, r := range rs {
		if r.lo < 0x80 {
			hi := r.hi
			if hi > 0x7f {
				hi = 0x7f
			}
			ascii.add(byte(r.lo), byte(hi))
			hasASCII = true
			if r.hi < 0x80 {
				continue
			}
			r.lo = 0x80
		}
		utf8Split(r.lo, r.hi, func(lo, hi []byte) {
			seq := make([]elem, len(lo))
			for k := range lo {
				var s byteSet
				s.add(lo[k], hi[k])
				seq[k] = g.byteElem(s)
			}
			seqs = append(seqs, seq)
		})
	}
	if len(seqs) == 0 {
		if !hasASCII {
			// Matches nothing: an empty byte set.
			return []elem{g.byteElem(byteSet{})}
		}
		return []elem{g.byteElem(ascii)}
	}
	if len(seqs) == 1 && !hasASCII {
		return seqs[0]
	}
	alts := seqs
	if hasASCII {
		alts = append([][]elem{{g.byteElem(ascii)}}, seqs...)
	}
	r := g.newRule(base)
	g.define(r, alts)
	return []elem{{kind: kRef, arg: r}}
}

// utf8Split calls emit with byte-range sequences whose union is exactly the
// UTF-8 encodings of the code points lo..hi (lo >= 0x80, no surrogates).
func utf8Split(lo, hi rune, emit func(lo, hi []byte)) {
	if lo > hi {
		return
	}
	// Split at encoded-length boundaries.
	for _, b := range []rune{0x7f, 0x7ff, 0xffff} {
		if lo <= b && hi > b {
			utf8Split(lo, b, emit)
			utf8Split(b+1, hi, emit)
			return
		}
	}
	n := utf8.RuneLen(lo)
	// Split until every continuation byte spans its full range or a
	// single-prefix sub-range.
	for i := 1; i < n; i++ {
		m := rune(1)<<(6*i) - 1
		if lo&^m != hi&^m {
			if lo&m != 0 {
				utf8Split(lo, lo|m, emit)
				utf8Split((lo|m)+1, hi, emit)
				return
			}
			if hi&m != m {
				utf8Split(lo, (hi&^m)-1, emit)
				utf8Split(hi&^m, hi, emit)
				return
			}
		}
	}
	var a, b [4]byte
	utf8.EncodeRune(a[:], lo)
	utf8.EncodeRune(b[:], hi)
	emit(a[:n:n], b[:n:n])
}

// normalise sorts and merges ranges, removes surrogates, and complements them
// over all Unicode scalar values when negate is set.
func normalise(rs []runeRange, negate bool) []runeRange {
	// insertion sort: classes are short
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].lo < rs[j-1].lo; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	var out []runeRange
	for _, r := range rs {
		if r.lo > r.hi {
			continue
		}
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			if r.hi > out[n-1].hi {
				out[n-1].hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	if negate {
		var c []runeRange
		next := rune(0)
		for _, r := range out {
			if r.lo > next {
				c = append(c, runeRange{next, r.lo - 1})
			}
			next = r.hi + 1
		}
		if next <= utf8.MaxRune {
			c = append(c, runeRange{next, utf8.MaxRune})
		}
		out = c
	}
	// remove surrogates and out-of-range values
	var res []runeRange
	for _, r := range out {
		if r.hi > utf8.MaxRune {
			r.hi = utf8.MaxRune
		}
		if r.lo > r.hi {
			continue
		}
		if r.lo < 0xd800 && r.hi > 0xdfff {
			res = append(res, runeRange{r.lo, 0xd7ff}, runeRange{0xe000, r.hi})
			continue
		}
		if r.lo >= 0xd800 && r.hi <= 0xdfff {
			continue
		}
		if r.lo >= 0xd800 && r.lo <= 0xdfff {
			r.lo = 0xe000
		}
		if r.hi >= 0xd800 && r.hi <= 0xdfff {
			r.hi = 0xd7ff
		}
		res = append(res, r)
	}
	return res
}

// checkLeftRecursion reports a rule that can reach itself without consuming
// input, which would make the matcher loop.
func (g *ir) checkLeftRecursion() error {
	n := len(g.alts)
	nullable := make([]bool, n)
	for changed := true; changed; {
		changed = false
		for r := 0; r < n; r++ {
			if nullable[r] {
				continue
			}
			for _, a := range g.alts[r] {
				if g.seqNullable(a, nullable) {
					nullable[r] = true
					changed = true
					break
				}
			}
		}
	}
	// edges r -> s when s can be the first thing r expands to
	edges := make([][]int32, n)
	for r := 0; r < n; r++ {
		for _, a := range g.alts[r] {
			for p := a; g.elems[p].kind != kEnd; p++ {
				e := g.elems[p]
				if e.kind == kByte {
					break
				}
				edges[r] = append(edges[r], e.arg)
				if !nullable[e.arg] {
					break
				}
			}
		}
	}
	color := make([]uint8, n) // 0 new, 1 on path, 2 done
	var visit func(r int32) int32
	visit = func(r int32) int32 {
		color[r] = 1
		for _, s := range edges[r] {
			if color[s] == 1 {
				return s
			}
			if color[s] == 0 {
				if bad := visit(s); bad >= 0 {
					return bad
				}
			}
		}
		color[r] = 2
		return -1
	}
	for r := 0; r < n; r++ {
		if color[r] == 0 {
			if bad := visit(int32(r)); bad >= 0 {
				return fmt.Errorf("grammar: rule %q is left-recursive (it can reach itself without consuming input)", g.names[bad])
			}
		}
	}
	return nil
}

func (g *ir) seqNullable(p int32, nullable []bool) bool {
	for ; g.elems[p].kind != kEnd; p++ {
		e := g.elems[p]
		if e.kind == kByte || !nullable[e.arg] {
			return false
		}
	}
	return true
}
