// Package ollama is the Ollama dialect's codec: it decodes /api/chat and
// /api/generate bodies into canonical requests and encodes engine events and
// results as Ollama's NDJSON chunks and final objects. It does no I/O.
package ollama

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

// format reads Ollama's format: "json" (any JSON object), "" (none) or a
// JSON Schema object. Whether the schema compiles is checked by the server.
func format(raw json.RawMessage) (*canon.Format, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "":
			return nil, nil
		case "json":
			return &canon.Format{Kind: canon.FormatJSON, Param: "format"}, nil
		}
		return nil, canon.Errorf("format", `format %q is not "json" or a JSON Schema object`, s)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, canon.Errorf("format", `format must be "json" or a JSON Schema object`)
	}
	return &canon.Format{Kind: canon.FormatSchema, Text: string(raw), Param: "format"}, nil
}

// MaxStops is the most stop strings a request may give.
const MaxStops = 16

type common struct {
	Model     string                     `json:"model"`
	Stream    *bool                      `json:"stream"`
	Format    json.RawMessage            `json:"format"`
	Options   map[string]json.RawMessage `json:"options"`
	KeepAlive json.RawMessage            `json:"keep_alive"`
	Think     json.RawMessage            `json:"think"`
}

type chatRequest struct {
	common
	Messages []message `json:"messages"`
	Tools    []tool    `json:"tools"`
}

type message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Thinking  string     `json:"thinking"`
	Images    []string   `json:"images"`
	ToolCalls []ToolCall `json:"tool_calls"`
	ToolName  string     `json:"tool_name"`
}

// ToolCall is Ollama's tool call: the arguments are a JSON object.
type ToolCall struct {
	Function Function `json:"function"`
}

// Function is a called function.
type Function struct {
	Index     *int            `json:"index,omitempty"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

type tool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type generateRequest struct {
	common
	Prompt   string          `json:"prompt"`
	Suffix   string          `json:"suffix"`
	System   string          `json:"system"`
	Template string          `json:"template"`
	Context  json.RawMessage `json:"context"`
	Raw      bool            `json:"raw"`
	Images   []string        `json:"images"`
}

// DecodeChat decodes an /api/chat body.
func DecodeChat(body []byte) (*canon.Request, error) {
	var r chatRequest
	if err := canon.Decode(body, &r, "common"); err != nil {
		return nil, err
	}
	req, o, err := r.common.decode()
	if err != nil {
		return nil, err
	}
	cr := &engine.ChatRequest{Sampling: o.params, MaxTokens: o.maxTokens, Stop: o.stop, Think: o.think}
	var images canon.Images
	for i, m := range r.Messages {
		p := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "user", "assistant", "tool":
		default:
			return nil, canon.Errorf(p+".role", "%s.role %q is not one of system, user, assistant, tool", p, m.Role)
		}
		cm := chat.Message{Role: m.Role, Content: chat.Text(m.Content), Reasoning: m.Thinking, Name: m.ToolName}
		if len(m.Images) > 0 {
			if m.Role == "system" {
				return nil, canon.Errorf(p+".images", "%s.images: a system message cannot hold images; put them in a user message", p)
			}
			content, err := imageContent(&images, m.Images, m.Content, p+".images")
			if err != nil {
				return nil, err
			}
			cm.Content = content
		}
		for j, c := range m.ToolCalls {
			q := fmt.Sprintf("%s.tool_calls[%d].function", p, j)
			if c.Function.Name == "" {
				return nil, canon.Errorf(q+".name", "%s.name is missing", q)
			}
			args := c.Function.Arguments
			if canon.IsNull(args) {
				args = json.RawMessage("{}")
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(args, &obj) != nil {
				return nil, canon.Errorf(q+".arguments", "%s.arguments must be a JSON object", q)
			}
			cm.ToolCalls = append(cm.ToolCalls, chat.ToolCall{Name: c.Function.Name, Arguments: args})
		}
		cr.Messages = append(cr.Messages, cm)
	}
	if len(cr.Messages) == 0 {
		// As in Ollama: no messages only loads (or unloads) the model.
		req.LoadOnly = true
		return req, nil
	}
	for i, t := range r.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "function" {
			return nil, canon.Errorf(p+".type", "%s.type is %q; only \"function\" tools exist", p, t.Type)
		}
		if t.Function.Name == "" {
			return nil, canon.Errorf(p+".function.name", "%s.function.name is missing", p)
		}
		params := t.Function.Parameters
		if canon.IsNull(params) {
			params = nil
		}
		cr.Tools = append(cr.Tools, chat.Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: params})
	}
	setImageTokens(images.List, o.imageTokens)
	cr.Images, req.RemoteImages = images.List, images.Remote
	req.ImagesParam = "messages"
	req.Chat = cr
	return req, nil
}

// DecodeGenerate decodes an /api/generate body. An empty prompt only loads
// (or with keep_alive 0 unloads) the model, as in Ollama.
func DecodeGenerate(body []byte) (*canon.Request, error) {
	var r generateRequest
	if err := canon.Decode(body, &r, "common"); err != nil {
		return nil, err
	}
	req, o, err := r.common.decode()
	if err != nil {
		return nil, err
	}
	switch {
	case r.Suffix != "":
		return nil, canon.Unsupported("suffix", "fill-in-the-middle")
	case r.Template != "":
		return nil, canon.Unsupported("template", "custom prompt templates")
	case !canon.IsNull(r.Context) && strings.TrimSpace(string(r.Context)) != "[]":
		return nil, canon.Unsupported("context", "the deprecated token context (send the conversation to /api/chat)")
	}
	var images canon.Images
	content := chat.Text(r.Prompt)
	if len(r.Images) > 0 {
		if r.Prompt == "" {
			return nil, canon.Errorf("prompt", "prompt is empty: say what to do with the images")
		}
		var err error
		if content, err = imageContent(&images, r.Images, r.Prompt, "images"); err != nil {
			return nil, err
		}
		req.RemoteImages, req.ImagesParam = images.Remote, "images"
		setImageTokens(images.List, o.imageTokens)
	}
	if r.Prompt == "" && r.System == "" {
		req.LoadOnly = true
		return req, nil
	}
	if r.Raw {
		if r.System != "" {
			return nil, canon.Errorf("system", "system cannot be used with raw: true (the prompt is sent as is)")
		}
		// <__media__> marks the images' places in a raw prompt (all go
		// first without one), as llama.cpp reads it.
		req.Completion = &engine.CompletionRequest{Prompt: r.Prompt, Images: images.List, Sampling: o.params, MaxTokens: o.maxTokens, Stop: o.stop}
		return req, nil
	}
	req.Chat = &engine.ChatRequest{System: r.System, Messages: []chat.Message{{Role: "user", Content: content}},
		Images: images.List, Sampling: o.params, MaxTokens: o.maxTokens, Stop: o.stop, Think: o.think}
	return req, nil
}

// imageContent adds a message's base64 images and returns its body: the
// images first, then the text (as Ollama's templates place them), as one
// string with engine.ImagePlace at each image, the way llama.cpp's server
// flattens a message holding images (no newline next to an image; the
// template trims the string as a whole).
func imageContent(images *canon.Images, list []string, text, p string) (chat.Content, error) {
	var b strings.Builder
	for j, s := range list {
		if err := images.AddBase64(s, fmt.Sprintf("%s[%d]", p, j)); err != nil {
			return chat.Content{}, err
		}
		b.WriteString(engine.ImagePlace)
	}
	b.WriteString(text)
	return chat.Text(b.String()), nil
}

// setImageTokens applies options.image_tokens to every image.
func setImageTokens(images []engine.Image, n int) {
	if n == 0 {
		return
	}
	for i := range images {
		images[i].Tokens, images[i].Param = n, "options.image_tokens"
	}
}

type decoded struct {
	params    sample.Params
	maxTokens int
	stop      []string
	think     bool
	// imageTokens is options.image_tokens, mica's extension: the most
	// tokens each image may take (Gemma 4's image token budget); 0: the
	// model's default.
	imageTokens int
}

// loadOptions are Ollama options that configure how a model is loaded, not
// one request; mica sets these on the command line.
var loadOptions = map[string]bool{"num_thread": true, "num_gpu": true, "main_gpu": true, "use_mmap": true,
	"use_mlock": true, "num_batch": true, "low_vram": true, "f16_kv": true, "numa": true, "vocab_only": true, "logits_all": true}

func (c *common) decode() (*canon.Request, decoded, error) {
	var d decoded
	if c.Model == "" {
		return nil, d, canon.Errorf("model", "model is required")
	}
	req := &canon.Request{Model: c.Model, Stream: c.Stream == nil || *c.Stream, MaxTokensParam: "options.num_predict"}
	if !canon.IsNull(c.Format) {
		f, err := format(c.Format)
		if err != nil {
			return nil, d, err
		}
		req.Format = f
	}
	if !canon.IsNull(c.KeepAlive) {
		ka, err := KeepAlive(c.KeepAlive)
		if err != nil {
			return nil, d, err
		}
		req.KeepAlive = &ka
	}
	if !canon.IsNull(c.Think) {
		var b bool
		var s string
		switch {
		case json.Unmarshal(c.Think, &b) == nil:
			d.think = b
		case json.Unmarshal(c.Think, &s) == nil && (s == "low" || s == "medium" || s == "high"):
			d.think = true
		default:
			return nil, d, canon.Errorf("think", `think must be true, false, "low", "medium" or "high"`)
		}
	}
	p := sample.DefaultParams()
	for k, v := range c.Options {
		if canon.IsNull(v) {
			continue // null is "unset"
		}
		name := "options." + k
		num := func() (float64, error) {
			var f float64
			if err := json.Unmarshal(v, &f); err != nil {
				return 0, canon.Errorf(name, "%s must be a number", name)
			}
			return f, nil
		}
		integer := func() (int64, error) {
			var n int64
			if err := json.Unmarshal(v, &n); err != nil {
				return 0, canon.Errorf(name, "%s must be an integer", name)
			}
			return n, nil
		}
		var f float64
		var n int64
		var err error
		switch k {
		case "temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty":
			if f, err = num(); err != nil {
				return nil, d, err
			}
			*map[string]*float32{"temperature": &p.Temperature, "top_p": &p.TopP, "min_p": &p.MinP, "typical_p": &p.TypicalP,
				"repeat_penalty": &p.RepeatPenalty, "presence_penalty": &p.PresencePenalty, "frequency_penalty": &p.FrequencyPenalty}[k] = float32(f)
		case "top_k", "repeat_last_n", "seed", "num_predict", "num_ctx", "image_tokens":
			if n, err = integer(); err != nil {
				return nil, d, err
			}
			switch k {
			case "top_k":
				p.TopK = int(n)
			case "repeat_last_n":
				p.RepeatLastN = int(n)
			case "seed":
				p.Seed = n
			case "num_predict":
				switch {
				case n == -1 || n == -2 || n == 0:
					d.maxTokens = 0 // until the end of the turn or a full context
				case n < 0:
					return nil, d, canon.Errorf(name, "%s %d: use a positive count, or -1 for no limit", name, n)
				default:
					d.maxTokens = int(n)
				}
			case "num_ctx":
				if n < 1 {
					return nil, d, canon.Errorf(name, "%s %d must be positive", name, n)
				}
				req.NumCtx = int(n)
			case "image_tokens":
				if n < 1 || n > 1<<20 {
					return nil, d, canon.Errorf(name, "%s %d must be a positive number of tokens per image", name, n)
				}
				d.imageTokens = int(n)
			}
		case "stop":
			if d.stop, err = canon.Stops(v, name, MaxStops); err != nil {
				return nil, d, err
			}
		default:
			if loadOptions[k] {
				return nil, d, canon.Unsupported(name, "a load-time option per request (set it on the mica serve command line)")
			}
			return nil, d, canon.Unsupported(name, "")
		}
	}
	d.params = p
	return req, d, nil
}

// KeepAlive reads a keep_alive value: a number of seconds or a duration
// string ("5m", "1h"); negative keeps the model loaded, 0 unloads it at once.
func KeepAlive(raw json.RawMessage) (time.Duration, error) {
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, canon.Errorf("keep_alive", `keep_alive must be a number of seconds or a duration like "5m"`)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, canon.Errorf("keep_alive", `keep_alive %q is not a duration like "5m" or a number of seconds`, s)
	}
	return d, nil
}
