package chat

import (
	"fmt"
	"strings"
)

// This file renders the official Gemma 4 instruction-tuned chat template
// (google-gemma-4-31B-it.jinja, the one real Gemma 4 GGUF files carry) in Go.
// Each function mirrors one macro or block of the template, with Jinja's
// semantics for missing and mistyped values (see pystr.go), so that any
// variables render to the same bytes, or fail where the template fails.

// RenderGemma4Vars renders the Gemma 4 chat template for the given variables.
func RenderGemma4Vars(v Vars) (string, error) {
	segs, err := RenderSegments("gemma4", v)
	return Join(segs), err
}

type g4 struct {
	o        *out
	prevType string // ns.prev_message_type; "" is None
}

var systemRoles = []string{"system", "developer"}

func roleIn(v Value, roles ...string) bool {
	for _, s := range roles {
		if isStringConst(v, s) {
			return true
		}
	}
	return false
}

func (r *g4) render(v Vars) error {
	msgs := v.Messages
	if msgs.Kind != Array {
		return typeErr("messages is %s, not an array", kindName(msgs))
	}
	loop := msgs.Arr
	r.o.markup(v.BOS)
	first, err := index(msgs, 0)
	if err != nil {
		return err
	}
	if first.Kind == Undefined {
		return undefinedErr("messages has no element 0")
	}
	firstRole, err := item(first, "role")
	if err != nil {
		return err
	}
	thinking := truthy(v.EnableThinking)
	if thinking || truthy(v.Tools) || roleIn(firstRole, systemRoles...) {
		r.o.markup(TurnStart + "system\n")
		if thinking {
			r.o.markup(Think + "\n")
			r.prevType = "think"
		}
		if roleIn(firstRole, systemRoles...) {
			c, _ := item(first, "content")
			r.o.text(pyTrim(pyStr(c)))
			loop = loop[1:]
		}
		if truthy(v.Tools) {
			tools, err := iterate(v.Tools)
			if err != nil {
				return err
			}
			for _, t := range tools {
				// The template trims the declaration, which always starts
				// with "declaration:" and ends with "}": nothing to trim.
				r.o.markup(ToolStart)
				if err := formatFunctionDeclaration(r.o, t); err != nil {
					return err
				}
				r.o.markup(ToolEnd)
			}
			r.prevType = "tool"
		}
		r.o.markup(TurnEnd + "\n")
	}

	lastUser := -1
	for i, m := range loop {
		if role, _ := item(m, "role"); isStringConst(role, "user") {
			lastUser = i
		}
	}
	for i, m := range loop {
		if err := r.message(loop, i, m, lastUser); err != nil {
			return fmt.Errorf("message %d: %w", i+len(msgs.Arr)-len(loop), err)
		}
	}
	if truthy(v.AddGenerationPrompt) && r.prevType != "tool_response" && r.prevType != "tool_call" {
		r.o.markup(TurnStart + "model\n")
		if !thinking {
			r.o.markup(EmptyThought)
		}
	}
	return nil
}

// message renders one entry of the message loop.
func (r *g4) message(loop []Value, i int, m Value, lastUser int) error {
	rawRole, err := item(m, "role")
	if err != nil {
		return err
	}
	if isStringConst(rawRole, "tool") {
		return nil // rendered by the preceding assistant message
	}
	r.prevType = ""
	role := rawRole
	if isStringConst(rawRole, "assistant") {
		role = Str("model")
	}
	model := isStringConst(role, "model")
	// The nearest earlier message that is not a tool result.
	var prevRole Value
	for j := i - 1; j >= 0; j-- {
		pr, _ := item(loop[j], "role")
		if !isStringConst(pr, "tool") {
			prevRole = pr
			break
		}
	}
	if !(model && isStringConst(prevRole, "assistant")) {
		r.o.markup(TurnStart)
		if err := r.o.textValue(role, "role"); err != nil {
			return err
		}
		r.o.markup("\n")
	}

	reasoning, err := dictGet(m, "reasoning")
	if err != nil {
		return err
	}
	if !truthy(reasoning) {
		if reasoning, err = dictGet(m, "reasoning_content"); err != nil {
			return err
		}
	}
	calls, _ := dictGet(m, "tool_calls")
	if truthy(reasoning) && i > lastUser && truthy(calls) {
		r.o.markup(ChannelStart + "thought\n")
		if err := r.o.textValue(reasoning, "reasoning"); err != nil {
			return err
		}
		r.o.markup("\n" + ChannelEnd)
	}

	callsItem, _ := item(m, "tool_calls")
	if truthy(callsItem) {
		list, err := iterate(callsItem)
		if err != nil {
			return fmt.Errorf("tool_calls: %w", err)
		}
		for k, tc := range list {
			if err := r.toolCall(tc); err != nil {
				return fmt.Errorf("tool_calls[%d]: %w", k, err)
			}
		}
		r.prevType = "tool_call"
	}

	responded := false
	legacy, _ := dictGet(m, "tool_responses")
	if truthy(legacy) {
		list, err := iterate(legacy)
		if err != nil {
			return fmt.Errorf("tool_responses: %w", err)
		}
		for k, tr := range list {
			name, err := item(tr, "name")
			if err != nil {
				return fmt.Errorf("tool_responses[%d]: %w", k, err)
			}
			if name.Kind == Undefined {
				name = Str("unknown")
			}
			resp, _ := item(tr, "response")
			if err := toolResponseBlock(r.o, name, resp); err != nil {
				return fmt.Errorf("tool_responses[%d]: %w", k, err)
			}
			responded = true
			r.prevType = "tool_response"
		}
	} else if truthy(calls) {
		for k := i + 1; k < len(loop); k++ {
			if fr, _ := item(loop[k], "role"); !isStringConst(fr, "tool") {
				break
			}
			if err := r.toolResult(callsItem, loop[k]); err != nil {
				return fmt.Errorf("tool result (message %d): %w", k, err)
			}
			responded = true
			r.prevType = "tool_response"
		}
	}

	content, _ := item(m, "content")
	if content.Kind == String {
		if model {
			r.o.text(stripThinking(content.Str))
		} else {
			r.o.text(pyTrim(content.Str))
		}
	} else if isSequence(content) {
		parts, err := iterate(content)
		if err != nil {
			return err
		}
		for k, p := range parts {
			typ, _ := item(p, "type")
			switch {
			case isStringConst(typ, "text"):
				text, _ := item(p, "text")
				if model {
					if text.Kind != String {
						return fmt.Errorf("content[%d].text: %w", k, typeErr("%s has no split method", kindName(text)))
					}
					r.o.text(stripThinking(text.Str))
				} else {
					r.o.text(pyTrim(pyStr(text)))
				}
			case isStringConst(typ, "image"):
				r.o.markup(ImagePlaceholder)
				r.prevType = "image"
			case isStringConst(typ, "audio"):
				r.o.markup(AudioPlaceholder)
				r.prevType = "audio"
			case isStringConst(typ, "video"):
				r.o.markup(VideoPlaceholder)
				r.prevType = "video"
			}
		}
	}

	getContent, _ := dictGet(m, "content")
	if r.prevType == "tool_call" && !responded {
		r.o.markup(ToolResponseStart)
	} else if !(responded && !truthy(getContent)) {
		r.o.markup(TurnEnd + "\n")
	}
	return nil
}

// toolCall renders one entry of an assistant message's tool_calls.
func (r *g4) toolCall(tc Value) error {
	fn, err := item(tc, "function")
	if err != nil {
		return err
	}
	name, err := item(fn, "name")
	if err != nil {
		return err
	}
	r.o.markup(ToolCallStart + "call:")
	if err := r.o.textValue(name, "function name"); err != nil {
		return err
	}
	r.o.markup("{")
	args, _ := item(fn, "arguments")
	if isMapping(args) {
		ms, _ := dictsort(args)
		for k, m := range ms {
			if k > 0 {
				r.o.markup(",")
			}
			r.o.text(m.Key)
			r.o.markup(":")
			if err := formatArgument(r.o, m.Value, false); err != nil {
				return err
			}
		}
	} else if args.Kind == String {
		r.o.text(args.Str)
	}
	r.o.markup("}" + ToolCallEnd)
	return nil
}

// toolResult renders a role "tool" message that follows an assistant message
// with tool calls; the function name comes from the call with the same id.
func (r *g4) toolResult(calls Value, follow Value) error {
	name, err := dictGet(follow, "name")
	if err != nil {
		return err
	}
	id, err := dictGet(follow, "tool_call_id")
	if err != nil {
		return err
	}
	list, err := iterate(calls)
	if err != nil {
		return err
	}
	for _, tc := range list {
		tcID, err := dictGet(tc, "id")
		if err != nil {
			return err
		}
		if pyEqual(tcID, id) {
			fn, err := item(tc, "function")
			if err != nil {
				return err
			}
			if name, err = item(fn, "name"); err != nil {
				return err
			}
		}
	}
	body, _ := dictGet(follow, "content")
	if body.Kind != String && isSequence(body) {
		parts, err := iterate(body)
		if err != nil {
			return err
		}
		var text strings.Builder
		for _, p := range parts {
			typ, err := dictGet(p, "type")
			if err != nil {
				return err
			}
			if isStringConst(typ, "text") {
				t, _ := dictGet(p, "text")
				s, err := concat(t)
				if err != nil {
					return fmt.Errorf("text part: %w", err)
				}
				text.WriteString(s)
			}
		}
		body = Str(text.String())
	}
	if name.Kind == Null {
		return fmt.Errorf("tool result for id %s: no tool call has that id and the message has no name: %w",
			pyStr(id), typeErr("can only concatenate str (not null) to str"))
	}
	return toolResponseBlock(r.o, name, body)
}

// toolResponseBlock renders <|tool_response>response:NAME{...}<tool_response|>.
func toolResponseBlock(o *out, name, resp Value) error {
	o.markup(ToolResponseStart + "response:")
	if err := o.textValue(name, "tool response name"); err != nil {
		return err
	}
	o.markup("{")
	if isMapping(resp) {
		ms, _ := dictsort(resp)
		for k, m := range ms {
			o.text(m.Key)
			o.markup(":")
			if err := formatArgument(o, m.Value, false); err != nil {
				return err
			}
			if k < len(ms)-1 {
				o.markup(",")
			}
		}
	} else {
		o.markup("value:")
		if err := formatArgument(o, resp, false); err != nil {
			return err
		}
	}
	o.markup("}" + ToolResponseEnd)
	return nil
}

// stripThinking removes <|channel>…<channel|> spans from earlier model turns
// and trims the rest, as the template's strip_thinking macro does.
func stripThinking(text string) string {
	var sb strings.Builder
	for _, part := range strings.Split(text, ChannelEnd) {
		if before, _, found := strings.Cut(part, ChannelStart); found {
			sb.WriteString(before)
		} else {
			sb.WriteString(part)
		}
	}
	return pyTrim(sb.String())
}

// formatArgument writes a value in Gemma 4's argument syntax: strings in
// <|"|> quotes, true/false, {key:value,...} with keys sorted (quoted when
// escapeKeys), [a,b], and anything else as Python prints it.
func formatArgument(o *out, v Value, escapeKeys bool) error {
	switch {
	case v.Kind == String:
		o.markup(Quote)
		o.text(v.Str)
		o.markup(Quote)
	case v.Kind == Bool:
		if v.Bool {
			o.markup("true")
		} else {
			o.markup("false")
		}
	case isMapping(v):
		o.markup("{")
		ms, _ := dictsort(v)
		for k, m := range ms {
			if k > 0 {
				o.markup(",")
			}
			if escapeKeys {
				o.markup(Quote)
				o.text(m.Key)
				o.markup(Quote)
			} else {
				o.text(m.Key)
			}
			o.markup(":")
			if err := formatArgument(o, m.Value, escapeKeys); err != nil {
				return err
			}
		}
		o.markup("}")
	case isSequence(v):
		o.markup("[")
		items, err := iterate(v)
		if err != nil {
			return err
		}
		for k, e := range items {
			if k > 0 {
				o.markup(",")
			}
			if err := formatArgument(o, e, escapeKeys); err != nil {
				return err
			}
		}
		o.markup("]")
	default:
		o.text(pyStr(v))
	}
	return nil
}
