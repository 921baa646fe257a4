package chat

import (
	"fmt"
	"strconv"
)

// Messages the Gemma 3 template raises (raise_exception), word for word.
const (
	gemma3AlternateMsg = "Conversation roles must alternate user/assistant/user/assistant/..."
	gemma3ContentMsg   = "Invalid content type"
)

// RenderGemma3Vars renders the Gemma 3 chat template for the given variables.
// Gemma 3 has no system role (a leading system message is folded into the
// first turn, followed by a blank line), no thinking and no tool syntax: the
// template refuses any conversation whose roles do not alternate user, model,
// user, … — which includes every OpenAI-style tool result — with an error
// wrapping ErrTemplate. tools and enable_thinking are ignored.
func RenderGemma3Vars(v Vars) (string, error) {
	segs, err := RenderSegments("gemma3", v)
	return Join(segs), err
}

func renderGemma3(b *out, v Vars) error {
	msgs := v.Messages
	if msgs.Kind != Array {
		return typeErr("messages is %s, not an array", kindName(msgs))
	}
	b.markup(v.BOS)
	first, err := index(msgs, 0)
	if err != nil {
		return err
	}
	if first.Kind == Undefined {
		return undefinedErr("messages has no element 0")
	}
	firstRole, _ := item(first, "role")
	loop := msgs.Arr
	prefix, hasPrefix := "", false
	if isStringConst(firstRole, "system") {
		hasPrefix = true
		c, _ := item(first, "content")
		if c.Kind == String {
			prefix = c.Str
		} else {
			p0, err := index(c, 0)
			if err != nil {
				return fmt.Errorf("system message content: %w", err)
			}
			t, err := item(p0, "text")
			if err != nil {
				return fmt.Errorf("system message content[0]: %w", err)
			}
			if prefix, err = concat(t); err != nil {
				return fmt.Errorf("system message content[0].text: %w", err)
			}
		}
		loop = loop[1:]
	}
	for i, m := range loop {
		n := i + len(msgs.Arr) - len(loop)
		role, _ := item(m, "role")
		if isStringConst(role, "user") != (i%2 == 0) {
			desc := kindName(role)
			if role.Kind == String {
				desc = strconv.Quote(role.Str)
			}
			return fmt.Errorf("message %d (role %s): %w", n, desc, &raiseError{gemma3AlternateMsg})
		}
		if isStringConst(role, "assistant") {
			role = Str("model")
		}
		b.markup(Gemma3TurnStart)
		if err := b.textValue(role, fmt.Sprintf("message %d role", n)); err != nil {
			return err
		}
		b.markup("\n")
		if i == 0 && hasPrefix {
			b.text(prefix)
			b.markup("\n\n")
		}
		c, _ := item(m, "content")
		switch {
		case c.Kind == String:
			b.text(pyTrim(c.Str))
		case isIterable(c):
			parts, err := iterate(c)
			if err != nil {
				return err
			}
			for _, part := range parts {
				typ, _ := item(part, "type")
				if isStringConst(typ, "image") {
					b.markup(Gemma3Image)
				} else if isStringConst(typ, "text") {
					t, _ := item(part, "text")
					b.text(pyTrim(pyStr(t)))
				}
			}
		default:
			return fmt.Errorf("message %d content is %s: %w", n, kindName(c), &raiseError{gemma3ContentMsg})
		}
		b.markup(Gemma3TurnEnd + "\n")
	}
	if truthy(v.AddGenerationPrompt) {
		b.markup(Gemma3TurnStart + "model\n")
	}
	return nil
}
