package ollama

import (
	"encoding/json"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

// Message is an assistant message in a chat response or chunk.
type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Thinking  string     `json:"thinking,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Response is an /api/chat or /api/generate chunk or final object.
type Response struct {
	Model      string   `json:"model"`
	CreatedAt  string   `json:"created_at"`
	Message    *Message `json:"message,omitempty"`
	Response   *string  `json:"response,omitempty"`
	Thinking   string   `json:"thinking,omitempty"`
	Done       bool     `json:"done"`
	DoneReason string   `json:"done_reason,omitempty"`

	TotalDuration      int64 `json:"total_duration,omitempty"`
	LoadDuration       int64 `json:"load_duration,omitempty"`
	PromptEvalCount    int   `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64 `json:"prompt_eval_duration,omitempty"`
	EvalCount          int   `json:"eval_count,omitempty"`
	EvalDuration       int64 `json:"eval_duration,omitempty"`
}

// Encoder builds the objects of one response.
type Encoder struct {
	Model string
	// Chat: /api/chat messages; otherwise /api/generate responses.
	Chat  bool
	Start time.Time
	// Load is the time spent loading the model for this request.
	Load  time.Duration
	calls int
}

func (e *Encoder) base(now time.Time) Response {
	return Response{Model: e.Model, CreatedAt: now.UTC().Format(time.RFC3339Nano)}
}

func toolCalls(calls []chat.ToolCall, first int) []ToolCall {
	var out []ToolCall
	for i, c := range calls {
		args := c.Arguments
		if len(args) == 0 {
			args = json.RawMessage("{}")
		}
		idx := first + i
		out = append(out, ToolCall{Function: Function{Index: &idx, Name: c.Name, Arguments: args}})
	}
	return out
}

// Event returns the chunk for one engine event.
func (e *Encoder) Event(ev engine.Event, now time.Time) Response {
	r := e.base(now)
	if e.Chat {
		m := &Message{Role: "assistant"}
		switch ev.Kind {
		case engine.ContentEvent:
			m.Content = ev.Text
		case engine.ThinkingEvent:
			m.Thinking = ev.Text
		case engine.ToolCallEvent:
			m.ToolCalls = toolCalls([]chat.ToolCall{ev.Call}, e.calls)
			e.calls++
		}
		r.Message = m
		return r
	}
	text := ""
	switch ev.Kind {
	case engine.ThinkingEvent:
		r.Thinking = ev.Text
	default:
		text = ev.Text
	}
	r.Response = &text
	return r
}

// DoneReason maps an engine finish to Ollama's done_reason.
func DoneReason(f engine.Finish) string {
	switch f {
	case engine.FinishLength, engine.FinishContext:
		return "length"
	}
	return "stop"
}

// Final returns the closing object. When streamed, the answer was already
// sent in chunks and the final object carries only the statistics.
func (e *Encoder) Final(res engine.Result, streamed bool, now time.Time) Response {
	r := e.base(now)
	r.Done = true
	r.DoneReason = DoneReason(res.Finish)
	u := res.Usage
	r.TotalDuration = int64(now.Sub(e.Start))
	r.LoadDuration = int64(e.Load)
	r.PromptEvalCount = u.PromptTokens
	r.PromptEvalDuration = int64(u.Prefill)
	r.EvalCount = u.GeneratedTokens
	r.EvalDuration = int64(u.Decode)
	if r.PromptEvalDuration == 0 {
		r.PromptEvalDuration = 1 // clients divide by it
	}
	if r.EvalDuration == 0 {
		r.EvalDuration = 1
	}
	text, thinking := res.Text, res.Thinking
	if streamed {
		text, thinking = "", ""
	}
	if e.Chat {
		m := &Message{Role: "assistant", Content: text, Thinking: thinking}
		if !streamed {
			m.ToolCalls = toolCalls(res.ToolCalls, 0)
		}
		r.Message = m
	} else {
		r.Response = &text
		r.Thinking = thinking
	}
	return r
}

// LoadResponse is the answer to a load-only /api/generate ("load" or
// "unload").
func (e *Encoder) LoadResponse(reason string, now time.Time) Response {
	r := e.base(now)
	if e.Chat {
		r.Message = &Message{Role: "assistant"}
	} else {
		empty := ""
		r.Response = &empty
	}
	r.Done = true
	r.DoneReason = reason
	return r
}

// ErrorObject is Ollama's error shape.
type ErrorObject struct {
	Error string `json:"error"`
}

// Error encodes a server error.
func Error(e *canon.Error) ErrorObject { return ErrorObject{e.Msg} }

// Details describes a model file in /api/tags, /api/show and /api/ps.
type Details struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// ModelEntry is an entry of /api/tags.
type ModelEntry struct {
	Name       string  `json:"name"`
	Model      string  `json:"model"`
	ModifiedAt string  `json:"modified_at"`
	Size       int64   `json:"size"`
	Digest     string  `json:"digest"`
	Details    Details `json:"details"`
}

// Tags is the /api/tags response.
type Tags struct {
	Models []ModelEntry `json:"models"`
}

// Running is an entry of /api/ps.
type Running struct {
	ModelEntry
	ExpiresAt string `json:"expires_at"`
	SizeVRAM  int64  `json:"size_vram"`
}

// PS is the /api/ps response.
type PS struct {
	Models []Running `json:"models"`
}

// Show is the /api/show response.
type Show struct {
	Modelfile    string         `json:"modelfile"`
	Parameters   string         `json:"parameters"`
	Template     string         `json:"template"`
	Details      Details        `json:"details"`
	ModelInfo    map[string]any `json:"model_info"`
	Capabilities []string       `json:"capabilities"`
	ModifiedAt   string         `json:"modified_at"`
}

// ShowRequest is the /api/show body.
type ShowRequest struct {
	Model   string `json:"model"`
	Name    string `json:"name"`
	Verbose bool   `json:"verbose"`
}

// DecodeShow decodes an /api/show body.
func DecodeShow(body []byte) (string, error) {
	var r ShowRequest
	if err := canon.Decode(body, &r); err != nil {
		return "", err
	}
	if r.Model == "" {
		r.Model = r.Name
	}
	if r.Model == "" {
		return "", canon.Errorf("model", "model is required")
	}
	return r.Model, nil
}
