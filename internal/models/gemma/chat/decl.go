package chat

import "fmt"

// This file renders tool declarations in Gemma 4's compact schema syntax, as
// the template's format_function_declaration and format_parameters macros do:
// declaration:NAME{description:<|"|>…<|"|>,parameters:{properties:{…},required:[…],type:<|"|>OBJECT<|"|>}}

// formatFunctionDeclaration renders one entry of tools (an OpenAI-style
// {"type":"function","function":{...}} object).
func formatFunctionDeclaration(b *out, tool Value) error {
	fn, err := item(tool, "function")
	if err != nil {
		return err
	}
	name, err := item(fn, "name")
	if err != nil {
		return fmt.Errorf("tool declaration: %w", err)
	}
	desc, _ := item(fn, "description")
	b.markup("declaration:")
	b.text(pyStr(name))
	b.markup("{description:" + Quote)
	b.text(pyStr(desc))
	b.markup(Quote)
	params, _ := item(fn, "parameters")
	if truthy(params) {
		b.markup(",parameters:{")
		props, err := item(params, "properties")
		if err != nil {
			return err
		}
		if truthy(props) {
			b.markup("properties:{")
			if err := formatParameters(b, props); err != nil {
				return fmt.Errorf("tool %s parameters: %w", pyStr(name), err)
			}
			b.markup("},")
		}
		req, _ := item(params, "required")
		if truthy(req) {
			if err := writeRequired(b, req); err != nil {
				return fmt.Errorf("tool %s required: %w", pyStr(name), err)
			}
			b.markup(",")
		}
		typ, _ := item(params, "type")
		if truthy(typ) {
			b.markup("type:" + Quote)
			b.text(pyUpper(pyStr(typ)))
			b.markup(Quote + "}")
		}
	}
	has, err := contains(fn, "response")
	if err != nil {
		return err
	}
	if has {
		resp, err := item(fn, "response")
		if err != nil {
			return err
		}
		b.markup(",response:{")
		rd, err := item(resp, "description")
		if err != nil {
			return err
		}
		if truthy(rd) {
			b.markup("description:" + Quote)
			b.text(pyStr(rd))
			b.markup(Quote + ",")
		}
		rt, _ := item(resp, "type")
		if pyUpper(pyStr(rt)) == "OBJECT" {
			b.markup("type:" + Quote + "OBJECT" + Quote + "}")
		}
	}
	b.markup("}")
	return nil
}

// writeRequired renders required:[<|"|>a<|"|>,<|"|>b<|"|>].
func writeRequired(b *out, req Value) error {
	items, err := iterate(req)
	if err != nil {
		return err
	}
	b.markup("required:[")
	for i, it := range items {
		if i > 0 {
			b.markup(",")
		}
		b.markup(Quote)
		b.text(pyStr(it))
		b.markup(Quote)
	}
	b.markup("]")
	return nil
}

// standardKeys are the schema keys format_parameters does not list as properties.
var standardKeys = []string{"description", "type", "properties", "required", "nullable"}

// formatParameters renders the members of a JSON-schema "properties" object,
// sorted by key: NAME:{description:…,enum:…,items:{…},nullable:true,properties:{…},required:[…],type:<|"|>T<|"|>}
func formatParameters(b *out, props Value) error {
	ms, err := dictsort(props)
	if err != nil {
		return err
	}
	first := true
	for _, m := range ms {
		standard := false
		for _, k := range standardKeys {
			standard = standard || m.Key == k
		}
		if standard {
			continue
		}
		if !first {
			b.markup(",")
		}
		first = false
		if err := formatProperty(b, m.Key, m.Value); err != nil {
			return fmt.Errorf("property %s: %w", m.Key, err)
		}
	}
	return nil
}

func formatProperty(b *out, key string, value Value) error {
	b.text(key)
	b.markup(":{")
	addComma := false
	comma := func() {
		if addComma {
			b.markup(",")
		}
		addComma = true
	}
	desc, _ := item(value, "description")
	if truthy(desc) {
		b.markup("description:" + Quote)
		b.text(pyStr(desc))
		b.markup(Quote)
		addComma = true
	}
	typ, _ := item(value, "type")
	upper := pyUpper(pyStr(typ))
	switch upper {
	case "STRING":
		if enum, _ := item(value, "enum"); truthy(enum) {
			comma()
			b.markup("enum:")
			if err := formatArgument(b, enum, true); err != nil {
				return err
			}
		}
	case "ARRAY":
		if items, _ := item(value, "items"); isMapping(items) && truthy(items) {
			comma()
			if err := formatItems(b, items); err != nil {
				return fmt.Errorf("items: %w", err)
			}
		}
	}
	if n, _ := item(value, "nullable"); truthy(n) {
		comma()
		b.markup("nullable:true")
	}
	if upper == "OBJECT" {
		props, _ := item(value, "properties")
		if isMapping(props) {
			comma()
			b.markup("properties:{")
			if err := formatParameters(b, props); err != nil {
				return err
			}
			b.markup("}")
		} else if isMapping(value) {
			comma()
			b.markup("properties:{")
			if err := formatParameters(b, value); err != nil {
				return err
			}
			b.markup("}")
		}
		if req, _ := item(value, "required"); truthy(req) {
			comma()
			if err := writeRequired(b, req); err != nil {
				return err
			}
		}
	}
	comma()
	b.markup("type:" + Quote)
	b.text(upper)
	b.markup(Quote + "}")
	return nil
}

// formatItems renders an array schema's items:{…}, members sorted by key,
// null members left out.
func formatItems(b *out, items Value) error {
	b.markup("items:{")
	ms, _ := dictsort(items)
	first := true
	for _, m := range ms {
		if m.Value.Kind == Null {
			continue
		}
		if !first {
			b.markup(",")
		}
		first = false
		v := m.Value
		switch m.Key {
		case "properties":
			b.markup("properties:{")
			if isMapping(v) {
				if err := formatParameters(b, v); err != nil {
					return err
				}
			}
			b.markup("}")
		case "required":
			if err := writeRequired(b, v); err != nil {
				return err
			}
		case "type":
			b.markup("type:")
			if v.Kind == String {
				if err := formatArgument(b, Str(pyUpper(v.Str)), true); err != nil {
					return err
				}
			} else {
				elems, err := iterate(v)
				if err != nil {
					return err
				}
				up := Value{Kind: Array}
				for _, e := range elems {
					up.Arr = append(up.Arr, Str(pyUpper(pyStr(e))))
				}
				if err := formatArgument(b, up, true); err != nil {
					return err
				}
			}
		default:
			b.text(m.Key)
			b.markup(":")
			if err := formatArgument(b, v, true); err != nil {
				return err
			}
		}
	}
	b.markup("}")
	return nil
}
