// Package canon holds what the server's dialect codecs and its mux share: the
// canonical generation request a codec decodes an HTTP body into, and the
// catalogue of client-facing errors (kind, HTTP status, offending field) that
// each codec encodes in its own dialect's shape.
package canon

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"mica/internal/llm/engine"
)

// Request is a decoded generation request, independent of the API dialect.
// Exactly one of Chat and Completion is set, except for LoadOnly requests.
type Request struct {
	Model      string
	Stream     bool
	Chat       *engine.ChatRequest
	Completion *engine.CompletionRequest
	// IncludeUsage asks for a usage chunk at the end of a stream (OpenAI's
	// stream_options.include_usage).
	IncludeUsage bool
	// KeepAlive, when set, is how long the model stays loaded after this
	// request (0: unload at once; negative: forever).
	KeepAlive *time.Duration
	// NumCtx, when > 0, limits this request's prompt plus answer (Ollama's
	// options.num_ctx); it may not exceed the server's context.
	NumCtx int
	// LoadOnly asks only to load (or, with KeepAlive 0, unload) the model:
	// Ollama's /api/generate with an empty prompt.
	LoadOnly bool
	// Format, when not nil, constrains the output (JSON mode, a JSON
	// Schema or a GBNF grammar); the server compiles it into the engine
	// request's Grammar.
	Format *Format
	// RemoteImages are images named by http(s) URLs: their places in the
	// engine request's Images are empty until the server fetches them.
	RemoteImages []RemoteImage
	// ImagesParam is the request field errors about the images name
	// ("messages", "images"); "" for the server's default.
	ImagesParam string
	// MaxTokensParam is the request field that set the token limit, named
	// in errors about it ("max_completion_tokens", "options.num_predict");
	// "" for "max_tokens".
	MaxTokensParam string
}

// Images returns the engine request's images.
func (r *Request) Images() []engine.Image {
	switch {
	case r.Chat != nil:
		return r.Chat.Images
	case r.Completion != nil:
		return r.Completion.Images
	}
	return nil
}

// FormatKind says what a Format's Text is.
type FormatKind uint8

const (
	// FormatJSON: any JSON object (OpenAI's json_object, Ollama's "json").
	FormatJSON FormatKind = iota + 1
	// FormatSchema: Text is a JSON Schema.
	FormatSchema
	// FormatGBNF: Text is a GBNF grammar (llama.cpp's dialect).
	FormatGBNF
	// FormatToolCall: the answer is one call of the function named Text,
	// or of any of the request's tools when Text is "" (tool_choice
	// "required" or a named function).
	FormatToolCall
)

// Format is a requested output constraint.
type Format struct {
	Kind FormatKind
	Text string
	// Param is the request field it came from, named in errors
	// ("response_format.json_schema.schema", "format", "grammar").
	Param string
}

// MaxTokens returns the request's token limit (0: none).
func (r *Request) MaxTokens() int {
	switch {
	case r.Chat != nil:
		return r.Chat.MaxTokens
	case r.Completion != nil:
		return r.Completion.MaxTokens
	}
	return 0
}

// SetMaxTokens sets the request's token limit.
func (r *Request) SetMaxTokens(n int) {
	switch {
	case r.Chat != nil:
		r.Chat.MaxTokens = n
	case r.Completion != nil:
		r.Completion.MaxTokens = n
	}
}

// Kind is a class of client-facing error; it fixes the HTTP status.
type Kind int

// The kinds of error the server reports.
const (
	// Invalid: malformed JSON, a wrong type, a value out of range, a field
	// not supported (400).
	Invalid Kind = iota
	// NotFound: an unknown model or route (404).
	NotFound
	// NotAllowed: a known route with the wrong method (405).
	NotAllowed
	// TooLarge: the request body is over the limit (413).
	TooLarge
	// Busy: the queue is full; retry later (429).
	Busy
	// Unavailable: the server cannot serve now, e.g. a model failed to load
	// (503).
	Unavailable
	// Internal: a bug or a failure of the engine (500).
	Internal
)

var kinds = [...]struct {
	status int
	name   string
}{
	Invalid:     {http.StatusBadRequest, "invalid_request_error"},
	NotFound:    {http.StatusNotFound, "not_found_error"},
	NotAllowed:  {http.StatusMethodNotAllowed, "invalid_request_error"},
	TooLarge:    {http.StatusRequestEntityTooLarge, "invalid_request_error"},
	Busy:        {http.StatusTooManyRequests, "rate_limit_error"},
	Unavailable: {http.StatusServiceUnavailable, "server_error"},
	Internal:    {http.StatusInternalServerError, "server_error"},
}

// Status is the HTTP status of the kind.
func (k Kind) Status() int { return kinds[k].status }

// Type is the kind's name in OpenAI's error.type vocabulary.
func (k Kind) Type() string { return kinds[k].name }

// Error is a client-facing error.
type Error struct {
	Kind Kind
	// Param names the offending request field (JSON path), or "".
	Param string
	// Code is a short machine-readable code (OpenAI's error.code), or "".
	Code string
	Msg  string
	// RetryAfter, for Busy, is the suggested wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an Invalid error about param.
func Errorf(param, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Unsupported returns the error for a field mica does not support yet.
func Unsupported(param, what string) *Error {
	msg := fmt.Sprintf("%s is not supported yet", param)
	if what != "" {
		msg = fmt.Sprintf("%s: %s is not supported yet", param, what)
	}
	return &Error{Kind: Invalid, Param: param, Code: "unsupported_parameter", Msg: msg}
}

// New returns an error of kind k.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// As converts any error to an *Error; an error that is not one becomes
// Internal with its text.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Msg: err.Error()}
}
