package infotext

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: any text parses without panicking; formatting the result and
// parsing again is stable (a fixed point after one round).
func FuzzParse(f *testing.F) {
	f.Add("cat\nNegative prompt: dog\nSteps: 20, Seed: 1, Lora hashes: \"a: 1, b: 2\"")
	f.Add("p\nA1: {\"x\":[1,\"]\"]}, B2: \"\\\"\", C3: 3")
	f.Add("  \n\nNegative prompt:\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		for _, kv := range p.Settings {
			if len(kv.Key) < 2 { // a quoted "" may unquote to an empty value, as in A1111
				t.Fatalf("%q: short key in %v", s, p.Settings)
			}
		}
		// Stability needs values Format writes back unchanged in meaning;
		// A1111's format is ambiguous for e.g. prompts whose last line looks
		// like settings, so only check settings-free texts' prompt survives.
		if len(p.Settings) == 0 && p.Negative == "" && !strings.Contains(p.Prompt, "\n") {
			q, err := Parse(Format(p))
			if err != nil || !reflect.DeepEqual(q, p) {
				t.Fatalf("%q: %+v → %q → %+v", s, p, Format(p), q)
			}
		}
	})
}

// FuzzRoundTrip: settings with any value survive Format and Parse.
func FuzzRoundTrip(f *testing.F) {
	f.Add("a cat", "blurry", "a: 1, b: 2", "x\ny\"z")
	f.Fuzz(func(t *testing.T, prompt, neg, v1, v2 string) {
		p := Params{Prompt: prompt, Negative: neg, Settings: []KV{{"Steps", "20"}, {"First", v1}, {"Second", v2}, {"Seed", "1"}}}
		if !simple(prompt) || !simple(neg) || !value(v1) || !value(v2) {
			return
		}
		q, err := Parse(Format(p))
		if err != nil || !reflect.DeepEqual(q, p) {
			t.Fatalf("%+v → %q → %+v %v", p, Format(p), q, err)
		}
	})
}

// simple: one line, no surrounding space, not starting the negative marker.
func simple(s string) bool {
	return s != "" && !strings.ContainsAny(s, "\n\r\x1c\x1d\x1e\x1f\x85\u2028\u2029") && strings.TrimFunc(s, isPySpace) == s &&
		!strings.HasPrefix(s, negPrefix) && strings.ToValidUTF8(s, "") == s
}

// value: what a setting value can be for Parse to give it back: non-empty,
// valid UTF-8; unquoted ones (no , : or newline) must not start with a quote
// or bracket or carry surrounding space.
func value(v string) bool {
	if v == "" || strings.ToValidUTF8(v, "") != v {
		return false
	}
	if Quote(v) != v {
		return true
	}
	return strings.TrimFunc(v, isPySpace) == v && !strings.ContainsAny(v[:1], "\"{[") && !strings.ContainsAny(v, "\u0085\u2028\u2029")
}
