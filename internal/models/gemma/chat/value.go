package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Kind is the type of a Value, as the Jinja templates see it (Python's JSON types).
type Kind uint8

// The kinds of Value. Undefined is what Jinja yields for a missing key: it is not
// JSON, prints as "", is false, and iterates as empty.
const (
	Undefined Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

// Value is a JSON value that keeps object members in the order the JSON text
// gives them: Jinja iterates Python dicts in insertion order, and json.loads
// inserts keys in text order. The zero Value is Undefined.
type Value struct {
	Kind Kind
	Bool bool
	// Num is the JSON text of a Number (e.g. "42", "1.5e3").
	Num string
	// Str is the text of a String.
	Str string
	// Arr holds the elements of an Array.
	Arr []Value
	// Obj holds the members of an Object, in text order, keys unique.
	Obj []Member
}

// Member is one key/value pair of an Object.
type Member struct {
	Key   string
	Value Value
}

// Str returns a String Value.
func Str(s string) Value { return Value{Kind: String, Str: s} }

// Get returns the member key of an Object and whether it exists. Any other
// kind has no members.
func (v Value) Get(key string) (Value, bool) {
	if v.Kind != Object {
		return Value{}, false
	}
	for _, m := range v.Obj {
		if m.Key == key {
			return m.Value, true
		}
	}
	return Value{}, false
}

// set replaces the value of key in an Object, or appends the member.
func (v *Value) set(key string, val Value) {
	for i := range v.Obj {
		if v.Obj[i].Key == key {
			v.Obj[i].Value = val
			return
		}
	}
	v.Obj = append(v.Obj, Member{key, val})
}

// ParseValue decodes one JSON value, keeping object key order. A key given
// twice keeps its first position and its last value, as Python's json does.
// NaN and Infinity literals, which Python accepts, are not JSON and are refused.
func ParseValue(data []byte) (Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return Value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Value{}, errors.New("json: extra data after the value")
	}
	return v, nil
}

// maxJSONDepth bounds nesting (Python's json gives up near 1000 too).
const maxJSONDepth = 1000

func decodeValue(dec *json.Decoder, depth int) (Value, error) {
	if depth > maxJSONDepth {
		return Value{}, fmt.Errorf("json: nested deeper than %d", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return Value{}, io.ErrUnexpectedEOF
		}
		return Value{}, err
	}
	return decodeFrom(dec, tok, depth)
}

func decodeFrom(dec *json.Decoder, tok json.Token, depth int) (Value, error) {
	switch t := tok.(type) {
	case nil:
		return Value{Kind: Null}, nil
	case bool:
		return Value{Kind: Bool, Bool: t}, nil
	case json.Number:
		return Value{Kind: Number, Num: string(t)}, nil
	case string:
		return Str(t), nil
	case json.Delim:
		switch t {
		case '[':
			v := Value{Kind: Array, Arr: []Value{}}
			for dec.More() {
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return Value{}, err
				}
				v.Arr = append(v.Arr, e)
			}
			_, err := dec.Token() // ']'
			return v, err
		case '{':
			v := Value{Kind: Object, Obj: []Member{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return Value{}, err
				}
				key, ok := kt.(string)
				if !ok {
					return Value{}, fmt.Errorf("json: object key is %v, not a string", kt)
				}
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return Value{}, err
				}
				v.set(key, e)
			}
			_, err := dec.Token() // '}'
			return v, err
		}
	}
	return Value{}, fmt.Errorf("json: unexpected token %v", tok)
}

// MarshalJSON writes the value as compact JSON, keys in order. Undefined is
// written as null.
func (v Value) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	v.writeJSON(&b)
	return b.Bytes(), nil
}

func (v Value) writeJSON(b *bytes.Buffer) {
	switch v.Kind {
	case Bool:
		if v.Bool {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case Number:
		b.WriteString(v.Num)
	case String:
		writeJSONString(b, v.Str)
	case Array:
		b.WriteByte('[')
		for i, e := range v.Arr {
			if i > 0 {
				b.WriteByte(',')
			}
			e.writeJSON(b)
		}
		b.WriteByte(']')
	case Object:
		b.WriteByte('{')
		for i, m := range v.Obj {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, m.Key)
			b.WriteByte(':')
			m.Value.writeJSON(b)
		}
		b.WriteByte('}')
	default:
		b.WriteString("null")
	}
}

// writeJSONString writes s as a JSON string, without escaping <, > and &
// (which json.Marshal would, and which special-token text is full of).
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// ---- Python/Jinja semantics over Value ----

// truthy is Python's bool(): None, false, 0, "", [], {} and Undefined are false.
func truthy(v Value) bool {
	switch v.Kind {
	case Bool:
		return v.Bool
	case Number:
		return !parseNum(v.Num).isZero()
	case String:
		return v.Str != ""
	case Array:
		return len(v.Arr) > 0
	case Object:
		return len(v.Obj) > 0
	}
	return false
}

// isInt reports whether JSON number text is an integer literal (Python's json
// makes an int of it; anything with a fraction or exponent is a float).
func isInt(num string) bool { return !strings.ContainsAny(num, ".eE") }

// pyNum is the value of a JSON number as Python holds it: an exact integer,
// or a float64 (which may be ±Inf when the literal overflows).
type pyNum struct {
	rat *big.Rat // exact value when finite
	inf int      // +1 or -1 for ±Inf
	f   float64  // the float, for float literals
}

func parseNum(num string) pyNum {
	if isInt(num) {
		r, ok := new(big.Rat).SetString(num)
		if !ok {
			r = new(big.Rat)
		}
		return pyNum{rat: r}
	}
	x, _ := strconv.ParseFloat(num, 64) // ErrRange still yields ±Inf or 0
	if math.IsInf(x, 0) {
		s := 1
		if x < 0 {
			s = -1
		}
		return pyNum{inf: s, f: x}
	}
	return pyNum{rat: new(big.Rat).SetFloat64(x), f: x}
}

func (n pyNum) isZero() bool { return n.inf == 0 && n.rat.Sign() == 0 }

func (n pyNum) equal(o pyNum) bool {
	if n.inf != 0 || o.inf != 0 {
		return n.inf == o.inf
	}
	return n.rat.Cmp(o.rat) == 0
}

// pyEqual is Python's == between JSON values (1 == 1.0 == true; dicts compare
// as sets of members). Undefined equals only Undefined.
func pyEqual(a, b Value) bool {
	an, aok := numLike(a)
	bn, bok := numLike(b)
	if aok || bok {
		return aok && bok && an.equal(bn)
	}
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case String:
		return a.Str == b.Str
	case Array:
		if len(a.Arr) != len(b.Arr) {
			return false
		}
		for i := range a.Arr {
			if !pyEqual(a.Arr[i], b.Arr[i]) {
				return false
			}
		}
		return true
	case Object:
		if len(a.Obj) != len(b.Obj) {
			return false
		}
		for _, m := range a.Obj {
			o, ok := b.Get(m.Key)
			if !ok || !pyEqual(m.Value, o) {
				return false
			}
		}
		return true
	}
	return true // Null, Undefined
}

// numLike returns the numeric value of a Number or Bool (Python's bool is an int).
func numLike(v Value) (pyNum, bool) {
	switch v.Kind {
	case Number:
		return parseNum(v.Num), true
	case Bool:
		if v.Bool {
			return pyNum{rat: big.NewRat(1, 1)}, true
		}
		return pyNum{rat: new(big.Rat)}, true
	}
	return pyNum{}, false
}

// isStringConst reports whether v == s in Python (v a str equal to s).
func isStringConst(v Value, s string) bool { return v.Kind == String && v.Str == s }

// pyStr is Python's str() of the value as Jinja prints it ({{ v }}, and the
// string filters): strings as they are, other values as their repr,
// Undefined as "".
func pyStr(v Value) string {
	switch v.Kind {
	case Undefined:
		return ""
	case String:
		return v.Str
	}
	var b strings.Builder
	pyRepr(&b, v)
	return b.String()
}

// pyRepr writes Python's repr() of the value.
func pyRepr(b *strings.Builder, v Value) {
	switch v.Kind {
	case Null, Undefined:
		b.WriteString("None")
	case Bool:
		if v.Bool {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case Number:
		b.WriteString(pyNumber(v.Num))
	case String:
		pyReprString(b, v.Str)
	case Array:
		b.WriteByte('[')
		for i, e := range v.Arr {
			if i > 0 {
				b.WriteString(", ")
			}
			pyRepr(b, e)
		}
		b.WriteByte(']')
	case Object:
		b.WriteByte('{')
		for i, m := range v.Obj {
			if i > 0 {
				b.WriteString(", ")
			}
			pyReprString(b, m.Key)
			b.WriteString(": ")
			pyRepr(b, m.Value)
		}
		b.WriteByte('}')
	}
}

// pyNumber is str() of the int or float Python's json makes of a JSON number.
func pyNumber(num string) string {
	if isInt(num) {
		if strings.TrimLeft(num, "-0") == "" {
			return "0" // "-0" is the int 0
		}
		return num
	}
	return pyFloatRepr(parseNum(num).f)
}

// pyFloatRepr is Python's repr(float): the shortest digits that round-trip,
// positional when the decimal exponent is in [-4, 16), else scientific with
// at least two exponent digits; always a '.0' or exponent.
func pyFloatRepr(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case math.IsNaN(x):
		return "nan"
	}
	s := strconv.FormatFloat(x, 'e', -1, 64) // d.ddddde±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1 // value = 0.digits × 10^decpt
	if x == 0 {
		decpt = 1
	}
	if decpt > -4 && decpt <= 16 {
		var out string
		switch {
		case decpt <= 0:
			out = "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			out = digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			out = digits[:decpt] + "." + digits[decpt:]
		}
		return sign + out
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	e := decpt - 1
	es := "+"
	if e < 0 {
		es, e = "-", -e
	}
	return fmt.Sprintf("%s%se%s%02d", sign, m, es, e)
}

// pyReprString writes Python's repr() of a str.
func pyReprString(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case r < 0x7f:
			b.WriteRune(r)
		case pyPrintable(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
}
