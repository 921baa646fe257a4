package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// lexer is a small JSON reader for the large parts of tokenizer.json
// (hundreds of thousands of vocabulary entries and merges), several times
// faster than decoding them with encoding/json. Small parts are cut out with
// skip and handed to encoding/json.
type lexer struct {
	b   []byte
	i   int
	buf []byte // scratch for strings with escapes
}

func (l *lexer) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON offset %d: %s", l.i, fmt.Sprintf(format, args...))
}

func (l *lexer) ws() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (l *lexer) peek() byte {
	l.ws()
	if l.i >= len(l.b) {
		return 0
	}
	return l.b[l.i]
}

func (l *lexer) expect(c byte) error {
	if l.peek() != c {
		if l.i >= len(l.b) {
			return l.errorf("unexpected end, want %q", c)
		}
		return l.errorf("found %q, want %q", l.b[l.i], c)
	}
	l.i++
	return nil
}

// strBytes reads a string. The result aliases the input or the scratch
// buffer: valid until the next call.
func (l *lexer) strBytes() ([]byte, error) {
	if err := l.expect('"'); err != nil {
		return nil, err
	}
	start := l.i
	for l.i < len(l.b) {
		c := l.b[l.i]
		if c == '"' {
			l.i++
			return l.b[start : l.i-1], nil
		}
		if c == '\\' {
			return l.slowString(start)
		}
		if c < 0x20 {
			return nil, l.errorf("control character in string")
		}
		l.i++
	}
	return nil, l.errorf("unterminated string")
}

func (l *lexer) slowString(start int) ([]byte, error) {
	buf := append(l.buf[:0], l.b[start:l.i]...)
	for l.i < len(l.b) {
		c := l.b[l.i]
		switch {
		case c == '"':
			l.i++
			l.buf = buf
			return buf, nil
		case c < 0x20:
			return nil, l.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			l.i++
			continue
		}
		if l.i+1 >= len(l.b) {
			return nil, l.errorf("unterminated escape")
		}
		e := l.b[l.i+1]
		l.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := l.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				// a pair \uD83D\uDE00; a lone half becomes U+FFFD (as encoding/json)
				if l.i+1 < len(l.b) && l.b[l.i] == '\\' && l.b[l.i+1] == 'u' {
					save := l.i
					l.i += 2
					r2, err := l.hex4()
					if err != nil {
						return nil, err
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
					} else {
						l.i = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, l.errorf("bad escape \\%c", e)
		}
	}
	return nil, l.errorf("unterminated string")
}

func (l *lexer) hex4() (rune, error) {
	if l.i+4 > len(l.b) {
		return 0, l.errorf("short \\u escape")
	}
	v, err := strconv.ParseUint(string(l.b[l.i:l.i+4]), 16, 32)
	if err != nil {
		return 0, l.errorf("bad \\u escape %q", l.b[l.i:l.i+4])
	}
	l.i += 4
	return rune(v), nil
}

func (l *lexer) str() (string, error) {
	b, err := l.strBytes()
	return string(b), err
}

// integer reads a JSON integer.
func (l *lexer) integer() (int64, error) {
	l.ws()
	start := l.i
	if l.i < len(l.b) && l.b[l.i] == '-' {
		l.i++
	}
	for l.i < len(l.b) && l.b[l.i] >= '0' && l.b[l.i] <= '9' {
		l.i++
	}
	v, err := strconv.ParseInt(string(l.b[start:l.i]), 10, 64)
	if err != nil {
		l.i = start
		return 0, l.errorf("want an integer")
	}
	return v, nil
}

// object calls fn for each key; fn must consume the value.
func (l *lexer) object(fn func(key []byte) error) error {
	if err := l.expect('{'); err != nil {
		return err
	}
	if l.peek() == '}' {
		l.i++
		return nil
	}
	for {
		k, err := l.strBytes()
		if err != nil {
			return err
		}
		if err := l.expect(':'); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.i++
		case '}':
			l.i++
			return nil
		default:
			return l.errorf("want ',' or '}' in object")
		}
	}
}

// array calls fn for each element; fn must consume it.
func (l *lexer) array(fn func(i int) error) error {
	if err := l.expect('['); err != nil {
		return err
	}
	if l.peek() == ']' {
		l.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := fn(n); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.i++
		case ']':
			l.i++
			return nil
		default:
			return l.errorf("want ',' or ']' in array")
		}
	}
}

// skip passes over one value and returns its bytes.
func (l *lexer) skip() ([]byte, error) {
	c := l.peek()
	start := l.i
	switch {
	case c == '"':
		if _, err := l.strBytes(); err != nil {
			return nil, err
		}
	case c == '{' || c == '[':
		depth := 0
		for l.i < len(l.b) {
			switch l.b[l.i] {
			case '"':
				if _, err := l.strBytes(); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					l.i++
					return l.b[start:l.i], nil
				}
			}
			l.i++
		}
		return nil, l.errorf("unterminated value")
	case c == 0:
		return nil, l.errorf("unexpected end")
	default: // number, true, false, null
		for l.i < len(l.b) {
			switch l.b[l.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return l.b[start:l.i], nil
			}
			l.i++
		}
	}
	if l.i == start {
		return nil, errors.New("empty value")
	}
	return l.b[start:l.i], nil
}
