package grammar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// JSON Schema support (draft 2020-12 subset) — see doc.go for the policy.

// annotation keywords carry no validation and are ignored.
var schemaAnnotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"default": true, "examples": true, "deprecated": true, "readOnly": true, "writeOnly": true,
	"$defs": true, "definitions": true, "contentEncoding": true, "contentMediaType": true,
	"contentSchema": true, "strict": true,
}

// schemaSupported keywords constrain the output and are compiled.
var schemaSupported = map[string]bool{
	"type": true, "enum": true, "const": true, "properties": true, "required": true,
	"additionalProperties": true, "items": true, "prefixItems": true, "minItems": true,
	"maxItems": true, "anyOf": true, "oneOf": true, "allOf": true, "$ref": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true, "minimum": true,
	"maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
}

// schemaRefused keywords are JSON Schema keywords this compiler does not
// implement; a schema using one is refused by name. Keywords in none of the
// three lists are unknown to JSON Schema and ignored, as the spec says.
var schemaRefused = map[string]bool{
	"not": true, "if": true, "then": true, "else": true, "dependentRequired": true,
	"dependentSchemas": true, "contains": true, "minContains": true, "maxContains": true,
	"uniqueItems": true, "multipleOf": true, "minProperties": true, "maxProperties": true,
	"propertyNames": true, "patternProperties": true, "unevaluatedItems": true,
	"unevaluatedProperties": true, "$dynamicRef": true, "$dynamicAnchor": true, "$anchor": true,
	"$recursiveRef": true, "$recursiveAnchor": true, "$vocabulary": true, "dependencies": true,
	"additionalItems": true,
}

// maxSchemaRepeat bounds minLength/maxLength/minItems/maxItems expansions.
const maxSchemaRepeat = 1024

// SchemaError is a JSON Schema the compiler cannot or will not compile.
type SchemaError struct {
	Keyword string // the offending keyword, when there is one
	Msg     string
}

func (e *SchemaError) Error() string { return "json schema: " + e.Msg }

func unsupported(kw string) error {
	return &SchemaError{Keyword: kw, Msg: fmt.Sprintf("unsupported JSON Schema keyword %q", kw)}
}

func schemaErrf(kw, format string, args ...any) error {
	return &SchemaError{Keyword: kw, Msg: fmt.Sprintf(format, args...)}
}

// CompileSchema compiles a JSON Schema (JSON text) into a Grammar whose
// sentences are compact JSON texts of instances valid under the schema.
func CompileSchema(schema []byte) (*Grammar, error) {
	text, err := SchemaToGBNF(schema)
	if err != nil {
		return nil, err
	}
	g, err := Compile(text)
	if err != nil {
		// the generated grammar is too large or otherwise unusable
		return nil, &SchemaError{Msg: fmt.Sprintf("schema cannot be compiled: %v", err)}
	}
	return g, nil
}

// SchemaToGBNF translates a JSON Schema into GBNF text.
func SchemaToGBNF(schema []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(schema))
	d.UseNumber()
	var root any
	if err := d.Decode(&root); err != nil {
		return "", fmt.Errorf("json schema: invalid JSON: %w", err)
	}
	if d.More() {
		return "", fmt.Errorf("json schema: trailing data after the schema")
	}
	if err := checkNestedIDs(root, true); err != nil {
		return "", err
	}
	c := newSchemaCompiler(root)
	expr, err := c.compile(root, 0)
	if err != nil {
		return "", err
	}
	return c.text(expr), nil
}

// JSONObjectGBNF is the grammar of `json_object` mode: any compact JSON
// object.
func JSONObjectGBNF() string {
	c := newSchemaCompiler(nil)
	return c.text("object")
}

// JSONValueGBNF is the grammar of any compact JSON value.
func JSONValueGBNF() string {
	c := newSchemaCompiler(nil)
	return c.text("value")
}

type schemaCompiler struct {
	root   any
	rules  []string
	n      int
	refs   map[string]string // JSON pointer -> rule name
	merges int
	work   *int // compile steps, shared with sub-compilers (enum checks)
}

// maxCompileWork bounds the subschemas compiled for one schema (anyOf
// with sibling keywords copies the siblings into every branch).
const maxCompileWork = 20000

func newSchemaCompiler(root any) *schemaCompiler {
	return &schemaCompiler{root: root, refs: map[string]string{}, work: new(int)}
}

// jsonBase is the generic compact-JSON grammar every schema grammar
// includes.
const jsonBase = `value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ( string ":" value ( "," string ":" value )* )? "}"
array ::= "[" ( value ( "," value )* )? "]"
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
integer ::= "-"? ( "0" | [1-9] [0-9]* )
nothing ::= [^\x00-\U0010FFFF]
`

func (c *schemaCompiler) text(root string) string {
	var b strings.Builder
	b.WriteString("root ::= " + root + "\n")
	b.WriteString(jsonBase)
	for _, r := range c.rules {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	return b.String()
}

func (c *schemaCompiler) reserve() string {
	c.n++
	return "s" + strconv.Itoa(c.n)
}

func (c *schemaCompiler) define(name, body string) {
	c.rules = append(c.rules, name+" ::= "+body)
}

func (c *schemaCompiler) rule(body string) string {
	n := c.reserve()
	c.define(n, body)
	return n
}

// checkKeywords refuses unsupported keywords and malformed values of the
// keywords it uses.
func checkKeywords(m map[string]any) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if schemaRefused[k] {
			return unsupported(k)
		}
	}
	return nil
}

// compile returns a GBNF expression for the JSON texts valid under s.
func (c *schemaCompiler) compile(s any, depth int) (string, error) {
	if depth > 64 {
		return "", schemaErrf("", "schema nested too deeply")
	}
	if *c.work++; *c.work > maxCompileWork {
		return "", schemaErrf("", "schema too complex: more than %d subschemas to compile", maxCompileWork)
	}
	switch s := s.(type) {
	case bool:
		if s {
			return "value", nil
		}
		return "nothing", nil
	case map[string]any:
		if err := checkKeywords(s); err != nil {
			return "", err
		}
		if ref, ok := s["$ref"]; ok {
			rs, ok := ref.(string)
			if !ok {
				return "", schemaErrf("$ref", "$ref must be a string")
			}
			if !hasConstraints(s, "$ref") {
				return c.refRule(rs, depth)
			}
			// $ref with sibling constraints: both apply.
			target, err := c.resolve(rs)
			if err != nil {
				return "", err
			}
			m, err := merge(without(s, "$ref"), target, c, 0)
			if err != nil {
				return "", err
			}
			return c.compile(m, depth+1)
		}
		if all, ok := s["allOf"]; ok {
			list, ok := all.([]any)
			if !ok || len(list) == 0 {
				return "", schemaErrf("allOf", "allOf must be a non-empty array")
			}
			var m any = without(s, "allOf")
			for _, sub := range list {
				var err error
				if m, err = merge(m, sub, c, 0); err != nil {
					return "", err
				}
			}
			return c.compile(m, depth+1)
		}
		for _, kw := range []string{"anyOf", "oneOf"} {
			v, ok := s[kw]
			if !ok {
				continue
			}
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return "", schemaErrf(kw, "%s must be a non-empty array", kw)
			}
			base := without(s, kw)
			var alts []string
			for _, sub := range list {
				m, err := merge(base, sub, c, 0)
				if err != nil {
					return "", err
				}
				e, err := c.compile(m, depth+1)
				if err != nil {
					return "", err
				}
				alts = append(alts, e)
			}
			return c.rule(strings.Join(alts, " | ")), nil
		}
		return c.typed(s, depth)
	}
	return "", schemaErrf("", "a schema must be an object or a boolean, got %s", jsonKind(s))
}

// hasConstraints reports whether m has keywords other than annotations and
// the given ones.
func hasConstraints(m map[string]any, except ...string) bool {
	for k := range m {
		if !schemaAnnotations[k] && !slices.Contains(except, k) && (schemaSupported[k] || schemaRefused[k]) {
			return true
		}
	}
	return false
}

func without(m map[string]any, kw string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != kw {
			out[k] = v
		}
	}
	return out
}

// refRule returns the rule for a local $ref, compiling its target once so
// recursive schemas become recursive rules.
func (c *schemaCompiler) refRule(ref string, depth int) (string, error) {
	if n, ok := c.refs[ref]; ok {
		return n, nil
	}
	target, err := c.resolve(ref)
	if err != nil {
		return "", err
	}
	n := c.reserve()
	c.refs[ref] = n
	e, err := c.compile(target, depth+1)
	if err != nil {
		return "", err
	}
	c.define(n, e)
	return n, nil
}

// resolve follows a local JSON-pointer reference ("#", "#/$defs/x").
func (c *schemaCompiler) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, schemaErrf("$ref", "unsupported JSON Schema keyword \"$ref\" to a non-local target %q (only \"#...\" JSON pointers are supported)", ref)
	}
	p := ref[1:]
	var cur any = c.root
	if p == "" {
		return cur, nil
	}
	if p[0] != '/' {
		return nil, schemaErrf("$ref", "unsupported JSON Schema keyword \"$ref\" with anchor %q", ref)
	}
	for _, tok := range strings.Split(p[1:], "/") {
		tok = unescapePointer(tok)
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, schemaErrf("$ref", "$ref %q: no %q", ref, tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, schemaErrf("$ref", "$ref %q: bad index %q", ref, tok)
			}
			cur = v[i]
		default:
			return nil, schemaErrf("$ref", "$ref %q does not resolve", ref)
		}
	}
	return cur, nil
}

func unescapePointer(s string) string {
	if strings.Contains(s, "%") {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 2
					continue
				}
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if isInteger(v) {
			return "integer"
		}
		return "number"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func isInteger(n json.Number) bool {
	r := toRat(n)
	return r != nil && r.IsInt()
}

// canonical is the compact JSON text the grammar uses for a value: Go's
// encoding with keys sorted, numbers as float64 and no HTML escaping.
func canonical(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(toFloat(v))
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func toFloat(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return v
		}
		return f
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = toFloat(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = toFloat(x)
		}
		return out
	}
	return v
}

// literal is a GBNF string literal matching exactly b.
func literal(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, r := range string(b) {
		switch {
		case r == '"' || r == '\\':
			s.WriteByte('\\')
			s.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&s, "\\x%02X", r)
		default:
			s.WriteRune(r)
		}
	}
	s.WriteByte('"')
	return s.String()
}

// checkNestedIDs refuses "$id" below the root: it would change the base
// that local references resolve against, which this compiler does not
// track.
func checkNestedIDs(s any, root bool) error {
	switch s := s.(type) {
	case map[string]any:
		if _, ok := s["$id"]; ok && !root {
			return unsupported("$id")
		}
		for k, v := range s {
			switch k {
			case "const", "enum", "default", "examples":
				continue
			case "properties", "$defs", "definitions", "patternProperties", "dependentSchemas":
				if m, ok := v.(map[string]any); ok {
					for _, sub := range m {
						if err := checkNestedIDs(sub, false); err != nil {
							return err
						}
					}
				}
				continue
			}
			if err := checkNestedIDs(v, false); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range s {
			if err := checkNestedIDs(x, false); err != nil {
				return err
			}
		}
	}
	return nil
}
