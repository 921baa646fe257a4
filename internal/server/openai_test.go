package server

import (
	"encoding/json"
	"strings"
	"testing"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
)

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role             string  `json:"role"`
			Content          *string `json:"content"`
			ReasoningContent string  `json:"reasoning_content"`
			ToolCalls        []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Index    *int   `json:"index"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		Delta struct {
			Role             string `json:"role"`
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			ToolCalls        []struct {
				ID       string `json:"id"`
				Index    *int   `json:"index"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func noMarkers(t *testing.T, what, s string) {
	t.Helper()
	for _, m := range chat.Gemma4Markers {
		if strings.Contains(s, m) {
			t.Errorf("%s %q contains the marker %q", what, s, m)
		}
	}
}

const greedyChat = `{"model":"tiny","messages":[{"role":"system","content":[{"type":"text","text":"Be brief."}]},
 {"role":"user","content":[{"type":"text","text":"Hello there"},{"type":"text","text":"how are you?"}]}],
 "temperature":0,"max_tokens":6%s}`

// TestOpenAIChat: a non-streamed and a streamed greedy answer agree, chunk
// by chunk framing is OpenAI's (role first, finish, usage, [DONE]).
func TestOpenAIChat(t *testing.T) {
	ts, _, _ := start(t, Config{})
	code, _, body := post(t, ts.URL+"/v1/chat/completions", strings.Replace(greedyChat, "%s", "", 1))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var full chatCompletion
	decodeJSON(t, body, &full)
	if full.Object != "chat.completion" || full.Model != "tiny" || !strings.HasPrefix(full.ID, "chatcmpl-") || len(full.Choices) != 1 {
		t.Fatalf("response %s", body)
	}
	c := full.Choices[0]
	if c.Message.Role != "assistant" || c.Message.Content == nil || c.FinishReason == nil ||
		(*c.FinishReason != "stop" && *c.FinishReason != "length") {
		t.Fatalf("choice %s", body)
	}
	u := full.Usage
	if u == nil || u.PromptTokens < 10 || u.CompletionTokens < 1 || u.CompletionTokens > 6 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Fatalf("usage %s", body)
	}
	noMarkers(t, "content", *c.Message.Content)

	code, hdr, body := post(t, ts.URL+"/v1/chat/completions", strings.Replace(greedyChat, "%s", `,"stream":true,"stream_options":{"include_usage":true}`, 1))
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d %s: %s", code, hdr.Get("Content-Type"), body)
	}
	evs := sseEvents(t, body)
	if len(evs) < 4 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("stream %q", evs)
	}
	var content string
	var finish string
	for i, e := range evs[:len(evs)-1] {
		var ch chatCompletion
		decodeJSON(t, []byte(e), &ch)
		if ch.Object != "chat.completion.chunk" || ch.ID != "" && !strings.HasPrefix(ch.ID, "chatcmpl-") {
			t.Fatalf("chunk %s", e)
		}
		if i == len(evs)-2 {
			if len(ch.Choices) != 0 || ch.Usage == nil || ch.Usage.CompletionTokens != u.CompletionTokens || ch.Usage.PromptTokens != u.PromptTokens {
				t.Fatalf("usage chunk %s (non-streamed usage %+v)", e, *u)
			}
			continue
		}
		if len(ch.Choices) != 1 {
			t.Fatalf("chunk %s", e)
		}
		d := ch.Choices[0]
		if i == 0 && d.Delta.Role != "assistant" {
			t.Fatalf("first chunk %s", e)
		}
		content += d.Delta.Content
		if d.FinishReason != nil {
			if finish != "" {
				t.Fatalf("two finish reasons")
			}
			finish = *d.FinishReason
		}
	}
	if content != *c.Message.Content || finish != *c.FinishReason {
		t.Fatalf("streamed %q (%s), non-streamed %q (%s)", content, finish, *c.Message.Content, *c.FinishReason)
	}
}

// TestOpenAICompletion: /v1/completions, streamed and not.
func TestOpenAICompletion(t *testing.T) {
	ts, _, _ := start(t, Config{})
	req := `{"model":"tiny","prompt":"Once upon a time","temperature":0,"max_tokens":5,"stop":["\n\n\n"]%s}`
	code, _, body := post(t, ts.URL+"/v1/completions", strings.Replace(req, "%s", "", 1))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var full chatCompletion
	decodeJSON(t, body, &full)
	if full.Object != "text_completion" || len(full.Choices) != 1 || full.Choices[0].FinishReason == nil || full.Usage == nil || full.Usage.CompletionTokens > 5 {
		t.Fatalf("response %s", body)
	}
	code, _, body = post(t, ts.URL+"/v1/completions", strings.Replace(req, "%s", `,"stream":true`, 1))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	evs := sseEvents(t, body)
	text := ""
	for _, e := range evs[:len(evs)-1] {
		var ch chatCompletion
		decodeJSON(t, []byte(e), &ch)
		if ch.Object != "text_completion" || ch.Usage != nil {
			t.Fatalf("chunk %s", e)
		}
		text += ch.Choices[0].Text
	}
	if evs[len(evs)-1] != "[DONE]" || text != full.Choices[0].Text {
		t.Fatalf("streamed %q, non-streamed %q", text, full.Choices[0].Text)
	}
}

func TestOpenAIModels(t *testing.T) {
	ts, _, _ := start(t, Config{})
	code, body := get(t, ts.URL+"/v1/models")
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, OwnedBy string
		} `json:"data"`
	}
	decodeJSON(t, body, &list)
	if code != 200 || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != testModel || list.Data[0].Object != "model" {
		t.Fatalf("status %d: %s", code, body)
	}
	if code, body := get(t, ts.URL+"/v1/models/tiny"); code != 200 || !strings.Contains(string(body), `"id":"tiny"`) {
		t.Fatalf("status %d: %s", code, body)
	}
	if code, _ := get(t, ts.URL+"/v1/models/nope"); code != 404 {
		t.Fatalf("unknown model: status %d", code)
	}
}

// scripted is an answer with thinking, content and two tool calls.
var scripted = []engine.Event{
	{Kind: engine.ThinkingEvent, Text: "Let me "},
	{Kind: engine.ThinkingEvent, Text: "think."},
	{Kind: engine.ContentEvent, Text: "Checking."},
	{Kind: engine.ToolCallEvent, Call: chat.ToolCall{Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}},
	{Kind: engine.ToolCallEvent, Call: chat.ToolCall{Name: "get_time", Arguments: json.RawMessage(`{"tz":"CET"}`)}},
}

const toolChat = `{"model":"tiny","messages":[{"role":"user","content":"Weather?"}],"reasoning_effort":"high",
 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]%s}`

// TestOpenAIThinkingAndTools: thinking goes to reasoning_content, never to
// content; tool calls get call_ ids, indexes and JSON-string arguments.
func TestOpenAIThinkingAndTools(t *testing.T) {
	ts, _, _ := start(t, Config{Loader: fakeLoader(&fake{script: scripted})})
	code, _, body := post(t, ts.URL+"/v1/chat/completions", strings.Replace(toolChat, "%s", "", 1))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var full chatCompletion
	decodeJSON(t, body, &full)
	m := full.Choices[0].Message
	if m.ReasoningContent != "Let me think." || m.Content == nil || *m.Content != "Checking." || *full.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("response %s", body)
	}
	if len(m.ToolCalls) != 2 || m.ToolCalls[0].Function.Name != "get_weather" || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` ||
		!strings.HasPrefix(m.ToolCalls[0].ID, "call_") || m.ToolCalls[0].ID == m.ToolCalls[1].ID || m.ToolCalls[0].Type != "function" {
		t.Fatalf("tool calls %s", body)
	}

	code, _, body = post(t, ts.URL+"/v1/chat/completions", strings.Replace(toolChat, "%s", `,"stream":true`, 1))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var content, reasoning string
	var ids []string
	for _, e := range sseEvents(t, body) {
		if e == "[DONE]" {
			continue
		}
		var ch chatCompletion
		decodeJSON(t, []byte(e), &ch)
		d := ch.Choices[0].Delta
		content += d.Content
		reasoning += d.ReasoningContent
		for _, tc := range d.ToolCalls {
			if tc.Index == nil || *tc.Index != len(ids) || !strings.HasPrefix(tc.ID, "call_") {
				t.Fatalf("tool call delta %s", e)
			}
			ids = append(ids, tc.ID)
		}
	}
	if content != "Checking." || reasoning != "Let me think." || len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("streamed content %q, reasoning %q, calls %v", content, reasoning, ids)
	}
}

// TestOpenAIThinkingRealModel: with thinking on, the random model's output
// never leaks Gemma 4's channel or tool markup into content or reasoning.
func TestOpenAIThinkingRealModel(t *testing.T) {
	ts, _, _ := start(t, Config{})
	req := `{"model":"tiny","messages":[{"role":"user","content":"Think first."}],"chat_template_kwargs":{"enable_thinking":true},
	 "seed":3,"max_tokens":12,"logit_bias":{"100":8}}`
	code, _, body := post(t, ts.URL+"/v1/chat/completions", req)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var full chatCompletion
	decodeJSON(t, body, &full)
	m := full.Choices[0].Message
	if m.Content != nil {
		noMarkers(t, "content", *m.Content)
	}
	noMarkers(t, "reasoning", m.ReasoningContent)
}

// TestOpenAIToolRoundTrip: a conversation with an assistant tool call and
// the tool's result is rendered in Gemma 4's format and answered.
func TestOpenAIToolRoundTrip(t *testing.T) {
	ts, _, _ := start(t, Config{})
	req := `{"model":"tiny","max_tokens":3,"temperature":0,
	 "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
	 "messages":[{"role":"user","content":"Weather in Paris?"},
	  {"role":"assistant","content":null,"reasoning_content":"I should call it.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
	  {"role":"tool","tool_call_id":"call_1","content":"{\"temp\":21}"}]}`
	code, _, body := post(t, ts.URL+"/v1/chat/completions", req)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var full chatCompletion
	decodeJSON(t, body, &full)
	if full.Usage == nil || full.Usage.PromptTokens < 30 {
		t.Fatalf("response %s", body)
	}
	// tool_choice none hides the tools from the model: a shorter prompt.
	code, _, body = post(t, ts.URL+"/v1/chat/completions", strings.Replace(req, `"max_tokens":3`, `"max_tokens":3,"tool_choice":"none"`, 1))
	var none chatCompletion
	decodeJSON(t, body, &none)
	if code != 200 || none.Usage.PromptTokens >= full.Usage.PromptTokens {
		t.Fatalf("tool_choice none: %d, prompt %d tokens (with tools %d)", code, none.Usage.PromptTokens, full.Usage.PromptTokens)
	}
}
