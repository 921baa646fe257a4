package chat

import (
	"fmt"
	"strings"
)

// Segment is a piece of a rendered prompt. Markup comes from the template
// itself (special-token strings, role lines, the tool syntax) and may be
// tokenized with special-token recognition. Everything else is text that
// comes from the caller's variables (message bodies, roles, names,
// descriptions, arguments, tool results) and must never become special tokens,
// even where it spells one: otherwise a user could write "<turn|>" and forge
// a turn.
//
// To tokenize as llama.cpp does for benign input while staying safe, split the
// prompt at the special tokens found in Markup segments only, and tokenize the
// text between two such tokens as one piece, across segment boundaries.
type Segment struct {
	Text   string
	Markup bool
}

// Join returns the prompt the segments make up.
func Join(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
	}
	return b.String()
}

// RenderSegments renders template variables in the chat format of family
// ("gemma3" or "gemma4") as segments; Join of the result is what RenderVars
// returns.
func RenderSegments(family string, v Vars) ([]Segment, error) {
	var o out
	var err error
	switch family {
	case "gemma3":
		err = renderGemma3(&o, v)
	case "gemma4":
		err = (&g4{o: &o}).render(v)
	default:
		return nil, fmt.Errorf("chat format %q: unknown (known: gemma3, gemma4)", family)
	}
	if err != nil {
		return nil, fmt.Errorf("%s chat format: %w", family, err)
	}
	return o.segs, nil
}

// out collects segments, merging neighbours of the same kind.
type out struct{ segs []Segment }

func (o *out) add(s string, markup bool) {
	if s == "" {
		return
	}
	if n := len(o.segs); n > 0 && o.segs[n-1].Markup == markup {
		o.segs[n-1].Text += s
		return
	}
	o.segs = append(o.segs, Segment{Text: s, Markup: markup})
}

// markup writes template text; text writes text from the variables.
func (o *out) markup(s string) { o.add(s, true) }
func (o *out) text(s string)   { o.add(s, false) }

// textValue writes a variable that the template concatenates with strings
// (so it must be a string), naming what it is in the error.
func (o *out) textValue(v Value, what string) error {
	switch v.Kind {
	case String:
		o.text(v.Str)
		return nil
	case Undefined:
		return undefinedErr("%s is missing", what)
	}
	return typeErr("%s is %s, not a string", what, kindName(v))
}
