package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// validate is a small independent validator for the keywords the walk
// tests use (no $ref, allOf or oneOf).
func validate(s any, v any) bool {
	if b, ok := s.(bool); ok {
		return b
	}
	m := s.(map[string]any)
	if t, ok := m["type"]; ok {
		okType := false
		for _, name := range typeList(t) {
			if jsonTypeIs(v, name) {
				okType = true
			}
		}
		if !okType {
			return false
		}
	}
	if e, ok := m["enum"]; ok {
		found := false
		for _, x := range e.([]any) {
			if bytes.Equal(canonical(x), canonical(v)) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	if c, ok := m["const"]; ok && !bytes.Equal(canonical(c), canonical(v)) {
		return false
	}
	if a, ok := m["anyOf"]; ok {
		any1 := false
		for _, sub := range a.([]any) {
			if validate(sub, v) {
				any1 = true
			}
		}
		if !any1 {
			return false
		}
	}
	switch v := v.(type) {
	case string:
		n := utf8.RuneCountInString(v)
		if x, ok := m["minLength"]; ok && n < atoi(x) {
			return false
		}
		if x, ok := m["maxLength"]; ok && n > atoi(x) {
			return false
		}
		if p, ok := m["pattern"]; ok && !regexp.MustCompile(p.(string)).MatchString(v) {
			return false
		}
		if f, ok := m["format"]; ok && !regexp.MustCompile(formatRegexps[f.(string)]).MatchString(v) {
			return false
		}
	case json.Number:
		r, _ := new(big.Rat).SetString(string(v))
		for kw, cmp := range map[string]func(int) bool{
			"minimum": func(c int) bool { return c >= 0 }, "exclusiveMinimum": func(c int) bool { return c > 0 },
			"maximum": func(c int) bool { return c <= 0 }, "exclusiveMaximum": func(c int) bool { return c < 0 },
		} {
			if b, ok := m[kw]; ok && !cmp(r.Cmp(toRat(b))) {
				return false
			}
		}
	case []any:
		prefix, _ := m["prefixItems"].([]any)
		for i, x := range v {
			var sub any = true
			if i < len(prefix) {
				sub = prefix[i]
			} else if it, ok := m["items"]; ok {
				sub = it
			}
			if !validate(sub, x) {
				return false
			}
		}
		if x, ok := m["minItems"]; ok && len(v) < atoi(x) {
			return false
		}
		if x, ok := m["maxItems"]; ok && len(v) > atoi(x) {
			return false
		}
	case map[string]any:
		props, _ := m["properties"].(map[string]any)
		for k, x := range v {
			sub, ok := props[k]
			if !ok {
				sub = true
				if a, ok := m["additionalProperties"]; ok {
					sub = a
				}
			}
			if !validate(sub, x) {
				return false
			}
		}
		if r, ok := m["required"]; ok {
			for _, k := range r.([]any) {
				if _, ok := v[k.(string)]; !ok {
					return false
				}
			}
		}
	}
	return true
}

var formatRegexps = map[string]string{
	"date":      `^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$`,
	"date-time": `^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$`,
	"uuid":      `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`,
	"ipv4":      `^((25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)$`,
}

func jsonTypeIs(v any, t string) bool {
	switch v := v.(type) {
	case nil:
		return t == "null"
	case bool:
		return t == "boolean"
	case string:
		return t == "string"
	case json.Number:
		return t == "number" || t == "integer" && isInteger(v)
	case []any:
		return t == "array"
	case map[string]any:
		return t == "object"
	}
	return false
}

func atoi(x any) int {
	n, _ := x.(json.Number).Int64()
	return int(n)
}

func decodeNumber(t testing.TB, b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if d.More() {
		t.Fatalf("trailing data: %s", b)
	}
	return v
}

var walkSchemas = []string{
	`{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":150},"tags":{"type":"array","items":{"enum":["a","b","c"]},"maxItems":3}},"required":["name","age"],"additionalProperties":false}`,
	`{"type":"array","prefixItems":[{"type":"boolean"},{"type":"number","minimum":-5,"exclusiveMaximum":10}],"items":{"type":"null"},"minItems":2,"maxItems":4}`,
	`{"anyOf":[{"type":"string","format":"date"},{"type":"string","format":"uuid"},{"type":"integer","exclusiveMinimum":-1000,"maximum":-3}]}`,
	`{"type":"object","properties":{"id":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"ip":{"type":"string","format":"ipv4"},"when":{"type":"string","format":"date-time"}},"required":["id"]}`,
	`{"type":"object","additionalProperties":{"type":"integer","minimum":7,"maximum":1234}}`,
	`{"type":"string","minLength":2,"maxLength":5}`,
	`{"const":{"a":[1,"x"]}}`,
}

func TestSchemaRandomWalks(t *testing.T) {
	_, v := gemma(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, src := range walkSchemas {
		g, err := CompileSchema([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		schema := decodeNumber(t, []byte(src))
		for i := 0; i < 6; i++ {
			out := randomWalk(t, g, v, rng, rng.IntN(30))
			inst := decodeNumber(t, []byte(out))
			if i < 2 {
				t.Logf("%.200s", out)
			}
			if !validate(schema, inst) {
				t.Errorf("schema %s: generated invalid instance %s", src, out)
			}
		}
	}
}

func TestSchemaRefusesByName(t *testing.T) {
	for _, kw := range []string{"patternProperties", "not", "if", "uniqueItems", "multipleOf", "minProperties", "contains", "unevaluatedProperties", "$dynamicRef"} {
		_, err := CompileSchema([]byte(`{"type":"object","properties":{"a":{"` + kw + `":{}}}}`))
		var se *SchemaError
		if !errors.As(err, &se) || se.Keyword != kw || !strings.Contains(err.Error(), `unsupported JSON Schema keyword "`+kw+`"`) {
			t.Errorf("%s: got %v", kw, err)
		}
	}
	for _, c := range []struct{ schema, kw string }{
		{`{"type":"string","format":"hostname"}`, "format"},
		{`{"type":"string","pattern":"\\bx"}`, "pattern"},
		{`{"type":"string","pattern":"^a|b$"}`, "pattern"},
		{`{"type":"string","pattern":"a{3,1}"}`, "pattern"},
		{`{"type":"number","minimum":0.5,"maximum":0.7}`, "minimum"},
		{`{"$ref":"http://example.com/x.json"}`, "$ref"},
		{`{"type":"string","maxLength":100000}`, "maxLength"},
	} {
		_, err := CompileSchema([]byte(c.schema))
		var se *SchemaError
		if !errors.As(err, &se) || se.Keyword != c.kw {
			t.Errorf("%s: want refusal naming %q, got %v", c.schema, c.kw, err)
		}
	}
}

func TestSchemaExact(t *testing.T) {
	cases := []struct {
		schema  string
		yes, no []string
	}{
		{`{"type":"integer","minimum":-17,"maximum":1234}`,
			[]string{"-17", "-9", "0", "7", "99", "100", "1234", "999"},
			[]string{"-18", "1235", "2000", "01", "-0", "1.5", "12345"}},
		{`{"type":"integer","exclusiveMinimum":99}`, []string{"100", "1000000000000000000000"}, []string{"99", "0", "-1"}},
		{`{"type":"number","minimum":-2,"maximum":3}`,
			[]string{"-2", "-1.999", "0", "3", "3.000", "2.9999", "-0.5"},
			[]string{"-2.0001", "3.0001", "4", "-3", "1e0"}},
		{`{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}`,
			[]string{"0.5", "0.0001"}, []string{"0", "1", "0.0", "1.0", "-0.5"}},
		{`{"type":"object","properties":{"b":{"type":"integer"},"d":{"type":"null"}},"required":["d"]}`,
			[]string{`{"d":null}`, `{"b":1,"d":null}`, `{"a":[],"b":1,"c":"x","d":null,"e":{}}`},
			[]string{`{}`, `{"b":1}`, `{"b":"x","d":null}`, `{"d":null,"d":null}`, `{"d":null,}`}},
		{`{"type":"string","pattern":"^(ab|c)+\\.$"}`, []string{`"ab."`, `"cabc."`}, []string{`"."`, `"abx."`, `"ab"`}},
		{`{"type":"string","pattern":"a\"b"}`, []string{`"xa\"bx"`}, []string{`"ab"`}},
		{`{"type":"string","minLength":2,"maxLength":3}`, []string{`"ab"`, `"a\nb"`, `"日本語"`}, []string{`"a"`, `"abcd"`}},
	}
	for _, c := range cases {
		g, err := CompileSchema([]byte(c.schema))
		if err != nil {
			t.Fatalf("%s: %v", c.schema, err)
		}
		for _, s := range c.yes {
			if !g.Match([]byte(s)) {
				t.Errorf("%s should accept %s", c.schema, s)
			}
		}
		for _, s := range c.no {
			if g.Match([]byte(s)) {
				t.Errorf("%s should reject %s", c.schema, s)
			}
		}
	}
}

// TestIntegerRangeExhaustive checks integer bounds against arithmetic for
// many small ranges.
func TestIntegerRangeExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for iter := 0; iter < 60; iter++ {
		lo := rng.IntN(3000) - 1500
		hi := lo + rng.IntN(2500)
		src := `{"type":"integer","minimum":` + itoa(lo) + `,"maximum":` + itoa(hi) + `}`
		g, err := CompileSchema([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		for x := -4100; x <= 4100; x += 1 + rng.IntN(3) {
			if got, want := g.Match([]byte(itoa(x))), x >= lo && x <= hi; got != want {
				t.Fatalf("%s: %d got %v", src, x, got)
			}
		}
	}
}

func itoa(x int) string { return big.NewInt(int64(x)).String() }

func FuzzCompileSchema(f *testing.F) {
	for _, s := range walkSchemas {
		f.Add(s)
	}
	f.Add(`{"allOf":[{"$ref":"#"}],"properties":{"a":{"anyOf":[true,{"enum":[1,"x",null]}]}}}`)
	f.Add(`{"$defs":{"n":{"type":"array","items":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"}`)
	f.Fuzz(func(t *testing.T, src string) {
		g, err := CompileSchema([]byte(src))
		if err != nil {
			return
		}
		_ = g.Match([]byte(`{"a":[1,2,{"b":null}],"c":"x"}`))
	})
}

// TestSchemaBlowupsRefused checks inputs that would expand exponentially or
// hugely are refused quickly.
func TestSchemaBlowupsRefused(t *testing.T) {
	for _, src := range []string{
		`{"allOf":[{"$ref":"#"},{"$ref":"#"}]}`,
		`{"type":"integer","minimum":1e1000000000}`,
	} {
		if _, err := CompileSchema([]byte(src)); err == nil {
			t.Errorf("%s: compiled", src)
		}
	}
	// Nested repetitions share one rule per level, so they stay small.
	if _, err := CompileSchema([]byte(`{"type":"string","pattern":"^((a{1000}){1000}){1000}$"}`)); err != nil {
		t.Error(err)
	}
	// Nullable alternatives repeated: exponential without memoised expansion.
	g := mustCompile(t, `root ::= ("a"? | "b"? | "c"?){60} "x"`)
	if !g.Match([]byte("abcx")) || g.Match([]byte("abcd")) {
		t.Error("nullable repetition mismatched")
	}
	g = mustCompile(t, `root ::= (("a"{40}){30})`)
	if !g.Match([]byte(strings.Repeat("a", 1200))) || g.Match([]byte(strings.Repeat("a", 1199))) {
		t.Error("nested repetition miscounted")
	}
}

// TestDecimalBoundsExhaustive checks number bounds (integer and not,
// inclusive and exclusive) against exact arithmetic on many decimals.
func TestDecimalBoundsExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	dec := func() string {
		s := itoa(rng.IntN(40) - 20)
		if rng.IntN(2) == 0 {
			s += "." + itoa(rng.IntN(100))
		}
		return s
	}
	compiled := 0
	defer func() {
		if compiled < 50 {
			t.Errorf("only %d of 80 random bound pairs compiled", compiled)
		}
	}()
	for iter := 0; iter < 80; iter++ {
		lo, hi := dec(), dec()
		lkw, hkw := "minimum", "maximum"
		if rng.IntN(2) == 0 {
			lkw = "exclusiveMinimum"
		}
		if rng.IntN(2) == 0 {
			hkw = "exclusiveMaximum"
		}
		src := `{"type":"number","` + lkw + `":` + lo + `,"` + hkw + `":` + hi + `}`
		if rng.IntN(4) == 0 {
			src = `{"type":"number","` + lkw + `":` + lo + `}`
			hi = ""
		}
		g, err := CompileSchema([]byte(src))
		if err != nil {
			var se *SchemaError
			if errors.As(err, &se) && se.Keyword == "minimum" {
				continue // same unit interval: refused by design
			}
			t.Fatalf("%s: %v", src, err)
		}
		compiled++
		rlo, _ := new(big.Rat).SetString(lo)
		var rhi *big.Rat
		if hi != "" {
			rhi, _ = new(big.Rat).SetString(hi)
		}
		for k := 0; k < 300; k++ {
			x := dec()
			if rng.IntN(3) == 0 && strings.Contains(x, ".") {
				x += "0" // trailing zeros do not change the value
			}
			if rng.IntN(5) == 0 {
				x = lo
			}
			rx, ok := new(big.Rat).SetString(x)
			if !ok {
				continue
			}
			want := rx.Cmp(rlo) > 0 || rx.Cmp(rlo) == 0 && lkw == "minimum"
			if rhi != nil {
				want = want && (rx.Cmp(rhi) < 0 || rx.Cmp(rhi) == 0 && hkw == "maximum")
			}
			if got := g.Match([]byte(x)); got != want {
				t.Fatalf("%s: %s got %v want %v", src, x, got, want)
			}
		}
	}
}

func TestJSONObjectMode(t *testing.T) {
	g := mustCompile(t, JSONObjectGBNF())
	for _, s := range []string{`{}`, `{"a":[1,-2.5e+3,true,null,{"b":"\u00e9\n"}]}`} {
		if !g.Match([]byte(s)) {
			t.Errorf("should accept %s", s)
		}
	}
	for _, s := range []string{`[]`, `1`, `{"a":}`, `{"a":1,}`, `{ }`} {
		if g.Match([]byte(s)) {
			t.Errorf("should reject %s", s)
		}
	}
	_, v := gemma(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for i := 0; i < 4; i++ {
		out := randomWalk(t, g, v, rng, rng.IntN(30))
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Errorf("json_object walk produced %q: %v", out, err)
		}
	}
	if !mustCompile(t, JSONValueGBNF()).Match([]byte(`"x"`)) {
		t.Error("JSONValueGBNF rejects a string")
	}
}
