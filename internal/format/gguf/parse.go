package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"

	"mica/internal/tensor"
)

// Limits that keep a lying header from causing huge allocations or loops.
const (
	magic            = "GGUF"
	DefaultAlignment = 32
	MaxAlignment     = 1 << 24 // a sane bound on general.alignment
	MaxDims          = 4       // ggml's GGML_MAX_DIMS
	maxNameLen       = 1 << 16 // keys and tensor names
	maxNesting       = 8       // depth of arrays of arrays
	prealloc         = 1 << 16 // never preallocate more entries than this from a count
	preallocArray    = 1 << 21 // nor more array elements (a 262k vocabulary fits)
	// MaxArrayLen bounds one metadata array (real files hold at most a few
	// million entries: vocabularies, merges), so a lying count in a large
	// file cannot make the parser read gigabytes of tensor data as metadata.
	MaxArrayLen = 1 << 26
)

// ParseHeader reads a GGUF header (metadata and tensor table) from r, which
// must start at the beginning of a file of fileSize bytes; name is used in
// error messages. It reads no tensor data and does not require r to reach
// the end of the file. Counts and lengths are checked against fileSize, so
// a lying header cannot cause a large allocation.
func ParseHeader(r io.Reader, fileSize int64, name string) (*File, error) {
	bufSize := int(min(max(fileSize, 16), 64<<10)) // small inputs (fuzzing) get small buffers
	p := &parser{r: bufio.NewReaderSize(r, bufSize), size: fileSize, name: name}
	f, err := p.parse()
	if err != nil {
		return nil, err
	}
	f.Path = name
	return f, nil
}

type parser struct {
	r    *bufio.Reader
	off  int64 // bytes consumed
	size int64
	name string
	buf  [8]byte
}

// errf makes an error naming the file.
func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("gguf: %s: "+format, append([]any{p.name}, args...)...)
}

// remaining is the number of bytes left in the file after what was read.
func (p *parser) remaining() int64 {
	if p.off >= p.size {
		return 0
	}
	return p.size - p.off
}

// fill fills b, returning the reader's error unwrapped (hot loops build
// their message only on failure).
func (p *parser) fill(b []byte) error {
	n, err := io.ReadFull(p.r, b)
	p.off += int64(n)
	return err
}

// readErr turns a read error into one naming the file, offset and field.
func (p *parser) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return p.errf("truncated at byte %d reading %s", p.off, what)
	}
	return p.errf("reading %s at byte %d: %w", what, p.off, err)
}

// read fills b; what names the field for the error message.
func (p *parser) read(b []byte, what string) error {
	if err := p.fill(b); err != nil {
		return p.readErr(err, what)
	}
	return nil
}

func (p *parser) u32(what string) (uint32, error) {
	if err := p.read(p.buf[:4], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p.buf[:4]), nil
}

func (p *parser) u64(what string) (uint64, error) {
	if err := p.read(p.buf[:8], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p.buf[:8]), nil
}

// str reads a length-prefixed string of at most limit bytes.
func (p *parser) str(what string, limit int64) (string, error) {
	n, err := p.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(limit) || n > uint64(p.remaining()) {
		return "", p.errf("%s length %d at byte %d is too large (%d bytes left in the file)", what, n, p.off-8, p.remaining())
	}
	b := make([]byte, n)
	if err := p.read(b, what); err != nil {
		return "", err
	}
	return string(b), nil
}

func (p *parser) parse() (*File, error) {
	var head [4]byte
	if err := p.read(head[:], "magic"); err != nil {
		return nil, err
	}
	if string(head[:]) != magic {
		return nil, p.errf("not a GGUF file (magic %q)", head[:])
	}
	version, err := p.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 1:
		return nil, p.errf("GGUF version 1 is not supported (obsolete format; convert the file again)")
	case version == 2 || version == 3:
	case bits.ReverseBytes32(version) == 2 || bits.ReverseBytes32(version) == 3:
		return nil, p.errf("big-endian GGUF files are not supported")
	default:
		return nil, p.errf("unsupported GGUF version %d (want 2 or 3)", version)
	}
	nTensors, err := p.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := p.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// Each entry takes at least this many bytes, which bounds the counts.
	const minKV, minTensor = 8 + 1 + 4 + 1, 8 + 1 + 4 + 4 + 8
	if nKV > uint64(p.remaining()/minKV) {
		return nil, p.errf("metadata count %d is impossible in a file of %d bytes", nKV, p.size)
	}
	if nTensors > uint64(p.remaining()/minTensor) {
		return nil, p.errf("tensor count %d is impossible in a file of %d bytes", nTensors, p.size)
	}

	f := &File{Version: version, Alignment: DefaultAlignment}
	f.Meta = make([]KV, 0, min(nKV, prealloc))
	f.keys = make(map[string]int, min(nKV, prealloc))
	for i := uint64(0); i < nKV; i++ {
		key, err := p.str(fmt.Sprintf("key of metadata entry %d", i), maxNameLen)
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, p.errf("metadata entry %d has an empty key", i)
		}
		if _, dup := f.keys[key]; dup {
			return nil, p.errf("duplicate metadata key %q", key)
		}
		t, err := p.u32(fmt.Sprintf("type of key %q", key))
		if err != nil {
			return nil, err
		}
		v, err := p.value(key, ValueType(t), 0)
		if err != nil {
			return nil, err
		}
		f.keys[key] = len(f.Meta)
		f.Meta = append(f.Meta, KV{key, v})
	}

	if v, ok := f.Get("general.alignment"); ok {
		a, isInt := v.Int()
		if !isInt {
			return nil, p.errf("key %q is %s, want uint32", "general.alignment", v.TypeName())
		}
		if a <= 0 || a&(a-1) != 0 || a > MaxAlignment {
			return nil, p.errf("key %q: alignment %d is not a power of two up to %d", "general.alignment", a, MaxAlignment)
		}
		f.Alignment = a
	}

	f.Tensors = make([]TensorInfo, 0, min(nTensors, prealloc))
	f.index = make(map[string]int, min(nTensors, prealloc))
	for i := uint64(0); i < nTensors; i++ {
		ti, err := p.tensorInfo(i, f.Alignment)
		if err != nil {
			return nil, err
		}
		if _, dup := f.index[ti.Name]; dup {
			return nil, p.errf("duplicate tensor name %q", ti.Name)
		}
		f.index[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	f.headerSize = p.off
	f.DataOffset = p.off
	if nTensors > 0 {
		f.DataOffset = alignUp(p.off, f.Alignment)
	}
	if err := p.checkData(f); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *parser) tensorInfo(i uint64, alignment int64) (TensorInfo, error) {
	var ti TensorInfo
	name, err := p.str(fmt.Sprintf("name of tensor %d", i), maxNameLen)
	if err != nil {
		return ti, err
	}
	if name == "" {
		return ti, p.errf("tensor %d has an empty name", i)
	}
	ti.Name = name
	nDims, err := p.u32(fmt.Sprintf("dimension count of tensor %q", name))
	if err != nil {
		return ti, err
	}
	if nDims > MaxDims {
		return ti, p.errf("tensor %q has %d dimensions (at most %d)", name, nDims, MaxDims)
	}
	ti.Shape = make([]int64, nDims)
	elems := uint64(1)
	for d := range ti.Shape {
		n, err := p.u64(fmt.Sprintf("dimension %d of tensor %q", d, name))
		if err != nil {
			return ti, err
		}
		if n == 0 || n > math.MaxInt64 {
			return ti, p.errf("tensor %q: dimension %d has invalid size %d", name, d, int64(n))
		}
		hi, lo := bits.Mul64(elems, n)
		if hi != 0 || lo > math.MaxInt64 {
			return ti, p.errf("tensor %q: element count of shape %v overflows", name, ti.Shape[:d+1])
		}
		ti.Shape[d] = int64(n)
		elems = lo
	}
	t, err := p.u32(fmt.Sprintf("type of tensor %q", name))
	if err != nil {
		return ti, err
	}
	ti.Type = tensor.DType(t)
	if !ti.Type.Known() || ti.Type == tensor.U8 || ti.Type == tensor.F8_E4M3 {
		return ti, p.errf("tensor %q has unknown type id %d", name, t)
	}
	if len(ti.Shape) > 0 && ti.Shape[0]%int64(ti.Type.BlockSize()) != 0 {
		return ti, p.errf("tensor %q: row length %d is not a multiple of the %s block size %d",
			name, ti.Shape[0], ti.Type, ti.Type.BlockSize())
	}
	bs, ts := uint64(ti.Type.BlockSize()), uint64(ti.Type.TypeSize())
	if elems%bs != 0 {
		return ti, p.errf("tensor %q: %d elements is not a multiple of the %s block size %d", name, elems, ti.Type, bs)
	}
	if elems/bs > math.MaxInt64/ts {
		return ti, p.errf("tensor %q: size of %d %s elements overflows", name, elems, ti.Type)
	}
	size, _ := ti.Type.RowBytes(int64(elems))
	ti.Size = size
	off, err := p.u64(fmt.Sprintf("offset of tensor %q", name))
	if err != nil {
		return ti, err
	}
	if off > math.MaxInt64/2 {
		return ti, p.errf("tensor %q: offset %d is out of range", name, off)
	}
	ti.Offset = int64(off)
	if ti.Offset%alignment != 0 {
		return ti, p.errf("tensor %q: offset %d is not a multiple of the alignment %d", name, ti.Offset, alignment)
	}
	return ti, nil
}

// checkData checks that every tensor lies inside the file and that no two
// tensors overlap.
func (p *parser) checkData(f *File) error {
	if len(f.Tensors) == 0 {
		return nil
	}
	if f.DataOffset > p.size {
		return p.errf("data section at byte %d starts past the end of the file (%d bytes)", f.DataOffset, p.size)
	}
	avail := p.size - f.DataOffset
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
		t := &f.Tensors[i]
		if t.Offset > avail || t.Size > avail-t.Offset {
			return p.errf("tensor %q: data [%d, %d) of the data section lies outside the file (data section is %d bytes)",
				t.Name, t.Offset, t.Offset+t.Size, avail)
		}
	}
	sort.Slice(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	for k := 1; k < len(order); k++ {
		a, b := &f.Tensors[order[k-1]], &f.Tensors[order[k]]
		if a.Offset+a.Size > b.Offset {
			return p.errf("tensors %q and %q overlap (offsets %d+%d and %d)", a.Name, b.Name, a.Offset, a.Size, b.Offset)
		}
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// value reads a value of type t for key.
func (p *parser) value(key string, t ValueType, depth int) (Value, error) {
	if !t.Valid() {
		return Value{}, p.errf("key %q has unknown value type %d", key, uint32(t))
	}
	if t == TypeArray {
		return p.array(key, depth)
	}
	if t == TypeString {
		s, err := p.str(fmt.Sprintf("string value of key %q", key), math.MaxInt64)
		return Value{typ: TypeString, str: s}, err
	}
	n := t.size()
	if err := p.read(p.buf[:n], fmt.Sprintf("%s value of key %q", t, key)); err != nil {
		return Value{}, err
	}
	var x uint64
	switch n {
	case 1:
		x = uint64(p.buf[0])
		if t == TypeInt8 {
			x = uint64(int8(p.buf[0]))
		}
	case 2:
		x = uint64(binary.LittleEndian.Uint16(p.buf[:2]))
		if t == TypeInt16 {
			x = uint64(int16(x))
		}
	case 4:
		x = uint64(binary.LittleEndian.Uint32(p.buf[:4]))
		if t == TypeInt32 {
			x = uint64(int32(x))
		}
	case 8:
		x = binary.LittleEndian.Uint64(p.buf[:8])
	}
	if t == TypeBool && x > 1 {
		return Value{}, p.errf("key %q: bool value %d is neither 0 nor 1", key, x)
	}
	return Value{typ: t, num: x}, nil
}

// array reads an array's element type, count and elements.
func (p *parser) array(key string, depth int) (Value, error) {
	if depth >= maxNesting {
		return Value{}, p.errf("key %q: arrays nested more than %d deep", key, maxNesting)
	}
	et, err := p.u32(fmt.Sprintf("array element type of key %q", key))
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.Valid() {
		return Value{}, p.errf("key %q: array has unknown element type %d", key, et)
	}
	n, err := p.u64(fmt.Sprintf("array length of key %q", key))
	if err != nil {
		return Value{}, err
	}
	// The smallest encoding of one element bounds the count.
	minSize := int64(elem.size())
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 4 + 8
	}
	if n > MaxArrayLen {
		return Value{}, p.errf("key %q: array of %d elements exceeds the limit of %d", key, n, MaxArrayLen)
	}
	if n > uint64(p.remaining()/minSize) {
		return Value{}, p.errf("key %q: array of %d %s elements cannot fit in the %d bytes left in the file",
			key, n, elem, p.remaining())
	}
	v := Value{typ: TypeArray, elem: elem}
	switch elem {
	case TypeString:
		v.arr, err = p.strings(key, int(n))
	case TypeArray:
		elems := make([]Value, 0, min(n, prealloc))
		for i := uint64(0); i < n && err == nil; i++ {
			var e Value
			e, err = p.array(fmt.Sprintf("%s[%d]", key, i), depth+1)
			elems = append(elems, e)
		}
		v.arr = elems
	case TypeUint8:
		v.arr, err = readNums(p, key, n, 1, func(b []byte) uint8 { return b[0] })
	case TypeInt8:
		v.arr, err = readNums(p, key, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeUint16:
		v.arr, err = readNums(p, key, n, 2, binary.LittleEndian.Uint16)
	case TypeInt16:
		v.arr, err = readNums(p, key, n, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case TypeUint32:
		v.arr, err = readNums(p, key, n, 4, binary.LittleEndian.Uint32)
	case TypeInt32:
		v.arr, err = readNums(p, key, n, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case TypeFloat32:
		v.arr, err = readNums(p, key, n, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case TypeUint64:
		v.arr, err = readNums(p, key, n, 8, binary.LittleEndian.Uint64)
	case TypeInt64:
		v.arr, err = readNums(p, key, n, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case TypeFloat64:
		v.arr, err = readNums(p, key, n, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case TypeBool:
		var raw []uint8
		raw, err = readNums(p, key, n, 1, func(b []byte) uint8 { return b[0] })
		bs := make([]bool, len(raw))
		for i, x := range raw {
			if x > 1 && err == nil {
				err = p.errf("key %q: element %d: bool value %d is neither 0 nor 1", key, i, x)
			}
			bs[i] = x != 0
		}
		v.arr = bs
	}
	if err != nil {
		return Value{}, err
	}
	return v, nil
}

// readNums reads n fixed-size elements in chunks, so memory grows only with
// what is actually read.
func readNums[T any](p *parser, key string, n uint64, size int, dec func([]byte) T) ([]T, error) {
	out := make([]T, 0, min(n, preallocArray))
	var chunk [4096]byte
	per := len(chunk) / size
	for left := n; left > 0; {
		k := min(left, uint64(per))
		b := chunk[:int(k)*size]
		if err := p.fill(b); err != nil {
			return nil, p.readErr(err, fmt.Sprintf("array elements of key %q", key))
		}
		for j := 0; j < len(b); j += size {
			out = append(out, dec(b[j:j+size]))
		}
		left -= k
	}
	return out, nil
}

// strings reads n strings. Their bytes are gathered in a reused 1 MiB block
// that becomes one Go string when full, each element a substring of it: a
// 262k-entry vocabulary costs a few dozen allocations, not 262k, and its
// bytes are copied once.
func (p *parser) strings(key string, n int) ([]string, error) {
	const block = 1 << 20
	out := make([]string, 0, min(n, preallocArray))
	buf := make([]byte, 0, min(int64(block), p.remaining()))
	var ends []int // ends in buf of the strings not yet in out
	flush := func() {
		s := string(buf)
		start := 0
		for _, e := range ends {
			out = append(out, s[start:e])
			start = e
		}
		buf, ends = buf[:0], ends[:0]
	}
	for i := 0; i < n; i++ {
		var l uint64
		if b, err := p.r.Peek(8); err == nil { // fast path: straight from the buffer
			l = binary.LittleEndian.Uint64(b)
			p.r.Discard(8)
			p.off += 8
		} else {
			if err := p.fill(p.buf[:8]); err != nil {
				return nil, p.readErr(err, fmt.Sprintf("length of element %d of key %q", i, key))
			}
			l = binary.LittleEndian.Uint64(p.buf[:8])
		}
		if l > uint64(p.remaining()) {
			return nil, p.errf("key %q: element %d: string length %d exceeds the %d bytes left in the file",
				key, i, l, p.remaining())
		}
		if int(l) > cap(buf)-len(buf) {
			flush()
		}
		if int(l) > cap(buf) { // a string larger than the block: on its own
			b := make([]byte, l)
			if err := p.fill(b); err != nil {
				return nil, p.readErr(err, fmt.Sprintf("element %d of key %q", i, key))
			}
			out = append(out, string(b))
			continue
		}
		start := len(buf)
		buf = buf[:start+int(l)]
		if int(l) <= p.r.Buffered() {
			b, _ := p.r.Peek(int(l))
			copy(buf[start:], b)
			p.r.Discard(int(l))
			p.off += int64(l)
		} else if err := p.fill(buf[start:]); err != nil {
			return nil, p.readErr(err, fmt.Sprintf("element %d of key %q", i, key))
		}
		ends = append(ends, len(buf))
	}
	flush()
	return out, nil
}
