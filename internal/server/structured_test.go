package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"mica/internal/server/canon"
)

// personSchema is bounded (every string, number and array has a limit), so
// that a random-weight model must finish it within max_tokens.
const personSchema = `{"type":"object","properties":{
 "name":{"type":"string","minLength":1,"maxLength":8},
 "age":{"type":"integer","minimum":0,"maximum":120},
 "tags":{"type":"array","items":{"enum":["red","green","blue"]},"maxItems":3},
 "ok":{"type":"boolean"}},
 "required":["name","age","ok"],"additionalProperties":false}`

// checkPerson reports why text is not a valid instance of personSchema.
func checkPerson(text string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return "not a JSON object: " + err.Error()
	}
	for k := range m {
		if !slices.Contains([]string{"name", "age", "tags", "ok"}, k) {
			return "unexpected property " + k
		}
	}
	name, ok := m["name"].(string)
	if n := utf8.RuneCountInString(name); !ok || n < 1 || n > 8 {
		return "name is not a string of 1 to 8 characters"
	}
	age, ok := m["age"].(float64)
	if !ok || age != float64(int(age)) || age < 0 || age > 120 {
		return "age is not an integer in [0, 120]"
	}
	if _, ok := m["ok"].(bool); !ok {
		return "ok is not a boolean"
	}
	if v, has := m["tags"]; has {
		tags, ok := v.([]any)
		if !ok || len(tags) > 3 {
			return "tags is not an array of at most 3 items"
		}
		for _, x := range tags {
			if s, _ := x.(string); s != "red" && s != "green" && s != "blue" {
				return "a tag is not red, green or blue"
			}
		}
	}
	return ""
}

// TestOpenAIJSONSchema: response_format json_schema on the random-weight
// model, streamed and not, at a high temperature: every answer is a valid
// instance and ends with finish_reason "stop".
func TestOpenAIJSONSchema(t *testing.T) {
	ts, _, _ := start(t, Config{})
	for seed := 1; seed <= 3; seed++ {
		for _, stream := range []bool{false, true} {
			body := fmt.Sprintf(`{"model":"tiny","messages":[{"role":"user","content":"A person, please."}],
			 "temperature":1.5,"top_p":1,"seed":%d,"max_tokens":300,"stream":%v,
			 "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":%s}}}`, seed, stream, personSchema)
			code, _, b := post(t, ts.URL+"/v1/chat/completions", body)
			if code != 200 {
				t.Fatalf("status %d: %s", code, b)
			}
			content, finish := "", ""
			if stream {
				for _, ev := range sseEvents(t, b) {
					if ev == "[DONE]" {
						continue
					}
					var c chatCompletion
					decodeJSON(t, []byte(ev), &c)
					for _, ch := range c.Choices {
						content += ch.Delta.Content
						if ch.FinishReason != nil {
							finish = *ch.FinishReason
						}
					}
				}
			} else {
				var c chatCompletion
				decodeJSON(t, b, &c)
				if c.Choices[0].Message.Content != nil {
					content = *c.Choices[0].Message.Content
				}
				finish = *c.Choices[0].FinishReason
			}
			if finish != "stop" {
				t.Fatalf("seed %d stream %v: finish %q, content %q", seed, stream, finish, content)
			}
			if why := checkPerson(content); why != "" {
				t.Fatalf("seed %d stream %v: %q: %s", seed, stream, content, why)
			}
			t.Logf("seed %d stream %v: %s", seed, stream, content)
		}
	}
}

// TestOpenAIJSONObjectAndGrammar: json_object mode gives a JSON object
// prefix (a free object need not end within max_tokens), and a GBNF
// grammar on /v1/completions is followed exactly.
func TestOpenAIJSONObjectAndGrammar(t *testing.T) {
	ts, _, _ := start(t, Config{})
	code, _, b := post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"JSON"}],
	 "seed":3,"max_tokens":40,"response_format":{"type":"json_object"}}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	var c chatCompletion
	decodeJSON(t, b, &c)
	content := *c.Choices[0].Message.Content
	if !strings.HasPrefix(content, "{") {
		t.Fatalf("json_object answer %q does not start an object", content)
	}
	if *c.Choices[0].FinishReason == "stop" && !json.Valid([]byte(content)) {
		t.Fatalf("json_object answer %q stopped but is not JSON", content)
	}

	code, _, b = post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"Yes or no?","temperature":1.5,"seed":2,"max_tokens":20,
	 "grammar":"root ::= (\"yes\" | \"no\") \" \" [0-9]{1,3}"}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	decodeJSON(t, b, &c)
	text := c.Choices[0].Text
	var word string
	var n int
	if _, err := fmt.Sscanf(text, "%s %d", &word, &n); err != nil || (word != "yes" && word != "no") || *c.Choices[0].FinishReason != "stop" {
		t.Fatalf("grammar completion %q (finish %q)", text, *c.Choices[0].FinishReason)
	}
}

// TestOllamaFormat: format with a schema on /api/chat (streamed) and
// "json" on /api/generate.
func TestOllamaFormat(t *testing.T) {
	ts, _, _ := start(t, Config{})
	for seed := 1; seed <= 2; seed++ {
		body := fmt.Sprintf(`{"model":"tiny","messages":[{"role":"user","content":"A person"}],"format":%s,
		 "options":{"temperature":1.5,"top_k":0,"top_p":1,"seed":%d,"num_predict":300}}`, personSchema, seed)
		code, _, b := post(t, ts.URL+"/api/chat", body)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		lines := ndjson(t, b)
		content := ""
		for _, l := range lines {
			if m, ok := l["message"].(map[string]any); ok {
				content += m["content"].(string)
			}
		}
		if last := lines[len(lines)-1]; last["done_reason"] != "stop" {
			t.Fatalf("seed %d: final %v, content %q", seed, last, content)
		}
		if why := checkPerson(content); why != "" {
			t.Fatalf("seed %d: %q: %s", seed, content, why)
		}
	}
	code, _, b := post(t, ts.URL+"/api/generate", `{"model":"tiny","prompt":"JSON","format":"json","stream":false,
	 "options":{"seed":1,"num_predict":30}}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	var g struct {
		Response   string `json:"response"`
		DoneReason string `json:"done_reason"`
	}
	decodeJSON(t, b, &g)
	if !strings.HasPrefix(g.Response, "{") || g.DoneReason == "stop" && !json.Valid([]byte(g.Response)) {
		t.Fatalf("format json: %q (%s)", g.Response, g.DoneReason)
	}
}

// TestGrammarCache: a schema written with other spacing and key order is
// the same cache entry; the cache is bounded.
func TestGrammarCache(t *testing.T) {
	a := &canon.Format{Kind: canon.FormatSchema, Text: `{"type":"object","required":["a"], "properties":{"a":{"type":"integer"}}}`, Param: "format"}
	b := &canon.Format{Kind: canon.FormatSchema, Text: `{ "properties" : {"a":{"type":"integer"}}, "type":"object","required":["a"]}`, Param: "format"}
	ga, err := compileFormat(a)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := compileFormat(b)
	if err != nil {
		t.Fatal(err)
	}
	if ga != gb {
		t.Fatal("equal schemas were compiled twice")
	}
	j1, _ := compileFormat(&canon.Format{Kind: canon.FormatJSON})
	j2, _ := compileFormat(&canon.Format{Kind: canon.FormatJSON})
	if j1 == nil || j1 != j2 {
		t.Fatal("json mode was compiled twice")
	}
	c := newGrammarCache(2)
	for i := range 5 {
		c.put(fmt.Sprint(i), ga)
	}
	if c.len() != 2 || c.get("4") == nil || c.get("0") != nil {
		t.Fatalf("LRU holds %d entries", c.len())
	}
}

// TestOpenAIToolChoiceEnforced: tool_choice "required" and a named function
// make the random-weight model call a tool, streamed and not.
func TestOpenAIToolChoiceEnforced(t *testing.T) {
	ts, _, _ := start(t, Config{Context: 1024})
	const tools = `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
	 {"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]`
	for _, c := range []struct{ choice, want string }{
		{`"required"`, ""},
		{`{"type":"function","function":{"name":"lookup"}}`, "lookup"},
	} {
		for seed := 1; seed <= 2; seed++ {
			for _, stream := range []bool{false, true} {
				body := fmt.Sprintf(`{"model":"tiny","messages":[{"role":"user","content":"Weather in Paris?"}],%s,"tool_choice":%s,
				 "temperature":1,"seed":%d,"max_tokens":600,"stream":%v}`, tools, c.choice, seed, stream)
				code, _, b := post(t, ts.URL+"/v1/chat/completions", body)
				if code != 200 {
					t.Fatalf("status %d: %s", code, b)
				}
				var names, args []string
				finish := ""
				if stream {
					for _, ev := range sseEvents(t, b) {
						if ev == "[DONE]" {
							continue
						}
						var cc chatCompletion
						decodeJSON(t, []byte(ev), &cc)
						for _, ch := range cc.Choices {
							for _, tc := range ch.Delta.ToolCalls {
								if tc.Function.Name != "" {
									names = append(names, tc.Function.Name)
									args = append(args, "")
								}
								args[len(args)-1] += tc.Function.Arguments
							}
							if ch.FinishReason != nil {
								finish = *ch.FinishReason
							}
						}
					}
				} else {
					var cc chatCompletion
					decodeJSON(t, b, &cc)
					for _, tc := range cc.Choices[0].Message.ToolCalls {
						names = append(names, tc.Function.Name)
						args = append(args, tc.Function.Arguments)
					}
					finish = *cc.Choices[0].FinishReason
				}
				if len(names) != 1 || (c.want != "" && names[0] != c.want) || (names[0] != "get_weather" && names[0] != "lookup") || finish != "tool_calls" {
					t.Fatalf("%s seed %d stream %v: calls %v, finish %q: %s", c.choice, seed, stream, names, finish, b)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(args[0]), &m); err != nil {
					t.Fatalf("arguments %q: %v", args[0], err)
				}
			}
		}
	}
}
