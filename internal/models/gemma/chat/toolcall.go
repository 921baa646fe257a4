package chat

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ParseToolCall converts the body of a Gemma 4 tool call (the text between
// <|tool_call> and <tool_call|>), `call:NAME{key:value,…}`, to a ToolCall
// whose Arguments are a JSON object with the keys in the order written.
//
// Values are read as the template writes them: <|"|>text<|"|> strings (taken
// verbatim), bare numbers, true/false, {…} objects with bare keys, […] arrays.
// It also accepts what models sometimes write instead: "JSON strings",
// <|"|>-quoted or "quoted" keys, null/None, True/False, spaces between tokens;
// another bare word becomes a string. The ID is left empty for the caller.
func ParseToolCall(body string) (ToolCall, error) {
	fail := func(format string, args ...any) (ToolCall, error) {
		return ToolCall{}, fmt.Errorf("tool call %q: %s", body, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(strings.TrimLeft(body, " \t\r\n"), "call:")
	if !ok {
		return fail("does not start with call:")
	}
	brace := strings.IndexByte(rest, '{')
	if brace < 0 {
		return fail("no { after the function name")
	}
	name := strings.TrimSpace(rest[:brace])
	if name == "" {
		return fail("empty function name")
	}
	r := argReader{s: rest, i: brace}
	v, err := r.value(0)
	if err == nil {
		if r.ws(); r.i != len(r.s) {
			err = fmt.Errorf("unexpected %q after the arguments", r.s[r.i:])
		}
	}
	if err != nil {
		// The template writes arguments given as a JSON string verbatim
		// between the braces: call:f{{"x": 1}}.
		inner := strings.TrimSuffix(strings.TrimSpace(rest[brace+1:]), "}")
		if j, jerr := ParseValue([]byte(inner)); jerr == nil && j.Kind == Object {
			v, err = j, nil
		}
	}
	if err != nil {
		return fail("%v", err)
	}
	args, _ := v.MarshalJSON()
	return ToolCall{Name: name, Arguments: json.RawMessage(args)}, nil
}

// argReader reads Gemma 4's argument syntax.
type argReader struct {
	s string
	i int
}

// maxArgDepth bounds nesting, so hostile output cannot exhaust the stack.
const maxArgDepth = 64

func (r *argReader) ws() {
	for r.i < len(r.s) && strings.IndexByte(" \t\r\n", r.s[r.i]) >= 0 {
		r.i++
	}
}

func (r *argReader) value(depth int) (Value, error) {
	if depth > maxArgDepth {
		return Value{}, fmt.Errorf("arguments nested deeper than %d", maxArgDepth)
	}
	r.ws()
	if r.i >= len(r.s) {
		return Value{}, fmt.Errorf("arguments end early")
	}
	switch {
	case strings.HasPrefix(r.s[r.i:], Quote):
		s, err := r.quoted()
		return Str(s), err
	case r.s[r.i] == '"':
		s, err := r.jsonString()
		return Str(s), err
	case r.s[r.i] == '{':
		return r.object(depth)
	case r.s[r.i] == '[':
		return r.array(depth)
	}
	start := r.i
	for r.i < len(r.s) && strings.IndexByte(",}]", r.s[r.i]) < 0 {
		r.i++
	}
	word := strings.TrimSpace(r.s[start:r.i])
	switch word {
	case "":
		return Value{}, fmt.Errorf("missing value at offset %d", start)
	case "true", "True":
		return Value{Kind: Bool, Bool: true}, nil
	case "false", "False":
		return Value{Kind: Bool, Bool: false}, nil
	case "null", "None":
		return Value{Kind: Null}, nil
	}
	if json.Valid([]byte(word)) && strings.IndexAny(word[:1], "-0123456789") == 0 {
		return Value{Kind: Number, Num: word}, nil
	}
	return Str(word), nil
}

// quoted reads <|"|>text<|"|>.
func (r *argReader) quoted() (string, error) {
	r.i += len(Quote)
	end := strings.Index(r.s[r.i:], Quote)
	if end < 0 {
		return "", fmt.Errorf("string at offset %d not closed with %s", r.i, Quote)
	}
	s := r.s[r.i : r.i+end]
	r.i += end + len(Quote)
	return s, nil
}

// jsonString reads a "JSON string".
func (r *argReader) jsonString() (string, error) {
	for j := r.i + 1; j < len(r.s); j++ {
		switch r.s[j] {
		case '\\':
			j++
		case '"':
			var s string
			if err := json.Unmarshal([]byte(r.s[r.i:j+1]), &s); err != nil {
				return "", fmt.Errorf("bad JSON string at offset %d: %v", r.i, err)
			}
			r.i = j + 1
			return s, nil
		}
	}
	return "", fmt.Errorf("string at offset %d not closed", r.i)
}

func (r *argReader) object(depth int) (Value, error) {
	r.i++ // {
	v := Value{Kind: Object, Obj: []Member{}}
	r.ws()
	if r.i < len(r.s) && r.s[r.i] == '}' {
		r.i++
		return v, nil
	}
	for {
		r.ws()
		var key string
		var err error
		switch {
		case strings.HasPrefix(r.s[r.i:], Quote):
			key, err = r.quoted()
		case r.i < len(r.s) && r.s[r.i] == '"':
			key, err = r.jsonString()
		default:
			colon := strings.IndexByte(r.s[r.i:], ':')
			if colon < 0 {
				return Value{}, fmt.Errorf("key at offset %d has no ':'", r.i)
			}
			key = strings.TrimSpace(r.s[r.i : r.i+colon])
			r.i += colon
		}
		if err != nil {
			return Value{}, err
		}
		if key == "" {
			return Value{}, fmt.Errorf("empty key at offset %d", r.i)
		}
		r.ws()
		if r.i >= len(r.s) || r.s[r.i] != ':' {
			return Value{}, fmt.Errorf("key %q not followed by ':'", key)
		}
		r.i++
		val, err := r.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.set(key, val)
		r.ws()
		if r.i >= len(r.s) {
			return Value{}, fmt.Errorf("object not closed with }")
		}
		switch r.s[r.i] {
		case ',':
			r.i++
		case '}':
			r.i++
			return v, nil
		default:
			return Value{}, fmt.Errorf("unexpected %q in an object at offset %d", r.s[r.i], r.i)
		}
	}
}

func (r *argReader) array(depth int) (Value, error) {
	r.i++ // [
	v := Value{Kind: Array, Arr: []Value{}}
	r.ws()
	if r.i < len(r.s) && r.s[r.i] == ']' {
		r.i++
		return v, nil
	}
	for {
		val, err := r.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.Arr = append(v.Arr, val)
		r.ws()
		if r.i >= len(r.s) {
			return Value{}, fmt.Errorf("array not closed with ]")
		}
		switch r.s[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return v, nil
		default:
			return Value{}, fmt.Errorf("unexpected %q in an array at offset %d", r.s[r.i], r.i)
		}
	}
}
