// Package gguf reads and writes GGUF model files (versions 2 and 3): the
// metadata and tensor table are parsed from the header, and tensor data is
// memory-mapped and handed out as zero-copy slices, never read up front.
//
// Tensor shapes are in GGUF/ggml order: Shape[0] is the innermost dimension
// (the row length, ne0).
package gguf

import (
	"errors"
	"fmt"
	"io"

	"mica/internal/format/internal/tensorfile"
	"mica/internal/format/mmap"
	"mica/internal/tensor"
)

// Errors that callers may test for with errors.Is.
var (
	ErrKeyNotFound    = errors.New("key not found")
	ErrWrongType      = errors.New("wrong value type")
	ErrTensorNotFound = errors.New("tensor not found")
)

// File is an open GGUF file: its header, and a lazily created read-only
// mapping of the file for tensor data.
type File struct {
	Path       string
	Version    uint32
	Alignment  int64
	Meta       []KV         // in file order
	Tensors    []TensorInfo // in file order
	DataOffset int64        // absolute offset of the tensor data section

	keys       map[string]int // key -> index in Meta
	index      map[string]int // tensor name -> index in Tensors
	headerSize int64          // bytes of header parsed (before data padding)
	headerRead int64          // bytes Open read from the file to parse it

	data tensorfile.Data // no file for a File from ParseHeader
}

// TensorInfo describes one tensor of the table.
type TensorInfo struct {
	Name   string
	Type   tensor.DType
	Shape  []int64 // GGUF/ggml order: Shape[0] is the innermost (row length, ne0)
	Offset int64   // relative to File.DataOffset; filled in by Create
	Size   int64   // bytes; filled in by Create
}

// Elements is the number of elements of the tensor.
func (t *TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// countingReader counts the bytes Open reads for the header.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Open reads the header and tensor table of the GGUF file at path with
// buffered reads; tensor data is mapped on first use, never read or copied.
func Open(path string) (*File, error) {
	fd, size, err := tensorfile.OpenRegular("gguf", path)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{r: fd}
	f, err := ParseHeader(cr, size, path)
	if err != nil {
		fd.Close()
		return nil, err
	}
	f.headerRead = cr.n
	f.data.Attach(fd)
	return f, nil
}

// OpenWith opens the GGUF file at path and builds on it with load (a model
// that keeps the file open); the file is closed when load fails.
func OpenWith[T any](path string, load func(*File) (T, error)) (T, error) {
	f, err := Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := load(f)
	if err != nil {
		f.Close()
	}
	return v, err
}

// Close releases the mapping and the file. Slices from TensorData must not
// be used afterwards.
func (f *File) Close() error { return f.data.Close() }

// mapping maps the file on first use.
func (f *File) mapping() (*mmap.Map, error) { return f.data.Map("gguf", f.Path, f.DataOffset) }

// Tensor finds a tensor by name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorShape returns the named tensor's type and GGUF-order shape (shared
// with the File: do not modify), or false when there is no such tensor.
func (f *File) TensorShape(name string) (tensor.DType, []int64, bool) {
	t, ok := f.Tensor(name)
	if !ok {
		return 0, nil, false
	}
	return t.Type, t.Shape, true
}

// TensorData returns the bytes of the named tensor: a zero-copy slice of the
// read-only mapping, valid until Close. Writing to it faults.
func (f *File) TensorData(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", f.Path, name, ErrTensorNotFound)
	}
	start := f.DataOffset + t.Offset
	return f.data.Slice("gguf", f.Path, name, f.DataOffset, start, start+t.Size)
}

// Data returns the whole mapped file (header included), valid until Close;
// useful to hand one mapping to a backend. Tensor t starts at
// DataOffset+t.Offset.
func (f *File) Data() ([]byte, error) {
	m, err := f.mapping()
	if err != nil {
		return nil, err
	}
	return m.Bytes(), nil
}

// Advise passes an access hint for the named tensor's bytes to the OS.
func (f *File) Advise(name string, advice mmap.Advice) error {
	t, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("gguf: %s: tensor %q: %w", f.Path, name, ErrTensorNotFound)
	}
	return f.data.Advise("gguf", f.Path, f.DataOffset, f.DataOffset+t.Offset, t.Size, advice)
}

// Get finds a metadata value by key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.Meta[i].Value, true
}

// Has reports whether the key is present.
func (f *File) Has(key string) bool { _, ok := f.keys[key]; return ok }

// lookup returns the value or an error naming the key.
func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return v, fmt.Errorf("gguf: %s: key %q: %w", f.Path, key, ErrKeyNotFound)
	}
	return v, nil
}

func (f *File) wrongType(key string, v Value, want string) error {
	return fmt.Errorf("gguf: %s: key %q is %s, want %s: %w", f.Path, key, v.TypeName(), want, ErrWrongType)
}

// typed fetches key and converts it with get; want names the wanted type.
func typed[T any](f *File, key, want string, get func(Value) (T, bool)) (T, error) {
	v, err := f.lookup(key)
	if err != nil {
		var zero T
		return zero, err
	}
	x, ok := get(v)
	if !ok {
		return x, f.wrongType(key, v, want)
	}
	return x, nil
}

// Typed getters. Each fails with an error naming the file and key when the
// key is missing (errors.Is ErrKeyNotFound) or has another type
// (errors.Is ErrWrongType). Slices are shared with the File: do not modify.

func (f *File) String(key string) (string, error) { return typed(f, key, "string", Value.String) }
func (f *File) Uint32(key string) (uint32, error) { return typed(f, key, "uint32", Value.Uint32) }
func (f *File) Int32(key string) (int32, error)   { return typed(f, key, "int32", Value.Int32) }
func (f *File) Uint64(key string) (uint64, error) { return typed(f, key, "uint64", Value.Uint64) }
func (f *File) Float32(key string) (float32, error) {
	return typed(f, key, "float32", Value.Float32)
}
func (f *File) Bool(key string) (bool, error) { return typed(f, key, "bool", Value.Bool) }
func (f *File) Strings(key string) ([]string, error) {
	return typed(f, key, "array of string", Value.Strings)
}
func (f *File) Int32s(key string) ([]int32, error) {
	return typed(f, key, "array of int32", Value.Int32s)
}
func (f *File) Uint32s(key string) ([]uint32, error) {
	return typed(f, key, "array of uint32", Value.Uint32s)
}
func (f *File) Float32s(key string) ([]float32, error) {
	return typed(f, key, "array of float32", Value.Float32s)
}
func (f *File) Bools(key string) ([]bool, error) {
	return typed(f, key, "array of bool", Value.Bools)
}

// Int returns an integer of any GGUF integer type as an int64 (converters
// disagree on uint32 versus int32 for counts).
func (f *File) Int(key string) (int64, error) { return typed(f, key, "an integer", Value.Int) }

// Float returns a float32 or float64 as a float64.
func (f *File) Float(key string) (float64, error) { return typed(f, key, "a float", Value.Float) }

// Ints returns an array of any integer type as int64s (a copy).
func (f *File) Ints(key string) ([]int64, error) {
	return typed(f, key, "an array of integers", Value.Ints)
}
