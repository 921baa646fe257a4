package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"mica/internal/llm/engine"
)

const okMsgs = `"messages":[{"role":"user","content":"hi"}]`

// TestBadInput: every 4xx path answers in its dialect's shape, with the
// status and a message naming what to fix; the server keeps serving.
func TestBadInput(t *testing.T) {
	ts, _, _ := start(t, Config{MaxBodyBytes: 4096, Context: 128})
	long := strings.Repeat("word ", 400)
	big := `{"model":"tiny","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`
	cases := []struct {
		path, body string
		status     int
		want       string // in the message
		param      string // OpenAI error.param, when it names one
	}{
		{"/v1/chat/completions", `{"model":`, 400, "malformed JSON", ""},
		{"/v1/chat/completions", `[1,2]`, 400, "must be a JSON object", ""},
		{"/v1/chat/completions", ``, 400, "empty", ""},
		{"/v1/chat/completions", `{"model":"tiny","messages":"hi"}`, 400, "messages", "messages"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"temperature":"hot"}`, 400, "temperature", "temperature"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"stream":"yes"}`, 400, "stream", "stream"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"foo":1}`, 400, `unknown field "foo"`, "foo"},
		{"/v1/chat/completions", `{"model":"nope",` + okMsgs + `}`, 404, `"nope" not found`, "model"},
		{"/v1/chat/completions", `{"model":"../tiny",` + okMsgs + `}`, 404, "not found", "model"},
		{"/v1/chat/completions", `{"model":"/etc/passwd",` + okMsgs + `}`, 404, "not found", "model"},
		{"/v1/chat/completions", `{` + okMsgs + `}`, 400, "model is missing", "model"},
		{"/v1/chat/completions", `{"model":"tiny","messages":[]}`, 400, "at least one message", "messages"},
		{"/v1/chat/completions", `{"model":"tiny","messages":[{"role":"robot","content":"x"}]}`, 400, "role", "messages[0].role"},
		{"/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:"}}]}]}`, 400, "a data: URL needs a comma", "messages[0].content[0].image_url"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"n":9}`, 400, "n 9 is more than the 8 choices one request may ask for", "n"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"logprobs":true}`, 400, "logprobs is not supported yet", "logprobs"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"response_format":{"type":"json_schema","json_schema":{}}}`, 400, "json_schema.schema is missing", "response_format.json_schema.schema"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"not":{}}}}}`, 400, `keyword "not"`, "response_format.json_schema.schema"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{},"bogus":1}}}`, 400, "bogus", "response_format.json_schema.bogus"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"response_format":{"type":"xml"}}`, 400, "xml", "response_format.type"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"response_format":{"type":"json_object"},"reasoning_effort":"high"}`, 400, "thinking", "response_format"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"grammar":"root ::= \"a"}`, 400, "grammar", "grammar"},
		{"/v1/completions", `{"model":"tiny","prompt":"x","grammar":"root ::= foo"}`, 400, "grammar", "grammar"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"tool_choice":"required"}`, 400, "needs tools", "tool_choice"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"tool_choice":{"type":"function","function":{"name":"f"}}}`, 400, "needs tools", "tool_choice"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, 400, `"g"`, "tool_choice.function.name"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{}}}`, 400, "name is missing", "tool_choice.function.name"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","response_format":{"type":"json_object"}}`, 400, "cannot be combined", "tool_choice"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"tool_choice":"sometimes"}`, 400, "sometimes", "tool_choice"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"parallel_tool_calls":false}`, 400, "parallel_tool_calls", "parallel_tool_calls"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"max_tokens":-1}`, 400, "max_tokens -1", "max_tokens"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"max_tokens":0}`, 400, "at least 1", "max_tokens"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"max_tokens":100000000}`, 400, "context", "max_tokens"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"max_tokens":1e99}`, 400, "max_tokens", "max_tokens"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"max_completion_tokens":5000}`, 400, "max_completion_tokens 5000 is more than the model's context", "max_completion_tokens"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"temperature":500}`, 400, "temperature", ""},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"logit_bias":{"999999999":1}}`, 400, "logit_bias", ""},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"logit_bias":{"abc":1}}`, 400, "logit_bias", "logit_bias"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"stop":""}`, 400, "stop", "stop"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"stop":[1]}`, 400, "stop", "stop"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"reasoning_effort":"max"}`, 400, "reasoning_effort", "reasoning_effort"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"chat_template_kwargs":{"foo":1}}`, 400, "chat_template_kwargs.foo", "chat_template_kwargs.foo"},
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `,"stream_options":{"include_usage":true}}`, 400, "stream: true", "stream_options"},
		{"/v1/chat/completions", `{"model":"tiny","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{bad"}}]}]}`, 400, "arguments", "messages[0].tool_calls[0].function.arguments"},
		{"/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"` + long + `"}]}`, 400, "the context holds 128", "messages"},
		{"/v1/chat/completions", big, 413, "limit", ""},
		{"/v1/completions", `{"model":"tiny"}`, 400, "prompt is missing", "prompt"},
		{"/v1/completions", `{"model":"tiny","prompt":[1,2]}`, 400, "prompt", "prompt"},
		{"/v1/completions", `{"model":"tiny","prompt":"x","echo":true}`, 400, "echo", "echo"},
		{"/v1/completions", `{"model":"tiny","prompt":"` + long + `"}`, 400, "the context holds 128", ""},
		{"/v1/nothing", `{}`, 404, "no such endpoint", ""},
		{"/api/chat", `{"model":`, 400, "malformed JSON", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"temperature":"x"}}`, 400, "options.temperature", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"num_thread":4}}`, 400, "options.num_thread", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"mirostat":2}}`, 400, "options.mirostat", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"num_predict":-5}}`, 400, "options.num_predict", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"num_predict":5000}}`, 400, "options.num_predict 5000 is more than the model's context", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"num_ctx":100000}}`, 400, "options.num_ctx", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"options":{"top_k":-3}}`, 400, "top_k", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"format":"yaml"}`, 400, "format", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"format":{"type":"object","patternProperties":{}}}`, 400, `keyword "patternProperties"`, ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"format":"json","think":true}`, 400, "thinking", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"keep_alive":"forever"}`, 400, "keep_alive", ""},
		{"/api/chat", `{"model":"tiny",` + okMsgs + `,"think":"very"}`, 400, "think", ""},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"x","images":["aGk="]}]}`, 400, "cannot read images: it has no vision projector", ""},
		{"/api/chat", `{"model":"nope",` + okMsgs + `}`, 404, `"nope" not found`, ""},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"` + long + `"}]}`, 400, "the context holds 128", ""},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"` + strings.Repeat("word ", 60) + `"}],"options":{"num_ctx":40}}`, 400, "the context holds 40", ""},
		{"/api/chat", big, 413, "limit", ""},
		{"/api/generate", `{"model":"tiny","prompt":"x","template":"{{.Prompt}}"}`, 400, "template", ""},
		{"/api/generate", `{"model":"tiny","prompt":"x","suffix":"y"}`, 400, "suffix", ""},
		{"/api/generate", `{"model":"tiny","prompt":5}`, 400, "prompt", ""},
		{"/api/show", `{"model":"nope"}`, 404, "not found", ""},
		{"/api/show", `{}`, 400, "model is required", ""},
		{"/api/nothing", `{}`, 404, "no such endpoint", ""},
	}
	for _, c := range cases {
		name := c.path + " " + c.body
		if len(name) > 90 {
			name = name[:90]
		}
		code, hdr, body := post(t, ts.URL+c.path, c.body)
		if code != c.status {
			t.Errorf("%s: status %d, want %d: %s", name, code, c.status, body)
			continue
		}
		if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Errorf("%s: content type %q", name, hdr.Get("Content-Type"))
		}
		var msg string
		if strings.HasPrefix(c.path, "/api/") {
			var e struct {
				Error string `json:"error"`
			}
			decodeJSON(t, body, &e)
			msg = e.Error
		} else {
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			decodeJSON(t, body, &e)
			msg = e.Error.Message
			if e.Error.Type == "" {
				t.Errorf("%s: no error.type: %s", name, body)
			}
			if c.param != "" && (e.Error.Param == nil || *e.Error.Param != c.param) {
				t.Errorf("%s: error.param %v, want %q: %s", name, e.Error.Param, c.param, body)
			}
		}
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: message %q does not say %q", name, msg, c.want)
		}
	}
	// Wrong methods.
	if code, body := get(t, ts.URL+"/v1/chat/completions"); code != 405 || !strings.Contains(string(body), "use POST") {
		t.Errorf("GET chat: %d %s", code, body)
	}
	// Still serving.
	if code, _, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`,"max_tokens":2}`); code != 200 {
		t.Fatalf("after the bad requests: %d %s", code, body)
	}
}

// TestPanicRecovered: a panic in a handler becomes a logged 500 JSON error,
// and the engine queue is released.
func TestPanicRecovered(t *testing.T) {
	f := &fake{panic: true, script: scripted}
	ts, _, logs := start(t, Config{Loader: fakeLoader(f)})
	code, _, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`}`)
	if code != 500 || !strings.Contains(string(body), `"type":"server_error"`) || !strings.Contains(logs.String(), "scripted panic") {
		t.Fatalf("status %d: %s\nlog: %s", code, body, logs.String())
	}
	code, _, body = post(t, ts.URL+"/api/chat", `{"model":"tiny","stream":false,`+okMsgs+`}`)
	if code != 500 || !strings.HasPrefix(string(body), `{"error":"internal error`) {
		t.Fatalf("status %d: %s", code, body)
	}
	// A stream that has begun ends with an error frame.
	code, _, body = post(t, ts.URL+"/api/chat", `{"model":"tiny",`+okMsgs+`}`)
	if code != 200 || string(body) != "{\"error\":\"internal error: scripted panic (the server logged it)\"}\n" {
		t.Fatalf("streamed: status %d: %q", code, body)
	}
	code, _, body = post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny","stream":true,`+okMsgs+`}`)
	if evs := sseEvents(t, body); code != 200 || len(evs) != 2 || !strings.Contains(evs[1], `"type":"server_error"`) {
		t.Fatalf("streamed: status %d: %q", code, body)
	}
	f.panic = false
	if code, _, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`}`); code != 200 {
		t.Fatalf("after the panic: %d %s", code, body)
	}
}

// TestQueueFull: with one request running and MaxQueue waiting, the next is
// refused with 429 and Retry-After; the others are then answered.
func TestQueueFull(t *testing.T) {
	f := &fake{block: make(chan struct{}), script: scripted[2:3]}
	ts, s, _ := start(t, Config{Loader: fakeLoader(f), MaxQueue: 1})
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`}`)
		}()
		// Wait until the request runs (i == 0) or waits (i == 1).
		deadline := time.Now().Add(5 * time.Second)
		for (i == 0 && len(s.q.slot) == 0) || (i == 1 && s.q.waiting.Load() == 0) {
			if time.Now().After(deadline) {
				t.Fatal("request did not reach the queue")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, path := range []string{"/v1/chat/completions", "/api/chat"} {
		code, hdr, body := post(t, ts.URL+path, `{"model":"tiny",`+okMsgs+`}`)
		if code != 429 || hdr.Get("Retry-After") != "1" || !strings.Contains(string(body), "busy") {
			t.Fatalf("%s with a full queue: %d %q %s", path, code, hdr.Get("Retry-After"), body)
		}
	}
	close(f.block)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("queued requests: %v", codes)
	}
}

// TestDisconnectCancels: a client that goes away mid-stream cancels its
// generation (the fake sees ctx end), in both dialects, and frees the engine.
func TestDisconnectCancels(t *testing.T) {
	script := make([]engine.Event, 2000)
	for i := range script {
		script[i] = engine.Event{Kind: engine.ContentEvent, Text: "x"}
	}
	f := &fake{script: script, pause: 5 * time.Millisecond, ended: make(chan engine.Finish, 4)}
	ts, _, _ := start(t, Config{Loader: fakeLoader(f)})
	for _, path := range []string{"/v1/chat/completions", "/api/chat"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+path, strings.NewReader(`{"model":"tiny","stream":true,`+okMsgs+`}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		resp.Body.Close()
		select {
		case fin := <-f.ended:
			if fin != engine.FinishCancelled {
				t.Fatalf("%s: generation ended with %s", path, fin)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: generation not cancelled 5 s after the client left", path)
		}
	}
}

// recorder wraps the real engine and reports how each chat ended.
type recorder struct {
	Runner
	ended chan engine.Result
}

func (r *recorder) Chat(ctx context.Context, req engine.ChatRequest, on func(engine.Event)) (engine.Result, error) {
	res, err := r.Runner.Chat(ctx, req, on)
	r.ended <- res
	return res, err
}

// TestDisconnectCancelsEngine: the same with the real engine, whose end of
// turn is banned so that it would otherwise run to 400 tokens, without and
// with continuous batching.
func TestDisconnectCancelsEngine(t *testing.T) {
	for _, batch := range []int{1, 4} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) { testDisconnectCancelsEngine(t, batch) })
	}
}

func testDisconnectCancelsEngine(t *testing.T, batch int) {
	ended := make(chan engine.Result, 4)
	load := func(path string, o LoadOptions) (Runner, error) {
		r, err := EngineLoader(path, o)
		if err != nil {
			return nil, err
		}
		return &recorder{r, ended}, nil
	}
	ts, _, _ := start(t, Config{Loader: load, Context: 512, Batch: batch})
	ban := `"logit_bias":{"1":-100,"106":-100,"50":-100,"48":-100}`
	ctx, cancel := context.WithCancel(context.Background())
	body := `{"model":"tiny","stream":true,"max_tokens":400,"temperature":0,` + ban + `,` + okMsgs + `}`
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 400)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case res := <-ended:
		if res.Finish != engine.FinishCancelled || len(res.Tokens) >= 400 {
			t.Fatalf("generation ended with %s after %d tokens", res.Finish, len(res.Tokens))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("generation not cancelled 20 s after the client left")
	}
}

// TestConcurrentClients: 20 clients at once, both dialects, streamed and
// not, are all answered (one after another by the engine).
func TestConcurrentClients(t *testing.T) {
	ts, _, _ := start(t, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := i%4 < 2
			var path, body string
			if i%2 == 0 {
				path = "/v1/chat/completions"
				body = fmt.Sprintf(`{"model":"tiny","stream":%v,"max_tokens":3,"seed":%d,"messages":[{"role":"user","content":"client %d"}]}`, stream, i, i)
			} else {
				path = "/api/chat"
				body = fmt.Sprintf(`{"model":"tiny","stream":%v,"options":{"num_predict":3,"seed":%d},"messages":[{"role":"user","content":"client %d"}]}`, stream, i, i)
			}
			resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := resp.Body.Read(buf)
				b.WriteString(string(buf[:n]))
				if err != nil {
					break
				}
			}
			out := b.String()
			ok := resp.StatusCode == 200
			switch {
			case i%2 == 0 && stream:
				ok = ok && strings.HasSuffix(out, "data: [DONE]\n\n")
			case i%2 == 0:
				var c chatCompletion
				ok = ok && json.Unmarshal([]byte(out), &c) == nil && len(c.Choices) == 1 && c.Choices[0].FinishReason != nil
			default:
				lines := strings.Split(strings.TrimSpace(out), "\n")
				ok = ok && strings.Contains(lines[len(lines)-1], `"done":true`)
			}
			if !ok {
				errs <- fmt.Errorf("client %d (%s, stream %v): %d %s", i, path, stream, resp.StatusCode, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestGemma3RefusesThinkingAndTools: a model without thinking or tool syntax
// refuses them by name instead of ignoring them.
func TestGemma3RefusesThinkingAndTools(t *testing.T) {
	ts, _, _ := start(t, Config{Loader: fakeLoader(&fake{family: "gemma3", script: scripted[2:3]})})
	for _, c := range []struct{ path, body, want string }{
		{"/v1/chat/completions", `{"model":"tiny","reasoning_effort":"high",` + okMsgs + `}`, "does not support thinking"},
		{"/api/chat", `{"model":"tiny","think":true,` + okMsgs + `}`, "does not support thinking"},
		{"/v1/chat/completions", `{"model":"tiny","tools":[{"type":"function","function":{"name":"f"}}],` + okMsgs + `}`, "does not support tools"},
	} {
		if code, _, body := post(t, ts.URL+c.path, c.body); code != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s %s: %d %s", c.path, c.body, code, body)
		}
	}
	if code, _, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`}`); code != 200 {
		t.Fatalf("plain chat: %d %s", code, body)
	}
}
