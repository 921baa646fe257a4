package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
)

// ParseHeader reads and validates the header of a safetensors file of
// fileSize bytes from r, which must be at the start of the file; name is
// used in error messages. It reads 8 bytes plus the JSON header, nothing of
// the data. The header length is bounded by MaxHeaderSize and the file size
// before anything is allocated.
//
// Checks: the header is a JSON object (optionally padded with spaces) of
// tensor entries {"dtype", "shape", "data_offsets"} and an optional
// "__metadata__" map of strings; no duplicate names; known dtypes; shapes of
// non-negative dimensions whose element count does not overflow; a byte
// length (end-begin) equal to the shape's elements times the dtype's size;
// every tensor inside the file; no two tensors overlapping.
func ParseHeader(r io.Reader, fileSize int64, name string) (*File, error) {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: "+format, append([]any{name}, args...)...)
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, errf("cannot read the header length (file of %d bytes): %v", fileSize, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, errf("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if fileSize < 8 || n > uint64(fileSize-8) {
		return nil, errf("header length %d exceeds the %d bytes after the length field", n, max(fileSize-8, 0))
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, errf("truncated header (%d bytes expected): %v", n, err)
	}
	if len(head) == 0 || head[0] != '{' {
		return nil, errf("header is not a JSON object")
	}
	f := &File{Path: name, DataOffset: 8 + int64(n), index: map[string]int{}}
	if err := parseJSON(f, head); err != nil {
		return nil, errf("%v", err)
	}
	if err := checkLayout(f, fileSize-f.DataOffset); err != nil {
		return nil, errf("%v", err)
	}
	return f, nil
}

// entry is one tensor of the JSON header; pointers tell missing from zero.
type entry struct {
	DType   *string  `json:"dtype"`
	Shape   *[]int64 `json:"shape"`
	Offsets *[]int64 `json:"data_offsets"`
}

func parseJSON(f *File, head []byte) error {
	dec := json.NewDecoder(bytes.NewReader(head))
	if _, err := dec.Token(); err != nil { // the opening '{', checked above
		return fmt.Errorf("invalid header JSON: %v", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid header JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("invalid header JSON: key %v is not a string", tok)
		}
		if key == metadataKey {
			if f.Metadata != nil {
				return fmt.Errorf("duplicate %q", metadataKey)
			}
			var md map[string]string
			if err := dec.Decode(&md); err != nil {
				return fmt.Errorf("%q must be an object of strings: %v", metadataKey, err)
			}
			if md == nil {
				md = map[string]string{}
			}
			f.Metadata = md
			continue
		}
		if _, dup := f.index[key]; dup {
			return fmt.Errorf("duplicate tensor %q", key)
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("tensor %q: invalid entry: %v", key, err)
		}
		t, err := makeInfo(key, e)
		if err != nil {
			return err
		}
		f.index[key] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fmt.Errorf("invalid header JSON: %v", err)
	}
	// Only padding may follow the object.
	rest := head[dec.InputOffset():]
	if len(bytes.TrimRight(rest, " \t\r\n\x00")) != 0 {
		return errors.New("invalid header JSON: data after the top-level object")
	}
	return nil
}

// makeInfo validates one entry on its own.
func makeInfo(name string, e entry) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	if e.DType == nil || e.Shape == nil || e.Offsets == nil {
		return t, fmt.Errorf("tensor %q: entry needs dtype, shape and data_offsets", name)
	}
	d, ok := lookupName(*e.DType)
	if !ok {
		return t, fmt.Errorf("tensor %q: unknown dtype %q", name, *e.DType)
	}
	t.DType, t.RawDType = d.t, d.name
	t.Shape = *e.Shape
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	offs := *e.Offsets
	if len(offs) != 2 || offs[0] < 0 || offs[1] < offs[0] {
		return t, fmt.Errorf("tensor %q: data_offsets %v must be [begin, end] with 0 <= begin <= end", name, offs)
	}
	t.Begin, t.End = offs[0], offs[1]
	elems := uint64(1)
	for i, x := range t.Shape {
		if x < 0 {
			return t, fmt.Errorf("tensor %q: dimension %d of shape %v is negative", name, i, t.Shape)
		}
		hi, lo := bits.Mul64(elems, uint64(x))
		if hi != 0 || lo > math.MaxInt64/64 {
			return t, fmt.Errorf("tensor %q: element count of shape %v overflows", name, t.Shape)
		}
		elems = lo
	}
	nbits := elems * uint64(d.bits)
	if nbits%8 != 0 {
		return t, fmt.Errorf("tensor %q: %d %s elements are not a whole number of bytes", name, elems, d.name)
	}
	if nbits/8 != uint64(t.End-t.Begin) {
		return t, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d",
			name, t.Shape, d.name, nbits/8, t.Begin, t.End, t.End-t.Begin)
	}
	return t, nil
}

// checkLayout checks that the tensors lie inside the data section of
// dataSize bytes and do not overlap, and sorts them into data order.
func checkLayout(f *File, dataSize int64) error {
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.End > dataSize {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] lie outside the %d-byte data section", t.Name, t.Begin, t.End, dataSize)
		}
	}
	sort.Slice(f.Tensors, func(i, j int) bool {
		a, b := &f.Tensors[i], &f.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	var maxEnd int64
	owner := ""
	for i := range f.Tensors {
		t := &f.Tensors[i]
		f.index[t.Name] = i
		if t.Begin < maxEnd && t.End > t.Begin {
			return fmt.Errorf("tensors %q and %q overlap", owner, t.Name)
		}
		if t.End > maxEnd {
			maxEnd, owner = t.End, t.Name
		}
	}
	return nil
}
