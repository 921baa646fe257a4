package prompt

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scheduled is the prompt text to use up to and including step UntilStep
// (steps count from 1).
type Scheduled struct {
	UntilStep int
	Text      string
}

// Schedule expands A1111's prompt editing for a run of steps:
//
//	[to:when]        "to" is added after step when
//	[from::when]     "from" is removed after step when
//	[from:to:when]   "from" until step when, then "to"
//	[a|b|c]          alternation: a at step 1, b at step 2, …
//
// A when with a decimal point is a fraction of the steps, one without is a
// step number; both are truncated to an integer and capped at steps.
// Brackets that form none of these (and emphasis) stay in the text for
// Parse. A prompt that A1111's grammar rejects (a "|" outside brackets, a
// backslash at the end of a line) is used unchanged for every step, as
// A1111 does. The result is ordered by UntilStep; the last entry's
// UntilStep is steps. Steps below 1 count as 1.
func Schedule(text string, steps int) []Scheduled {
	return schedule(text, max(steps, 1), 0, 0)
}

// ScheduleHires is Schedule for the second (hires fix) pass, as A1111 does
// without its "old scheduling" option: step numbers count from the start of
// the first pass (baseSteps is subtracted) and fractions run from 1 to 2
// over the second pass (1 is subtracted).
func ScheduleHires(text string, baseSteps, hiresSteps int) []Scheduled {
	return schedule(text, max(hiresSteps, 1), baseSteps, 1)
}

func schedule(text string, steps, intOffset int, fltOffset float64) []Scheduled {
	tree, ok := parseEdits(text)
	if !ok {
		return []Scheduled{{steps, text}}
	}
	set := map[int]bool{steps: true}
	tree.walk(func(n *node) {
		switch n.kind {
		case nodeScheduled:
			v, _ := strconv.ParseFloat(n.num, 64)
			if strings.Contains(n.num, ".") {
				v = (v - fltOffset) * float64(steps)
			} else {
				v -= float64(intOffset)
			}
			n.when = min(steps, truncInt(v))
			if n.when >= 1 {
				set[n.when] = true
			}
		case nodeAlternate:
			for s := 1; s <= steps; s++ {
				set[s] = true
			}
		}
	})
	out := make([]Scheduled, 0, len(set))
	for s := 1; s <= steps; s++ {
		if set[s] {
			var sb strings.Builder
			tree.render(&sb, s)
			out = append(out, Scheduled{s, sb.String()})
		}
	}
	return out
}

// truncInt is Python's int() on a float, saturating out of range.
func truncInt(v float64) int {
	switch {
	case math.IsNaN(v):
		return 0
	case v >= math.MaxInt32:
		return math.MaxInt32
	case v <= math.MinInt32:
		return math.MinInt32
	}
	return int(v)
}

type nodeKind uint8

const (
	nodeText nodeKind = iota
	nodeSeq
	nodeScheduled // kids: before (nil if absent), after
	nodeAlternate // kids: the options (nil for an empty one)
)

type node struct {
	kind nodeKind
	text string
	kids []*node
	num  string // a scheduled node's NUMBER
	when int    // its step, set by schedule
}

func (n *node) walk(f func(*node)) {
	if n == nil {
		return
	}
	for _, k := range n.kids {
		k.walk(f)
	}
	f(n)
}

func (n *node) render(sb *strings.Builder, step int) {
	if n == nil {
		return
	}
	switch n.kind {
	case nodeText:
		sb.WriteString(n.text)
	case nodeSeq:
		for _, k := range n.kids {
			k.render(sb, step)
		}
	case nodeScheduled:
		if step <= n.when {
			n.kids[0].render(sb, step)
		} else {
			n.kids[1].render(sb, step)
		}
	case nodeAlternate:
		n.kids[(step-1)%len(n.kids)].render(sb, step)
	}
}

func lit(s string) *node { return &node{kind: nodeText, text: s} }

// parseEdits parses text with A1111's prompt-editing grammar:
//
//	start:      (prompt | stray "[" "]" "(" ")" ":")*
//	prompt:     (emphasized | scheduled | alternate | plain | whitespace)*
//	emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
//	scheduled:  "[" [prompt ":"] prompt ":" [ws] NUMBER [ws] "]"
//	alternate:  "[" prompt ("|" [prompt])+ "]"
//	plain:      (any character but \ [ ] ( ) : | , or \ and one character)+
//
// Inside brackets the structure is unique; at the top level a bracket that
// starts a well-formed construct is parsed as one, otherwise it is literal.
func parseEdits(s string) (*node, bool) {
	p := &editParser{s: s, memo: map[int]parsed{}}
	root := &node{kind: nodeSeq}
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case '[', '(':
			if n, end, ok := p.construct(i); ok {
				root.kids = append(root.kids, n)
				i = end
				continue
			}
			root.kids = append(root.kids, lit(s[i:i+1]))
			i++
		case ']', ')', ':':
			root.kids = append(root.kids, lit(s[i:i+1]))
			i++
		case '|':
			return nil, false
		default:
			end, ok := plain(s, i)
			if !ok {
				return nil, false
			}
			root.kids = append(root.kids, lit(s[i:end]))
			i = end
		}
	}
	return root, true
}

// plain consumes a run of plain text from s[i:]; ok is false at a
// backslash that escapes nothing (end of text or a newline).
func plain(s string, i int) (int, bool) {
	j := i
	for j < len(s) {
		switch s[j] {
		case '[', ']', '(', ')', ':', '|':
			return j, true
		case '\\':
			if j+1 >= len(s) || s[j+1] == '\n' {
				return j, false
			}
			_, sz := utf8.DecodeRuneInString(s[j+1:])
			j += 1 + sz
		default:
			j++
		}
	}
	return j, true
}

// prompt parses the prompt rule from s[i:] up to the next ":", "|", "]",
// ")" or the end, which it does not consume.
func (p *editParser) prompt(i int) (*node, int, bool) {
	s := p.s
	seq := &node{kind: nodeSeq}
	for i < len(s) {
		switch s[i] {
		case ':', '|', ']', ')':
			return seq, i, true
		case '[', '(':
			n, end, ok := p.construct(i)
			if !ok {
				return nil, 0, false
			}
			seq.kids = append(seq.kids, n)
			i = end
		default:
			end, ok := plain(s, i)
			if !ok {
				return nil, 0, false
			}
			seq.kids = append(seq.kids, lit(s[i:end]))
			i = end
		}
	}
	return seq, i, true
}

// editParser holds the text and the constructs already parsed at each
// position (a failed outer construct is retried as a literal bracket, and
// its inner constructs would be parsed again: the memo keeps it linear).
type editParser struct {
	s    string
	memo map[int]parsed
}

type parsed struct {
	n   *node
	end int
	ok  bool
}

// construct parses an emphasized, scheduled or alternate at s[i] ("[" or
// "(") and returns it and the index after its closing bracket.
func (p *editParser) construct(i int) (*node, int, bool) {
	if r, ok := p.memo[i]; ok {
		return r.n, r.end, r.ok
	}
	n, end, ok := p.parseConstruct(i)
	p.memo[i] = parsed{n, end, ok}
	return n, end, ok
}

func (p *editParser) parseConstruct(i int) (*node, int, bool) {
	s := p.s
	p1, j, ok := p.prompt(i + 1)
	if !ok || j >= len(s) {
		return nil, 0, false
	}
	if s[i] == '(' {
		switch s[j] {
		case ')':
			return &node{kind: nodeSeq, kids: []*node{lit("("), p1, lit(")")}}, j + 1, true
		case ':':
			p2, k, ok := p.prompt(j + 1)
			if ok && k < len(s) && s[k] == ')' {
				return &node{kind: nodeSeq, kids: []*node{lit("("), p1, lit(":"), p2, lit(")")}}, k + 1, true
			}
		}
		return nil, 0, false
	}
	switch s[j] {
	case ']':
		return &node{kind: nodeSeq, kids: []*node{lit("["), p1, lit("]")}}, j + 1, true
	case '|':
		alt := &node{kind: nodeAlternate, kids: []*node{p1}}
		for j < len(s) && s[j] == '|' {
			opt, k, ok := p.prompt(j + 1)
			if !ok {
				return nil, 0, false
			}
			alt.kids = append(alt.kids, opt)
			j = k
		}
		if j < len(s) && s[j] == ']' {
			return alt, j + 1, true
		}
	case ':':
		if num, end, ok := numberEnd(s, j+1); ok {
			return &node{kind: nodeScheduled, kids: []*node{nil, p1}, num: num}, end, true
		}
		p2, k, ok := p.prompt(j + 1)
		if ok && k < len(s) && s[k] == ':' {
			if num, end, ok := numberEnd(s, k+1); ok {
				return &node{kind: nodeScheduled, kids: []*node{p1, p2}, num: num}, end, true
			}
		}
	}
	return nil, 0, false
}

// numberEnd matches `[ws] NUMBER [ws] "]"` at s[i:], NUMBER being lark's
// SIGNED_NUMBER, and returns the number and the index after "]".
func numberEnd(s string, i int) (string, int, bool) {
	i = skipSpace(s, i)
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intPart := digits()
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		frac = digits()
		if intPart == 0 && frac == 0 {
			return "", 0, false
		}
	} else if intPart == 0 {
		return "", 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		save := i
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			i = save
		}
	}
	num := s[start:i]
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ']' {
		return "", 0, false
	}
	return num, i + 1, true
}
