package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOllamaChat: NDJSON stream by default, stream:false gives one object,
// and the two greedy answers agree.
func TestOllamaChat(t *testing.T) {
	ts, _, _ := start(t, Config{})
	req := `{"model":"tiny:latest","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],
	 "options":{"temperature":0,"num_predict":6,"top_k":20,"repeat_penalty":1.1,"num_ctx":256,"seed":4,"stop":["\n\n\n"]},"keep_alive":"10m"%s}`
	code, hdr, body := post(t, ts.URL+"/api/chat", strings.Replace(req, "%s", "", 1))
	if code != 200 || hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d %s: %s", code, hdr.Get("Content-Type"), body)
	}
	lines := ndjson(t, body)
	content := ""
	for _, l := range lines[:len(lines)-1] {
		m := l["message"].(map[string]any)
		if l["done"] != false || m["role"] != "assistant" || l["model"] != "tiny:latest" {
			t.Fatalf("chunk %v", l)
		}
		content += m["content"].(string)
	}
	last := lines[len(lines)-1]
	if last["done"] != true || (last["done_reason"] != "stop" && last["done_reason"] != "length") ||
		last["prompt_eval_count"].(float64) < 5 || last["eval_count"].(float64) > 6 || last["total_duration"].(float64) <= 0 {
		t.Fatalf("final %v", last)
	}
	noMarkers(t, "content", content)

	code, hdr, body = post(t, ts.URL+"/api/chat", strings.Replace(req, "%s", `,"stream":false`, 1))
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d: %s", code, body)
	}
	var one struct {
		Done    bool `json:"done"`
		Message struct {
			Role, Content string
		} `json:"message"`
		EvalCount int `json:"eval_count"`
	}
	decodeJSON(t, body, &one)
	if !one.Done || one.Message.Content != content || one.EvalCount != int(last["eval_count"].(float64)) {
		t.Fatalf("non-streamed %s, streamed %q", body, content)
	}
}

// TestOllamaGenerate: /api/generate streamed and not, raw mode, and the
// load / unload forms with an empty prompt, seen by /api/ps.
func TestOllamaGenerate(t *testing.T) {
	// With batching, keep_alive 0 unloads after every slot is free.
	for _, batch := range []int{1, 4} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) { testOllamaGenerate(t, batch) })
	}
}

func testOllamaGenerate(t *testing.T, batch int) {
	ts, _, _ := start(t, Config{Batch: batch})
	code, _, body := post(t, ts.URL+"/api/generate", `{"model":"tiny","prompt":"Why?","system":"Short.","options":{"temperature":0,"num_predict":4}}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	lines := ndjson(t, body)
	if last := lines[len(lines)-1]; last["done"] != true || last["response"] != "" {
		t.Fatalf("final %v", last)
	}
	code, _, body = post(t, ts.URL+"/api/generate", `{"model":"tiny","prompt":"Once upon","raw":true,"stream":false,"options":{"num_predict":3}}`)
	if code != 200 || !strings.Contains(string(body), `"done":true`) || !strings.Contains(string(body), `"response":`) {
		t.Fatalf("status %d: %s", code, body)
	}
	_, body = get(t, ts.URL+"/api/ps")
	if !strings.Contains(string(body), `"name":"tiny"`) || !strings.Contains(string(body), `"expires_at":"2`) {
		t.Fatalf("ps after a request: %s", body)
	}
	code, _, body = post(t, ts.URL+"/api/generate", `{"model":"tiny","keep_alive":0}`)
	if code != 200 || !strings.Contains(string(body), `"done_reason":"unload"`) {
		t.Fatalf("unload: status %d: %s", code, body)
	}
	if _, body = get(t, ts.URL+"/api/ps"); string(body) != "{\"models\":[]}\n" {
		t.Fatalf("ps after unload: %s", body)
	}
	code, _, body = post(t, ts.URL+"/api/generate", `{"model":"tiny"}`)
	if code != 200 || !strings.Contains(string(body), `"done_reason":"load"`) {
		t.Fatalf("load: status %d: %s", code, body)
	}
	if _, body = get(t, ts.URL+"/api/ps"); !strings.Contains(string(body), `"name":"tiny"`) {
		t.Fatalf("ps after load: %s", body)
	}
	// /api/chat without messages loads or unloads too.
	code, _, body = post(t, ts.URL+"/api/chat", `{"model":"tiny","messages":[],"keep_alive":0}`)
	if code != 200 || !strings.Contains(string(body), `"message":{"role":"assistant","content":""},"done":true,"done_reason":"unload"`) {
		t.Fatalf("chat unload: status %d: %s", code, body)
	}
	if _, body = get(t, ts.URL+"/api/ps"); string(body) != "{\"models\":[]}\n" {
		t.Fatalf("ps after chat unload: %s", body)
	}
}

// TestOllamaThinkingAndTools: thinking in message.thinking, tool calls with
// object arguments.
func TestOllamaThinkingAndTools(t *testing.T) {
	ts, _, _ := start(t, Config{Loader: fakeLoader(&fake{script: scripted})})
	req := `{"model":"tiny","think":true,"messages":[{"role":"user","content":"Weather?"}],
	 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]%s}`
	code, _, body := post(t, ts.URL+"/api/chat", strings.Replace(req, "%s", `,"stream":false`, 1))
	want := `"message":{"role":"assistant","content":"Checking.","thinking":"Let me think.","tool_calls":[{"function":{"index":0,"name":"get_weather","arguments":{"city":"Paris"}}},{"function":{"index":1,"name":"get_time","arguments":{"tz":"CET"}}}]}`
	if code != 200 || !strings.Contains(string(body), want) {
		t.Fatalf("status %d: %s\nwant %s", code, body, want)
	}
	code, _, body = post(t, ts.URL+"/api/chat", strings.Replace(req, "%s", "", 1))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var content, thinking string
	calls := 0
	for _, l := range ndjson(t, body) {
		m := l["message"].(map[string]any)
		content += m["content"].(string)
		if th, ok := m["thinking"]; ok {
			thinking += th.(string)
		}
		if tc, ok := m["tool_calls"]; ok {
			calls += len(tc.([]any))
		}
	}
	if content != "Checking." || thinking != "Let me think." || calls != 2 {
		t.Fatalf("streamed content %q, thinking %q, %d calls", content, thinking, calls)
	}
	code, _, body = post(t, ts.URL+"/api/generate", `{"model":"tiny","prompt":"Hi","think":"high","stream":false}`)
	if code != 200 || !strings.Contains(string(body), `"response":"Checking.","thinking":"Let me think."`) {
		t.Fatalf("generate: status %d: %s", code, body)
	}
}

func TestOllamaListing(t *testing.T) {
	ts, _, _ := start(t, Config{Version: "1.2.3"})
	code, body := get(t, ts.URL+"/api/tags")
	if code != 200 || !strings.Contains(string(body), `"name":"tiny"`) || !strings.Contains(string(body), `"family":"gemma4"`) ||
		!strings.Contains(string(body), `"quantization_level":"F16"`) {
		t.Fatalf("tags: %d %s", code, body)
	}
	code, _, body = post(t, ts.URL+"/api/show", `{"model":"tiny"}`)
	if code != 200 || !strings.Contains(string(body), `"capabilities":["completion","tools","thinking"]`) ||
		!strings.Contains(string(body), `"template":"`) || !strings.Contains(string(body), `"gemma4.context_length":`) {
		t.Fatalf("show: %d %s", code, body)
	}
	if code, body := get(t, ts.URL+"/api/version"); code != 200 || string(body) != "{\"version\":\"1.2.3\"}\n" {
		t.Fatalf("version: %d %s", code, body)
	}
	if code, body := get(t, ts.URL+"/api/ps"); code != 200 || string(body) != "{\"models\":[]}\n" {
		t.Fatalf("ps before any load: %d %s", code, body)
	}
	if code, body := get(t, ts.URL+"/health"); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("health: %d %s", code, body)
	}
}

// TestKeepAliveUnloads: an idle model is unloaded after the keep-alive.
func TestKeepAliveUnloads(t *testing.T) {
	ts, _, logs := start(t, Config{KeepAlive: 50 * time.Millisecond})
	if code, _, body := post(t, ts.URL+"/api/generate", `{"model":"tiny"}`); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := get(t, ts.URL+"/api/ps")
		if string(body) == "{\"models\":[]}\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still loaded after the keep-alive: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "unloaded after keep-alive") {
		t.Fatalf("log: %s", logs)
	}
	// It loads again on use.
	if code, _, body := post(t, ts.URL+"/api/chat", `{"model":"tiny","stream":false,"keep_alive":-1,"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":2}}`); code != 200 {
		t.Fatalf("after unload: %d %s", code, body)
	}
	if _, body := get(t, ts.URL+"/api/ps"); !strings.Contains(string(body), `"expires_at":""`) {
		t.Fatalf("keep_alive -1: %s", body)
	}
}
