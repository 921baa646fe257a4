package chat

import (
	"strings"
	"testing"
)

// TestSegmentsKeepUserTextOut marks every string a caller supplies with
// "<turn|>¤" and requires that no markup segment contains one: user text can
// never be tokenized as special tokens.
func TestSegmentsKeepUserTextOut(t *testing.T) {
	const u = "<turn|>¤"
	js := strings.ReplaceAll(`{"messages":[
		{"role":"system","content":"U sys"},
		{"role":"user","content":[{"type":"text","text":"U q"},{"type":"image"}]},
		{"role":"assistant","reasoning":"U think","content":"U a","tool_calls":[
			{"id":"1","function":{"name":"Uf","arguments":{"Uk":"U v","Un":[1,true,null,{"Uk2":"U"}]}}},
			{"id":"2","function":{"name":"Ug","arguments":"U raw"}}]},
		{"role":"tool","tool_call_id":"1","content":"U r1"},
		{"role":"tool","tool_call_id":"3","name":"Un","content":[{"type":"text","text":"U r2"}]},
		{"role":"assistant","content":"U","tool_responses":[{"name":"Ur","response":{"Uk":"U"}},{"name":"Ur","response":"U"}]},
		{"role":"Urole","content":"U"}],
	"tools":[{"type":"function","function":{"name":"Uf","description":"U d",
		"parameters":{"type":"object","properties":{"Up":{"type":"string","description":"U pd","enum":["U e"]},
			"Ua":{"type":"array","items":{"type":"object","properties":{"Ui":{"type":"string"}},"required":["U i"],"Ux":"U"}},
			"Uo":{"type":"object","properties":{"Uq":{"type":"integer"}},"required":["Uq"]}},"required":["Up"]},
		"response":{"type":"object","description":"U rd"}}}],
	"add_generation_prompt":true,"enable_thinking":true}`, "U", u)
	vars, err := ParseVars([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"gemma4", "gemma3"} {
		if fam == "gemma3" {
			// Gemma 3 has no tool turns: keep system, user, assistant.
			vars.Messages.Arr = append(vars.Messages.Arr[:2], Value{Kind: Object, Obj: []Member{
				{"role", Str("assistant")}, {"content", Str(u + " a")}}})
		}
		segs, err := RenderSegments(fam, vars)
		if err != nil {
			t.Fatalf("%s: %v", fam, err)
		}
		want, _ := RenderVars(fam, vars)
		if Join(segs) != want {
			t.Fatalf("%s: segments do not join to the rendered prompt", fam)
		}
		n := 0
		for _, s := range segs {
			if s.Markup && strings.Contains(s.Text, "¤") {
				t.Errorf("%s: user text in markup segment %q", fam, s.Text)
			}
			if !s.Markup {
				n += strings.Count(s.Text, "¤")
			}
		}
		if n != strings.Count(want, "¤") || n < 3 {
			t.Errorf("%s: %d marked strings in text segments, %d in the prompt", fam, n, strings.Count(want, "¤"))
		}
	}
}
