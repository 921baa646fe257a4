// Package tensor defines mica's data types (F32, F16, BF16 and GGUF's block
// quantizations), shapes and views over bytes. It holds layouts only: the
// arithmetic on these types lives in package kernels.
package tensor

import "fmt"

// DType is an element type. The numeric values are GGUF's (ggml_type), so a
// value read from a GGUF tensor table converts directly.
type DType uint32

// The types mica knows. Values follow GGUF; gaps are types GGUF removed.
const (
	F32     DType = 0
	F16     DType = 1
	Q4_0    DType = 2
	Q4_1    DType = 3
	Q5_0    DType = 6
	Q5_1    DType = 7
	Q8_0    DType = 8
	Q8_1    DType = 9
	Q2_K    DType = 10
	Q3_K    DType = 11
	Q4_K    DType = 12
	Q5_K    DType = 13
	Q6_K    DType = 14
	Q8_K    DType = 15
	IQ2_XXS DType = 16
	IQ2_XS  DType = 17
	IQ3_XXS DType = 18
	IQ1_S   DType = 19
	IQ4_NL  DType = 20
	IQ3_S   DType = 21
	IQ2_S   DType = 22
	IQ4_XS  DType = 23
	I8      DType = 24
	I16     DType = 25
	I32     DType = 26
	I64     DType = 27
	F64     DType = 28
	IQ1_M   DType = 29
	BF16    DType = 30
	TQ1_0   DType = 34
	TQ2_0   DType = 35
	MXFP4   DType = 39

	// Types that exist only outside GGUF (safetensors). Their values are
	// above GGUF's range so they never collide with a GGUF type id.
	U8      DType = 1000
	F8_E4M3 DType = 1001
)

// QK_K is the super-block size of the K-quants and IQ4_XS.
const QK_K = 256

type layout struct {
	name      string
	blockSize int // elements per block
	typeSize  int // bytes per block
	supported bool
}

var layouts = map[DType]layout{
	F32:     {"F32", 1, 4, true},
	F16:     {"F16", 1, 2, true},
	BF16:    {"BF16", 1, 2, true},
	F64:     {"F64", 1, 8, false},
	I8:      {"I8", 1, 1, false},
	I16:     {"I16", 1, 2, false},
	I32:     {"I32", 1, 4, true},
	I64:     {"I64", 1, 8, true},
	U8:      {"U8", 1, 1, true},
	F8_E4M3: {"F8_E4M3", 1, 1, true},
	Q4_0:    {"Q4_0", 32, 2 + 16, true},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16, true},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16, true},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16, true},
	Q8_0:    {"Q8_0", 32, 2 + 32, true},
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32, true},
	Q2_K:    {"Q2_K", QK_K, QK_K/16 + QK_K/4 + 2 + 2, true},
	Q3_K:    {"Q3_K", QK_K, QK_K/8 + QK_K/4 + 12 + 2, true},
	Q4_K:    {"Q4_K", QK_K, 2 + 2 + 12 + QK_K/2, true},
	Q5_K:    {"Q5_K", QK_K, 2 + 2 + 12 + QK_K/8 + QK_K/2, true},
	Q6_K:    {"Q6_K", QK_K, QK_K/2 + QK_K/4 + QK_K/16 + 2, true},
	Q8_K:    {"Q8_K", QK_K, 4 + QK_K + QK_K/16*2, true},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16, true},
	IQ4_XS:  {"IQ4_XS", QK_K, 2 + 2 + QK_K/64 + QK_K/2, true},
	IQ2_XXS: {"IQ2_XXS", QK_K, 2 + QK_K/4, false},
	IQ2_XS:  {"IQ2_XS", QK_K, 2 + QK_K/4 + QK_K/32, false},
	IQ3_XXS: {"IQ3_XXS", QK_K, 2 + 3*QK_K/8, false},
	IQ1_S:   {"IQ1_S", QK_K, 2 + QK_K/8 + QK_K/16, false},
	IQ3_S:   {"IQ3_S", QK_K, 2 + 13*(QK_K/32) + QK_K/64, false},
	IQ2_S:   {"IQ2_S", QK_K, 2 + QK_K/4 + QK_K/16, false},
	IQ1_M:   {"IQ1_M", QK_K, QK_K/8 + QK_K/16 + QK_K/32, false},
	TQ1_0:   {"TQ1_0", QK_K, 2 + QK_K/64 + (QK_K-4*QK_K/64)/5, false},
	TQ2_0:   {"TQ2_0", QK_K, 2 + QK_K/4, false},
	MXFP4:   {"MXFP4", 32, 1 + 16, false},
}

// Known reports whether t is a type mica can describe (block size, bytes).
func (t DType) Known() bool { _, ok := layouts[t]; return ok }

// Supported reports whether mica can compute with t (dequantize it at least).
func (t DType) Supported() bool { return layouts[t].supported }

// String is the type's GGUF name, e.g. "Q4_K".
func (t DType) String() string {
	if l, ok := layouts[t]; ok {
		return l.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of elements in one block (1 for plain types).
func (t DType) BlockSize() int { return layouts[t].blockSize }

// TypeSize is the number of bytes in one block.
func (t DType) TypeSize() int { return layouts[t].typeSize }

// Quantized reports whether t is a block type (block size > 1).
func (t DType) Quantized() bool { return layouts[t].blockSize > 1 }

// RowBytes is the number of bytes of n elements of type t. n must be a
// multiple of the block size; ok is false otherwise or for unknown types.
func (t DType) RowBytes(n int64) (bytes int64, ok bool) {
	l, known := layouts[t]
	if !known || n < 0 || n%int64(l.blockSize) != 0 {
		return 0, false
	}
	return n / int64(l.blockSize) * int64(l.typeSize), true
}

// ParseDType maps a name such as "q4_k" or "F16" (any case) to its type.
func ParseDType(name string) (DType, error) {
	for t, l := range layouts {
		if equalFold(l.name, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown data type %q", name)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
