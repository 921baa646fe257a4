// Package openai is the OpenAI dialect's codec: it decodes /v1/chat/completions
// and /v1/completions bodies into canonical requests and encodes engine
// events and results as OpenAI responses and stream chunks. It does no I/O.
package openai

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mica/internal/llm/engine"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

// MaxStops is the most stop strings a request may give.
const MaxStops = 16

// MaxChoices is the most choices (n) a request may ask for. They share the
// prompt's computation but each takes a sequence of the batch.
const MaxChoices = 8

// sampling holds the fields chat and legacy completions share.
type sampling struct {
	Model            string             `json:"model"`
	Stream           bool               `json:"stream"`
	StreamOptions    *streamOptions     `json:"stream_options"`
	Temperature      *float64           `json:"temperature"`
	TopP             *float64           `json:"top_p"`
	TopK             *int               `json:"top_k"`
	MinP             *float64           `json:"min_p"`
	TypicalP         *float64           `json:"typical_p"`
	MaxTokens        *int               `json:"max_tokens"`
	Stop             json.RawMessage    `json:"stop"`
	Seed             *int64             `json:"seed"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	RepeatPenalty    *float64           `json:"repeat_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
	N                *int               `json:"n"`
	User             string             `json:"user"`
	// Grammar is llama.cpp's GBNF grammar field.
	Grammar *string `json:"grammar"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	sampling
	Messages            []message                  `json:"messages"`
	MaxCompletionTokens *int                       `json:"max_completion_tokens"`
	ReasoningEffort     string                     `json:"reasoning_effort"`
	ChatTemplateKwargs  map[string]json.RawMessage `json:"chat_template_kwargs"`
	Tools               []tool                     `json:"tools"`
	ToolChoice          json.RawMessage            `json:"tool_choice"`
	ParallelToolCalls   *bool                      `json:"parallel_tool_calls"`
	Logprobs            *bool                      `json:"logprobs"`
	TopLogprobs         *int                       `json:"top_logprobs"`
	ResponseFormat      json.RawMessage            `json:"response_format"`
	// ImageTokens is mica's extension: the most tokens each image may take
	// (Gemma 4's image token budget; engine.Image.Tokens). An image part's
	// own image_url.image_tokens or a low/high detail overrides it.
	ImageTokens *int `json:"image_tokens"`
}

type message struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	Name             string          `json:"name"`
	ToolCalls        []toolCall      `json:"tool_calls"`
	ToolCallID       string          `json:"tool_call_id"`
	ReasoningContent string          `json:"reasoning_content"`
	// Refusal and Annotations come back when a client replays a response
	// message; only empty values are accepted.
	Refusal     json.RawMessage `json:"refusal"`
	Annotations json.RawMessage `json:"annotations"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Index    *int   `json:"index,omitempty"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type tool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

type part struct {
	Type       string          `json:"type"`
	Text       string          `json:"text"`
	ImageURL   json.RawMessage `json:"image_url"`
	InputAudio json.RawMessage `json:"input_audio"`
	File       json.RawMessage `json:"file"`
}

// DecodeChat decodes a /v1/chat/completions body.
func DecodeChat(body []byte) (*canon.Request, error) {
	var r chatRequest
	if err := canon.Decode(body, &r, "sampling"); err != nil {
		return nil, err
	}
	req, err := r.sampling.decode()
	if err != nil {
		return nil, err
	}
	cr := &engine.ChatRequest{Sampling: req.params}
	if len(r.Messages) == 0 {
		return nil, canon.Errorf("messages", "messages must hold at least one message")
	}
	var images canon.Images
	for i, m := range r.Messages {
		cm, err := decodeMessage(m, fmt.Sprintf("messages[%d]", i), &images)
		if err != nil {
			return nil, err
		}
		cr.Messages = append(cr.Messages, cm)
	}
	if r.ImageTokens != nil {
		if *r.ImageTokens < 1 {
			return nil, canon.Errorf("image_tokens", "image_tokens %d must be a positive number of tokens per image", *r.ImageTokens)
		}
		for i := range images.List {
			im := &images.List[i]
			if im.Tokens == 0 && (im.Detail == "" || im.Detail == "auto") {
				im.Tokens, im.Detail, im.Param = *r.ImageTokens, "", "image_tokens"
			}
		}
	}
	if r.MaxCompletionTokens != nil {
		if r.MaxTokens != nil && *r.MaxTokens != *r.MaxCompletionTokens {
			return nil, canon.Errorf("max_completion_tokens", "max_tokens (%d) and max_completion_tokens (%d) disagree: give one of them", *r.MaxTokens, *r.MaxCompletionTokens)
		}
		if err := checkMaxTokens(*r.MaxCompletionTokens, "max_completion_tokens"); err != nil {
			return nil, err
		}
		req.maxTokens = *r.MaxCompletionTokens
	}
	cr.MaxTokens, cr.Stop, cr.N = req.maxTokens, req.stop, req.n
	if cr.Think, err = thinking(r.ReasoningEffort, r.ChatTemplateKwargs); err != nil {
		return nil, err
	}
	if err := unsupportedChat(&r); err != nil {
		return nil, err
	}
	format, err := responseFormat(r.ResponseFormat)
	if err != nil {
		return nil, err
	}
	if format != nil && req.format != nil {
		return nil, canon.Errorf("grammar", "grammar and response_format cannot be used together: give one of them")
	}
	if format == nil {
		format = req.format
	}
	choice, named, err := toolChoice(r.ToolChoice)
	if err != nil {
		return nil, err
	}
	if choice == "required" {
		if len(r.Tools) == 0 {
			return nil, canon.Errorf("tool_choice", "tool_choice %s needs tools: the request has none", choiceName(named))
		}
		if named != "" && !slices.ContainsFunc(r.Tools, func(t tool) bool { return t.Function.Name == named }) {
			return nil, canon.Errorf("tool_choice.function.name", "tool_choice names the function %q, which is not among the tools", named)
		}
		if format != nil {
			return nil, canon.Errorf("tool_choice", "tool_choice %s cannot be combined with %s: the answer is a tool call", choiceName(named), format.Param)
		}
		format = &canon.Format{Kind: canon.FormatToolCall, Text: named, Param: "tool_choice"}
	}
	for i, t := range r.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return nil, canon.Errorf(p+".type", "%s.type is %q; only \"function\" tools exist", p, t.Type)
		}
		if t.Function.Name == "" {
			return nil, canon.Errorf(p+".function.name", "%s.function.name is missing", p)
		}
		if t.Function.Strict != nil && *t.Function.Strict {
			return nil, canon.Unsupported(p+".function.strict", "strict (schema-enforced) arguments")
		}
		if !canon.IsNull(t.Function.Parameters) && !isObject(t.Function.Parameters) {
			return nil, canon.Errorf(p+".function.parameters", "%s.function.parameters must be a JSON Schema object", p)
		}
		if choice == "none" {
			continue // the model is not told about tools it may not call
		}
		params := t.Function.Parameters
		if canon.IsNull(params) {
			params = nil
		}
		cr.Tools = append(cr.Tools, chat.Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: params})
	}
	cr.Images = images.List
	out := &canon.Request{Model: r.Model, Stream: r.Stream, Chat: cr, IncludeUsage: req.includeUsage, Format: format,
		RemoteImages: images.Remote}
	if r.MaxCompletionTokens != nil && r.MaxTokens == nil {
		out.MaxTokensParam = "max_completion_tokens"
	}
	return out, nil
}

func unsupportedChat(r *chatRequest) error {
	if r.Logprobs != nil && *r.Logprobs {
		return canon.Unsupported("logprobs", "")
	}
	if r.TopLogprobs != nil {
		return canon.Unsupported("top_logprobs", "")
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls {
		return canon.Unsupported("parallel_tool_calls", "false (at most one call per answer)")
	}
	return nil
}

// thinking decides whether the model thinks first.
func thinking(effort string, kwargs map[string]json.RawMessage) (bool, error) {
	think := false
	switch effort {
	case "", "none", "minimal":
	case "low", "medium", "high":
		think = true
	default:
		return false, canon.Errorf("reasoning_effort", "reasoning_effort %q is not one of none, minimal, low, medium, high", effort)
	}
	for k, v := range kwargs {
		if k != "enable_thinking" {
			return false, canon.Unsupported("chat_template_kwargs."+k, "")
		}
		if err := json.Unmarshal(v, &think); err != nil {
			return false, canon.Errorf("chat_template_kwargs.enable_thinking", "chat_template_kwargs.enable_thinking must be true or false")
		}
	}
	return think, nil
}

func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil
}

func decodeMessage(m message, p string, images *canon.Images) (chat.Message, error) {
	out := chat.Message{Role: m.Role, Name: m.Name, ToolCallID: m.ToolCallID, Reasoning: m.ReasoningContent}
	switch m.Role {
	case "system", "developer", "user", "assistant", "tool":
	case "":
		return out, canon.Errorf(p+".role", "%s.role is missing", p)
	default:
		return out, canon.Errorf(p+".role", "%s.role %q is not one of system, developer, user, assistant, tool", p, m.Role)
	}
	if !canon.IsNull(m.Refusal) {
		return out, canon.Unsupported(p+".refusal", "")
	}
	if !canon.IsNull(m.Annotations) && strings.TrimSpace(string(m.Annotations)) != "[]" {
		return out, canon.Unsupported(p+".annotations", "")
	}
	content, err := decodeContent(m.Content, p+".content", m.Role == "system" || m.Role == "developer", images)
	if err != nil {
		return out, err
	}
	out.Content = content
	if len(m.ToolCalls) > 0 && m.Role != "assistant" {
		return out, canon.Errorf(p+".tool_calls", "%s.tool_calls: only assistant messages make tool calls", p)
	}
	for j, c := range m.ToolCalls {
		q := fmt.Sprintf("%s.tool_calls[%d]", p, j)
		if c.Type != "" && c.Type != "function" {
			return out, canon.Errorf(q+".type", "%s.type is %q; only \"function\" calls exist", q, c.Type)
		}
		if c.Function.Name == "" {
			return out, canon.Errorf(q+".function.name", "%s.function.name is missing", q)
		}
		args := json.RawMessage(strings.TrimSpace(c.Function.Arguments))
		if len(args) == 0 {
			args = json.RawMessage("{}")
		}
		if !isObject(args) {
			return out, canon.Errorf(q+".function.arguments", "%s.function.arguments must be a JSON object encoded as a string", q)
		}
		out.ToolCalls = append(out.ToolCalls, chat.ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: args})
	}
	return out, nil
}

// decodeContent reads a string, null, or an array of parts. System text
// parts are joined into one string (the template would print the list).
// Image parts are added to images in order, and a body that holds images
// is flattened as llama.cpp's server does (flattenParts).
func decodeContent(raw json.RawMessage, p string, join bool, images *canon.Images) (chat.Content, error) {
	if canon.IsNull(raw) {
		return chat.Content{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return chat.Text(s), nil
	}
	var parts []part
	if err := canon.DecodeValue(raw, p, &parts); err != nil {
		return chat.Content{}, canon.Errorf(p, "%s must be a string or an array of content parts", p)
	}
	var out []chat.Part
	var texts []string
	hasImage := false
	for i, pt := range parts {
		q := fmt.Sprintf("%s[%d]", p, i)
		switch pt.Type {
		case "text":
			out = append(out, chat.Part{Type: "text", Text: pt.Text})
			texts = append(texts, pt.Text)
		case "image_url", "input_image", "image":
			if join {
				return chat.Content{}, &canon.Error{Kind: canon.Invalid, Param: q, Code: "unsupported_content",
					Msg: fmt.Sprintf("%s: a system message cannot hold images; put them in a user message", q)}
			}
			img, err := imageURL(pt.ImageURL, q+".image_url")
			if err != nil {
				return chat.Content{}, err
			}
			if err := images.AddURL(img.url, q+".image_url"); err != nil {
				return chat.Content{}, err
			}
			im := &images.List[len(images.List)-1]
			im.Tokens, im.Detail, im.Param = img.tokens, img.detail, img.param
			out = append(out, chat.Part{Type: "image"})
			hasImage = true
		case "input_audio", "audio":
			return chat.Content{}, &canon.Error{Kind: canon.Invalid, Param: q, Code: "unsupported_content",
				Msg: fmt.Sprintf("%s: audio is not supported yet; send text only", q)}
		case "file":
			return chat.Content{}, canon.Unsupported(q, "file parts")
		default:
			return chat.Content{}, canon.Errorf(q+".type", "%s.type %q is not a content part type (text)", q, pt.Type)
		}
	}
	if join {
		return chat.Text(strings.Join(texts, "\n")), nil
	}
	if hasImage {
		return chat.Text(flattenParts(out)), nil
	}
	return chat.Parts(out...), nil
}

// flattenParts lays a body of text and image parts out as one string, as
// llama.cpp's server does for a message that holds media: each image part
// becomes a media marker (ggml-org/llama.cpp tools/server/server-common.cpp,
// oaicompat_chat_params_parse: an image_url part turns into a
// "media_marker" part whose text is the marker), and the parts are joined
// with "\n" except next to a marker (common/chat.cpp,
// common_chat_msg::to_json_oaicompat; no newline beside a marker since
// ggml-org/llama.cpp PR 19595, and a message holding a marker is always
// flattened, whatever content types the template takes, since PR 22634).
// The chat template then sees one string, which it trims as a whole, so
// the spaces and newlines beside an image are kept. Here the marker is
// engine.ImagePlace, which no client text can hold.
func flattenParts(parts []chat.Part) string {
	var b strings.Builder
	lastImage := false
	for _, pt := range parts {
		if pt.Type == "image" {
			b.WriteString(engine.ImagePlace)
			lastImage = true
			continue
		}
		if !lastImage && b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(pt.Text)
		lastImage = false
	}
	return b.String()
}

// imagePart is what an image part says besides its bytes.
type imagePart struct {
	url    string
	detail string
	tokens int    // image_url.image_tokens (mica's extension); 0 if absent
	param  string // the field that set tokens or detail
}

// imageURL reads an image_url: {"url": "...", "detail": "...",
// "image_tokens": N} or a plain string (the Responses API's input_image).
func imageURL(raw json.RawMessage, p string) (imagePart, error) {
	if canon.IsNull(raw) {
		return imagePart{}, canon.Errorf(p, "%s is missing: give {\"url\": \"data:image/png;base64,...\"}", p)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return imagePart{url: s}, nil
	}
	var obj struct {
		URL         string `json:"url"`
		Detail      string `json:"detail"`
		ImageTokens *int   `json:"image_tokens"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return imagePart{}, canon.Errorf(p, "%s must be an object {\"url\": ...} or a URL string", p)
	}
	out := imagePart{url: obj.URL, detail: obj.Detail, param: p + ".detail"}
	switch obj.Detail {
	case "", "auto", "low", "high":
	default:
		return imagePart{}, canon.Errorf(p+".detail", "%s.detail %q is not one of auto, low, high", p, obj.Detail)
	}
	if obj.ImageTokens != nil {
		if *obj.ImageTokens < 1 {
			return imagePart{}, canon.Errorf(p+".image_tokens", "%s.image_tokens %d must be a positive number of tokens", p, *obj.ImageTokens)
		}
		out.tokens, out.param = *obj.ImageTokens, p+".image_tokens"
	}
	return out, nil
}

// decoded is what the shared fields give.
type decoded struct {
	params       sample.Params
	maxTokens    int
	stop         []string
	includeUsage bool
	format       *canon.Format
	n            int // choices (0: one)
}

func checkMaxTokens(n int, name string) error {
	if n < 1 {
		return canon.Errorf(name, "%s %d must be at least 1", name, n)
	}
	return nil
}

func (s *sampling) decode() (decoded, error) {
	var d decoded
	if s.Model == "" {
		return d, canon.Errorf("model", "model is missing: name one of GET /v1/models")
	}
	if s.Grammar != nil && *s.Grammar != "" {
		d.format = &canon.Format{Kind: canon.FormatGBNF, Text: *s.Grammar, Param: "grammar"}
	}
	if s.N != nil {
		switch {
		case *s.N < 1:
			return d, canon.Errorf("n", "n %d must be at least 1", *s.N)
		case *s.N > MaxChoices:
			return d, canon.Errorf("n", "n %d is more than the %d choices one request may ask for: send several requests", *s.N, MaxChoices)
		}
		d.n = *s.N
	}
	if s.StreamOptions != nil {
		if !s.Stream {
			return d, canon.Errorf("stream_options", "stream_options is only allowed with stream: true")
		}
		d.includeUsage = s.StreamOptions.IncludeUsage
	}
	p := sample.DefaultParams()
	setF := func(dst *float32, v *float64) {
		if v != nil {
			*dst = float32(*v)
		}
	}
	setF(&p.Temperature, s.Temperature)
	setF(&p.TopP, s.TopP)
	setF(&p.MinP, s.MinP)
	setF(&p.TypicalP, s.TypicalP)
	setF(&p.PresencePenalty, s.PresencePenalty)
	setF(&p.FrequencyPenalty, s.FrequencyPenalty)
	setF(&p.RepeatPenalty, s.RepeatPenalty)
	if s.TopK != nil {
		p.TopK = *s.TopK
	}
	if s.Seed != nil {
		p.Seed = *s.Seed
	}
	if len(s.LogitBias) > 0 {
		p.LogitBias = map[int32]float32{}
		for k, v := range s.LogitBias {
			id, err := strconv.ParseInt(k, 10, 32)
			if err != nil {
				return d, canon.Errorf("logit_bias", "logit_bias key %q is not a token id", k)
			}
			p.LogitBias[int32(id)] = float32(v)
		}
	}
	d.params = p
	if s.MaxTokens != nil {
		if err := checkMaxTokens(*s.MaxTokens, "max_tokens"); err != nil {
			return d, err
		}
		d.maxTokens = *s.MaxTokens
	}
	var err error
	d.stop, err = canon.Stops(s.Stop, "stop", MaxStops)
	return d, err
}

type completionRequest struct {
	sampling
	Prompt   json.RawMessage `json:"prompt"`
	Suffix   *string         `json:"suffix"`
	Echo     *bool           `json:"echo"`
	BestOf   *int            `json:"best_of"`
	Logprobs *int            `json:"logprobs"`
}

// DefaultCompletionTokens is OpenAI's max_tokens default for /v1/completions.
const DefaultCompletionTokens = 16

// DecodeCompletion decodes a /v1/completions body.
func DecodeCompletion(body []byte) (*canon.Request, error) {
	var r completionRequest
	if err := canon.Decode(body, &r, "sampling"); err != nil {
		return nil, err
	}
	d, err := r.sampling.decode()
	if err != nil {
		return nil, err
	}
	var prompt string
	if canon.IsNull(r.Prompt) {
		return nil, canon.Errorf("prompt", "prompt is missing")
	}
	if err := json.Unmarshal(r.Prompt, &prompt); err != nil {
		var list []string
		if json.Unmarshal(r.Prompt, &list) != nil {
			return nil, canon.Errorf("prompt", "prompt must be a string (token arrays are not supported yet)")
		}
		if len(list) != 1 {
			return nil, canon.Unsupported("prompt", "an array of several prompts")
		}
		prompt = list[0]
	}
	switch {
	case r.Suffix != nil && *r.Suffix != "":
		return nil, canon.Unsupported("suffix", "")
	case r.Echo != nil && *r.Echo:
		return nil, canon.Unsupported("echo", "")
	case r.BestOf != nil && *r.BestOf != 1:
		return nil, canon.Unsupported("best_of", "")
	case r.Logprobs != nil && *r.Logprobs != 0:
		return nil, canon.Unsupported("logprobs", "")
	}
	if r.MaxTokens == nil {
		d.maxTokens = DefaultCompletionTokens
	}
	return &canon.Request{Model: r.Model, Stream: r.Stream, IncludeUsage: d.includeUsage, Format: d.format,
		Completion: &engine.CompletionRequest{Prompt: prompt, Sampling: d.params, MaxTokens: d.maxTokens, Stop: d.stop, N: d.n}}, nil
}
