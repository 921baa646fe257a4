package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"mica/internal/format/internal/tensorfile"
)

// Writer streams a safetensors file: Create writes the header, WriteTensor
// each tensor's data in declared order. The file is written under a
// temporary name in the destination directory and renamed into place by
// Close only when complete; on error or Abort the temporary file is removed.
//
// Tensors are stored contiguously in declared order, as the format
// requires (no gaps); declare wider dtypes first to keep every tensor
// naturally aligned.
type Writer struct {
	s       *tensorfile.Stream
	tensors []TensorInfo
}

// Create starts writing a safetensors file at path. metadata may be nil.
// tensors give Name, DType and Shape (row-major, outermost first); a tensor
// whose DType is OtherDType is written with its RawDType. Create computes
// Begin and End, stored both in the Writer (see Tensors) and in the
// caller's slice.
func Create(path string, metadata map[string]string, tensors []TensorInfo) (*Writer, error) {
	w := &Writer{}
	var head []byte
	var err error
	if w.tensors, head, err = layout(metadata, tensors); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	names := make([]string, len(w.tensors))
	for i, t := range w.tensors {
		names[i] = t.Name
	}
	if w.s, err = tensorfile.Create("safetensors", path, names); err != nil {
		return nil, err
	}
	w.s.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(head))))
	w.s.Write(head)
	if w.s.Err != nil {
		err := w.s.Err
		w.Abort()
		return nil, err
	}
	return w, nil
}

// Header returns the bytes Create writes before the tensor data: the
// 8-byte little-endian header length, then the JSON header padded with
// spaces to a multiple of 8. Like Create, it fills in Begin and End in
// tensors. The data section that follows is the tensors' bytes in order,
// with no gaps.
func Header(metadata map[string]string, tensors []TensorInfo) ([]byte, error) {
	_, head, err := layout(metadata, tensors)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return append(binary.LittleEndian.AppendUint64(nil, uint64(len(head))), head...), nil
}

// layout checks the declared tensors, places them one after another, and
// encodes the header (without its length prefix).
func layout(metadata map[string]string, tensors []TensorInfo) ([]TensorInfo, []byte, error) {
	placed := make([]TensorInfo, len(tensors))
	seen := map[string]bool{}
	var off int64
	for i, t := range tensors {
		if t.Name == metadataKey {
			return nil, nil, fmt.Errorf("%q cannot be a tensor name", t.Name)
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("duplicate tensor %q", t.Name)
		}
		seen[t.Name] = true
		d, err := writeDType(t)
		if err != nil {
			return nil, nil, err
		}
		size, err := byteSize(t, d)
		if err != nil {
			return nil, nil, err
		}
		t.DType, t.RawDType = d.t, d.name
		t.Shape = append([]int64{}, t.Shape...)
		t.Begin, t.End = off, off+size
		tensors[i].DType, tensors[i].RawDType = t.DType, t.RawDType
		tensors[i].Begin, tensors[i].End = t.Begin, t.End
		placed[i] = t
		off += size
	}
	head, err := encodeHeader(metadata, placed)
	if err != nil {
		return nil, nil, err
	}
	if len(head) > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header of %d bytes exceeds the %d-byte limit", len(head), MaxHeaderSize)
	}
	return placed, head, nil
}

func writeDType(t TensorInfo) (dtypeInfo, error) {
	if t.DType == OtherDType {
		if d, ok := lookupName(t.RawDType); ok {
			return d, nil
		}
		return dtypeInfo{}, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.RawDType)
	}
	if name, ok := DTypeName(t.DType); ok {
		d, _ := lookupName(name)
		return d, nil
	}
	return dtypeInfo{}, fmt.Errorf("tensor %q: type %s cannot be stored in safetensors", t.Name, t.DType)
}

func byteSize(t TensorInfo, d dtypeInfo) (int64, error) {
	n := int64(1)
	for _, x := range t.Shape {
		if x < 0 || (x > 0 && n > math.MaxInt64/64/x) {
			return 0, fmt.Errorf("tensor %q: bad shape %v", t.Name, t.Shape)
		}
		n *= x
	}
	if n*d.bits%8 != 0 {
		return 0, fmt.Errorf("tensor %q: %d %s elements are not a whole number of bytes", t.Name, n, d.name)
	}
	return n * d.bits / 8, nil
}

// encodeHeader makes the JSON header, padded with spaces to a multiple of 8
// bytes so that the data section starts aligned.
func encodeHeader(metadata map[string]string, tensors []TensorInfo) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	quote := func(s string) error {
		q, err := json.Marshal(s)
		b.Write(q)
		return err
	}
	if metadata != nil {
		sep()
		quote(metadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := quote(k); err != nil {
				return nil, err
			}
			b.WriteByte(':')
			if err := quote(metadata[k]); err != nil {
				return nil, err
			}
		}
		b.WriteByte('}')
	}
	for _, t := range tensors {
		sep()
		if err := quote(t.Name); err != nil {
			return nil, err
		}
		b.WriteString(`:{"dtype":`)
		quote(t.RawDType)
		b.WriteString(`,"shape":[`)
		for i, x := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(x, 10))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// Tensors returns the declared tensors with Begin and End filled in.
func (w *Writer) Tensors() []TensorInfo { return w.tensors }

// WriteTensor writes the next declared tensor; data must be exactly its size.
func (w *Writer) WriteTensor(name string, data []byte) error {
	i, err := w.s.Next(name)
	if err != nil {
		return err
	}
	if t := &w.tensors[i]; int64(len(data)) != t.Size() {
		return fmt.Errorf("safetensors: %s: tensor %q: got %d bytes, want %d (%s %v)", w.s.Path, name, len(data), t.Size(), t.RawDType, t.Shape)
	}
	w.s.Write(data)
	return w.s.Done()
}

// WriteTensorFrom copies exactly the next declared tensor's size from r.
func (w *Writer) WriteTensorFrom(name string, r io.Reader) error {
	i, err := w.s.Next(name)
	if err != nil {
		return err
	}
	if err := w.s.Copy(name, r, w.tensors[i].Size()); err != nil {
		return err
	}
	return w.s.Done()
}

// Close completes the file: it fails (removing the temporary file) if a
// declared tensor is missing or a write failed; otherwise it flushes, syncs
// and renames the file into place.
func (w *Writer) Close() error { return w.s.Close() }

// Abort discards the file; harmless after Close.
func (w *Writer) Abort() error { return w.s.Abort() }
