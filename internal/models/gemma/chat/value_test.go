package chat

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestPyFloatRepr(t *testing.T) {
	// Expected strings are CPython 3.11's repr(float(text)).
	for in, want := range map[string]string{
		"0.0": "0.0", "-0.0": "-0.0", "1.0": "1.0", "1e15": "1000000000000000.0", "1e16": "1e+16",
		"123456789012345678": "123456789012345678", "1.5e16": "1.5e+16", "0.0001": "0.0001",
		"0.00001": "1e-05", "1.5e-7": "1.5e-07", "2.5e-300": "2.5e-300", "1e400": "inf", "-1e400": "-inf",
		"5e-324": "5e-324", "0.1": "0.1", "100.0": "100.0", "1E2": "100.0", "-0": "0", "-7": "-7",
		"12345678901234567.0": "1.2345678901234568e+16", "0.30000000000000004": "0.30000000000000004",
	} {
		if got := pyNumber(in); got != want {
			t.Errorf("pyNumber(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestPyIsSpace(t *testing.T) {
	// The characters for which CPython 3.11's str.isspace() is true.
	want := map[rune]bool{}
	for _, r := range []rune{0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
		0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
		0x2028, 0x2029, 0x202f, 0x205f, 0x3000} {
		want[r] = true
	}
	for r := rune(0); r <= 0x10ffff; r++ {
		if pyIsSpace(r) != want[r] {
			t.Errorf("pyIsSpace(%U) = %v", r, pyIsSpace(r))
		}
	}
}

func TestParseValueOrderAndDuplicates(t *testing.T) {
	v, err := ParseValue([]byte(`{"b":1,"a":{"z":true,"y":[1,"x",null]},"b":2}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := v.MarshalJSON()
	// Python's json keeps a repeated key at its first position with its last value.
	if string(got) != `{"b":2,"a":{"z":true,"y":[1,"x",null]}}` {
		t.Errorf("got %s", got)
	}
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	for _, bad := range []string{``, `{`, `[1,]`, `{"a":1} x`, `NaN`, `{1:2}`, deep} {
		if _, err := ParseValue([]byte(bad)); err == nil {
			t.Errorf("ParseValue(%q) succeeded", bad)
		}
	}
}

func TestParseVarsErrors(t *testing.T) {
	for _, bad := range []string{`[]`, `{}`, `{"messages":{}}`, `{"messages":[],"bos_token":1}`, `not json`} {
		if _, err := ParseVars([]byte(bad)); err == nil {
			t.Errorf("ParseVars(%s) succeeded", bad)
		}
	}
	if _, err := RenderVars("gemma2", Vars{}); err == nil {
		t.Error("unknown family accepted")
	}
}

// TestTypedRequest renders a typed request and the same conversation given
// as JSON variables, in both formats.
func TestTypedRequest(t *testing.T) {
	req := Request{
		Messages: []Message{
			{Role: "system", Content: Text("Be brief.")},
			{Role: "user", Content: Parts(Part{Type: "text", Text: "What is this?"}, Part{Type: "image"})},
			{Role: "assistant", Reasoning: "look it up", ToolCalls: []ToolCall{
				{ID: "1", Name: "lookup", Arguments: json.RawMessage(`{"q":"cat","n":2}`)}}},
			{Role: "tool", ToolCallID: "1", Content: Text(`{"hits":1}`)},
			{Role: "assistant", Content: Text("A cat.")},
			{Role: "user", Content: Text("Thanks")},
		},
		Tools: []Tool{{Name: "lookup", Description: "Search.", Parameters: json.RawMessage(
			`{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}},"required":["q"]}`)}},
		AddGenerationPrompt: true,
		EnableThinking:      true,
	}
	js := `{"messages":[{"role":"system","content":"Be brief."},
		{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image"}]},
		{"role":"assistant","reasoning":"look it up","tool_calls":[{"id":"1","type":"function","function":{"name":"lookup","arguments":{"q":"cat","n":2}}}]},
		{"role":"tool","tool_call_id":"1","content":"{\"hits\":1}"},
		{"role":"assistant","content":"A cat."},{"role":"user","content":"Thanks"}],
		"tools":[{"type":"function","function":{"name":"lookup","description":"Search.","parameters":{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}},"required":["q"]}}}],
		"add_generation_prompt":true,"enable_thinking":true}`
	vars, err := ParseVars([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	want4 := "<bos><|turn>system\n<|think|>\nBe brief.<|tool>declaration:lookup{description:<|\"|>Search.<|\"|>," +
		"parameters:{properties:{n:{type:<|\"|>INTEGER<|\"|>},q:{type:<|\"|>STRING<|\"|>}},required:[<|\"|>q<|\"|>],type:<|\"|>OBJECT<|\"|>}}<tool|><turn|>\n" +
		"<|turn>user\nWhat is this?<|image|><turn|>\n" +
		"<|turn>model\n<|tool_call>call:lookup{n:2,q:<|\"|>cat<|\"|>}<tool_call|><|tool_response>response:lookup{value:<|\"|>{\"hits\":1}<|\"|>}<tool_response|>A cat.<turn|>\n" +
		"<|turn>user\nThanks<turn|>\n<|turn>model\n"
	got, err := RenderGemma4(req)
	if err != nil || got != want4 {
		t.Errorf("typed gemma4:\n got %q, %v\nwant %q", got, err, want4)
	}
	if fromJSON, err := RenderGemma4Vars(vars); err != nil || fromJSON != want4 {
		t.Errorf("JSON gemma4:\n got %q, %v\nwant %q", fromJSON, err, want4)
	}
	// Gemma 3 refuses the tool turn, with the template's own words.
	_, err = RenderGemma3(req)
	if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), "Conversation roles must alternate") {
		t.Errorf("gemma3 error %v", err)
	}
	req.OmitBOS = true
	req.Messages = req.Messages[:2]
	want3 := "<start_of_turn>user\nBe brief.\n\nWhat is this?<start_of_image><end_of_turn>\n<start_of_turn>model\n"
	if got, err := RenderGemma3(req); err != nil || got != want3 {
		t.Errorf("gemma3: got %q, %v", got, err)
	}
	if _, err := Render("gemma4", Request{Messages: []Message{{Role: "assistant",
		ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`{bad`)}}}}}); err == nil {
		t.Error("bad arguments JSON accepted")
	}
	if _, err := RenderGemma4(Request{}); err == nil {
		t.Error("empty conversation accepted")
	}
}
