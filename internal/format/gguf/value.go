package gguf

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ValueType is a GGUF metadata value type (gguf_type). The numeric values
// are the ones stored in files.
type ValueType uint32

// The GGUF metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var typeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32",
	"float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String is the type's name, e.g. "uint32".
func (t ValueType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Valid reports whether t is one of the GGUF value types.
func (t ValueType) Valid() bool { return t <= TypeFloat64 }

// size is the encoded size of a fixed-size type, 0 for string and array.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// Value is a typed GGUF metadata value: a scalar of one of the GGUF types,
// or an array whose elements all have one type (arrays of arrays are
// allowed; each inner array has its own element type).
//
// The zero Value is the uint8 0. Slices returned by the array accessors are
// shared with the Value and must not be modified.
type Value struct {
	typ  ValueType
	elem ValueType // element type when typ == TypeArray
	num  uint64    // integer, bool or float bits of a scalar
	str  string    // a string scalar
	arr  any       // []uint8 ... []float64, []bool, []string, or []Value for arrays of arrays
}

// Type is the value's type; TypeArray for arrays.
func (v Value) Type() ValueType { return v.typ }

// ElemType is the element type of an array (TypeArray for an array of
// arrays). It is meaningless for scalars.
func (v Value) ElemType() ValueType { return v.elem }

// IsArray reports whether v is an array.
func (v Value) IsArray() bool { return v.typ == TypeArray }

// Len is the number of elements of an array, 0 for a scalar.
func (v Value) Len() int {
	switch a := v.arr.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []Value:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	}
	return 0
}

// TypeName describes the value's type for messages: "uint32", "array of string".
func (v Value) TypeName() string {
	if v.typ == TypeArray {
		return "array of " + v.elem.String()
	}
	return v.typ.String()
}

// Element is one element type of an array, or a scalar's Go type.
type Element interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

// ValueOf makes a scalar value; the GGUF type follows the Go type.
func ValueOf[T Element](x T) Value {
	switch x := any(x).(type) {
	case uint8:
		return Value{typ: TypeUint8, num: uint64(x)}
	case int8:
		return Value{typ: TypeInt8, num: uint64(x)}
	case uint16:
		return Value{typ: TypeUint16, num: uint64(x)}
	case int16:
		return Value{typ: TypeInt16, num: uint64(x)}
	case uint32:
		return Value{typ: TypeUint32, num: uint64(x)}
	case int32:
		return Value{typ: TypeInt32, num: uint64(x)}
	case float32:
		return Value{typ: TypeFloat32, num: uint64(math.Float32bits(x))}
	case bool:
		if x {
			return Value{typ: TypeBool, num: 1}
		}
		return Value{typ: TypeBool}
	case string:
		return Value{typ: TypeString, str: x}
	case uint64:
		return Value{typ: TypeUint64, num: x}
	case int64:
		return Value{typ: TypeInt64, num: uint64(x)}
	case float64:
		return Value{typ: TypeFloat64, num: math.Float64bits(x)}
	}
	panic("unreachable")
}

// ArrayOf makes an array value; the slice is kept, not copied.
func ArrayOf[T Element](xs []T) Value {
	if xs == nil {
		xs = []T{}
	}
	var zero T
	return Value{typ: TypeArray, elem: ValueOf(zero).typ, arr: xs}
}

// ArrayOfArrays makes an array whose elements are arrays (possibly of
// different element types). It fails if an element is not an array.
func ArrayOfArrays(elems []Value) (Value, error) {
	for i, e := range elems {
		if e.typ != TypeArray {
			return Value{}, fmt.Errorf("gguf: element %d of an array of arrays is a %s", i, e.TypeName())
		}
	}
	if elems == nil {
		elems = []Value{}
	}
	return Value{typ: TypeArray, elem: TypeArray, arr: elems}, nil
}

// Scalar accessors: each succeeds only for exactly its type.

func (v Value) Uint8() (uint8, bool)   { return uint8(v.num), v.typ == TypeUint8 }
func (v Value) Int8() (int8, bool)     { return int8(v.num), v.typ == TypeInt8 }
func (v Value) Uint16() (uint16, bool) { return uint16(v.num), v.typ == TypeUint16 }
func (v Value) Int16() (int16, bool)   { return int16(v.num), v.typ == TypeInt16 }
func (v Value) Uint32() (uint32, bool) { return uint32(v.num), v.typ == TypeUint32 }
func (v Value) Int32() (int32, bool)   { return int32(v.num), v.typ == TypeInt32 }
func (v Value) Uint64() (uint64, bool) { return v.num, v.typ == TypeUint64 }
func (v Value) Int64() (int64, bool)   { return int64(v.num), v.typ == TypeInt64 }
func (v Value) Bool() (bool, bool)     { return v.num != 0, v.typ == TypeBool }
func (v Value) String() (string, bool) { return v.str, v.typ == TypeString }
func (v Value) Float32() (float32, bool) {
	return math.Float32frombits(uint32(v.num)), v.typ == TypeFloat32
}
func (v Value) Float64() (float64, bool) { return math.Float64frombits(v.num), v.typ == TypeFloat64 }

// Int returns any integer scalar as an int64; ok is false for other types
// and for a uint64 above math.MaxInt64.
func (v Value) Int() (int64, bool) {
	switch v.typ {
	case TypeUint8, TypeUint16, TypeUint32:
		return int64(v.num), true
	case TypeInt8:
		return int64(int8(v.num)), true
	case TypeInt16:
		return int64(int16(v.num)), true
	case TypeInt32:
		return int64(int32(v.num)), true
	case TypeInt64:
		return int64(v.num), true
	case TypeUint64:
		return int64(v.num), v.num <= math.MaxInt64
	}
	return 0, false
}

// Float returns a float32 or float64 scalar as a float64.
func (v Value) Float() (float64, bool) {
	switch v.typ {
	case TypeFloat32:
		return float64(math.Float32frombits(uint32(v.num))), true
	case TypeFloat64:
		return math.Float64frombits(v.num), true
	}
	return 0, false
}

func arrayAs[T any](v Value) ([]T, bool) {
	a, ok := v.arr.([]T)
	return a, ok && v.typ == TypeArray
}

// Array accessors: each succeeds only for an array of exactly its type.

func (v Value) Uint8s() ([]uint8, bool)     { return arrayAs[uint8](v) }
func (v Value) Int8s() ([]int8, bool)       { return arrayAs[int8](v) }
func (v Value) Uint16s() ([]uint16, bool)   { return arrayAs[uint16](v) }
func (v Value) Int16s() ([]int16, bool)     { return arrayAs[int16](v) }
func (v Value) Uint32s() ([]uint32, bool)   { return arrayAs[uint32](v) }
func (v Value) Int32s() ([]int32, bool)     { return arrayAs[int32](v) }
func (v Value) Float32s() ([]float32, bool) { return arrayAs[float32](v) }
func (v Value) Bools() ([]bool, bool)       { return arrayAs[bool](v) }
func (v Value) Strings() ([]string, bool)   { return arrayAs[string](v) }
func (v Value) Uint64s() ([]uint64, bool)   { return arrayAs[uint64](v) }
func (v Value) Int64s() ([]int64, bool)     { return arrayAs[int64](v) }
func (v Value) Float64s() ([]float64, bool) { return arrayAs[float64](v) }

// Arrays returns the elements of an array of arrays.
func (v Value) Arrays() ([]Value, bool) { return arrayAs[Value](v) }

// Ints returns an array of any integer type as int64s (a copy); ok is false
// for other types or a uint64 element above math.MaxInt64.
func (v Value) Ints() ([]int64, bool) {
	if v.typ != TypeArray {
		return nil, false
	}
	switch a := v.arr.(type) {
	case []uint8:
		return widen(a), true
	case []int8:
		return widen(a), true
	case []uint16:
		return widen(a), true
	case []int16:
		return widen(a), true
	case []uint32:
		return widen(a), true
	case []int32:
		return widen(a), true
	case []int64:
		return append([]int64(nil), a...), true
	case []uint64:
		out := make([]int64, len(a))
		for i, x := range a {
			if x > math.MaxInt64 {
				return nil, false
			}
			out[i] = int64(x)
		}
		return out, true
	}
	return nil, false
}

func widen[T uint8 | int8 | uint16 | int16 | uint32 | int32](a []T) []int64 {
	out := make([]int64, len(a))
	for i, x := range a {
		out[i] = int64(x)
	}
	return out
}

// Format makes fmt print the value for people (%v, %s): scalars in full,
// arrays with at most their first 8 elements. (String is the typed accessor
// for string values, so Value is not a fmt.Stringer.)
func (v Value) Format(s fmt.State, verb rune) { io.WriteString(s, v.describe()) }

// describe is the text Format prints.
func (v Value) describe() string {
	switch v.typ {
	case TypeString:
		return strconv.Quote(v.str)
	case TypeBool:
		return strconv.FormatBool(v.num != 0)
	case TypeFloat32:
		return strconv.FormatFloat(float64(math.Float32frombits(uint32(v.num))), 'g', -1, 32)
	case TypeFloat64:
		return strconv.FormatFloat(math.Float64frombits(v.num), 'g', -1, 64)
	case TypeUint64:
		return strconv.FormatUint(v.num, 10)
	case TypeArray:
		n := v.Len()
		var b strings.Builder
		b.WriteByte('[')
		for i := 0; i < n && i < 8; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v.index(i).describe())
		}
		if n > 8 {
			fmt.Fprintf(&b, ", ... (%d elements)", n)
		}
		b.WriteByte(']')
		return b.String()
	}
	if i, ok := v.Int(); ok {
		return strconv.FormatInt(i, 10)
	}
	return "invalid " + v.typ.String()
}

// index returns element i of an array as a Value.
func (v Value) index(i int) Value {
	switch a := v.arr.(type) {
	case []uint8:
		return ValueOf(a[i])
	case []int8:
		return ValueOf(a[i])
	case []uint16:
		return ValueOf(a[i])
	case []int16:
		return ValueOf(a[i])
	case []uint32:
		return ValueOf(a[i])
	case []int32:
		return ValueOf(a[i])
	case []float32:
		return ValueOf(a[i])
	case []bool:
		return ValueOf(a[i])
	case []string:
		return ValueOf(a[i])
	case []Value:
		return a[i]
	case []uint64:
		return ValueOf(a[i])
	case []int64:
		return ValueOf(a[i])
	case []float64:
		return ValueOf(a[i])
	}
	return Value{}
}

// Constructors for metadata entries.

func Uint8(key string, x uint8) KV     { return KV{key, ValueOf(x)} }
func Int8(key string, x int8) KV       { return KV{key, ValueOf(x)} }
func Uint16(key string, x uint16) KV   { return KV{key, ValueOf(x)} }
func Int16(key string, x int16) KV     { return KV{key, ValueOf(x)} }
func Uint32(key string, x uint32) KV   { return KV{key, ValueOf(x)} }
func Int32(key string, x int32) KV     { return KV{key, ValueOf(x)} }
func Float32(key string, x float32) KV { return KV{key, ValueOf(x)} }
func Bool(key string, x bool) KV       { return KV{key, ValueOf(x)} }
func String(key string, x string) KV   { return KV{key, ValueOf(x)} }
func Uint64(key string, x uint64) KV   { return KV{key, ValueOf(x)} }
func Int64(key string, x int64) KV     { return KV{key, ValueOf(x)} }
func Float64(key string, x float64) KV { return KV{key, ValueOf(x)} }

func Uint8s(key string, xs []uint8) KV     { return KV{key, ArrayOf(xs)} }
func Int8s(key string, xs []int8) KV       { return KV{key, ArrayOf(xs)} }
func Uint16s(key string, xs []uint16) KV   { return KV{key, ArrayOf(xs)} }
func Int16s(key string, xs []int16) KV     { return KV{key, ArrayOf(xs)} }
func Uint32s(key string, xs []uint32) KV   { return KV{key, ArrayOf(xs)} }
func Int32s(key string, xs []int32) KV     { return KV{key, ArrayOf(xs)} }
func Float32s(key string, xs []float32) KV { return KV{key, ArrayOf(xs)} }
func Bools(key string, xs []bool) KV       { return KV{key, ArrayOf(xs)} }
func Strings(key string, xs []string) KV   { return KV{key, ArrayOf(xs)} }
func Uint64s(key string, xs []uint64) KV   { return KV{key, ArrayOf(xs)} }
func Int64s(key string, xs []int64) KV     { return KV{key, ArrayOf(xs)} }
func Float64s(key string, xs []float64) KV { return KV{key, ArrayOf(xs)} }
