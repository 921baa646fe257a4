package chat

import (
	"encoding/json"
	"fmt"
)

// Vars are the variables a chat template is rendered with, as JSON values:
// exactly what an `input` object of the chat-template cases holds, or what an
// OpenAI-style request carries once its tool-call arguments are parsed.
// Build them with ParseVars from JSON, or with Request.Vars.
type Vars struct {
	// Messages is the array of messages ({"role", "content", "tool_calls", …}).
	Messages Value
	// Tools is the array of tool declarations, or Undefined.
	Tools Value
	// AddGenerationPrompt and EnableThinking are tested for Python truth.
	AddGenerationPrompt Value
	EnableThinking      Value
	// BOS is the bos_token text written first.
	BOS string
}

// ParseVars reads template variables from a JSON object with the keys
// messages, tools, add_generation_prompt, enable_thinking and, optionally,
// bos_token (default "<bos>"). Other keys are ignored. Object key order is
// kept, since the templates iterate objects in order.
func ParseVars(data []byte) (Vars, error) {
	root, err := ParseValue(data)
	if err != nil {
		return Vars{}, fmt.Errorf("chat template variables: %w", err)
	}
	if root.Kind != Object {
		return Vars{}, fmt.Errorf("chat template variables: want a JSON object, got %s", kindName(root))
	}
	v := Vars{BOS: BOS}
	v.Messages, _ = root.Get("messages")
	if v.Messages.Kind != Array {
		return Vars{}, fmt.Errorf("chat template variables: messages is %s, want an array", kindName(v.Messages))
	}
	v.Tools, _ = root.Get("tools")
	v.AddGenerationPrompt, _ = root.Get("add_generation_prompt")
	v.EnableThinking, _ = root.Get("enable_thinking")
	if bos, ok := root.Get("bos_token"); ok {
		if bos.Kind != String {
			return Vars{}, fmt.Errorf("chat template variables: bos_token is %s, want a string", kindName(bos))
		}
		v.BOS = bos.Str
	}
	return v, nil
}

// Families are the chat formats Render knows.
var Families = []string{"gemma3", "gemma4"}

// RenderVars renders the chat format of family ("gemma3" or "gemma4").
func RenderVars(family string, v Vars) (string, error) {
	switch family {
	case "gemma3":
		return RenderGemma3Vars(v)
	case "gemma4":
		return RenderGemma4Vars(v)
	}
	return "", fmt.Errorf("chat format %q: unknown (known: gemma3, gemma4)", family)
}

// RenderJSON renders the chat format of family for template variables given
// as a JSON object (see ParseVars); this is `mica dev chat-format`.
func RenderJSON(family string, data []byte) (string, error) {
	v, err := ParseVars(data)
	if err != nil {
		return "", err
	}
	return RenderVars(family, v)
}

// Render renders a typed request in the chat format of family.
func Render(family string, r Request) (string, error) {
	v, err := r.Vars()
	if err != nil {
		return "", err
	}
	return RenderVars(family, v)
}

// RenderGemma3 renders a typed request in Gemma 3's format.
func RenderGemma3(r Request) (string, error) { return Render("gemma3", r) }

// RenderGemma4 renders a typed request in Gemma 4's format.
func RenderGemma4(r Request) (string, error) { return Render("gemma4", r) }

// Request is a conversation in typed form.
type Request struct {
	Messages []Message
	Tools    []Tool
	// AddGenerationPrompt ends the prompt with the opening of a model turn.
	AddGenerationPrompt bool
	// EnableThinking asks a Gemma 4 model to think first (Gemma 3 ignores it).
	EnableThinking bool
	// OmitBOS leaves out the "<bos>" text both formats start with, for
	// callers whose tokenizer adds the BOS token itself.
	OmitBOS bool
}

// Message is one turn of a conversation.
type Message struct {
	// Role is "system", "developer" (Gemma 4), "user", "assistant" or "tool".
	Role string
	// Content is the message body; the zero Content is absent.
	Content Content
	// Reasoning is an assistant turn's thinking. Gemma 4 keeps it only on
	// turns with tool calls after the last user message.
	Reasoning string
	// ToolCalls are an assistant turn's calls.
	ToolCalls []ToolCall
	// ToolCallID (role "tool") names the call this message answers; Name is
	// the function's name, used when no call has that id.
	ToolCallID string
	Name       string
	// ToolResponses are Gemma's native form of tool results, carried on the
	// assistant message (Gemma 4 only).
	ToolResponses []ToolResponse
}

// Content is a message body: absent, a plain string, or a list of parts.
// The formats treat these differently (Gemma 3 refuses an absent body of a
// turn; Gemma 4 prints a system message's parts as Python would print a list).
type Content struct {
	parts   []Part
	text    string
	isText  bool
	isParts bool
}

// Text returns a plain-string body.
func Text(s string) Content { return Content{text: s, isText: true} }

// Parts returns a body made of parts.
func Parts(p ...Part) Content { return Content{parts: p, isParts: true} }

// Part is one element of a body made of parts.
type Part struct {
	// Type is "text", "image", "audio" or "video"; the formats skip others.
	Type string
	// Text is the text of a "text" part.
	Text string
}

// ToolCall is a function call made by the model.
type ToolCall struct {
	// ID identifies the call, so that a tool message can answer it; may be "".
	ID   string
	Name string
	// Arguments is a JSON object. A JSON string is printed verbatim by
	// Gemma 4 (pass the parsed object instead); empty means {}.
	Arguments json.RawMessage
}

// ToolResponse is a tool result in Gemma's native form.
type ToolResponse struct {
	Name string
	// Response is any JSON value; an object is printed member by member.
	Response json.RawMessage
}

// Tool declares a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Parameters is the JSON schema of the arguments (an "object" schema);
	// empty means none.
	Parameters json.RawMessage
}

// Vars converts the request to template variables, in the shape of an
// OpenAI-style request ({"role","content","tool_calls":[{"id","type",
// "function":{"name","arguments"}}]}, tools as {"type":"function","function":{…}}).
func (r Request) Vars() (Vars, error) {
	v := Vars{BOS: BOS, Messages: Value{Kind: Array, Arr: []Value{}}}
	if r.OmitBOS {
		v.BOS = ""
	}
	v.AddGenerationPrompt = Value{Kind: Bool, Bool: r.AddGenerationPrompt}
	v.EnableThinking = Value{Kind: Bool, Bool: r.EnableThinking}
	for i, m := range r.Messages {
		mv, err := m.value()
		if err != nil {
			return Vars{}, fmt.Errorf("chat request: message %d: %w", i, err)
		}
		v.Messages.Arr = append(v.Messages.Arr, mv)
	}
	if len(r.Tools) > 0 {
		v.Tools = Value{Kind: Array}
		for i, t := range r.Tools {
			fn := obj("name", Str(t.Name), "description", Str(t.Description))
			if len(t.Parameters) > 0 {
				p, err := ParseValue(t.Parameters)
				if err != nil {
					return Vars{}, fmt.Errorf("chat request: tool %d (%s) parameters: %w", i, t.Name, err)
				}
				fn.set("parameters", p)
			}
			v.Tools.Arr = append(v.Tools.Arr, obj("type", Str("function"), "function", fn))
		}
	}
	return v, nil
}

func obj(kv ...any) Value {
	o := Value{Kind: Object}
	for i := 0; i < len(kv); i += 2 {
		o.set(kv[i].(string), kv[i+1].(Value))
	}
	return o
}

func (m Message) value() (Value, error) {
	o := obj("role", Str(m.Role))
	switch {
	case m.Content.isText:
		o.set("content", Str(m.Content.text))
	case m.Content.isParts:
		arr := Value{Kind: Array, Arr: []Value{}}
		for _, p := range m.Content.parts {
			pv := obj("type", Str(p.Type))
			if p.Type == "text" {
				pv.set("text", Str(p.Text))
			}
			arr.Arr = append(arr.Arr, pv)
		}
		o.set("content", arr)
	}
	if m.Reasoning != "" {
		o.set("reasoning", Str(m.Reasoning))
	}
	if len(m.ToolCalls) > 0 {
		calls := Value{Kind: Array}
		for i, c := range m.ToolCalls {
			args := Value{Kind: Object}
			if len(c.Arguments) > 0 {
				var err error
				if args, err = ParseValue(c.Arguments); err != nil {
					return Value{}, fmt.Errorf("tool call %d (%s) arguments: %w", i, c.Name, err)
				}
			}
			call := Value{Kind: Object}
			if c.ID != "" {
				call.set("id", Str(c.ID))
			}
			call.set("type", Str("function"))
			call.set("function", obj("name", Str(c.Name), "arguments", args))
			calls.Arr = append(calls.Arr, call)
		}
		o.set("tool_calls", calls)
	}
	if m.ToolCallID != "" {
		o.set("tool_call_id", Str(m.ToolCallID))
	}
	if m.Name != "" {
		o.set("name", Str(m.Name))
	}
	if len(m.ToolResponses) > 0 {
		rs := Value{Kind: Array}
		for i, tr := range m.ToolResponses {
			rv := obj("name", Str(tr.Name))
			if len(tr.Response) > 0 {
				resp, err := ParseValue(tr.Response)
				if err != nil {
					return Value{}, fmt.Errorf("tool response %d (%s): %w", i, tr.Name, err)
				}
				rv.set("response", resp)
			}
			rs.Arr = append(rs.Arr, rv)
		}
		o.set("tool_responses", rs)
	}
	return o, nil
}
