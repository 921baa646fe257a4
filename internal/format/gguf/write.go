package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"mica/internal/format/internal/tensorfile"
	"mica/internal/tensor"
)

// Writer streams a GGUF file to disk: the header is written by Create, then
// each tensor's data by WriteTensor in declared order, so a model never has
// to be held in memory. The file is written under a temporary name in the
// destination directory and renamed into place by Close only when complete;
// on any error, or Abort, the temporary file is removed.
type Writer struct {
	s          *tensorfile.Stream
	tensors    []TensorInfo
	alignment  int64
	dataOffset int64
}

// Create starts writing a GGUF file at path. version must be 2 or 3;
// alignment 0 means general.alignment from meta, or 32. If alignment is not
// 32 and meta has no general.alignment, that key is added. tensors give
// Name, Type and Shape (ggml order); Create computes Offset and Size and
// stores them both in the Writer (see Tensors) and in the caller's slice.
func Create(path string, version uint32, alignment int64, meta []KV, tensors []TensorInfo) (*Writer, error) {
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("gguf: %s: cannot write version %d (want 2 or 3)", path, version)
	}
	meta, alignment, err := alignmentMeta(path, meta, alignment)
	if err != nil {
		return nil, err
	}
	w := &Writer{alignment: alignment, tensors: make([]TensorInfo, len(tensors))}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for i, t := range tensors {
		size, err := checkTensor(t)
		if err != nil {
			return nil, fmt.Errorf("gguf: %s: %w", path, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("gguf: %s: duplicate tensor name %q", path, t.Name)
		}
		seen[t.Name] = true
		t.Shape = append([]int64{}, t.Shape...)
		t.Offset, t.Size = off, size
		tensors[i].Offset, tensors[i].Size = off, size
		w.tensors[i] = t
		off += alignUp(size, alignment)
	}
	head, err := encodeHeader(version, meta, w.tensors)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}

	names := make([]string, len(tensors))
	for i, t := range tensors {
		names[i] = t.Name
	}
	if w.s, err = tensorfile.Create("gguf", path, names); err != nil {
		return nil, err
	}
	w.s.Write(head)
	w.pad() // always, as ggml does (readers skip it when there are no tensors)
	w.dataOffset = w.s.Pos
	if w.s.Err != nil {
		err := w.s.Err
		w.Abort()
		return nil, err
	}
	return w, nil
}

// alignmentMeta resolves the alignment and makes meta agree with it.
func alignmentMeta(path string, meta []KV, alignment int64) ([]KV, int64, error) {
	idx := -1
	for i, kv := range meta {
		if kv.Key == "general.alignment" {
			idx = i
		}
	}
	if idx >= 0 {
		a, ok := meta[idx].Value.Uint32()
		if !ok {
			return nil, 0, fmt.Errorf("gguf: %s: key %q is %s, want uint32", path, "general.alignment", meta[idx].Value.TypeName())
		}
		if alignment == 0 {
			alignment = int64(a)
		} else if alignment != int64(a) {
			return nil, 0, fmt.Errorf("gguf: %s: alignment %d disagrees with general.alignment %d", path, alignment, a)
		}
	}
	if alignment == 0 {
		alignment = DefaultAlignment
	}
	if alignment < 0 || alignment&(alignment-1) != 0 || alignment > MaxAlignment {
		return nil, 0, fmt.Errorf("gguf: %s: alignment %d is not a power of two up to %d", path, alignment, MaxAlignment)
	}
	if idx < 0 && alignment != DefaultAlignment {
		meta = append(meta[:len(meta):len(meta)], Uint32("general.alignment", uint32(alignment)))
	}
	return meta, alignment, nil
}

// checkTensor validates a declared tensor and returns its size in bytes.
func checkTensor(t TensorInfo) (int64, error) {
	if t.Name == "" || len(t.Name) > maxNameLen {
		return 0, fmt.Errorf("tensor name %q is empty or too long", t.Name)
	}
	if !t.Type.Known() || t.Type == tensor.U8 || t.Type == tensor.F8_E4M3 {
		return 0, fmt.Errorf("tensor %q: type %s cannot be stored in GGUF", t.Name, t.Type)
	}
	if len(t.Shape) > MaxDims {
		return 0, fmt.Errorf("tensor %q has %d dimensions (at most %d)", t.Name, len(t.Shape), MaxDims)
	}
	n := int64(1)
	for d, x := range t.Shape {
		if x <= 0 || n > math.MaxInt64/x {
			return 0, fmt.Errorf("tensor %q: bad dimension %d (%d) in shape %v", t.Name, d, x, t.Shape)
		}
		n *= x
	}
	if len(t.Shape) > 0 && t.Shape[0]%int64(t.Type.BlockSize()) != 0 {
		return 0, fmt.Errorf("tensor %q: row length %d is not a multiple of the %s block size %d",
			t.Name, t.Shape[0], t.Type, t.Type.BlockSize())
	}
	bs, ts := int64(t.Type.BlockSize()), int64(t.Type.TypeSize())
	if n%bs != 0 || n/bs > math.MaxInt64/2/ts {
		return 0, fmt.Errorf("tensor %q: %d elements do not make whole %s blocks of a representable size", t.Name, n, t.Type)
	}
	return n / bs * ts, nil
}

// encodeHeader serialises everything before the data padding.
func encodeHeader(version uint32, meta []KV, tensors []TensorInfo) ([]byte, error) {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString(magic)
	b.Write(le.AppendUint32(nil, version))
	b.Write(le.AppendUint64(nil, uint64(len(tensors))))
	b.Write(le.AppendUint64(nil, uint64(len(meta))))
	seen := make(map[string]bool, len(meta))
	for _, kv := range meta {
		if kv.Key == "" || len(kv.Key) > maxNameLen {
			return nil, fmt.Errorf("metadata key %q is empty or too long", kv.Key)
		}
		if seen[kv.Key] {
			return nil, fmt.Errorf("duplicate metadata key %q", kv.Key)
		}
		seen[kv.Key] = true
		writeString(&b, kv.Key)
		b.Write(le.AppendUint32(nil, uint32(kv.Value.typ)))
		if err := writeValue(&b, kv.Value, 0); err != nil {
			return nil, fmt.Errorf("key %q: %w", kv.Key, err)
		}
	}
	for _, t := range tensors {
		writeString(&b, t.Name)
		b.Write(le.AppendUint32(nil, uint32(len(t.Shape))))
		for _, d := range t.Shape {
			b.Write(le.AppendUint64(nil, uint64(d)))
		}
		b.Write(le.AppendUint32(nil, uint32(t.Type)))
		b.Write(le.AppendUint64(nil, uint64(t.Offset)))
	}
	return b.Bytes(), nil
}

func writeString(b *bytes.Buffer, s string) {
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
	b.WriteString(s)
}

// writeValue writes a value's payload (its type id is written by the caller).
func writeValue(b *bytes.Buffer, v Value, depth int) error {
	le := binary.LittleEndian
	switch v.typ {
	case TypeString:
		writeString(b, v.str)
		return nil
	case TypeArray:
		if depth >= maxNesting {
			return fmt.Errorf("arrays nested more than %d deep", maxNesting)
		}
		b.Write(le.AppendUint32(nil, uint32(v.elem)))
		b.Write(le.AppendUint64(nil, uint64(v.Len())))
		return writeElems(b, v, depth)
	}
	n := v.typ.size()
	if n == 0 {
		return fmt.Errorf("invalid value type %s", v.typ)
	}
	var buf [8]byte
	le.PutUint64(buf[:], v.num)
	b.Write(buf[:n])
	return nil
}

func writeElems(b *bytes.Buffer, v Value, depth int) error {
	le := binary.LittleEndian
	var ok bool
	switch a := v.arr.(type) {
	case []uint8:
		ok = v.elem == TypeUint8
		b.Write(a)
	case []int8:
		ok = v.elem == TypeInt8
		for _, x := range a {
			b.WriteByte(byte(x))
		}
	case []bool:
		ok = v.elem == TypeBool
		for _, x := range a {
			if x {
				b.WriteByte(1)
			} else {
				b.WriteByte(0)
			}
		}
	case []uint16:
		ok = v.elem == TypeUint16
		putAll(b, a, func(d []byte, x uint16) []byte { return le.AppendUint16(d, x) })
	case []int16:
		ok = v.elem == TypeInt16
		putAll(b, a, func(d []byte, x int16) []byte { return le.AppendUint16(d, uint16(x)) })
	case []uint32:
		ok = v.elem == TypeUint32
		putAll(b, a, func(d []byte, x uint32) []byte { return le.AppendUint32(d, x) })
	case []int32:
		ok = v.elem == TypeInt32
		putAll(b, a, func(d []byte, x int32) []byte { return le.AppendUint32(d, uint32(x)) })
	case []float32:
		ok = v.elem == TypeFloat32
		putAll(b, a, func(d []byte, x float32) []byte { return le.AppendUint32(d, math.Float32bits(x)) })
	case []uint64:
		ok = v.elem == TypeUint64
		putAll(b, a, func(d []byte, x uint64) []byte { return le.AppendUint64(d, x) })
	case []int64:
		ok = v.elem == TypeInt64
		putAll(b, a, func(d []byte, x int64) []byte { return le.AppendUint64(d, uint64(x)) })
	case []float64:
		ok = v.elem == TypeFloat64
		putAll(b, a, func(d []byte, x float64) []byte { return le.AppendUint64(d, math.Float64bits(x)) })
	case []string:
		ok = v.elem == TypeString
		for _, s := range a {
			writeString(b, s)
		}
	case []Value:
		ok = v.elem == TypeArray
		for i, e := range a {
			if e.typ != TypeArray {
				return fmt.Errorf("element %d of an array of arrays is a %s", i, e.TypeName())
			}
			if err := writeValue(b, e, depth+1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	if !ok {
		return errors.New("malformed array value")
	}
	return nil
}

func putAll[T any](b *bytes.Buffer, xs []T, put func([]byte, T) []byte) {
	var tmp [8]byte
	for _, x := range xs {
		b.Write(put(tmp[:0], x))
	}
}

// Tensors returns the tensor table with offsets and sizes filled in.
func (w *Writer) Tensors() []TensorInfo { return w.tensors }

// DataOffset is the absolute offset of the data section in the file.
func (w *Writer) DataOffset() int64 { return w.dataOffset }

var zeros [4096]byte

func (w *Writer) pad() {
	for w.s.Err == nil && w.s.Pos%w.alignment != 0 {
		k := min(w.alignment-w.s.Pos%w.alignment, int64(len(zeros)))
		w.s.Write(zeros[:k])
	}
}

// WriteTensor writes the data of the next declared tensor; data must be
// exactly its size.
func (w *Writer) WriteTensor(name string, data []byte) error {
	i, err := w.s.Next(name)
	if err != nil {
		return err
	}
	if t := &w.tensors[i]; int64(len(data)) != t.Size {
		return fmt.Errorf("gguf: %s: tensor %q: got %d bytes, want %d (%s %v)", w.s.Path, name, len(data), t.Size, t.Type, t.Shape)
	}
	w.s.Write(data)
	return w.finishTensor()
}

// WriteTensorFrom copies exactly the next declared tensor's size from r.
func (w *Writer) WriteTensorFrom(name string, r io.Reader) error {
	i, err := w.s.Next(name)
	if err != nil {
		return err
	}
	if err := w.s.Copy(name, r, w.tensors[i].Size); err != nil {
		return err
	}
	return w.finishTensor()
}

func (w *Writer) finishTensor() error {
	w.pad()
	return w.s.Done()
}

// Close finishes the file: it fails (and removes the temporary file) if a
// declared tensor was not written or a write failed; otherwise it flushes,
// syncs and renames the file into place.
func (w *Writer) Close() error { return w.s.Close() }

// Abort discards the file. It is harmless after Close.
func (w *Writer) Abort() error { return w.s.Abort() }
