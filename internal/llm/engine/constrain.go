package engine

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"mica/internal/llm/grammar"
	"mica/internal/models/gemma/chat"
	"mica/internal/tokenizer"
)

// ErrThinkGrammar is returned for a chat request that asks for thinking and
// a grammar together: the grammar would have to apply to the answer only,
// which is not implemented yet.
var ErrThinkGrammar = errors.New("engine: thinking cannot be combined with constrained output (a grammar, JSON mode or a JSON Schema) yet: turn thinking off")

// GrammarVocab returns the model's vocabulary prepared for grammar masks,
// building it on first use.
func (e *Engine) GrammarVocab() *grammar.Vocab { return e.grammarVocab() }

func (e *Engine) grammarVocab() *grammar.Vocab {
	e.vocabOnce.Do(func() {
		e.vocab = grammar.NewVocab(e.tok)
		for id := int32(0); int(id) < e.vocab.Size(); id++ {
			if e.vocab.IsEOG(id) {
				e.eog = append(e.eog, id)
			}
		}
	})
	return e.vocab
}

// constraint is a request's grammar state and the mask of the tokens it
// allows next.
type constraint struct {
	v     *grammar.Vocab
	eog   []int32
	st    *grammar.State
	mask  []uint64
	fresh bool // mask is that of st
}

func newConstraint(e *Engine, g *grammar.Grammar, markers bool) *constraint {
	v := e.grammarVocab()
	if markers {
		v = e.toolVocab()
	}
	return &constraint{v: v, eog: e.eog, st: g.NewState(), mask: make([]uint64, v.MaskWords())}
}

func (c *constraint) update() error {
	if c.fresh {
		return nil
	}
	if err := c.st.Mask(c.v, c.mask); err != nil {
		return fmt.Errorf("engine: grammar mask: %w", err)
	}
	c.fresh = true
	return nil
}

// apply sets the logits of the tokens the grammar does not allow next to
// -Inf (and those of ids past the tokenizer's vocabulary).
func (c *constraint) apply(logits []float32) error {
	if err := c.update(); err != nil {
		return err
	}
	neg := float32(math.Inf(-1))
	n := min(len(logits), c.v.Size())
	ok := false
	for w, m := range c.mask {
		base := w * 64
		if base >= n {
			break
		}
		if m == ^uint64(0) && base+64 <= n {
			ok = true
			continue
		}
		if m != 0 {
			ok = true
		}
		for i := base; i < min(base+64, n); i++ {
			if m>>(uint(i-base))&1 == 0 {
				logits[i] = neg
			}
		}
	}
	for i := n; i < len(logits); i++ {
		logits[i] = neg
	}
	if !ok {
		return errors.New("engine: the grammar allows no token here (a token-level dead end of the grammar)")
	}
	return nil
}

// accept advances the grammar by the sampled token and reports whether the
// grammar is complete and allows only end-of-generation tokens next, so
// that the answer ends here.
func (c *constraint) accept(id int32) (bool, error) {
	if err := c.st.AcceptToken(c.v, id); err != nil {
		return false, fmt.Errorf("engine: the sampled token breaks the grammar: %w", err)
	}
	c.fresh = false
	if !c.st.CanEnd() {
		return false, nil
	}
	if err := c.update(); err != nil {
		return false, err
	}
	allowed := 0
	for _, m := range c.mask {
		allowed += bits.OnesCount64(m)
	}
	for _, id := range c.eog {
		if c.mask[id>>6]>>(id&63)&1 != 0 {
			allowed--
		}
	}
	return allowed == 0, nil
}

// toolVocab is the vocabulary for grammars that spell Gemma 4's tool-call
// markers: the marker tokens match their text, ordinary tokens holding '<'
// are left out (so a marker cannot be spelled by ordinary tokens), other
// tokens are as in grammarVocab.
func (e *Engine) toolVocab() *grammar.Vocab {
	e.grammarVocab() // e.eog
	e.markerOnce.Do(func() {
		t := e.tok
		n := t.VocabSize()
		pieces := make([][]byte, n)
		eog := make([]bool, n)
		for _, id := range e.eog {
			eog[id] = true
		}
		marker := map[int32]string{}
		for _, m := range []string{chat.ToolCallStart, chat.ToolCallEnd, chat.Quote} {
			if id, ok := t.ID(m); ok {
				marker[id] = m
			}
		}
		for id := int32(0); int(id) < n; id++ {
			if m, ok := marker[id]; ok {
				pieces[id] = []byte(m)
				continue
			}
			switch t.Type(id) {
			case tokenizer.TypeControl, tokenizer.TypeUnknown, tokenizer.TypeUnused, tokenizer.TypeUserDefined:
				continue
			}
			if p := t.AppendPiece(nil, id); !strings.Contains(string(p), "<") {
				pieces[id] = p
			}
		}
		e.markerVocab = grammar.NewVocabFromPieces(pieces, eog)
	})
	return e.markerVocab
}

// ToolCallGBNF is the grammar of one Gemma 4 tool call to one of the named
// functions, for tool_choice "required" or a named function: the call
// syntax with bare keys, <|"|>-quoted strings without '<', numbers,
// true/false, and objects and arrays nested two deep, each bounded so that
// a call always ends. The arguments are not checked against the tool's
// parameter schema. Use it with ChatRequest.MarkerGrammar.
func ToolCallGBNF(names []string) string {
	var b strings.Builder
	b.WriteString("root ::= \"<|tool_call>call:\" name \"{\" members? \"}<tool_call|>\"\nname ::= ")
	for i, n := range names {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(gbnfLiteral(n))
	}
	b.WriteString(`
members ::= member ("," member){0,7}
member ::= key ":" value
key ::= [a-zA-Z_] [a-zA-Z0-9_]{0,15}
value ::= scalar | "[" (inner ("," inner){0,7})? "]" | "{" (ikey ":" inner ("," ikey ":" inner){0,7})? "}"
ikey ::= [a-zA-Z_] [a-zA-Z0-9_]{0,15}
inner ::= scalar | "[" (scalar ("," scalar){0,7})? "]" | "{" (ikey ":" scalar ("," ikey ":" scalar){0,7})? "}"
scalar ::= str | num | "true" | "false"
str ::= "<|\"|>" [^<]{0,64} "<|\"|>"
num ::= "-"? [0-9]{1,12} ("." [0-9]{1,8})?
`)
	return b.String()
}

// gbnfLiteral quotes s as a GBNF string literal.
func gbnfLiteral(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, "\\x%02X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
