package openai

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

// Usage is OpenAI's usage object.
type Usage struct {
	PromptTokens        int           `json:"prompt_tokens"`
	CompletionTokens    int           `json:"completion_tokens"`
	TotalTokens         int           `json:"total_tokens"`
	PromptTokensDetails *PromptDetail `json:"prompt_tokens_details,omitempty"`
}

// PromptDetail reports the prompt tokens served from the cache.
type PromptDetail struct {
	CachedTokens int `json:"cached_tokens"`
}

func usage(u engine.Usage) *Usage {
	return &Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.GeneratedTokens,
		TotalTokens: u.PromptTokens + u.GeneratedTokens, PromptTokensDetails: &PromptDetail{u.CachedTokens}}
}

// ToolCall is a tool call in a message or a stream delta.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall is a call's function: its name and JSON-encoded arguments.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Message is an assistant message (non-streamed) or a stream delta.
type Message struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// Delta is a stream chunk's change to the message (no null content).
type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          string     `json:"content,omitempty"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// Choice is one answer of a chat completion or a chunk.
type Choice struct {
	Index        int      `json:"index"`
	Message      *Message `json:"message,omitempty"`
	Delta        *Delta   `json:"delta,omitempty"`
	Text         *string  `json:"text,omitempty"`
	Logprobs     any      `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

// Completion is a chat.completion, chat.completion.chunk, text_completion
// object.
type Completion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	SystemFingerprint string   `json:"system_fingerprint"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
}

// Fingerprint identifies the serving backend in system_fingerprint.
const Fingerprint = "mica"

// FinishReason maps an engine result to OpenAI's finish_reason.
func FinishReason(res engine.Result) string {
	switch {
	case len(res.ToolCalls) > 0:
		return "tool_calls"
	case res.Finish == engine.FinishLength, res.Finish == engine.FinishContext:
		return "length"
	}
	return "stop"
}

// NewID returns a response id with the given prefix ("chatcmpl", "cmpl",
// "call").
func NewID(prefix string) string {
	return fmt.Sprintf("%s-%016x%08x", prefix, rand.Uint64(), rand.Uint32())
}

func callID() string { return fmt.Sprintf("call_%016x%08x", rand.Uint64(), rand.Uint32()) }

func toolCalls(calls []chat.ToolCall, ids []string) []ToolCall {
	var out []ToolCall
	for i, c := range calls {
		args := string(c.Arguments)
		if args == "" {
			args = "{}"
		}
		out = append(out, ToolCall{ID: ids[i], Type: "function", Function: FunctionCall{Name: c.Name, Arguments: args}})
	}
	return out
}

// answers are a result's choices: its Choices (n > 1), or itself.
func answers(res engine.Result) []engine.Result {
	if len(res.Choices) > 0 {
		return res.Choices
	}
	return []engine.Result{res}
}

// ChatResponse encodes a finished chat completion: one choice per answer,
// and the usage of the whole request (the prompt counted once).
func ChatResponse(id, model string, created int64, res engine.Result) Completion {
	out := Completion{ID: id, Object: "chat.completion", Created: created, Model: model, SystemFingerprint: Fingerprint,
		Choices: []Choice{}, Usage: usage(res.Usage)}
	for i, r := range answers(res) {
		ids := make([]string, len(r.ToolCalls))
		for i := range ids {
			ids[i] = callID()
		}
		msg := &Message{Role: "assistant", ReasoningContent: r.Thinking, ToolCalls: toolCalls(r.ToolCalls, ids)}
		if r.Text != "" || len(r.ToolCalls) == 0 {
			text := r.Text
			msg.Content = &text
		}
		fr := FinishReason(r)
		out.Choices = append(out.Choices, Choice{Index: i, Message: msg, FinishReason: &fr})
	}
	return out
}

// TextResponse encodes a finished legacy completion (see ChatResponse).
func TextResponse(id, model string, created int64, res engine.Result) Completion {
	out := Completion{ID: id, Object: "text_completion", Created: created, Model: model, SystemFingerprint: Fingerprint,
		Choices: []Choice{}, Usage: usage(res.Usage)}
	for i, r := range answers(res) {
		fr := FinishReason(r)
		text := r.Text
		out.Choices = append(out.Choices, Choice{Index: i, Text: &text, FinishReason: &fr})
	}
	return out
}

// Stream encodes engine events as stream chunks for one response. With
// several choices, each chunk carries one choice, its index that of the
// event's answer (engine.Event.Choice); their chunks interleave.
type Stream struct {
	ID      string
	Model   string
	Created int64
	// Chat: chat.completion.chunk objects; otherwise text_completion.
	Chat bool
	// N is the number of choices (0 or 1: one).
	N     int
	calls map[int]int // tool calls so far, by choice
	begun bool
}

func (s *Stream) chunk(c Choice) Completion {
	obj := "text_completion"
	if s.Chat {
		obj = "chat.completion.chunk"
	}
	return Completion{ID: s.ID, Object: obj, Created: s.Created, Model: s.Model, SystemFingerprint: Fingerprint, Choices: []Choice{c}}
}

// Start returns the chunks a chat stream opens with (the assistant role,
// for each choice).
func (s *Stream) Start() []Completion {
	if !s.Chat || s.begun {
		return nil
	}
	s.begun = true
	var out []Completion
	for i := range max(s.N, 1) {
		out = append(out, s.chunk(Choice{Index: i, Delta: &Delta{Role: "assistant"}}))
	}
	return out
}

// Event returns the chunk for one engine event.
func (s *Stream) Event(ev engine.Event) []Completion {
	out := s.Start()
	if !s.Chat {
		t := ev.Text
		return append(out, s.chunk(Choice{Index: ev.Choice, Text: &t}))
	}
	d := &Delta{}
	switch ev.Kind {
	case engine.ContentEvent:
		d.Content = ev.Text
	case engine.ThinkingEvent:
		d.ReasoningContent = ev.Text
	case engine.ToolCallEvent:
		if s.calls == nil {
			s.calls = map[int]int{}
		}
		i := s.calls[ev.Choice]
		s.calls[ev.Choice]++
		tc := toolCalls([]chat.ToolCall{ev.Call}, []string{callID()})[0]
		tc.Index = &i
		d.ToolCalls = []ToolCall{tc}
	}
	return append(out, s.chunk(Choice{Index: ev.Choice, Delta: d}))
}

// Finish returns the closing chunks: each choice's finish reason, then the
// usage when asked for (a chunk with no choices, as OpenAI sends it; the
// prompt counted once).
func (s *Stream) Finish(res engine.Result, includeUsage bool) []Completion {
	out := s.Start()
	for i, r := range answers(res) {
		fr := FinishReason(r)
		c := Choice{Index: i, FinishReason: &fr}
		if s.Chat {
			c.Delta = &Delta{}
		} else {
			empty := ""
			c.Text = &empty
		}
		out = append(out, s.chunk(c))
	}
	if includeUsage {
		u := s.chunk(Choice{})
		u.Choices = []Choice{}
		u.Usage = usage(res.Usage)
		out = append(out, u)
	}
	return out
}

// ErrorObject is OpenAI's error envelope.
type ErrorObject struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is the inside of an ErrorObject.
type ErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Error encodes a server error.
func Error(e *canon.Error) ErrorObject {
	b := ErrorBody{Message: e.Msg, Type: e.Kind.Type()}
	if e.Param != "" {
		b.Param = &e.Param
	}
	code := e.Code
	if code == "" {
		switch e.Kind {
		case canon.NotFound:
			code = "model_not_found"
		case canon.TooLarge:
			code = "request_too_large"
		case canon.Busy:
			code = "rate_limit_exceeded"
		}
	}
	if code != "" {
		b.Code = &code
	}
	return ErrorObject{b}
}

// Model is an entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the GET /v1/models response.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// Marshal encodes v; the codec's types always encode.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":null}}`)
	}
	return b
}
