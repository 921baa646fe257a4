// Package infotext formats and parses AUTOMATIC1111's "infotext": the
// generation parameters stored in a PNG's "parameters" text chunk and shown
// by A1111's PNG Info. The prompt comes first (one or more lines), then an
// optional "Negative prompt: …" part, then one settings line of "Key: value" pairs
// separated by ", ", values with a comma, colon or newline JSON-quoted.
package infotext

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KV is one setting.
type KV struct {
	Key, Value string
}

// Params is a parsed infotext.
type Params struct {
	Prompt, Negative string
	Settings         []KV // in order
}

// Get returns the value of the setting key.
func (p Params) Get(key string) (string, bool) {
	for _, kv := range p.Settings {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Set replaces the value of key in place, or appends the setting.
func (p *Params) Set(key, value string) {
	for i := range p.Settings {
		if p.Settings[i].Key == key {
			p.Settings[i].Value = value
			return
		}
	}
	p.Settings = append(p.Settings, KV{key, value})
}

// negPrefix starts the negative prompt's first line.
const negPrefix = "Negative prompt:"

// MaxLen is the longest text Parse accepts.
const MaxLen = 1 << 20

// Format writes p as A1111's create_infotext does: the prompt, then
// "\nNegative prompt: " and the negative prompt if there is one, then a
// newline and the settings joined by ", " (a setting whose value equals its
// key is written as the key alone), all trimmed of surrounding whitespace.
func Format(p Params) string {
	var sb strings.Builder
	sb.WriteString(p.Prompt)
	if p.Negative != "" {
		sb.WriteString("\n" + negPrefix + " " + p.Negative)
	}
	sb.WriteByte('\n')
	for i, kv := range p.Settings {
		if i > 0 {
			sb.WriteString(", ")
		}
		if kv.Key == kv.Value {
			sb.WriteString(kv.Key)
			continue
		}
		sb.WriteString(kv.Key + ": " + Quote(kv.Value))
	}
	return strings.TrimFunc(sb.String(), isPySpace)
}

// Quote returns v unchanged unless it holds a comma, colon or newline; then
// it is a JSON string with non-ASCII characters kept (Python's json.dumps
// with ensure_ascii=False).
func Quote(v string) string {
	if !strings.ContainsAny(v, ",:\n") {
		return v
	}
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range v {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			if r < 0x20 {
				sb.WriteString(`\u00`)
				sb.WriteString(strconv.FormatUint(uint64(r)>>4, 16))
				sb.WriteString(strconv.FormatUint(uint64(r)&15, 16))
			} else {
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// Unquote undoes Quote: a value in double quotes that is a valid JSON
// string is decoded; anything else is returned as it is.
func Unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return v
	}
	return s
}

// Parse reads an infotext as A1111's parse_generation_parameters does: the
// last line is the settings line if at least three "Key: value" pairs are
// found in it, otherwise it belongs to the prompt; lines from the one
// starting "Negative prompt:" on are the negative prompt; each prompt line
// is trimmed. Settings are matched like A1111's `\s*(\w[\w \-/]+):\s*("…"|
// [^,]*)(?:,|$)`: text that is not a pair is skipped, a setting with an
// empty value is dropped, a repeated key keeps its first position and last
// value. Values are not interpreted (A1111 splits "Size: 512x512" into
// Size-1 and Size-2 afterwards; here it stays "512x512").
//
// One extension: an unquoted value that starts with "{" or "[" runs to its
// matching bracket, so the JSON that stable-diffusion.cpp writes unquoted
// ("SDCPP: {…}") stays one value.
//
// The error is for text that is not UTF-8 or longer than MaxLen; anything
// else parses.
func Parse(text string) (Params, error) {
	var p Params
	if len(text) > MaxLen {
		return p, errors.New("infotext: text longer than 1 MiB")
	}
	if !utf8.ValidString(text) {
		return p, errors.New("infotext: text is not valid UTF-8")
	}
	lines := strings.Split(strings.TrimFunc(text, isPySpace), "\n")
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	settings := findPairs(last)
	if len(settings) < 3 {
		lines = append(lines, last)
		settings = nil
	}
	negative := false
	var prompt, neg []string
	for _, line := range lines {
		line = strings.TrimFunc(line, isPySpace)
		if strings.HasPrefix(line, negPrefix) {
			negative = true
			line = strings.TrimFunc(line[len(negPrefix):], isPySpace)
		}
		if negative {
			neg = append(neg, line)
		} else {
			prompt = append(prompt, line)
		}
	}
	p.Prompt = joinLines(prompt)
	p.Negative = joinLines(neg)
	for _, kv := range settings {
		if kv.Value == "" {
			continue // A1111 fails on v[0] and skips the setting
		}
		if kv.Value[0] == '"' && kv.Value[len(kv.Value)-1] == '"' {
			kv.Value = Unquote(kv.Value)
		}
		p.Set(kv.Key, kv.Value)
	}
	return p, nil
}

// joinLines joins lines with "\n" the way A1111 accumulates them: an empty
// line at the start is absorbed (it appends "\n" only to a non-empty text).
func joinLines(lines []string) string {
	s := ""
	for _, l := range lines {
		if s != "" {
			s += "\n"
		}
		s += l
	}
	return s
}

// findPairs returns every "Key: value" match in a settings line, values
// still quoted.
func findPairs(line string) []KV {
	var out []KV
	for i := 0; i < len(line); {
		kv, end, ok := pairAt(line, i)
		if !ok {
			_, sz := utf8.DecodeRuneInString(line[i:])
			i += sz
			continue
		}
		out = append(out, kv)
		i = end
	}
	return out
}

// pairAt matches one setting at line[i:], returning it and the index after
// its comma.
func pairAt(line string, i int) (KV, int, bool) {
	i = skipSpace(line, i)
	r, sz := utf8.DecodeRuneInString(line[i:])
	if i >= len(line) || !isWord(r) {
		return KV{}, 0, false
	}
	start, j := i, i+sz
	for j < len(line) {
		r, sz := utf8.DecodeRuneInString(line[j:])
		if !isWord(r) && r != ' ' && r != '-' && r != '/' {
			break
		}
		j += sz
	}
	if j >= len(line) || line[j] != ':' || utf8.RuneCountInString(line[start:j]) < 2 {
		return KV{}, 0, false
	}
	key := line[start:j]
	v := skipSpace(line, j+1)
	if v < len(line) && line[v] == '"' {
		if e := quotedEnd(line, v); e > 0 && (e == len(line) || line[e] == ',') {
			return KV{key, line[v:e]}, min(e+1, len(line)), true
		}
	}
	if v < len(line) && (line[v] == '{' || line[v] == '[') {
		if e := bracketEnd(line, v); e > 0 && (e == len(line) || line[e] == ',') {
			return KV{key, line[v:e]}, min(e+1, len(line)), true
		}
	}
	e := strings.IndexByte(line[v:], ',')
	if e < 0 {
		return KV{key, line[v:]}, len(line), true
	}
	return KV{key, line[v : v+e]}, v + e + 1, true
}

// quotedEnd matches `"(?:\\.|[^\\"])+"` at s[i:] and returns the index after
// the closing quote, or 0.
func quotedEnd(s string, i int) int {
	j := i + 1
	for j < len(s) {
		switch s[j] {
		case '\\':
			if j+1 >= len(s) || s[j+1] == '\n' {
				return 0
			}
			_, sz := utf8.DecodeRuneInString(s[j+1:])
			j += 1 + sz
		case '"':
			if j == i+1 {
				return 0 // at least one character inside
			}
			return j + 1
		default:
			j++
		}
	}
	return 0
}

// bracketEnd returns the index after the bracket matching s[i] ("{" or
// "["), skipping JSON strings, or 0.
func bracketEnd(s string, i int) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		case '"':
			e := quotedEnd(s, j)
			if e == 0 {
				if j+1 < len(s) && s[j+1] == '"' {
					j++ // an empty string
					continue
				}
				return 0
			}
			j = e - 1
		}
	}
	return 0
}

func skipSpace(s string, i int) int {
	for i < len(s) {
		r, sz := utf8.DecodeRuneInString(s[i:])
		if !isPySpace(r) {
			break
		}
		i += sz
	}
	return i
}

// isPySpace is Python's str.isspace (what strip() and \s remove).
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// isWord is Python's \w on str: letters, digits and other numbers, "_".
func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }
