package engine

import (
	"errors"
	"fmt"
	"strings"

	"mica/internal/llm/grammar"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
	"mica/internal/tokenizer"
)

// ChatRequest is a conversation to answer in the model's chat format.
type ChatRequest struct {
	Messages []chat.Message
	Tools    []chat.Tool
	// Images are the conversation's images, one per "image" part of the
	// messages, in order (the model needs a vision projector: OpenVision).
	// A message's text marks each image's place with ImagePlace, as the
	// server's codecs write it when they flatten text and image parts.
	Images []Image
	// System, when not empty, is put first as a system message.
	System string
	// Think asks a Gemma 4 model to think before answering (Gemma 3 ignores
	// it); the thinking streams as ThinkingEvents.
	Think    bool
	Sampling sample.Params
	// MaxTokens limits the generated tokens; 0: until the end of the turn or
	// a full context.
	MaxTokens int
	// Stop strings end the answer where they first appear in the output
	// (they are not part of it).
	Stop []string
	// Grammar, when not nil, constrains the answer to the grammar's
	// sentences (constrained decoding); the answer ends when the grammar
	// is complete and allows nothing more. It cannot be combined with
	// Think, and the model cannot call tools while it is set.
	Grammar *grammar.Grammar
	// N is the number of answers (choices) to generate for the prompt (0
	// or 1: one). They share the prompt's computation; see Result.Choices
	// and the seed rule there.
	N int
	// MarkerGrammar says that Grammar spells Gemma 4's tool-call markers
	// (<|tool_call>, <tool_call|> and <|"|>, as ToolCallGBNF writes), which
	// then match their special tokens; ordinary tokens holding '<' are not
	// allowed, so the markers come only from their own tokens.
	MarkerGrammar bool
}

// CompletionRequest is a plain continuation of a prompt, without a chat
// format.
type CompletionRequest struct {
	Prompt string
	// Tokens, when not nil, is the prompt as token ids (Prompt, ParseSpecial
	// and NoBOS are ignored).
	Tokens []int32
	// ParseSpecial recognises special-token strings written in Prompt.
	ParseSpecial bool
	// NoBOS leaves out the BOS token the vocabulary asks for.
	NoBOS bool
	// Images are the prompt's images; MediaMarker ("<__media__>") marks
	// each one's place in Prompt (all go first when it has none), as
	// llama.cpp's mtmd reads a prompt. Special-token strings in Prompt
	// are then recognised.
	Images    []Image
	Sampling  sample.Params
	MaxTokens int
	Stop      []string
	// Grammar, when not nil, constrains the continuation (see
	// ChatRequest.Grammar).
	Grammar *grammar.Grammar
	// N is the number of continuations (see ChatRequest.N).
	N int
}

// ErrEmptyPrompt is returned for a request with nothing to continue.
var ErrEmptyPrompt = errors.New("engine: empty prompt")

// ChatPrompt renders r in the model's chat format, ending with the opening
// of the model's turn, and tokenizes it: special tokens are recognised only
// in the template's own markup, never in the caller's text. Each image
// takes its begin marker, one ImageToken per image position and its end
// marker, so the length is the positions the prompt fills.
func (e *Engine) ChatPrompt(r ChatRequest) ([]int32, error) {
	p, err := e.chatPlan(r)
	if err != nil {
		return nil, err
	}
	return p.tokens(), nil
}

// chatPlan lays out a conversation for the model.
func (e *Engine) chatPlan(r ChatRequest) (*plan, error) {
	msgs := r.Messages
	if r.System != "" {
		msgs = append([]chat.Message{{Role: "system", Content: chat.Text(r.System)}}, msgs...)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: the conversation has no messages", ErrEmptyPrompt)
	}
	req := chat.Request{Messages: msgs, Tools: r.Tools, AddGenerationPrompt: true, EnableThinking: r.Think}
	vars, err := req.Vars()
	if err != nil {
		return nil, err
	}
	if b := e.tok.BOS(); b >= 0 {
		vars.BOS = e.tok.TokenText(b)
	} else {
		vars.BOS = ""
	}
	segs, err := chat.RenderSegments(e.family, vars)
	if err != nil {
		return nil, err
	}
	if len(r.Images) > 0 || e.hasImagePlace(segs) {
		return e.segmentPlan(segs, r.Images)
	}
	ids, err := e.TokenizeSegments(segs)
	if err != nil {
		return nil, err
	}
	return tokenPlan(ids), nil
}

// hasImagePlace reports whether the rendered markup shows an image.
func (e *Engine) hasImagePlace(segs []chat.Segment) bool {
	ph := imagePlaceholders[e.family]
	for _, s := range segs {
		if s.Markup && ph != "" && strings.Contains(s.Text, ph) {
			return true
		}
	}
	return false
}

// TokenizeSegments tokenizes a rendered prompt the way llama.cpp tokenizes
// the whole prompt with special tokens on, but safely: special-token strings
// are cut out of Markup segments only, and the text between two cuts is
// tokenized as one piece with special tokens off, across segment boundaries.
func (e *Engine) TokenizeSegments(segs []chat.Segment) ([]int32, error) {
	var ids []int32
	var text strings.Builder
	flush := func() error {
		if text.Len() == 0 {
			return nil
		}
		enc, err := e.tok.Encode(text.String(), tokenizer.EncodeOptions{})
		if err != nil {
			return err
		}
		ids = append(ids, enc...)
		text.Reset()
		return nil
	}
	for _, seg := range segs {
		if !seg.Markup {
			text.WriteString(seg.Text)
			continue
		}
		s, from := seg.Text, 0
		for i := 0; i < len(s); {
			st, ok := e.specialAt(s, i)
			if !ok {
				i++
				continue
			}
			text.WriteString(s[from:i])
			if err := flush(); err != nil {
				return nil, err
			}
			ids = append(ids, st.id)
			i += len(st.text)
			from = i
		}
		text.WriteString(s[from:])
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return ids, nil
}

// specialAt returns the longest special token whose text starts at s[i].
func (e *Engine) specialAt(s string, i int) (specialToken, bool) {
	for _, st := range e.special[s[i]] {
		if strings.HasPrefix(s[i:], st.text) {
			return st, true
		}
	}
	return specialToken{}, false
}

// CompletionPrompt tokenizes a completion request's prompt (with
// ImageToken at image positions, see ChatPrompt).
func (e *Engine) CompletionPrompt(r CompletionRequest) ([]int32, error) {
	p, err := e.completionPrompt(r)
	if err != nil {
		return nil, err
	}
	return p.tokens(), nil
}

func (e *Engine) completionPrompt(r CompletionRequest) (*plan, error) {
	if len(r.Images) > 0 {
		return e.completionPlan(r)
	}
	if r.Tokens != nil {
		if len(r.Tokens) == 0 {
			return nil, ErrEmptyPrompt
		}
		if err := e.tok.CheckIDs(r.Tokens); err != nil {
			return nil, fmt.Errorf("engine: prompt tokens: %w", err)
		}
		return tokenPlan(r.Tokens), nil
	}
	if r.Prompt == "" {
		return nil, ErrEmptyPrompt
	}
	ids, err := e.tok.Encode(r.Prompt, tokenizer.EncodeOptions{ParseSpecial: r.ParseSpecial, AddBOS: !r.NoBOS && e.tok.AddBOSByDefault()})
	if err != nil {
		return nil, err
	}
	return tokenPlan(ids), nil
}
