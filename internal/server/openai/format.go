package openai

import (
	"bytes"
	"encoding/json"

	"mica/internal/server/canon"
)

type responseFormatBody struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema"`
}

type jsonSchemaBody struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict"`
}

// responseFormat reads response_format: nil for text, a Format for
// json_object and json_schema. Whether the schema compiles is checked by the
// server, which names the offending keyword.
func responseFormat(raw json.RawMessage) (*canon.Format, error) {
	if canon.IsNull(raw) {
		return nil, nil
	}
	var f responseFormatBody
	if err := canon.DecodeValue(raw, "response_format", &f); err != nil {
		return nil, err
	}
	switch f.Type {
	case "text":
		if !canon.IsNull(f.JSONSchema) {
			return nil, canon.Errorf("response_format.json_schema", "response_format.json_schema is only for type json_schema")
		}
		return nil, nil
	case "json_object":
		if !canon.IsNull(f.JSONSchema) {
			return nil, canon.Errorf("response_format.json_schema", "response_format.json_schema is only for type json_schema")
		}
		return &canon.Format{Kind: canon.FormatJSON, Param: "response_format"}, nil
	case "json_schema":
		if canon.IsNull(f.JSONSchema) {
			return nil, canon.Errorf("response_format.json_schema", "response_format.json_schema is missing: give {\"name\": ..., \"schema\": {...}}")
		}
		var js jsonSchemaBody
		if err := canon.DecodeValue(f.JSONSchema, "response_format.json_schema", &js); err != nil {
			return nil, err
		}
		const p = "response_format.json_schema.schema"
		if canon.IsNull(js.Schema) {
			return nil, canon.Errorf(p, "%s is missing: give the JSON Schema the answer must follow", p)
		}
		if t := bytes.TrimSpace(js.Schema); t[0] != '{' && string(t) != "true" {
			return nil, canon.Errorf(p, "%s must be a JSON Schema object", p)
		}
		// strict false asks only for best effort; mica always enforces.
		return &canon.Format{Kind: canon.FormatSchema, Text: string(js.Schema), Param: p}, nil
	case "":
		return nil, canon.Errorf("response_format.type", "response_format.type is missing: one of text, json_object, json_schema")
	}
	return nil, canon.Errorf("response_format.type", "response_format.type %q is not one of text, json_object, json_schema", f.Type)
}

type namedChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// toolChoice reads tool_choice: "auto", "none", "required", or a named
// function ({"type":"function","function":{"name":...}}), which is returned
// as "required" with the name.
func toolChoice(raw json.RawMessage) (choice, name string, err error) {
	if canon.IsNull(raw) {
		return "auto", "", nil
	}
	if json.Unmarshal(raw, &choice) == nil {
		switch choice {
		case "auto", "none", "required":
			return choice, "", nil
		}
		return "", "", canon.Errorf("tool_choice", `tool_choice %q is not one of "auto", "none", "required" or a named function`, choice)
	}
	var n namedChoice
	if err := canon.DecodeValue(raw, "tool_choice", &n); err != nil {
		return "", "", err
	}
	if n.Type != "function" {
		return "", "", canon.Errorf("tool_choice.type", `tool_choice.type %q is not "function"`, n.Type)
	}
	if n.Function.Name == "" {
		return "", "", canon.Errorf("tool_choice.function.name", "tool_choice.function.name is missing")
	}
	return "required", n.Function.Name, nil
}

func choiceName(named string) string {
	if named == "" {
		return `"required"`
	}
	return "naming a function"
}
