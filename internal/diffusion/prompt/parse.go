// Package prompt turns AUTOMATIC1111-style prompt text into what a CLIP text
// encoder consumes: emphasis syntax ("(a)", "[a]", "(a:1.5)", escapes,
// BREAK) parsed into weighted spans with A1111's exact semantics, the spans
// tokenized into chunks of 75 tokens (BOS + 75 + EOS = 77, with A1111's
// comma backtracking), the emphasis applied to the encoder's output, and
// prompt editing ("[a:b:0.5]", "[a|b]") expanded into per-step prompts.
package prompt

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The emphasis multipliers of "(…)" and "[…]".
const (
	RoundMultiplier  = 1.1
	SquareMultiplier = 1 / 1.1
)

// Span is a run of prompt text with its emphasis weight. A BREAK keyword
// is a Span with Text "BREAK" and Weight -1 (as A1111 represents it).
type Span struct {
	Text   string
	Weight float32
}

// span is a Span with A1111's float64 weight, kept exact until the end
// (nested multipliers give e.g. 1.1·1.1 = 1.2100000000000002).
type span struct {
	text string
	w    float64
}

// isBreak is A1111's test for a BREAK marker: the keyword with weight
// exactly -1 (a BREAK inside brackets is scaled, and is then plain text).
func (s span) isBreak() bool { return s.text == "BREAK" && s.w == -1 }

// Parse splits A1111 prompt text into weighted spans:
//
//	(a)  ×1.1      [a]  ÷1.1      (a:1.5)  ×1.5      nesting multiplies
//	\( \) \[ \] \\  literal brackets and backslash; any other "\" is dropped
//	BREAK (upper case, a whole word) → Span{"BREAK", -1}
//
// As in A1111, an unclosed "(" or "[" applies its multiplier to everything
// after it, an unmatched ")" or "]" and a ":" outside "(…:w)" are literal,
// adjacent spans of equal weight are merged, and an empty prompt is one
// empty span of weight 1. One deviation: a weight A1111's float() rejects
// (such as "(a:1.2.3)") would raise an error there; here the ":1.2.3)" is
// literal text.
func Parse(text string) []Span {
	p := parse(text)
	out := make([]Span, len(p))
	for i, s := range p {
		out[i] = Span{s.text, float32(s.w)}
	}
	return out
}

func parse(text string) []span {
	var res []span
	var round, square []int
	multiply := func(from int, m float64) {
		for i := from; i < len(res); i++ {
			res[i].w *= m
		}
	}
	plain := func(s string) {
		for i, part := range splitBreak(s) {
			if i > 0 {
				res = append(res, span{"BREAK", -1})
			}
			res = append(res, span{part, 1})
		}
	}
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\\':
			if i+1 < len(text) && strings.IndexByte(`()[]\`, text[i+1]) >= 0 {
				res = append(res, span{text[i+1 : i+2], 1})
				i += 2
			} else {
				res = append(res, span{"", 1}) // a lone backslash vanishes
				i++
			}
		case c == '(':
			round = append(round, len(res))
			i++
		case c == '[':
			square = append(square, len(res))
			i++
		case c == ':':
			if n, w, ok := weightAt(text[i:]); ok {
				if wf, err := parseFloat(w); err == nil && len(round) > 0 {
					multiply(round[len(round)-1], wf)
					round = round[:len(round)-1]
				} else {
					plain(text[i : i+n])
				}
				i += n
			} else {
				plain(":")
				i++
			}
		case c == ')' && len(round) > 0:
			multiply(round[len(round)-1], RoundMultiplier)
			round = round[:len(round)-1]
			i++
		case c == ']' && len(square) > 0:
			multiply(square[len(square)-1], SquareMultiplier)
			square = square[:len(square)-1]
			i++
		case c == ')' || c == ']':
			plain(text[i : i+1])
			i++
		default:
			j := i + 1
			for j < len(text) && strings.IndexByte(`\()[]:`, text[j]) < 0 {
				j++
			}
			plain(text[i:j])
			i = j
		}
	}
	for _, pos := range round {
		multiply(pos, RoundMultiplier)
	}
	for _, pos := range square {
		multiply(pos, SquareMultiplier)
	}
	if len(res) == 0 {
		res = []span{{"", 1}}
	}
	out := res[:1]
	for _, s := range res[1:] {
		if last := &out[len(out)-1]; last.w == s.w {
			last.text += s.text
		} else {
			out = append(out, s)
		}
	}
	return out
}

// weightAt matches A1111's `:\s*([+-]?[.\d]+)\s*\)` at the start of s and
// returns the match length and the number text.
func weightAt(s string) (n int, num string, ok bool) {
	i := skipSpace(s, 1)
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := i
	for i < len(s) {
		r, sz := utf8.DecodeRuneInString(s[i:])
		if r != '.' && !unicode.IsDigit(r) {
			break
		}
		i += sz
	}
	if i == digits {
		return 0, "", false
	}
	num = s[start:i]
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ')' {
		return 0, "", false
	}
	return i + 1, num, true
}

// skipSpace skips Python-regex \s (str.isspace) characters from s[i:].
func skipSpace(s string, i int) int {
	for i < len(s) {
		r, sz := utf8.DecodeRuneInString(s[i:])
		if !isPySpace(r) {
			break
		}
		i += sz
	}
	return i
}

func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// parseFloat is Python's float() on a [+-]?[.\d]+ string: any Unicode
// decimal digits, at most one point, at least one digit.
func parseFloat(s string) (float64, error) {
	var sb strings.Builder
	for _, r := range s {
		if r > '9' {
			r = '0' + digitValue(r)
		}
		sb.WriteRune(r)
	}
	v, err := strconv.ParseFloat(sb.String(), 64)
	if errors.Is(err, strconv.ErrRange) {
		return v, nil // ±Inf or 0, as Python's float() gives
	}
	return v, err
}

// digitValue is the value of a Unicode decimal digit (category Nd, which
// comes in runs of ten starting at zero).
func digitValue(r rune) rune {
	z := r
	for z > 0 && unicode.IsDigit(z-1) {
		z--
	}
	return (r - z) % 10
}

// splitBreak splits text at A1111's `\s*\bBREAK\b\s*`: the upper-case
// word BREAK with the spaces around it.
func splitBreak(text string) []string {
	var parts []string
	last := 0
	for from := 0; ; {
		k := strings.Index(text[from:], "BREAK")
		if k < 0 {
			break
		}
		k += from
		end := k + len("BREAK")
		if wordBefore(text, k) || wordAfter(text, end) {
			from = k + 1
			continue
		}
		start := k
		for start > last {
			r, sz := utf8.DecodeLastRuneInString(text[last:start])
			if !isPySpace(r) {
				break
			}
			start -= sz
		}
		end = skipSpace(text, end)
		parts = append(parts, text[last:start])
		last, from = end, end
	}
	return append(parts, text[last:])
}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

func wordBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return i > 0 && isWord(r)
}

func wordAfter(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return i < len(s) && isWord(r)
}
