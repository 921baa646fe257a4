package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

func TestDecodeChatMapsFields(t *testing.T) {
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},
	 "messages":[{"role":"system","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
	  {"role":"user","content":[{"type":"text","text":"hi"}]},
	  {"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
	  {"role":"tool","tool_call_id":"call_9","content":"ok"}],
	 "temperature":0.5,"top_p":0.9,"top_k":7,"min_p":0.1,"max_completion_tokens":33,"stop":"END","seed":42,
	 "presence_penalty":0.5,"frequency_penalty":-0.5,"logit_bias":{"17":-100},"reasoning_effort":"low",
	 "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}],
	 "tool_choice":"auto","parallel_tool_calls":true,"n":1,"logprobs":false,"response_format":{"type":"text"},"user":"u"}`
	r, err := DecodeChat([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	c := r.Chat
	p := c.Sampling
	if r.Model != "m" || !r.Stream || !r.IncludeUsage || c.MaxTokens != 33 || !c.Think || len(c.Stop) != 1 || c.Stop[0] != "END" {
		t.Fatalf("request %+v %+v", r, c)
	}
	if p.Temperature != 0.5 || p.TopP != 0.9 || p.TopK != 7 || p.MinP != 0.1 || p.Seed != 42 || p.PresencePenalty != 0.5 ||
		p.FrequencyPenalty != -0.5 || p.LogitBias[17] != -100 {
		t.Fatalf("sampling %+v", p)
	}
	if len(c.Messages) != 4 || len(c.Tools) != 1 || c.Tools[0].Name != "f" || string(c.Tools[0].Parameters) != `{"type":"object"}` {
		t.Fatalf("messages %+v tools %+v", c.Messages, c.Tools)
	}
	// System parts are joined; user parts stay parts.
	if !reflect.DeepEqual(c.Messages[0].Content, chat.Text("a\nb")) || !reflect.DeepEqual(c.Messages[1].Content, chat.Parts(chat.Part{Type: "text", Text: "hi"})) {
		t.Fatalf("contents %+v %+v", c.Messages[0].Content, c.Messages[1].Content)
	}
	tc := c.Messages[2].ToolCalls
	if len(tc) != 1 || tc[0].ID != "call_9" || tc[0].Name != "f" || string(tc[0].Arguments) != `{"x":1}` || c.Messages[3].ToolCallID != "call_9" {
		t.Fatalf("tool call %+v %+v", tc, c.Messages[3])
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	for _, c := range []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":1.5}`, "top_k"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}`, "n"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}`, "top_logprobs"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`, "response_format.type"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n"}}}`, "response_format.json_schema.schema"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"grammar":"root ::= \"a\""}`, "grammar"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,"max_completion_tokens":6}`, "max_completion_tokens"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","strict":true}}]}`, "tools[0].function.strict"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0]"},
		{`{"model":"m","messages":[{"role":"user","content":"x","refusal":"no"}]}`, "messages[0].refusal"},
	} {
		_, err := DecodeChat([]byte(c.body))
		e := canon.As(err)
		if err == nil || e.Kind != canon.Invalid || e.Param != c.param || !strings.Contains(e.Msg, strings.Split(c.param, "[")[0]) {
			t.Errorf("%s: %v (param %q), want param %q", c.body, err, e.Param, c.param)
		}
	}
}

func TestDecodeFormats(t *testing.T) {
	const msgs = `{"model":"m","messages":[{"role":"user","content":"x"}],`
	for _, c := range []struct {
		body  string
		kind  canon.FormatKind
		text  string
		param string
	}{
		{msgs + `"response_format":{"type":"text"}}`, 0, "", ""},
		{msgs + `"response_format":{"type":"json_object"}}`, canon.FormatJSON, "", "response_format"},
		{msgs + `"response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"integer"}}}}`, canon.FormatSchema, `{"type":"integer"}`, "response_format.json_schema.schema"},
		{msgs + `"grammar":"root ::= \"a\""}`, canon.FormatGBNF, `root ::= "a"`, "grammar"},
	} {
		r, err := DecodeChat([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		f := r.Format
		if c.kind == 0 {
			if f != nil {
				t.Errorf("%s: format %+v, want none", c.body, f)
			}
			continue
		}
		if f == nil || f.Kind != c.kind || f.Text != c.text || f.Param != c.param {
			t.Errorf("%s: format %+v", c.body, f)
		}
	}
	r, err := DecodeCompletion([]byte(`{"model":"m","prompt":"x","grammar":"root ::= [0-9]+"}`))
	if err != nil || r.Format == nil || r.Format.Kind != canon.FormatGBNF {
		t.Fatalf("completion grammar: %+v %v", r, err)
	}
}

func TestDecodeCompletion(t *testing.T) {
	r, err := DecodeCompletion([]byte(`{"model":"m","prompt":["once"],"stop":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Completion.Prompt != "once" || r.Completion.MaxTokens != DefaultCompletionTokens || len(r.Completion.Stop) != 2 {
		t.Fatalf("%+v", r.Completion)
	}
	if _, err := DecodeCompletion([]byte(`{"model":"m","prompt":["a","b"]}`)); err == nil || canon.As(err).Param != "prompt" {
		t.Fatalf("two prompts: %v", err)
	}
}

func TestStreamChunks(t *testing.T) {
	s := &Stream{ID: "chatcmpl-1", Model: "m", Created: 5, Chat: true}
	var out []Completion
	out = append(out, s.Event(engine.Event{Kind: engine.ThinkingEvent, Text: "hmm"})...)
	out = append(out, s.Event(engine.Event{Kind: engine.ContentEvent, Text: "hi"})...)
	out = append(out, s.Event(engine.Event{Kind: engine.ToolCallEvent, Call: chat.ToolCall{Name: "f"}})...)
	out = append(out, s.Event(engine.Event{Kind: engine.ToolCallEvent, Call: chat.ToolCall{Name: "g", Arguments: json.RawMessage(`{"a":1}`)}})...)
	res := engine.Result{ToolCalls: []chat.ToolCall{{Name: "f"}, {Name: "g"}}, Usage: engine.Usage{PromptTokens: 3, GeneratedTokens: 4}}
	out = append(out, s.Finish(res, true)...)
	var lines []string
	for _, c := range out {
		b := string(Marshal(c))
		b = b[strings.Index(b, `"choices"`):]
		lines = append(lines, b)
	}
	got := strings.Join(lines, "\n")
	// Tool call ids are random: blank them.
	for strings.Contains(got, `"id":"call_`) {
		i := strings.Index(got, `"id":"call_`) + 6
		j := i + strings.Index(got[i:], `"`)
		got = got[:i] + "ID" + got[j:]
	}
	want := `"choices":[{"index":0,"delta":{"role":"assistant"},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{"reasoning_content":"hmm"},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"ID","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"ID","type":"function","function":{"name":"g","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}
"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}`
	if got != want {
		t.Fatalf("chunks\n%s\nwant\n%s", got, want)
	}
}

func TestErrorShape(t *testing.T) {
	got := string(Marshal(Error(canon.Unsupported("n", "more than one choice"))))
	want := `{"error":{"message":"n: more than one choice is not supported yet","type":"invalid_request_error","param":"n","code":"unsupported_parameter"}}`
	if got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
}

// TestDecodeImageParts: image_url parts (object or string form) become
// image parts and the request's images, in order; http(s) URLs are left for
// the server to fetch; bad ones name the part.
func TestDecodeImageParts(t *testing.T) {
	r, err := DecodeChat([]byte(`{"model":"m","messages":[{"role":"user","content":[
		{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lGODlh","detail":"low"}},
		{"type":"input_image","image_url":"https://example.com/x.png"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	im := r.Chat.Images
	if len(im) != 2 || string(im[0].Data) != "GIF89a" || im[1].Data != nil || len(r.RemoteImages) != 1 ||
		r.RemoteImages[0].Index != 1 || r.RemoteImages[0].Param != "messages[0].content[2].image_url" {
		t.Fatalf("%+v %+v", im, r.RemoteImages)
	}
	// A message holding images is flattened as llama.cpp's server does.
	want := chat.Text("look" + engine.ImagePlace + engine.ImagePlace)
	if !reflect.DeepEqual(r.Chat.Messages[0].Content, want) {
		t.Errorf("content %+v", r.Chat.Messages[0].Content)
	}
	for part, param := range map[string]string{
		`{"type":"image_url"}`: "messages[0].content[0].image_url",
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,%%%"}}`:               "messages[0].content[0].image_url",
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,aGk=","detail":"x"}}`: "messages[0].content[0].image_url.detail",
		`{"type":"image_url","image_url":{"url":"file:///x.png"}}`:                           "messages[0].content[0].image_url",
	} {
		_, err := DecodeChat([]byte(`{"model":"m","messages":[{"role":"user","content":[` + part + `]}]}`))
		if err == nil || canon.As(err).Param != param || canon.As(err).Kind != canon.Invalid {
			t.Errorf("%s: %v, want an error about %s", part, err, param)
		}
	}
	_, err = DecodeChat([]byte(`{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGk="}}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "system message") {
		t.Errorf("image in a system message: %v", err)
	}
}

// TestChoices: n becomes the engine request's N (1..MaxChoices, a 400
// naming n beyond); responses and stream chunks carry one choice per
// answer with its index, and the usage counts the prompt once.
func TestChoices(t *testing.T) {
	r, err := DecodeChat([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}`))
	if err != nil || r.Chat.N != 3 {
		t.Fatalf("chat n=3: %+v %v", r, err)
	}
	c, err := DecodeCompletion([]byte(`{"model":"m","prompt":"x","n":2}`))
	if err != nil || c.Completion.N != 2 {
		t.Fatalf("completion n=2: %+v %v", c, err)
	}
	for _, body := range []string{`{"model":"m","messages":[{"role":"user","content":"x"}],"n":9}`, `{"model":"m","prompt":"x","n":100}`} {
		decode := DecodeChat
		if strings.Contains(body, "prompt") {
			decode = DecodeCompletion
		}
		_, err := decode([]byte(body))
		if e := canon.As(err); err == nil || e.Kind != canon.Invalid || e.Param != "n" || !strings.Contains(e.Msg, "8") {
			t.Errorf("%s: %v", body, err)
		}
	}
	res := engine.Result{Text: "a", Usage: engine.Usage{PromptTokens: 5, GeneratedTokens: 3},
		Choices: []engine.Result{{Text: "a", Finish: engine.FinishStop}, {Text: "bc", Finish: engine.FinishLength}}}
	got := string(Marshal(ChatResponse("id", "m", 1, res)))
	if !strings.Contains(got, `"choices":[{"index":0,"message":{"role":"assistant","content":"a"},"logprobs":null,"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"bc"},"logprobs":null,"finish_reason":"length"}]`) ||
		!strings.Contains(got, `"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8`) {
		t.Errorf("chat response %s", got)
	}
	got = string(Marshal(TextResponse("id", "m", 1, res)))
	if !strings.Contains(got, `"choices":[{"index":0,"text":"a","logprobs":null,"finish_reason":"stop"},{"index":1,"text":"bc","logprobs":null,"finish_reason":"length"}]`) {
		t.Errorf("text response %s", got)
	}
	s := &Stream{ID: "x", Model: "m", Chat: true, N: 2}
	var out []Completion
	out = append(out, s.Event(engine.Event{Kind: engine.ContentEvent, Text: "b", Choice: 1})...)
	out = append(out, s.Event(engine.Event{Kind: engine.ToolCallEvent, Call: chat.ToolCall{Name: "f"}, Choice: 1})...)
	out = append(out, s.Event(engine.Event{Kind: engine.ToolCallEvent, Call: chat.ToolCall{Name: "g"}, Choice: 0})...)
	out = append(out, s.Finish(res, true)...)
	var idx []string
	for _, c := range out {
		b := string(Marshal(c))
		b = b[strings.Index(b, `"choices"`):]
		if i := strings.Index(b, `"id":"call_`); i >= 0 {
			b = b[:i] + b[i+strings.Index(b[i+6:], `"`)+7:]
		}
		idx = append(idx, b)
	}
	want := `"choices":[{"index":0,"delta":{"role":"assistant"},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":1,"delta":{"role":"assistant"},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":1,"delta":{"content":"b"},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,,"type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,,"type":"function","function":{"name":"g","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}
"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}
"choices":[{"index":1,"delta":{},"logprobs":null,"finish_reason":"length"}]}
"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":0}}}`
	if g := strings.Join(idx, "\n"); g != want {
		t.Errorf("chunks\n%s\nwant\n%s", g, want)
	}
}

// TestFlattenParts: text and image parts become one string as llama.cpp's
// server lays out a message with media: text parts joined with "\n", no
// newline next to an image, nothing trimmed (the template trims the whole).
func TestFlattenParts(t *testing.T) {
	txt := func(s string) chat.Part { return chat.Part{Type: "text", Text: s} }
	img := chat.Part{Type: "image"}
	P := engine.ImagePlace
	for _, c := range []struct {
		parts []chat.Part
		want  string
	}{
		{[]chat.Part{txt("a"), img, txt("b")}, "a" + P + "b"},
		{[]chat.Part{img, txt("a"), txt("b")}, P + "a\nb"},
		{[]chat.Part{txt("a "), txt(" b"), img, img, txt(" c\n")}, "a \n b" + P + P + " c\n"},
		{[]chat.Part{img}, P},
		{[]chat.Part{txt(""), img, txt("")}, P},
		{[]chat.Part{txt("x"), txt(""), img}, "x\n" + P},
	} {
		if got := flattenParts(c.parts); got != c.want {
			t.Errorf("%+v: %q, want %q", c.parts, got, c.want)
		}
	}
}

// TestDecodeImageBudget: image_url.detail and the image_tokens extension
// (per part, or for every image at the top) set each image's budget and
// the field errors name; bad values are a 400 naming the field.
func TestDecodeImageBudget(t *testing.T) {
	const u = `"url":"data:image/png;base64,aGk="`
	r, err := DecodeChat([]byte(`{"model":"m","image_tokens":560,"messages":[{"role":"user","content":[
		{"type":"image_url","image_url":{` + u + `,"detail":"low"}},
		{"type":"image_url","image_url":{` + u + `,"image_tokens":140,"detail":"high"}},
		{"type":"image_url","image_url":{` + u + `,"detail":"auto"}},
		{"type":"image_url","image_url":{` + u + `}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	type b struct {
		detail string
		tokens int
		param  string
	}
	var got []b
	for _, im := range r.Chat.Images {
		got = append(got, b{im.Detail, im.Tokens, im.Param})
	}
	want := []b{
		{"low", 0, "messages[0].content[0].image_url.detail"},
		{"high", 140, "messages[0].content[1].image_url.image_tokens"},
		{"", 560, "image_tokens"},
		{"", 560, "image_tokens"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("budgets %+v, want %+v", got, want)
	}
	for body, param := range map[string]string{
		`{"model":"m","image_tokens":0,"messages":[{"role":"user","content":"x"}]}`:                                             "image_tokens",
		`{"model":"m","image_tokens":"many","messages":[{"role":"user","content":"x"}]}`:                                        "image_tokens",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{` + u + `,"image_tokens":-1}}]}]}`: "messages[0].content[0].image_url.image_tokens",
	} {
		_, err := DecodeChat([]byte(body))
		if err == nil || canon.As(err).Param != param || canon.As(err).Kind != canon.Invalid {
			t.Errorf("%s: %v, want an error about %s", body, err, param)
		}
	}
}
