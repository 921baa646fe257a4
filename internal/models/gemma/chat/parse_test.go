package chat

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseGemma4(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     Parsed
		err      string
	}{
		{name: "plain", in: "The answer is 4.<turn|>", want: Parsed{Content: "The answer is 4."}},
		{name: "after-turn-ignored", in: "A<turn|>\n<|turn>user\nB", want: Parsed{Content: "A"}},
		{name: "thinking", in: "<|channel>thought\nLet me add.\n2+2=4\n<channel|>4<turn|>",
			want: Parsed{Thinking: "Let me add.\n2+2=4", Content: "4"}},
		{name: "empty-thought", in: EmptyThought + "Hi", want: Parsed{Content: "Hi"}},
		{name: "thinking-cut-off", in: "<|channel>thought\nhmm", want: Parsed{Thinking: "hmm"}},
		{name: "thinking-no-name", in: "<|channel>plan<channel|>x", want: Parsed{Thinking: "plan", Content: "x"}},
		{name: "role-line", in: "<|turn>model\nhello<turn|>", want: Parsed{Content: "hello"}},
		{name: "tool-call",
			in: `<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3,metric:true,opts:{a:[1,<|"|>x, y<|"|>]}}<tool_call|><|tool_response>`,
			want: Parsed{ToolCalls: []ToolCall{{Name: "get_weather",
				Arguments: json.RawMessage(`{"city":"Paris","days":3,"metric":true,"opts":{"a":[1,"x, y"]}}`)}}}},
		{name: "two-calls-and-text",
			in: `Checking.<|tool_call>call:f{}<tool_call|><|tool_call>call:g{q:<|"|>a <tool_call|> b<|"|>}<tool_call|>`,
			want: Parsed{Content: "Checking.", ToolCalls: []ToolCall{
				{Name: "f", Arguments: json.RawMessage(`{}`)},
				{Name: "g", Arguments: json.RawMessage(`{"q":"a <tool_call|> b"}`)}}}},
		{name: "stray-markers-dropped", in: `a<tool|>b<|"|>c<channel|>d<|image|>e`, want: Parsed{Content: "abcde"}},
		{name: "no-join-across-dropped", in: "x<|chan<tool|>nel>y<channel|>z", want: Parsed{Content: "x<|chanz", Thinking: "y"}},
		{name: "malformed-call", in: `<|tool_call>call:f{a:}<tool_call|>ok`, want: Parsed{Content: "ok"}, err: "missing value"},
		{name: "unclosed-call", in: `<|tool_call>call:f{a:1}<turn|>`, want: Parsed{}, err: "not closed"},
		{name: "cut-off-call", in: `<|tool_call>call:f{a:<|"|>x`, want: Parsed{}, err: "output ended"},
		{name: "json-string-arguments", in: `<|tool_call>call:f{{"x": [1, "<y>"]}}<tool_call|>`,
			want: Parsed{ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`{"x":[1,"<y>"]}`)}}}},
		{name: "lenient-values", in: `<|tool_call>call:f{"k": "v\n", n : None, b:False, w: word, e:1e-05}<tool_call|>`,
			want: Parsed{ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`{"k":"v\n","n":null,"b":false,"w":"word","e":1e-05}`)}}}},
	} {
		got, err := ParseGemma4(c.in)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.name, got, c.want)
		}
		checkStreaming(t, "gemma4", c.in, got)
	}
}

func TestParseGemma3(t *testing.T) {
	got, err := ParseGemma3("<start_of_turn>model\nSure: <start_of_image>x<end_of_turn>\nmore")
	if err != nil || got.Content != "Sure: x" || got.Thinking != "" || got.ToolCalls != nil {
		t.Errorf("got %#v, %v", got, err)
	}
}

// checkStreaming feeds in one byte at a time and in random chunks, and
// requires the same result as the whole-string parse.
func checkStreaming(t *testing.T, family, in string, want Parsed) {
	t.Helper()
	rng := rand.New(rand.NewSource(int64(len(in))))
	for mode := 0; mode < 3; mode++ {
		p, _ := NewParser(family)
		var got Parsed
		var content, thinking strings.Builder
		collect := func(evs []Event) {
			for _, ev := range evs {
				switch ev.Kind {
				case ContentEvent:
					content.WriteString(ev.Text)
				case ThinkingEvent:
					thinking.WriteString(ev.Text)
				case ToolCallEvent:
					got.ToolCalls = append(got.ToolCalls, ev.Call)
				}
				if ev.Kind != ToolCallEvent && ev.Text == "" {
					t.Errorf("%q: empty text event", in)
				}
			}
		}
		for rest := in; rest != ""; {
			n := 1
			if mode == 1 {
				n = 1 + rng.Intn(7)
			} else if mode == 2 {
				n = len(rest)
			}
			n = min(n, len(rest))
			collect(p.Feed(rest[:n]))
			rest = rest[n:]
		}
		collect(p.Finish())
		got.Content, got.Thinking = content.String(), thinking.String()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s stream mode %d of %q:\n got %#v\nwant %#v", family, mode, in, got, want)
		}
	}
}

// TestRoundTrip renders assistant turns with thinking and tool calls in
// Gemma 4's syntax and parses them back to the same structure.
func TestRoundTrip(t *testing.T) {
	calls := []ToolCall{
		{ID: "c1", Name: "get_weather", Arguments: json.RawMessage(`{"city":"São Paulo","unit":"celsius"}`)},
		{ID: "c2", Name: "search", Arguments: json.RawMessage(
			`{"query":"a, b: {c} [d]","limit":10,"ratio":0.25,"exact":false,"tags":["x","y z"],"filter":{"Field":"n","min":-3,"nested":{"ok":true,"list":[[1],[]]}},"none":{}}`)},
		{ID: "c3", Name: "noargs"},
	}
	for _, content := range []string{"", "Let me look that up."} {
		req := Request{Messages: []Message{
			{Role: "user", Content: Text("Weather and docs?")},
			{Role: "assistant", Reasoning: "Need two tools.\nThen answer.", Content: Text(content), ToolCalls: calls},
		}}
		out, err := RenderGemma4(req)
		if err != nil {
			t.Fatal(err)
		}
		turn := out[strings.LastIndex(out, TurnStart+"model\n"):]
		got, err := ParseGemma4(turn)
		if err != nil {
			t.Fatalf("parse %q: %v", turn, err)
		}
		if got.Thinking != "Need two tools.\nThen answer." || got.Content != content || len(got.ToolCalls) != len(calls) {
			t.Fatalf("round trip of %q: got %#v", turn, got)
		}
		for i, c := range got.ToolCalls {
			want := string(calls[i].Arguments)
			if want == "" {
				want = "{}"
			}
			if c.Name != calls[i].Name || !sameJSON(t, c.Arguments, json.RawMessage(want)) {
				t.Errorf("call %d: got %s %s, want %s %s", i, c.Name, c.Arguments, calls[i].Name, want)
			}
		}
		checkStreaming(t, "gemma4", turn, got)
	}
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestMarkersPrefixFree(t *testing.T) {
	for _, set := range [][]string{append(Gemma4Markers, thinkClose), Gemma3Markers} {
		for _, a := range set {
			if a[0] != '<' && a[0] != '\n' {
				t.Errorf("%q starts with neither '<' nor newline (partialFrom relies on it)", a)
			}
			if len(a) > maxMarkerLen {
				t.Errorf("%q longer than maxMarkerLen", a)
			}
			for _, b := range set {
				if a != b && strings.HasPrefix(b, a) {
					t.Errorf("%q is a prefix of %q", a, b)
				}
			}
		}
	}
}

// FuzzParseGemma4 checks that the parser never panics, that answer and
// thinking never contain a marker, and that streaming in chunks agrees with
// the whole-string parse.
func FuzzParseGemma4(f *testing.F) {
	for _, s := range []string{
		"<|channel>thought\nx\n<channel|>y<turn|>",
		`<|tool_call>call:f{a:<|"|>b<|"|>,c:[1,{d:true}]}<tool_call|><|tool_response>`,
		"x<|chan<tool|>nel>y", "<|turn>model\n" + EmptyThought + "hi", "<|<|<<tool_call|", "\n\n<channel|>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, _ := ParseGemma4(s)
		for _, m := range Gemma4Markers {
			if strings.Contains(got.Content, m) || strings.Contains(got.Thinking, m) {
				t.Fatalf("%q: marker %q in %#v", s, m, got)
			}
		}
		for _, c := range got.ToolCalls {
			if !json.Valid(c.Arguments) {
				t.Fatalf("%q: invalid JSON arguments %s", s, c.Arguments)
			}
		}
		checkStreaming(t, "gemma4", s, got)
	})
}

// TestRoundTripRandom renders random tool-call arguments and parses them back.
// String values may hold anything but <|"|> (the syntax cannot carry it);
// keys (written bare) and the reasoning hold no marker and keys no ':'.
func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	pieces := []string{"a", "Z", " ", "{", "}", "[", "]", ",", ":", `"`, "\\", "\n", "<", ">", "|", "é", "0", "true", "<tool_call|>", "<turn|>", "<|channel>", "<channel|>"}
	plain := pieces[:len(pieces)-4] // no markers
	gen := func(from []string) string {
		var b strings.Builder
		for n := rng.Intn(5); n > 0; n-- {
			b.WriteString(from[rng.Intn(len(from))])
		}
		return b.String()
	}
	str := func() string { return gen(pieces) }
	key := func() string { return "k" + strings.ReplaceAll(gen(plain), ":", "") + "k" }
	var val func(d int) any
	val = func(d int) any {
		switch r := rng.Intn(10); {
		case r < 3 || d > 3:
			return []any{str(), float64(rng.Intn(2000) - 1000), rng.NormFloat64() * 1e6, rng.Intn(2) == 0, nil, 1e-7}[rng.Intn(6)]
		case r < 6:
			a := []any{}
			for n := rng.Intn(4); n > 0; n-- {
				a = append(a, val(d+1))
			}
			return a
		default:
			o := map[string]any{}
			for n := rng.Intn(4); n > 0; n-- {
				o[key()] = val(d + 1)
			}
			return o
		}
	}
	for i := 0; i < 300; i++ {
		args := map[string]any{}
		for n := rng.Intn(5); n > 0; n-- {
			args[key()] = val(0)
		}
		raw, _ := json.Marshal(args)
		req := Request{Messages: []Message{{Role: "user", Content: Text("go")},
			{Role: "assistant", Reasoning: "r" + gen(plain), ToolCalls: []ToolCall{{Name: "fn_" + strconv.Itoa(i), Arguments: raw}}}}}
		out, err := RenderGemma4(req)
		if err != nil {
			t.Fatal(err)
		}
		turn := out[strings.LastIndex(out, TurnStart+"model\n"):]
		got, err := ParseGemma4(turn)
		if err != nil || len(got.ToolCalls) != 1 || got.ToolCalls[0].Name != "fn_"+strconv.Itoa(i) ||
			!sameJSON(t, got.ToolCalls[0].Arguments, raw) || got.Thinking != req.Messages[1].Reasoning {
			t.Fatalf("round trip of %s via %q: %#v, %v", raw, turn, got, err)
		}
		checkStreaming(t, "gemma4", turn, got)
	}
}
