package clip

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// clean is the reference's text normalisation: HTML entities decoded twice,
// runs of whitespace turned into one space, the ends trimmed, then
// lower-cased with Python's str.lower rules. (ftfy's mojibake repair is not
// applied; on text without mojibake it is the identity.)
func clean(text string) string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	if strings.IndexByte(text, '&') >= 0 {
		text = html.UnescapeString(html.UnescapeString(text))
	}
	// Python's strip() trims str.isspace characters; the regex module's \s
	// (Unicode White_Space) is what collapses to one space inside.
	text = strings.TrimFunc(text, isPySpace)
	var sb strings.Builder
	sb.Grow(len(text))
	space := false
	for _, r := range text {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	return lower(sb.String())
}

// isPySpace is Python's str.isspace: Unicode White_Space (Go's
// unicode.IsSpace, the regex module's \s) plus U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// lower is Python's str.lower: Unicode simple lower-case mappings, plus the
// two special cases Python applies (U+0130 → "i̇", and a final capital sigma
// → "ς").
func lower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	rs := []rune(s)
	var sb strings.Builder
	sb.Grow(len(s))
	for i, r := range rs {
		switch {
		case r == 0x130:
			sb.WriteString("i\u0307")
		case r == 'Σ' && finalSigma(rs, i):
			sb.WriteRune('ς')
		default:
			sb.WriteRune(unicode.ToLower(r))
		}
	}
	return sb.String()
}

// finalSigma is Unicode's Final_Sigma condition: a cased letter before
// (skipping case-ignorable characters) and none after.
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0xAD, 0xB7, 0x2019:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// preTokenize splits cleaned text as CLIP's pattern does, trying at each
// position, in order: the two special tokens, the contractions 's 't 're 've
// 'm 'll 'd (case-insensitively), a run of letters, one number character, a
// run of characters that are neither space, letter nor number. Spaces
// between pieces are dropped.
func preTokenize(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		if s[i] == '<' {
			if p := specialAt(s[i:]); p != "" {
				out = append(out, p)
				i += len(p)
				continue
			}
		}
		if s[i] == '\'' {
			if n := contraction(s[i+1:]); n > 0 {
				out = append(out, s[i:i+1+n])
				i += 1 + n
				continue
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsLetter(r):
			j := i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += n2
			}
			out = append(out, s[i:j])
			i = j
		case unicode.IsNumber(r):
			out = append(out, s[i:i+n])
			i += n
		case unicode.IsSpace(r):
			i += n
		default:
			j := i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if unicode.IsSpace(r2) || unicode.IsLetter(r2) || unicode.IsNumber(r2) {
					break
				}
				j += n2
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}

func specialAt(s string) string {
	for _, p := range []string{startText, endText} {
		if strings.HasPrefix(s, p) {
			return p
		}
	}
	return ""
}

// contraction returns the byte length of a contraction suffix at the start
// of s (after the apostrophe), or 0. The pattern is case-insensitive, so the
// long s (ſ) matches s and the Kelvin sign matches nothing here.
func contraction(s string) int {
	for _, c := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if n := foldPrefix(s, c); n > 0 {
			return n
		}
	}
	return 0
}

// foldPrefix returns how many bytes of s match the ASCII word w under simple
// case folding, or 0.
func foldPrefix(s, w string) int {
	n := 0
	for k := 0; k < len(w); k++ {
		if n >= len(s) {
			return 0
		}
		r, sz := utf8.DecodeRuneInString(s[n:])
		if !foldEq(r, rune(w[k])) {
			return 0
		}
		n += sz
	}
	return n
}

func foldEq(r, c rune) bool {
	for f := r; ; {
		if f == c {
			return true
		}
		f = unicode.SimpleFold(f)
		if f == r {
			return false
		}
	}
}

// fromUTF8Replace decodes b as Python's bytes.decode("utf-8", "replace"):
// each maximal prefix of a valid sequence that cannot be completed becomes
// one U+FFFD.
func fromUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.WriteRune(r)
			i += n
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += invalidRun(b[i:])
	}
	return sb.String()
}

// invalidRun is the length of the maximal subpart of an ill-formed sequence
// at the start of b (at least 1), per Unicode's "U+FFFD substitution of
// maximal subparts".
func invalidRun(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if x < lo || x > hi {
			break
		}
		n++
	}
	return n
}
