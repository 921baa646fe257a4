package grammar

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// maxRepeat bounds {m,n} counts so that a tiny grammar cannot expand into an
// enormous one.
const maxRepeat = 4096

// maxElems bounds the size of an expanded grammar (nested repetitions
// multiply).
const maxElems = 1 << 20

// SyntaxError is a malformed-grammar error with its 1-based position.
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("grammar: line %d col %d: %s", e.Line, e.Col, e.Msg)
}

type parser struct {
	src  string
	pos  int
	g    *ir
	cur  string        // rule being parsed, for generated names
	refs map[int32]int // first reference position of each rule
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	line, col := 1, 1
	for i := 0; i < pos && i < len(p.src); {
		r, n := utf8.DecodeRuneInString(p.src[i:])
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
		i += n
	}
	return &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }
func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

// space skips blanks and comments, and newlines too when nl is set.
func (p *parser) space(nl bool) {
	for !p.eof() {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t':
			p.pos++
		case c == '#':
			for !p.eof() && p.src[p.pos] != '\n' {
				p.pos++
			}
		case nl && (c == '\n' || c == '\r'):
			p.pos++
		default:
			return
		}
	}
}

func isNameChar(c byte) bool {
	return c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *parser) name() string {
	s := p.pos
	for !p.eof() && isNameChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[s:p.pos]
}

// atRuleStart reports whether the input at pos is `name ::=`.
func (p *parser) atRuleStart() bool {
	save := p.pos
	defer func() { p.pos = save }()
	if p.name() == "" {
		return false
	}
	p.space(false)
	return len(p.src)-p.pos >= 3 && p.src[p.pos:p.pos+3] == "::="
}

// parseGBNF parses grammar text into an IR.
func parseGBNF(src string) (*ir, error) {
	p := &parser{src: src, g: newIR(), refs: map[int32]int{}}
	if !utf8.ValidString(src) {
		return nil, p.errAt(firstInvalid(src), "invalid UTF-8")
	}
	p.space(true)
	for !p.eof() {
		start := p.pos
		name := p.name()
		if name == "" {
			return nil, p.errAt(p.pos, "expected a rule name, found %q", p.rest())
		}
		p.space(false)
		if !(len(p.src)-p.pos >= 3 && p.src[p.pos:p.pos+3] == "::=") {
			return nil, p.errAt(p.pos, "expected ::= after rule name %q", name)
		}
		p.pos += 3
		r := p.g.rule(name)
		if p.g.defined[r] {
			return nil, p.errAt(start, "rule %q is defined twice", name)
		}
		p.g.defined[r] = true // reserve against redefinition inside itself
		p.cur = name
		p.space(true)
		alts, err := p.alternatives(false)
		if err != nil {
			return nil, err
		}
		p.g.define(r, alts)
		p.space(true)
	}
	for r, d := range p.g.defined {
		if !d {
			return nil, p.errAt(p.refs[int32(r)], "undefined rule %q", p.g.names[r])
		}
	}
	root, ok := p.g.byName["root"]
	if !ok {
		return nil, p.errAt(len(src), "grammar has no root rule")
	}
	p.g.root = root
	if err := p.g.checkLeftRecursion(); err != nil {
		return nil, err
	}
	return p.g, nil
}

func firstInvalid(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return 0
}

func (p *parser) rest() string {
	s := p.src[p.pos:]
	if len(s) > 12 {
		s = s[:12] + "…"
	}
	return s
}

func (p *parser) alternatives(nested bool) ([][]elem, error) {
	var alts [][]elem
	for {
		seq, err := p.sequence(nested)
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		if p.peek() != '|' {
			return alts, nil
		}
		p.pos++
		p.space(true)
	}
}

func (p *parser) sequence(nested bool) ([]elem, error) {
	var seq []elem
	for {
		p.space(nested)
		if p.eof() {
			return seq, nil
		}
		c := p.peek()
		if c == '\n' || c == '\r' {
			// At top level a newline ends the rule unless the next
			// meaningful text continues it.
			save := p.pos
			p.space(true)
			if p.eof() || p.atRuleStart() {
				p.pos = save
				return seq, nil
			}
			continue
		}
		if c == '|' || c == ')' {
			return seq, nil
		}
		start := p.pos
		item, err := p.item(nested)
		if err != nil {
			return nil, err
		}
		item, err = p.postfix(item, start)
		if err != nil {
			return nil, err
		}
		if len(p.g.elems)+len(seq) > maxElems {
			return nil, p.errAt(start, "grammar expands to more than %d elements", maxElems)
		}
		seq = append(seq, item...)
	}
}

func (p *parser) item(nested bool) ([]elem, error) {
	g := p.g
	switch c := p.peek(); {
	case c == '"':
		p.pos++
		var out []elem
		for {
			if p.eof() {
				return nil, p.errAt(p.pos, "unterminated string literal")
			}
			if p.peek() == '"' {
				p.pos++
				return out, nil
			}
			r, err := p.char()
			if err != nil {
				return nil, err
			}
			var buf [4]byte
			n := utf8.EncodeRune(buf[:], r)
			for _, b := range buf[:n] {
				out = append(out, g.literalByte(b))
			}
		}
	case c == '[':
		open := p.pos
		p.pos++
		neg := false
		if p.peek() == '^' {
			neg = true
			p.pos++
		}
		var rs []runeRange
		for {
			if p.eof() {
				return nil, p.errAt(open, "unterminated character class")
			}
			if p.peek() == ']' {
				p.pos++
				break
			}
			lo, err := p.char()
			if err != nil {
				return nil, err
			}
			hi := lo
			if p.peek() == '-' && p.pos+1 < len(p.src) && p.src[p.pos+1] != ']' {
				p.pos++
				if hi, err = p.char(); err != nil {
					return nil, err
				}
				if hi < lo {
					return nil, p.errAt(p.pos, "character range is backwards")
				}
			}
			rs = append(rs, runeRange{lo, hi})
		}
		return g.classElems(normalise(rs, neg), p.cur+"-class"), nil
	case c == '.':
		p.pos++
		return g.classElems(normalise(nil, true), p.cur+"-any"), nil
	case c == '(':
		p.pos++
		p.space(true)
		alts, err := p.alternatives(true)
		if err != nil {
			return nil, err
		}
		p.space(true)
		if p.peek() != ')' {
			return nil, p.errAt(p.pos, "expected ) to close group, found %q", p.rest())
		}
		p.pos++
		if len(alts) == 1 {
			return alts[0], nil
		}
		r := g.newRule(p.cur + "-group")
		g.define(r, alts)
		return []elem{{kind: kRef, arg: r}}, nil
	case isNameChar(c):
		at := p.pos
		name := p.name()
		r := g.rule(name)
		if _, ok := p.refs[r]; !ok {
			p.refs[r] = at
		}
		return []elem{{kind: kRef, arg: r}}, nil
	default:
		return nil, p.errAt(p.pos, "unexpected %q", p.rest())
	}
}

// char reads one literal character, decoding escapes.
func (p *parser) char() (rune, error) {
	if p.peek() != '\\' {
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		if r == '\n' || r == '\r' {
			return 0, p.errAt(p.pos, "newline inside a literal or class (write \\n)")
		}
		p.pos += n
		return r, nil
	}
	at := p.pos
	p.pos++
	if p.eof() {
		return 0, p.errAt(at, "unfinished escape")
	}
	c := p.src[p.pos]
	p.pos++
	switch c {
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case '\\', '"', '[', ']', '-', '^', '/', '\'':
		return rune(c), nil
	case 'x', 'u', 'U':
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		if len(p.src)-p.pos < n {
			return 0, p.errAt(at, "escape \\%c needs %d hex digits", c, n)
		}
		v, err := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 32)
		if err != nil {
			return 0, p.errAt(at, "escape \\%c needs %d hex digits", c, n)
		}
		p.pos += n
		if v > utf8.MaxRune || v >= 0xd800 && v <= 0xdfff {
			return 0, p.errAt(at, "escape is not a Unicode scalar value")
		}
		return rune(v), nil
	}
	return 0, p.errAt(at, "unknown escape \\%c", c)
}

// postfix applies a repetition operator, if any, to item.
func (p *parser) postfix(item []elem, start int) ([]elem, error) {
	p.space(false)
	var lo, hi int // hi < 0: unbounded
	switch p.peek() {
	case '*':
		lo, hi = 0, -1
	case '+':
		lo, hi = 1, -1
	case '?':
		lo, hi = 0, 1
	case '{':
		at := p.pos
		p.pos++
		p.space(false)
		var err error
		if lo, err = p.number(); err != nil {
			return nil, err
		}
		p.space(false)
		hi = lo
		if p.peek() == ',' {
			p.pos++
			p.space(false)
			hi = -1
			if c := p.peek(); c >= '0' && c <= '9' {
				if hi, err = p.number(); err != nil {
					return nil, err
				}
				p.space(false)
			}
		}
		if p.peek() != '}' {
			return nil, p.errAt(p.pos, "expected } to close repetition")
		}
		if hi >= 0 && hi < lo {
			return nil, p.errAt(at, "repetition {%d,%d} has max below min", lo, hi)
		}
	default:
		return item, nil
	}
	p.pos++
	if len(item) == 0 {
		return nil, p.errAt(start, "repetition of an empty item")
	}
	return p.g.repeat(item, lo, hi, p.cur), nil
}

func (p *parser) number() (int, error) {
	s := p.pos
	for !p.eof() && p.peek() >= '0' && p.peek() <= '9' {
		p.pos++
	}
	if s == p.pos {
		return 0, p.errAt(p.pos, "expected a number")
	}
	n, err := strconv.Atoi(p.src[s:p.pos])
	if err != nil || n > maxRepeat {
		return 0, p.errAt(s, "repetition count %s is over the limit %d", p.src[s:p.pos], maxRepeat)
	}
	return n, nil
}

// repeat expands item{lo,hi} (hi < 0: unbounded) into elements and
// generated rules.
func (g *ir) repeat(item []elem, lo, hi int, base string) []elem {
	if len(item) > 1 {
		r := g.newRule(base + "-item")
		g.define(r, [][]elem{item})
		item = []elem{{kind: kRef, arg: r}}
	}
	var out []elem
	for i := 0; i < lo; i++ {
		out = append(out, item...)
	}
	if hi < 0 {
		// R ::= item R | ε
		r := g.newRule(base + "-star")
		g.define(r, [][]elem{append(append([]elem{}, item...), elem{kind: kRef, arg: r}), nil})
		return append(out, elem{kind: kRef, arg: r})
	}
	// nested optionals: O1 ::= item | ε ; Ok ::= item O(k-1) | ε
	var prev []elem
	for k := 0; k < hi-lo; k++ {
		r := g.newRule(base + "-opt")
		g.define(r, [][]elem{append(append([]elem{}, item...), prev...), nil})
		prev = []elem{{kind: kRef, arg: r}}
	}
	return append(out, prev...)
}
