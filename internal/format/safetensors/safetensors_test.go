package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mica/internal/tensor"
)

func testTensors() []TensorInfo {
	return []TensorInfo{
		{Name: "model.diffusion_model.input_blocks.0.0.weight", DType: tensor.F32, Shape: []int64{4, 3, 3, 3}},
		{Name: "emb", DType: tensor.I64, Shape: []int64{2}},
		{Name: "half", DType: tensor.F16, Shape: []int64{5}},
		{Name: "bf", DType: tensor.BF16, Shape: []int64{2, 3}},
		{Name: "idx", DType: tensor.I32, Shape: []int64{1}},
		{Name: "bytes", DType: tensor.U8, Shape: []int64{3}},
		{Name: "fp8", DType: tensor.F8_E4M3, Shape: []int64{7}},
		{Name: "scalar", DType: tensor.F32, Shape: []int64{}},
		{Name: "empty", DType: tensor.F32, Shape: []int64{0, 4}},
		{Name: "double", DType: tensor.F64, Shape: []int64{2}},
		{Name: "mask", DType: OtherDType, RawDType: "BOOL", Shape: []int64{3}},
	}
}

func fill(n int64, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)*13 + seed
	}
	return b
}

func writeFile(t testing.TB, path string, md map[string]string, tensors []TensorInfo) [][]byte {
	t.Helper()
	w, err := Create(path, md, tensors)
	if err != nil {
		t.Fatal(err)
	}
	var datas [][]byte
	for i, ti := range w.Tensors() {
		d := fill(ti.Size(), byte(i))
		datas = append(datas, d)
		if err := w.WriteTensor(ti.Name, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return datas
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	md := map[string]string{"format": "pt", "quote\"key": "line\nbreak ü"}
	tensors := testTensors()
	datas := writeFile(t, path, md, tensors)
	if tensors[1].Begin != 4*27*4 || tensors[1].End != tensors[1].Begin+16 {
		t.Fatalf("Create did not fill offsets in the caller's slice: %+v", tensors[1])
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.Metadata, md) {
		t.Errorf("metadata %v, want %v", f.Metadata, md)
	}
	if f.DataOffset%8 != 0 {
		t.Errorf("data offset %d not a multiple of 8", f.DataOffset)
	}
	if len(f.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
	}
	for i, want := range tensors {
		got, ok := f.Tensor(want.Name)
		if !ok {
			t.Fatalf("tensor %s missing", want.Name)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("tensor %s: got %+v want %+v", want.Name, *got, want)
		}
		raw, err := f.RawTensorData(want.Name)
		if err != nil || !bytes.Equal(raw, datas[i]) {
			t.Errorf("tensor %s: raw data differs (%v)", want.Name, err)
		}
		d, err := f.TensorData(want.Name)
		switch want.RawDType {
		case "F64", "BOOL":
			if !errors.Is(err, ErrUnsupportedDType) || !strings.Contains(err.Error(), want.Name) ||
				!strings.Contains(err.Error(), want.RawDType) {
				t.Errorf("tensor %s: TensorData error %v", want.Name, err)
			}
		default:
			if err != nil || !bytes.Equal(d, datas[i]) {
				t.Errorf("tensor %s: data differs (%v)", want.Name, err)
			}
		}
	}
	// Data order: sorted by Begin.
	for i := 1; i < len(f.Tensors); i++ {
		if f.Tensors[i].Begin < f.Tensors[i-1].Begin {
			t.Errorf("tensors not in data order")
		}
	}
	if _, err := f.TensorData("nope"); !errors.Is(err, ErrTensorNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d directory entries, want 1", len(entries))
	}
}

func TestNoMetadata(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	writeFile(t, path, nil, nil)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata != nil || len(f.Tensors) != 0 {
		t.Errorf("metadata %v tensors %v", f.Metadata, f.Tensors)
	}
}

func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	w, err := Create(path, nil, testTensors())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("emb", make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("out of order: %v", err)
	}
	if err := w.WriteTensor(testTensors()[0].Name, make([]byte, 3)); err == nil || !strings.Contains(err.Error(), "want 432") {
		t.Errorf("short data: %v", err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "was not written") {
		t.Errorf("incomplete Close: %v", err)
	}
	w, err = Create(path, nil, testTensors())
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files left behind", len(entries))
	}
	for _, c := range []struct {
		tensors []TensorInfo
		want    string
	}{
		{[]TensorInfo{{Name: "a", DType: tensor.F32}, {Name: "a", DType: tensor.F32}}, `duplicate tensor "a"`},
		{[]TensorInfo{{Name: "q", DType: tensor.Q4_K, Shape: []int64{256}}}, "cannot be stored"},
		{[]TensorInfo{{Name: "o", DType: OtherDType, RawDType: "F128"}}, `unknown dtype "F128"`},
		{[]TensorInfo{{Name: "n", DType: tensor.F32, Shape: []int64{-1}}}, "bad shape"},
		{[]TensorInfo{{Name: "__metadata__", DType: tensor.F32}}, "cannot be a tensor name"},
	} {
		if _, err := Create(path, nil, c.tensors); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Create: %v, want %q", err, c.want)
		}
	}
}

// file builds safetensors bytes from a header string and data length.
func file(header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func parseBytes(b []byte) (*File, error) {
	return ParseHeader(bytes.NewReader(b), int64(len(b)), "bad.safetensors")
}

func TestMalformed(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "cannot read the header length"},
		{"huge-header", binary.LittleEndian.AppendUint64(nil, 1<<40), "exceeds the 104857600-byte limit"},
		{"header-past-end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "exceeds the 2 bytes"},
		{"not-object", file(`[1,2]`, 0), "not a JSON object"},
		{"bad-json", file(`{"a":`, 0), "invalid"},
		{"trailing", file(`{} x`, 0), "after the top-level object"},
		{"two-objects", file(`{}{}`, 0), "after the top-level object"},
		{"dup", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), `duplicate tensor "a"`},
		{"dup-meta", file(`{"__metadata__":{},"__metadata__":{}}`, 0), "duplicate"},
		{"meta-type", file(`{"__metadata__":{"a":1}}`, 0), "object of strings"},
		{"dtype", file(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, 16), `tensor "a": unknown dtype "F128"`},
		{"missing-field", file(`{"a":{"dtype":"F32","shape":[1]}}`, 4), `tensor "a": entry needs`},
		{"entry-type", file(`{"a":5}`, 0), `tensor "a": invalid entry`},
		{"shape-float", file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), `tensor "a": invalid entry`},
		{"shape-neg", file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "negative"},
		{"shape-overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "overflows"},
		{"offsets-3", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 8), "must be [begin, end]"},
		{"offsets-reversed", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, 8), "must be [begin, end]"},
		{"length", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 8), "needs 8 bytes"},
		{"outside", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "outside the 4-byte data section"},
		{"far-outside", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}`, 4), "outside"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `tensors "a" and "b" overlap`},
		{"sub-byte", file(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2), "not a whole number of bytes"},
	}
	for _, c := range cases {
		_, err := parseBytes(c.b)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.safetensors") {
			t.Errorf("%s: error %q, want it to name the file and mention %q", c.name, err, c.want)
		}
	}
	// Valid odd cases: padding spaces, gaps, an empty tensor inside another's range,
	// unknown fields inside entries.
	ok := file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1},"e":{"dtype":"BF16","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F4","shape":[4],"data_offsets":[12,14]}}   `, 16)
	f, err := parseBytes(ok)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := f.Tensor("b"); b.DType != OtherDType || b.RawDType != "F4" || b.Supported() {
		t.Errorf("F4 tensor: %+v", b)
	}
}

// TestTruncated cuts a valid file at every length inside its header and data.
func TestTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	writeFile(t, path, map[string]string{"k": "v"}, testTensors())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n++ {
		if _, err := parseBytes(b[:n]); err == nil {
			t.Fatalf("prefix of %d bytes (of %d) accepted", n, len(b))
		}
	}
}

// TestOpenReadsOnlyHeader opens a 1 GiB sparse file quickly.
func TestOpenReadsOnlyHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.safetensors")
	tensors := []TensorInfo{{Name: "w", DType: tensor.F16, Shape: []int64{1 << 15, 1 << 14}}}
	w, err := Create(path, nil, tensors)
	if err != nil {
		t.Fatal(err)
	}
	head, err := encodeHeader(nil, w.Tensors())
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(head)))
	if err := os.WriteFile(path, append(b, head...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(8+len(head))+tensors[0].End); err != nil {
		t.Skipf("no sparse files: %v", err)
	}
	cr := &countReader{}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cr.r = fd
	st, _ := fd.Stat()
	if _, err := ParseHeader(cr, st.Size(), path); err != nil {
		t.Fatal(err)
	}
	if cr.n != int64(8+len(head)) {
		t.Errorf("ParseHeader read %d bytes, header is %d", cr.n, 8+len(head))
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.TensorData("w")
	if err != nil || len(d) != 1<<30 {
		t.Fatalf("TensorData: %d bytes, %v", len(d), err)
	}
}

type countReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
