package grammar

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pattern compiles a JSON Schema "pattern" (an ECMAScript regular
// expression, unanchored unless it starts with ^ / ends with $) into a
// string branch. Supported: literals and escapes, ., classes with ranges,
// \d \w \s \D \W \S, groups (…) and (?:…), |, and the quantifiers ? * +
// {n} {n,} {n,m} (lazy forms match the same language). Anything else is
// refused by name.
func (c *schemaCompiler) pattern(p string) (string, error) {
	rp := &reParser{src: p, c: c}
	anchoredStart := strings.HasPrefix(p, "^")
	if anchoredStart {
		rp.pos = 1
	}
	body, err := rp.alt(true)
	if err != nil {
		return "", err
	}
	anchoredEnd := false
	if rp.pos < len(p) && p[rp.pos] == '$' && rp.pos == len(p)-1 {
		anchoredEnd = true
		rp.pos++
	}
	if rp.pos != len(p) {
		return "", rp.errf("unexpected %q", p[rp.pos:])
	}
	if rp.topAlt {
		if anchoredStart || anchoredEnd {
			// ^a|b$ anchors each branch separately
			return "", rp.errf("anchors with a top-level alternation")
		}
		body = "( " + body + " )"
	}
	var b strings.Builder
	b.WriteString(`"\"" `)
	if !anchoredStart {
		b.WriteString("char* ")
	}
	b.WriteString(body)
	if !anchoredEnd {
		b.WriteString(" char*")
	}
	b.WriteString(` "\""`)
	return c.rule(b.String()), nil
}

type reParser struct {
	src    string
	pos    int
	c      *schemaCompiler
	topAlt bool
}

func (r *reParser) errf(format string, args ...any) error {
	return schemaErrf("pattern", "unsupported JSON Schema keyword \"pattern\" %q: %s", r.src, fmt.Sprintf(format, args...))
}

func (r *reParser) alt(top bool) (string, error) {
	var alts []string
	for {
		seq, err := r.seq()
		if err != nil {
			return "", err
		}
		alts = append(alts, seq)
		if r.pos < len(r.src) && r.src[r.pos] == '|' {
			r.pos++
			if top {
				r.topAlt = true
			}
			continue
		}
		break
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return "( " + strings.Join(alts, " | ") + " )", nil
}

func (r *reParser) seq() (string, error) {
	var parts []string
	for r.pos < len(r.src) {
		ch := r.src[r.pos]
		if ch == '|' || ch == ')' {
			break
		}
		if ch == '$' && r.pos == len(r.src)-1 {
			break
		}
		atom, err := r.atom()
		if err != nil {
			return "", err
		}
		atom, err = r.quant(atom)
		if err != nil {
			return "", err
		}
		parts = append(parts, atom)
	}
	if len(parts) == 0 {
		return `""`, nil
	}
	return strings.Join(parts, " "), nil
}

func (r *reParser) quant(atom string) (string, error) {
	if r.pos >= len(r.src) {
		return atom, nil
	}
	var q string
	switch r.src[r.pos] {
	case '*', '+', '?':
		q = r.src[r.pos : r.pos+1]
		r.pos++
	case '{':
		end := strings.IndexByte(r.src[r.pos:], '}')
		if end < 0 {
			return "", r.errf("unterminated {")
		}
		inner := r.src[r.pos+1 : r.pos+end]
		lo, hi, ok := strings.Cut(inner, ",")
		n, err := strconv.Atoi(lo)
		if err != nil || n < 0 || n > maxRepeat {
			return "", r.errf("bad or too large repetition {%s}", inner)
		}
		if ok && hi != "" {
			m, err := strconv.Atoi(hi)
			if err != nil || m < n || m > maxRepeat {
				return "", r.errf("bad or too large repetition {%s}", inner)
			}
		}
		q = "{" + inner + "}"
		r.pos += end + 1
	default:
		return atom, nil
	}
	if r.pos < len(r.src) && r.src[r.pos] == '?' {
		r.pos++ // lazy: same language
	}
	return "( " + atom + " )" + q, nil
}

func (r *reParser) atom() (string, error) {
	ch := r.src[r.pos]
	switch ch {
	case '(':
		r.pos++
		if strings.HasPrefix(r.src[r.pos:], "?:") {
			r.pos += 2
		} else if strings.HasPrefix(r.src[r.pos:], "?") {
			return "", r.errf("lookaround and named groups are not supported")
		}
		e, err := r.alt(false)
		if err != nil {
			return "", err
		}
		if r.pos >= len(r.src) || r.src[r.pos] != ')' {
			return "", r.errf("missing )")
		}
		r.pos++
		return "( " + e + " )", nil
	case '.':
		r.pos++
		return r.set(normalise([]runeRange{{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}, true)), nil
	case '[':
		return r.class()
	case '^', '$':
		return "", r.errf("anchor %c inside the pattern", ch)
	case '*', '+', '?', '{':
		return "", r.errf("quantifier %c without an atom", ch)
	case '\\':
		rs, err := r.escape(false)
		if err != nil {
			return "", err
		}
		return r.set(rs), nil
	}
	c, n := utf8.DecodeRuneInString(r.src[r.pos:])
	r.pos += n
	return r.set([]runeRange{{c, c}}), nil
}

var (
	reDigit = []runeRange{{'0', '9'}}
	reWord  = []runeRange{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}
	reSpace = []runeRange{{'\t', '\r'}, {' ', ' '}, {0xa0, 0xa0}, {0x1680, 0x1680}, {0x2000, 0x200a},
		{0x2028, 0x2029}, {0x202f, 0x202f}, {0x205f, 0x205f}, {0x3000, 0x3000}, {0xfeff, 0xfeff}}
)

// escape reads a backslash escape and returns its code point ranges.
func (r *reParser) escape(inClass bool) ([]runeRange, error) {
	r.pos++
	if r.pos >= len(r.src) {
		return nil, r.errf("trailing backslash")
	}
	ch := r.src[r.pos]
	r.pos++
	one := func(c rune) []runeRange { return []runeRange{{c, c}} }
	switch ch {
	case 'd':
		return reDigit, nil
	case 'D':
		return normalise(append([]runeRange{}, reDigit...), true), nil
	case 'w':
		return reWord, nil
	case 'W':
		return normalise(append([]runeRange{}, reWord...), true), nil
	case 's':
		return reSpace, nil
	case 'S':
		return normalise(append([]runeRange{}, reSpace...), true), nil
	case 'n':
		return one('\n'), nil
	case 'r':
		return one('\r'), nil
	case 't':
		return one('\t'), nil
	case 'f':
		return one('\f'), nil
	case 'v':
		return one('\v'), nil
	case '0':
		return one(0), nil
	case 'x', 'u':
		n := 2
		if ch == 'u' {
			n = 4
		}
		if r.pos+n > len(r.src) {
			return nil, r.errf("short \\%c escape", ch)
		}
		v, err := strconv.ParseUint(r.src[r.pos:r.pos+n], 16, 32)
		if err != nil {
			return nil, r.errf("bad \\%c escape", ch)
		}
		r.pos += n
		return one(rune(v)), nil
	case 'b':
		if inClass {
			return one('\b'), nil
		}
	}
	if ch < 0x80 && !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
		return one(rune(ch)), nil // escaped punctuation
	}
	return nil, r.errf("escape \\%c is not supported", ch)
}

func (r *reParser) class() (string, error) {
	r.pos++
	neg := false
	if r.pos < len(r.src) && r.src[r.pos] == '^' {
		neg = true
		r.pos++
	}
	var rs []runeRange
	first := true
	for {
		if r.pos >= len(r.src) {
			return "", r.errf("unterminated [")
		}
		if r.src[r.pos] == ']' && !first {
			r.pos++
			break
		}
		if r.src[r.pos] == ']' {
			r.pos++
			break
		}
		first = false
		lo, err := r.classAtom()
		if err != nil {
			return "", err
		}
		if len(lo) == 1 && lo[0].lo == lo[0].hi && r.pos+1 < len(r.src) && r.src[r.pos] == '-' && r.src[r.pos+1] != ']' {
			r.pos++
			hi, err := r.classAtom()
			if err != nil {
				return "", err
			}
			if len(hi) != 1 || hi[0].lo != hi[0].hi || hi[0].lo < lo[0].lo {
				return "", r.errf("bad class range")
			}
			rs = append(rs, runeRange{lo[0].lo, hi[0].lo})
			continue
		}
		rs = append(rs, lo...)
	}
	return r.set(normalise(rs, neg)), nil
}

func (r *reParser) classAtom() ([]runeRange, error) {
	if r.src[r.pos] == '\\' {
		return r.escape(true)
	}
	c, n := utf8.DecodeRuneInString(r.src[r.pos:])
	r.pos += n
	return []runeRange{{c, c}}, nil
}

// set is a GBNF expression for one JSON-encoded character from rs: raw
// characters, and the canonical escape of characters JSON must escape.
func (r *reParser) set(rs []runeRange) string {
	rs = normalise(rs, false)
	var special []rune // characters written escaped
	var specials []runeRange
	for c := rune(0); c < 0x20; c++ {
		specials = append(specials, runeRange{c, c})
	}
	specials = append(specials, runeRange{'"', '"'}, runeRange{'\\', '\\'}, runeRange{0x2028, 0x2029})
	for _, sp := range specials {
		for c := sp.lo; c <= sp.hi; c++ {
			for _, x := range rs {
				if x.lo <= c && c <= x.hi {
					special = append(special, c)
				}
			}
		}
	}
	// raw = rs ∩ complement(specials)
	allowed := normalise(specials, true)
	var raw []runeRange
	for _, x := range rs {
		for _, y := range allowed {
			lo, hi := max(x.lo, y.lo), min(x.hi, y.hi)
			if lo <= hi {
				raw = append(raw, runeRange{lo, hi})
			}
		}
	}
	var alts []string
	if len(raw) > 0 {
		var b strings.Builder
		b.WriteByte('[')
		for _, x := range raw {
			b.WriteString(classRune(x.lo))
			if x.hi != x.lo {
				b.WriteByte('-')
				b.WriteString(classRune(x.hi))
			}
		}
		b.WriteByte(']')
		alts = append(alts, b.String())
	}
	for _, c := range special {
		enc := canonical(string(c))
		alts = append(alts, literal(enc[1:len(enc)-1]))
	}
	if len(alts) == 0 {
		return "nothing"
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return "( " + strings.Join(alts, " | ") + " )"
}

func classRune(c rune) string {
	if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 {
		return fmt.Sprintf(`\x%02X`, c)
	}
	if c > 0xffff {
		return fmt.Sprintf(`\U%08X`, c)
	}
	switch c {
	case '\\', ']', '[', '^', '-', '"':
		return `\` + string(c)
	}
	return string(c)
}
