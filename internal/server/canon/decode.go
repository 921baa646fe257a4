package canon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Decode reads a JSON object into v strictly: malformed JSON, a body that is
// not an object, a value of the wrong type and a field v does not declare
// are each an Invalid error that names the field.
//
// embedded names the Go fields of structs embedded in v, which
// encoding/json puts in the path of a type error; they are left out.
func Decode(body []byte, v any, embedded ...string) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Errorf("", "the request body is empty: send a JSON object")
	}
	if body[0] != '{' {
		if !json.Valid(body) {
			return Errorf("", "the request body is not valid JSON")
		}
		return Errorf("", "the request body must be a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		e := jsonError(err)
		for _, name := range embedded {
			if p, ok := strings.CutPrefix(e.Param, name+"."); ok {
				e.Msg = strings.Replace(e.Msg, e.Param, p, 1)
				e.Param = p
			}
		}
		return e
	}
	if d.More() {
		return Errorf("", "the request body has data after the JSON object")
	}
	return nil
}

// DecodeValue reads one JSON value of a field into v, naming param in errors.
func DecodeValue(raw json.RawMessage, param string, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		e := jsonError(err)
		if e.Param == "" {
			e.Param = param
		} else {
			e.Param = param + "." + e.Param
		}
		e.Msg = fmt.Sprintf("%s: %s", param, e.Msg)
		return e
	}
	return nil
}

func jsonError(err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Errorf("", "malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return Errorf("", "wrong JSON type: got %s, expected %s", typ.Value, jsonType(typ.Type.String()))
		}
		return Errorf(field, "field %q has the wrong type: got %s, expected %s", field, typ.Value, jsonType(typ.Type.String()))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Errorf("", "malformed JSON: the body ends too early")
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &Error{Kind: Invalid, Param: name, Code: "unknown_parameter",
			Msg: fmt.Sprintf("unknown field %q: mica does not support it (remove it from the request)", name)}
	}
	return Errorf("", "malformed JSON: %s", strings.TrimPrefix(msg, "json: "))
}

// jsonType names a Go type as the JSON type a client should send.
func jsonType(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "an object"
	}
	return goType
}

// IsNull reports whether a raw field is absent or null.
func IsNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// Stops reads a stop field: a string or an array of strings, each not empty.
func Stops(raw json.RawMessage, param string, max int) ([]string, error) {
	if IsNull(raw) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, Errorf(param, "%s: a stop string must not be empty", param)
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, Errorf(param, "%s must be a string or an array of strings", param)
	}
	if len(many) > max {
		return nil, Errorf(param, "%s has %d strings; at most %d are allowed", param, len(many), max)
	}
	for i, s := range many {
		if s == "" {
			return nil, Errorf(param, "%s[%d]: a stop string must not be empty", param, i)
		}
	}
	return many, nil
}
