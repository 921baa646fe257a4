package ollama

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

func TestDecodeChatOptions(t *testing.T) {
	r, err := DecodeChat([]byte(`{"model":"m","think":"medium","keep_alive":"2m","stream":false,
	 "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","content":"1","tool_name":"f"}],
	 "options":{"temperature":0.3,"top_k":5,"top_p":0.8,"min_p":0.02,"seed":9,"num_predict":-1,"stop":["x"],"repeat_penalty":1.2,"repeat_last_n":32,"num_ctx":100,"typical_p":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := r.Chat.Sampling
	if r.Stream || !r.Chat.Think || r.KeepAlive == nil || *r.KeepAlive != 2*time.Minute || r.NumCtx != 100 || r.Chat.MaxTokens != 0 {
		t.Fatalf("%+v", r)
	}
	if p.Temperature != 0.3 || p.TopK != 5 || p.TopP != 0.8 || p.MinP != 0.02 || p.Seed != 9 || p.RepeatPenalty != 1.2 || p.RepeatLastN != 32 || r.Chat.Stop[0] != "x" {
		t.Fatalf("%+v", p)
	}
	m := r.Chat.Messages
	if len(m) != 3 || m[1].ToolCalls[0].Name != "f" || string(m[1].ToolCalls[0].Arguments) != `{"a":1}` || m[2].Name != "f" {
		t.Fatalf("%+v", m)
	}
}

func TestKeepAlive(t *testing.T) {
	for in, want := range map[string]time.Duration{`300`: 5 * time.Minute, `"10s"`: 10 * time.Second, `-1`: -time.Second, `"-1"`: -time.Second, `0`: 0, `"1h"`: time.Hour} {
		got, err := KeepAlive(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("keep_alive %s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := KeepAlive(json.RawMessage(`"soon"`)); err == nil || canon.As(err).Param != "keep_alive" {
		t.Errorf("bad keep_alive: %v", err)
	}
}

func TestDecodeGenerate(t *testing.T) {
	r, err := DecodeGenerate([]byte(`{"model":"m","prompt":"p","raw":true,"options":{"num_predict":7}}`))
	if err != nil || r.Completion == nil || r.Completion.Prompt != "p" || r.Completion.MaxTokens != 7 || !r.Stream {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = DecodeGenerate([]byte(`{"model":"m","prompt":"p","system":"s"}`))
	if err != nil || r.Chat == nil || r.Chat.System != "s" || len(r.Chat.Messages) != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = DecodeGenerate([]byte(`{"model":"m","keep_alive":0}`))
	if err != nil || !r.LoadOnly || *r.KeepAlive != 0 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestFinalStreamedCarriesNoText(t *testing.T) {
	e := &Encoder{Model: "m", Chat: true, Start: time.Unix(0, 0)}
	res := engine.Result{Text: "hello", Thinking: "hm", Finish: engine.FinishLength, Usage: engine.Usage{PromptTokens: 4, GeneratedTokens: 2}}
	f := e.Final(res, true, time.Unix(1, 0))
	if f.Message.Content != "" || f.Message.Thinking != "" || !f.Done || f.DoneReason != "length" || f.EvalCount != 2 || f.TotalDuration != int64(time.Second) {
		t.Fatalf("%+v", f)
	}
	f = e.Final(res, false, time.Unix(1, 0))
	if f.Message.Content != "hello" || f.Message.Thinking != "hm" {
		t.Fatalf("%+v", f)
	}
}

func TestDecodeFormat(t *testing.T) {
	const msgs = `{"model":"m","messages":[{"role":"user","content":"x"}],`
	for _, c := range []struct {
		body string
		kind canon.FormatKind
		text string
	}{
		{msgs + `"format":""}`, 0, ""},
		{msgs + `"format":"json"}`, canon.FormatJSON, ""},
		{msgs + `"format":{"type":"object"}}`, canon.FormatSchema, `{"type":"object"}`},
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
		if f == nil || f.Kind != c.kind || f.Text != c.text || f.Param != "format" {
			t.Errorf("%s: format %+v", c.body, f)
		}
	}
	for _, body := range []string{msgs + `"format":"yaml"}`, msgs + `"format":[1]}`} {
		if _, err := DecodeChat([]byte(body)); err == nil || canon.As(err).Param != "format" {
			t.Errorf("%s: %v, want an error naming format", body, err)
		}
	}
	r, err := DecodeGenerate([]byte(`{"model":"m","prompt":"x","format":"json"}`))
	if err != nil || r.Format == nil || r.Format.Kind != canon.FormatJSON {
		t.Fatalf("generate: %+v %v", r, err)
	}
}

// TestDecodeImages: base64 images go before the message's text, in order
// over the messages, into the engine request; a raw generate keeps its
// prompt (<__media__> marks the places).
func TestDecodeImages(t *testing.T) {
	r, err := DecodeChat([]byte(`{"model":"m","messages":[{"role":"user","content":"a","images":["R0lGODlh"]},
		{"role":"assistant","content":"b"},{"role":"user","content":"c","images":["aGk=","data:image/png;base64,aGk="]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if im := r.Chat.Images; len(im) != 3 || string(im[0].Data) != "GIF89a" || string(im[2].Data) != "hi" || r.ImagesParam != "messages" {
		t.Fatalf("%+v", r.Chat.Images)
	}
	P := engine.ImagePlace
	if c := r.Chat.Messages; !reflect.DeepEqual(c[0].Content, chat.Text(P+"a")) || !reflect.DeepEqual(c[2].Content, chat.Text(P+P+"c")) {
		t.Errorf("contents %+v", c)
	}
	if im := r.Chat.Images; im[0].Tokens != 0 || im[0].Param != "" {
		t.Errorf("a budget without options.image_tokens: %+v", im[0])
	}
	r, err = DecodeChat([]byte(`{"model":"m","options":{"image_tokens":140},"messages":[{"role":"user","content":"a","images":["aGk=","aGk="]}]}`))
	if err != nil || r.Chat.Images[1].Tokens != 140 || r.Chat.Images[1].Param != "options.image_tokens" {
		t.Fatalf("options.image_tokens: %v %+v", err, r)
	}
	g, err := DecodeGenerate([]byte(`{"model":"m","prompt":"what?","options":{"image_tokens":70},"images":["aGk="]}`))
	if err != nil || g.Chat.Images[0].Tokens != 70 {
		t.Fatalf("options.image_tokens in generate: %v %+v", err, g)
	}
	g, err = DecodeGenerate([]byte(`{"model":"m","prompt":"x <__media__> y","raw":true,"images":["aGk="]}`))
	if err != nil || g.Completion == nil || len(g.Completion.Images) != 1 || g.Completion.Prompt != "x <__media__> y" || g.ImagesParam != "images" {
		t.Fatalf("%v %+v", err, g)
	}
	g, err = DecodeGenerate([]byte(`{"model":"m","prompt":"what?","images":["aGk="]}`))
	if err != nil || g.Chat == nil || len(g.Chat.Images) != 1 {
		t.Fatalf("%v %+v", err, g)
	}
	for body, param := range map[string]string{
		`{"model":"m","messages":[{"role":"user","content":"a","images":["***"]}]}`:    "messages[0].images[0]",
		`{"model":"m","messages":[{"role":"system","content":"a","images":["aGk="]}]}`: "messages[0].images",
		`{"model":"m","prompt":"","images":["aGk="]}`:                                  "prompt",
		`{"model":"m","prompt":"x","images":["aGk=","?"]}`:                             "images[1]",
		`{"model":"m","prompt":"x","options":{"image_tokens":0},"images":["aGk="]}`:    "options.image_tokens",
		`{"model":"m","prompt":"x","options":{"image_tokens":1.5},"images":["aGk="]}`:  "options.image_tokens",
	} {
		var err error
		if strings.Contains(body, `"messages"`) {
			_, err = DecodeChat([]byte(body))
		} else {
			_, err = DecodeGenerate([]byte(body))
		}
		if err == nil || canon.As(err).Param != param {
			t.Errorf("%s: %v, want an error about %s", body, err, param)
		}
	}
}
