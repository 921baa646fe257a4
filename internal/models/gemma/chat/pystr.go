package chat

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the Python string semantics the templates rely on (trim,
// upper, dictsort's case folding, printability for repr) and the few Jinja
// operations on values (item lookup, iteration, tests, concatenation).
//
// Known differences from CPython, all outside what chat requests contain:
// upper/lower use Go's simple case mappings (Python's full mappings turn 'ß'
// into "SS" and 'İ' into "i̇"), and Go's Unicode tables may be a version apart
// from Python's for printability.

// pyIsSpace is Python's str.isspace() for one character: Unicode White_Space
// plus the separators U+001C..U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyTrim is Python's str.strip() with no argument (Jinja's trim filter).
func pyTrim(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pyUpper is Python's str.upper() (Jinja's upper filter).
func pyUpper(s string) string { return strings.ToUpper(s) }

// pyPrintable is Python's str.isprintable() for one non-ASCII character:
// false for the categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs.
func pyPrintable(r rune) bool {
	if r == utf8.RuneError || !utf8.ValidRune(r) {
		return false
	}
	if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Cs, unicode.Co, unicode.Zl, unicode.Zp, unicode.Zs) {
		return false
	}
	// Assigned characters belong to one of these; Cn (unassigned) to none.
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// templateError is what Jinja raises when a template uses an undefined or
// mistyped value in a way that needs a real one (item lookup, concatenation,
// a call, iteration).
type templateError struct{ msg string }

func (e *templateError) Error() string { return e.msg }

func undefinedErr(format string, args ...any) error {
	return &templateError{"undefined value: " + fmt.Sprintf(format, args...)}
}

func typeErr(format string, args ...any) error {
	return &templateError{"type error: " + fmt.Sprintf(format, args...)}
}

// ErrTemplate is wrapped by errors the template itself raises
// (raise_exception), as opposed to errors from undefined or mistyped values.
var ErrTemplate = errors.New("chat template refused the conversation")

type raiseError struct{ msg string }

func (e *raiseError) Error() string { return e.msg }
func (e *raiseError) Unwrap() error { return ErrTemplate }

// item is Jinja's v[key] for a string key: a member of an object; Undefined
// for a missing member or a value without members; an error when v itself is
// Undefined.
func item(v Value, key string) (Value, error) {
	if v.Kind == Undefined {
		return Value{}, undefinedErr("lookup of %q on an undefined value", key)
	}
	m, _ := v.Get(key)
	return m, nil
}

// index is Jinja's v[i] for an integer: an element of an array; Undefined
// when out of range or v is no array; an error when v itself is Undefined.
func index(v Value, i int) (Value, error) {
	if v.Kind == Undefined {
		return Value{}, undefinedErr("index %d of an undefined value", i)
	}
	if v.Kind == Array && i >= 0 && i < len(v.Arr) {
		return v.Arr[i], nil
	}
	if v.Kind == String {
		rs := []rune(v.Str)
		if i >= 0 && i < len(rs) {
			return Str(string(rs[i])), nil
		}
	}
	return Value{}, nil
}

// dictGet is Python's dict.get(key): the member or None. On a value that is
// not an object there is no get method, and calling it fails.
func dictGet(v Value, key string) (Value, error) {
	if v.Kind != Object {
		return Value{}, undefinedErr("%s has no get method (looking up %q)", kindName(v), key)
	}
	if m, ok := v.Get(key); ok {
		return m, nil
	}
	return Value{Kind: Null}, nil
}

func kindName(v Value) string {
	switch v.Kind {
	case Null:
		return "null"
	case Bool:
		return "a boolean"
	case Number:
		return "a number"
	case String:
		return "a string"
	case Array:
		return "an array"
	case Object:
		return "an object"
	}
	return "an undefined value"
}

// iterate is Jinja's for-loop over v: array elements, object keys, the
// characters of a string; Undefined iterates as empty; other values fail.
func iterate(v Value) ([]Value, error) {
	switch v.Kind {
	case Undefined:
		return nil, nil
	case Array:
		return v.Arr, nil
	case Object:
		out := make([]Value, len(v.Obj))
		for i, m := range v.Obj {
			out[i] = Str(m.Key)
		}
		return out, nil
	case String:
		var out []Value
		for _, r := range v.Str {
			out = append(out, Str(string(r)))
		}
		return out, nil
	}
	return nil, typeErr("%s is not iterable", kindName(v))
}

// isMapping, isSequence, isIterable are Jinja's tests of those names.
func isMapping(v Value) bool { return v.Kind == Object }

// isSequence is true for strings, arrays, objects and (oddly) Undefined,
// which has a length and an item method.
func isSequence(v Value) bool {
	switch v.Kind {
	case String, Array, Object, Undefined:
		return true
	}
	return false
}

func isIterable(v Value) bool { return isSequence(v) }

// dictsort returns an object's members sorted by key, ignoring case (Jinja's
// default), keeping text order between keys equal when lowered.
func dictsort(v Value) ([]Member, error) {
	if v.Kind != Object {
		return nil, typeErr("dictsort of %s", kindName(v))
	}
	ms := append([]Member(nil), v.Obj...)
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.ToLower(ms[i].Key) < strings.ToLower(ms[j].Key)
	})
	return ms, nil
}

// concat is Python's str + str; anything else fails as it does in Jinja.
func concat(parts ...Value) (string, error) {
	var b strings.Builder
	for _, p := range parts {
		switch p.Kind {
		case String:
			b.WriteString(p.Str)
		case Undefined:
			return "", undefinedErr("an undefined value in a string concatenation")
		default:
			return "", typeErr("can only concatenate str (not %s) to str", kindName(p))
		}
	}
	return b.String(), nil
}

// contains is Python's `needle in hay` for a string needle.
func contains(hay Value, needle string) (bool, error) {
	switch hay.Kind {
	case Undefined:
		return false, nil
	case String:
		return strings.Contains(hay.Str, needle), nil
	case Object:
		_, ok := hay.Get(needle)
		return ok, nil
	case Array:
		for _, e := range hay.Arr {
			if isStringConst(e, needle) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, typeErr("argument of type %s is not iterable", kindName(hay))
}
