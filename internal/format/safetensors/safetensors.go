// Package safetensors reads and writes safetensors files: the JSON header is
// parsed and validated up front, and tensor data is memory-mapped and handed
// out as zero-copy slices, never read or copied at open.
//
// Shapes are in safetensors (PyTorch) order: row-major, outermost dimension
// first, so the last element of Shape is the row length. This is the
// reverse of GGUF's order.
//
// Dtypes: F32, F16, BF16, I64, I32, U8 and F8_E4M3 are supported and map to
// the tensor package's types. Other dtypes that safetensors defines (F64,
// I8, I16, U16, U32, U64, BOOL, F8_E5M2, F8_E8M0, C64, F4, F6_E2M3,
// F6_E3M2) are recognised and validated, so a checkpoint holding an odd
// tensor still opens; TensorData refuses them with ErrUnsupportedDType
// naming the tensor and dtype (loaders can skip such tensors), and
// RawTensorData returns their bytes for callers that convert them. A dtype
// name outside that list makes the header invalid.
package safetensors

import (
	"errors"
	"fmt"
	"math"

	"mica/internal/format/internal/tensorfile"
	"mica/internal/format/mmap"
	"mica/internal/tensor"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation does.
const MaxHeaderSize = 100 << 20

// OtherDType is TensorInfo.DType for a dtype with no tensor.DType
// equivalent (BOOL, U16, ...); RawDType names it. It is not a Known type.
const OtherDType tensor.DType = math.MaxUint32

// Errors that callers may test for with errors.Is.
var (
	ErrTensorNotFound   = errors.New("tensor not found")
	ErrUnsupportedDType = errors.New("unsupported dtype")
)

// metadataKey is the header entry holding the free-form string map.
const metadataKey = "__metadata__"

type dtypeInfo struct {
	name      string
	t         tensor.DType
	bits      int64
	supported bool
}

var dtypes = []dtypeInfo{
	{"F32", tensor.F32, 32, true},
	{"F16", tensor.F16, 16, true},
	{"BF16", tensor.BF16, 16, true},
	{"I64", tensor.I64, 64, true},
	{"I32", tensor.I32, 32, true},
	{"U8", tensor.U8, 8, true},
	{"F8_E4M3", tensor.F8_E4M3, 8, true},
	{"F64", tensor.F64, 64, false},
	{"I8", tensor.I8, 8, false},
	{"I16", tensor.I16, 16, false},
	{"U16", OtherDType, 16, false},
	{"U32", OtherDType, 32, false},
	{"U64", OtherDType, 64, false},
	{"BOOL", OtherDType, 8, false},
	{"F8_E5M2", OtherDType, 8, false},
	{"F8_E8M0", OtherDType, 8, false},
	{"C64", OtherDType, 64, false},
	{"F4", OtherDType, 4, false},
	{"F6_E2M3", OtherDType, 6, false},
	{"F6_E3M2", OtherDType, 6, false},
}

func lookupName(name string) (dtypeInfo, bool) {
	for _, d := range dtypes {
		if d.name == name {
			return d, true
		}
	}
	return dtypeInfo{}, false
}

// DTypeName is the safetensors name of t ("F32", "BF16", ...), or false if
// t cannot be stored in safetensors.
func DTypeName(t tensor.DType) (string, bool) {
	for _, d := range dtypes {
		if d.t == t && t != OtherDType {
			return d.name, true
		}
	}
	return "", false
}

// Supported reports whether TensorData serves tensors of this dtype.
func (t *TensorInfo) Supported() bool {
	d, ok := lookupName(t.RawDType)
	return ok && d.supported
}

// File is an open safetensors file.
type File struct {
	Path       string
	Metadata   map[string]string // the __metadata__ map; nil when absent
	Tensors    []TensorInfo      // in data order (by Begin, then name)
	DataOffset int64             // absolute offset of the data section: 8 + header length

	index map[string]int
	data  tensorfile.Data // no file for a File from ParseHeader
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name     string
	DType    tensor.DType // OtherDType when RawDType has no tensor.DType
	RawDType string       // the dtype as written in the file, e.g. "BF16"
	Shape    []int64      // row-major, outermost first (PyTorch order)
	Begin    int64        // data_offsets, relative to File.DataOffset; filled in by Create
	End      int64
}

// Size is the tensor's byte length.
func (t *TensorInfo) Size() int64 { return t.End - t.Begin }

// Elements is the number of elements (1 for a scalar, shape []).
func (t *TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Open reads and validates the header of the safetensors file at path; the
// data is mapped on first use, never read or copied.
func Open(path string) (*File, error) {
	fd, size, err := tensorfile.OpenRegular("safetensors", path)
	if err != nil {
		return nil, err
	}
	f, err := ParseHeader(fd, size, path)
	if err != nil {
		fd.Close()
		return nil, err
	}
	f.data.Attach(fd)
	return f, nil
}

// Close releases the mapping and the file; slices from TensorData must not
// be used afterwards.
func (f *File) Close() error { return f.data.Close() }

// Tensor finds a tensor by name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns the bytes of a tensor of a supported dtype: a zero-copy
// slice of the read-only mapping, valid until Close. Other dtypes give an
// error wrapping ErrUnsupportedDType.
func (f *File) TensorData(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, ErrTensorNotFound)
	}
	if !t.Supported() {
		return nil, fmt.Errorf("safetensors: %s: tensor %q has dtype %s: %w", f.Path, name, t.RawDType, ErrUnsupportedDType)
	}
	return f.RawTensorData(name)
}

// RawTensorData returns the bytes of any tensor, whatever its dtype.
func (f *File) RawTensorData(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, ErrTensorNotFound)
	}
	return f.data.Slice("safetensors", f.Path, name, 0, f.DataOffset+t.Begin, f.DataOffset+t.End)
}

// Advise passes an access hint for the named tensor's bytes to the OS.
func (f *File) Advise(name string, advice mmap.Advice) error {
	t, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, ErrTensorNotFound)
	}
	return f.data.Advise("safetensors", f.Path, 0, f.DataOffset+t.Begin, t.Size(), advice)
}
