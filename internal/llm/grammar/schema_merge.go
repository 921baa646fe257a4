package grammar

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// maxMerges bounds the work of merging allOf/$ref siblings.
const maxMerges = 10000

// allTypes are the JSON Schema type names.
var allTypes = []string{"null", "boolean", "object", "array", "string", "number", "integer"}

// merge returns a schema whose instances are those valid under both a and
// b (allOf), or an error naming the keyword it cannot combine.
func merge(a, b any, c *schemaCompiler, depth int) (any, error) {
	if depth > 32 {
		return nil, schemaErrf("allOf", "unsupported JSON Schema keyword \"allOf\" over a recursive $ref")
	}
	if c.merges++; c.merges > maxMerges {
		return nil, schemaErrf("allOf", "unsupported JSON Schema keyword \"allOf\": merging needs more than %d steps", maxMerges)
	}
	if ab, ok := a.(bool); ok {
		if ab {
			return b, nil
		}
		return false, nil
	}
	if bb, ok := b.(bool); ok {
		if bb {
			return a, nil
		}
		return false, nil
	}
	am, ok1 := a.(map[string]any)
	bm, ok2 := b.(map[string]any)
	if !ok1 || !ok2 {
		return nil, schemaErrf("", "a schema must be an object or a boolean")
	}
	for _, m := range []map[string]any{am, bm} {
		if err := checkKeywords(m); err != nil {
			return nil, err
		}
	}
	var err error
	// resolve top-level $ref and flatten allOf so maps hold plain keywords
	if am, err = flatten(am, c, depth); err != nil {
		return nil, err
	}
	if bm, err = flatten(bm, c, depth); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range am {
		out[k] = v
	}
	for k, bv := range bm {
		av, ok := out[k]
		if !ok {
			out[k] = bv
			continue
		}
		switch k {
		case "type":
			out[k] = intersectTypes(typeList(av), typeList(bv))
		case "required":
			r, _ := av.([]any)
			r2, _ := bv.([]any)
			out[k] = append(slices.Clone(r), r2...)
		case "enum", "const":
			// keep both: intersect enums
			out[k] = bv
			if k == "const" {
				av, bv = []any{av}, []any{bv}
			}
			al, _ := av.([]any)
			bl, _ := bv.([]any)
			var both []any
			for _, x := range al {
				for _, y := range bl {
					if bytes.Equal(canonical(x), canonical(y)) {
						both = append(both, x)
						break
					}
				}
			}
			delete(out, "const")
			if both == nil {
				both = []any{}
			}
			out["enum"] = both
		case "minimum", "exclusiveMinimum", "minLength", "minItems":
			if cmpNum(bv, av) > 0 {
				out[k] = bv
			}
		case "maximum", "exclusiveMaximum", "maxLength", "maxItems":
			if cmpNum(bv, av) < 0 {
				out[k] = bv
			}
		case "pattern", "format":
			if !bytes.Equal(canonical(av), canonical(bv)) {
				return nil, schemaErrf("allOf", "unsupported JSON Schema keyword \"allOf\" combining two different %q values", k)
			}
		case "items":
			m, err := merge(av, bv, c, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = m
		case "anyOf", "oneOf":
			al, _ := av.([]any)
			bl, _ := bv.([]any)
			if len(al)*len(bl) > 64 {
				return nil, schemaErrf("allOf", "unsupported JSON Schema keyword \"allOf\": combining %q lists would make %d branches", k, len(al)*len(bl))
			}
			var cross []any
			for _, x := range al {
				for _, y := range bl {
					m, err := merge(x, y, c, depth+1)
					if err != nil {
						return nil, err
					}
					cross = append(cross, m)
				}
			}
			out[k] = cross
		}
	}
	// properties / additionalProperties: a key absent from one side's
	// properties must satisfy that side's additionalProperties.
	ap, bp := props(am), props(bm)
	if ap != nil || bp != nil || am["additionalProperties"] != nil || bm["additionalProperties"] != nil {
		keys := map[string]bool{}
		for k := range ap {
			keys[k] = true
		}
		for k := range bp {
			keys[k] = true
		}
		merged := map[string]any{}
		for k := range keys {
			m, err := merge(propSchema(am, ap, k), propSchema(bm, bp, k), c, depth+1)
			if err != nil {
				return nil, err
			}
			merged[k] = m
		}
		if len(merged) > 0 {
			out["properties"] = merged
		}
		aa, ok1 := am["additionalProperties"]
		ba, ok2 := bm["additionalProperties"]
		switch {
		case ok1 && ok2:
			m, err := merge(aa, ba, c, depth+1)
			if err != nil {
				return nil, err
			}
			out["additionalProperties"] = m
		case ok1:
			out["additionalProperties"] = aa
		case ok2:
			out["additionalProperties"] = ba
		}
	}
	// prefixItems: position i beyond one side's prefix uses its items.
	api, _ := am["prefixItems"].([]any)
	bpi, _ := bm["prefixItems"].([]any)
	if api != nil || bpi != nil {
		n := max(len(api), len(bpi))
		merged := make([]any, n)
		for i := range n {
			m, err := merge(itemSchema(am, api, i), itemSchema(bm, bpi, i), c, depth+1)
			if err != nil {
				return nil, err
			}
			merged[i] = m
		}
		out["prefixItems"] = merged
	}
	return out, nil
}

// flatten resolves a top-level $ref and folds allOf into m.
func flatten(m map[string]any, c *schemaCompiler, depth int) (map[string]any, error) {
	if ref, ok := m["$ref"]; ok {
		rs, ok := ref.(string)
		if !ok {
			return nil, schemaErrf("$ref", "$ref must be a string")
		}
		t, err := c.resolve(rs)
		if err != nil {
			return nil, err
		}
		r, err := merge(without(m, "$ref"), t, c, depth+1)
		if err != nil {
			return nil, err
		}
		return asMap(r), nil
	}
	if all, ok := m["allOf"]; ok {
		list, ok := all.([]any)
		if !ok {
			return nil, schemaErrf("allOf", "allOf must be an array")
		}
		var r any = without(m, "allOf")
		for _, s := range list {
			var err error
			if r, err = merge(r, s, c, depth+1); err != nil {
				return nil, err
			}
		}
		return asMap(r), nil
	}
	return m, nil
}

// asMap turns a boolean schema into an equivalent map.
func asMap(s any) map[string]any {
	switch s := s.(type) {
	case map[string]any:
		return s
	case bool:
		if !s {
			return map[string]any{"type": []any{}}
		}
	}
	return map[string]any{}
}

func props(m map[string]any) map[string]any {
	p, _ := m["properties"].(map[string]any)
	return p
}

func propSchema(m, p map[string]any, k string) any {
	if s, ok := p[k]; ok {
		return s
	}
	if s, ok := m["additionalProperties"]; ok {
		return s
	}
	return true
}

func itemSchema(m map[string]any, prefix []any, i int) any {
	if i < len(prefix) {
		return prefix[i]
	}
	if s, ok := m["items"]; ok {
		return s
	}
	return true
}

func typeList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func intersectTypes(a, b []string) []any {
	out := []any{}
	has := func(l []string, t string) bool { return slices.Contains(l, t) }
	for _, t := range allTypes {
		ina := has(a, t) || t == "integer" && has(a, "number")
		inb := has(b, t) || t == "integer" && has(b, "number")
		if ina && inb {
			out = append(out, t)
		}
	}
	return out
}

// cmpNum compares two JSON numbers exactly.
func cmpNum(a, b any) int {
	ra, rb := toRat(a), toRat(b)
	if ra == nil || rb == nil {
		return 0
	}
	return ra.Cmp(rb)
}

func toRat(v any) *big.Rat {
	switch v := v.(type) {
	case json.Number:
		// refuse absurd magnitudes before big.Rat expands them
		str := string(v)
		if len(str) > 400 {
			return nil
		}
		if i := strings.IndexAny(str, "eE"); i >= 0 {
			e, err := strconv.Atoi(str[i+1:])
			if err != nil || e > 400 || e < -400 {
				return nil
			}
		}
		r, ok := new(big.Rat).SetString(str)
		if ok {
			return r
		}
	case float64:
		return new(big.Rat).SetFloat64(v)
	}
	return nil
}
