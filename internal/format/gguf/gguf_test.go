package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mica/internal/tensor"
)

// allMeta has every value type, arrays of each, empty arrays and nested arrays.
func allMeta(t testing.TB) []KV {
	nested, err := ArrayOfArrays([]Value{
		ArrayOf([]uint32{1, 2, 3}),
		ArrayOf([]string{"a", "", "ü"}),
		ArrayOf([]float32{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	deeper, err := ArrayOfArrays([]Value{nested, ArrayOf([]bool{true})})
	if err != nil {
		t.Fatal(err)
	}
	return []KV{
		String("general.architecture", "gemma3"),
		Uint8("u8", 250), Int8("i8", -7), Uint16("u16", 65000), Int16("i16", -30000),
		Uint32("u32", 4000000000), Int32("i32", -2000000000), Float32("f32", 1.5),
		Bool("t", true), Bool("f", false), Uint64("u64", math.MaxUint64), Int64("i64", math.MinInt64),
		Float64("f64", math.Pi), String("empty", ""),
		Uint8s("a.u8", []uint8{1, 2, 255}), Int8s("a.i8", []int8{-1, 0, 1}),
		Uint16s("a.u16", []uint16{1, 65535}), Int16s("a.i16", []int16{-32768, 7}),
		Uint32s("a.u32", []uint32{7, 8}), Int32s("a.i32", []int32{-1, 5}),
		Float32s("a.f32", []float32{0.25, -2}), Bools("a.bool", []bool{true, false, true}),
		Strings("a.str", []string{"<pad>", "<eos>", "", "▁hello"}), Uint64s("a.u64", []uint64{1 << 60}),
		Int64s("a.i64", []int64{-1 << 60}), Float64s("a.f64", []float64{1e300}),
		Strings("a.empty", nil),
		{"a.nested", nested}, {"a.deeper", deeper},
	}
}

func testTensors() []TensorInfo {
	return []TensorInfo{
		{Name: "token_embd.weight", Type: tensor.F32, Shape: []int64{3, 5}},
		{Name: "blk.0.attn_q.weight", Type: tensor.Q4_K, Shape: []int64{256, 2}},
		{Name: "blk.0.ffn_up.weight", Type: tensor.Q8_0, Shape: []int64{64, 3, 1}},
		{Name: "norm", Type: tensor.BF16, Shape: []int64{7}},
		{Name: "iq", Type: tensor.IQ2_XXS, Shape: []int64{256}}, // known but unsupported
	}
}

// fill makes recognisable tensor data.
func fill(n int64, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)*31 + seed
	}
	return b
}

func writeFile(t *testing.T, path string, alignment int64, meta []KV, tensors []TensorInfo) [][]byte {
	t.Helper()
	w, err := Create(path, 3, alignment, meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	var datas [][]byte
	for i, ti := range w.Tensors() {
		d := fill(ti.Size, byte(i))
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
	for _, align := range []int64{0, 32, 64, 4096} {
		dir := t.TempDir()
		path := filepath.Join(dir, "m.gguf")
		meta := allMeta(t)
		tensors := testTensors()
		datas := writeFile(t, path, align, meta, tensors)
		if tensors[1].Offset == 0 || tensors[1].Size != 2*144 {
			t.Fatalf("Create did not fill offsets/sizes in the caller's slice: %+v", tensors[1])
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		wantAlign := align
		if align == 0 {
			wantAlign = DefaultAlignment
		}
		if f.Alignment != wantAlign || f.Version != 3 || f.DataOffset%wantAlign != 0 {
			t.Errorf("align %d: got alignment %d version %d data offset %d", align, f.Alignment, f.Version, f.DataOffset)
		}
		gotMeta := f.Meta
		if align > 32 { // Create added general.alignment
			last := gotMeta[len(gotMeta)-1]
			if a, ok := last.Value.Uint32(); last.Key != "general.alignment" || !ok || int64(a) != align {
				t.Errorf("general.alignment not added: %v", last)
			}
			gotMeta = gotMeta[:len(gotMeta)-1]
		}
		if !reflect.DeepEqual(gotMeta, meta) {
			t.Errorf("align %d: metadata differs:\n got %v\nwant %v", align, gotMeta, meta)
		}
		if !reflect.DeepEqual(f.Tensors, tensors) {
			t.Errorf("align %d: tensors differ:\n got %+v\nwant %+v", align, f.Tensors, tensors)
		}
		for i, ti := range tensors {
			if ti.Offset%wantAlign != 0 {
				t.Errorf("tensor %s offset %d not aligned", ti.Name, ti.Offset)
			}
			d, err := f.TensorData(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d, datas[i]) {
				t.Errorf("tensor %s data differs", ti.Name)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries after writing, want 1", len(entries))
		}
	}
}

func TestTypedGetters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	writeFile(t, path, 0, allMeta(t), nil)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if s, err := f.String("general.architecture"); err != nil || s != "gemma3" {
		t.Errorf("String: %q %v", s, err)
	}
	if x, err := f.Uint32("u32"); err != nil || x != 4000000000 {
		t.Errorf("Uint32: %d %v", x, err)
	}
	if x, err := f.Int("i8"); err != nil || x != -7 {
		t.Errorf("Int(i8): %d %v", x, err)
	}
	if _, err := f.Int("u64"); !errors.Is(err, ErrWrongType) {
		t.Errorf("Int of MaxUint64: %v", err)
	}
	if x, err := f.Float("f32"); err != nil || x != 1.5 {
		t.Errorf("Float: %v %v", x, err)
	}
	if xs, err := f.Ints("a.u16"); err != nil || !reflect.DeepEqual(xs, []int64{1, 65535}) {
		t.Errorf("Ints: %v %v", xs, err)
	}
	if xs, err := f.Strings("a.str"); err != nil || len(xs) != 4 || xs[3] != "▁hello" || xs[2] != "" {
		t.Errorf("Strings: %q %v", xs, err)
	}
	if b, err := f.Bool("t"); err != nil || !b {
		t.Errorf("Bool: %v %v", b, err)
	}
	_, err = f.Uint32("general.architecture")
	if !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), `"general.architecture" is string, want uint32`) ||
		!strings.Contains(err.Error(), path) {
		t.Errorf("wrong-type error: %v", err)
	}
	_, err = f.Float32s("a.str")
	if !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "array of string, want array of float32") {
		t.Errorf("wrong-array-type error: %v", err)
	}
	if _, err := f.String("missing.key"); !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing-key error: %v", err)
	}
	v, _ := f.Get("a.nested")
	inner, ok := v.Arrays()
	if !ok || len(inner) != 3 || inner[1].ElemType() != TypeString {
		t.Fatalf("nested array: %v", v)
	}
	if s := fmt.Sprint(v); s != `[[1, 2, 3], ["a", "", "ü"], []]` {
		t.Errorf("nested String() = %s", s)
	}
	if _, err := f.TensorData("nope"); !errors.Is(err, ErrTensorNotFound) {
		t.Errorf("TensorData of a missing tensor: %v", err)
	}
}

func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	tensors := testTensors()

	// Out of order, wrong length, then Close with a tensor missing.
	w, err := Create(path, 3, 0, nil, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("norm", make([]byte, 14)); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("out-of-order write: %v", err)
	}
	if err := w.WriteTensor("token_embd.weight", make([]byte, 59)); err == nil || !strings.Contains(err.Error(), "want 60") {
		t.Errorf("short write: %v", err)
	}
	if err := w.WriteTensor("token_embd.weight", make([]byte, 60)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), `"blk.0.attn_q.weight" was not written`) {
		t.Errorf("incomplete Close: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("incomplete file left at the destination")
	}

	// Abort leaves nothing.
	w, err = Create(path, 3, 0, nil, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files left after Abort", len(entries))
	}

	bad := []struct {
		name    string
		version uint32
		align   int64
		meta    []KV
		tensors []TensorInfo
		want    string
	}{
		{"v1", 1, 0, nil, nil, "version 1"},
		{"align", 3, 48, nil, nil, "power of two"},
		{"align-disagree", 3, 64, []KV{Uint32("general.alignment", 32)}, nil, "disagrees"},
		{"align-type", 3, 0, []KV{Int32("general.alignment", 32)}, nil, "want uint32"},
		{"dup-key", 3, 0, []KV{Uint8("k", 1), Uint8("k", 2)}, nil, `duplicate metadata key "k"`},
		{"empty-key", 3, 0, []KV{Uint8("", 1)}, nil, "empty"},
		{"dup-tensor", 3, 0, nil, []TensorInfo{{Name: "a", Type: tensor.F32, Shape: []int64{1}}, {Name: "a", Type: tensor.F32, Shape: []int64{1}}}, `duplicate tensor name "a"`},
		{"block", 3, 0, nil, []TensorInfo{{Name: "q", Type: tensor.Q4_0, Shape: []int64{33}}}, "block size"},
		{"dims", 3, 0, nil, []TensorInfo{{Name: "d", Type: tensor.F32, Shape: []int64{1, 1, 1, 1, 1}}}, "5 dimensions"},
		{"zero-dim", 3, 0, nil, []TensorInfo{{Name: "z", Type: tensor.F32, Shape: []int64{4, 0}}}, "bad dimension"},
		{"u8", 3, 0, nil, []TensorInfo{{Name: "u", Type: tensor.U8, Shape: []int64{4}}}, "cannot be stored"},
		{"unknown-type", 3, 0, nil, []TensorInfo{{Name: "x", Type: tensor.DType(5), Shape: []int64{4}}}, "cannot be stored"},
	}
	for _, c := range bad {
		_, err := Create(path, c.version, c.align, c.meta, c.tensors)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Create error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files left after failed Creates", len(entries))
	}
}

// TestWriteTensorFrom streams tensor data from a reader.
func TestWriteTensorFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	tensors := []TensorInfo{{Name: "a", Type: tensor.F16, Shape: []int64{10}}}
	w, err := Create(path, 2, 0, nil, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensorFrom("a", bytes.NewReader(fill(20, 3))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.TensorData("a")
	if err != nil || !bytes.Equal(d, fill(20, 3)) || f.Version != 2 {
		t.Fatalf("data %v err %v version %d", d, err, f.Version)
	}

	w, err = Create(path, 3, 0, nil, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensorFrom("a", bytes.NewReader(fill(19, 3))); err == nil {
		t.Error("short reader accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
	// The earlier, complete file is untouched.
	if st, err := os.Stat(path); err != nil || st.Size() != f.DataOffset+32 {
		t.Errorf("previous file damaged: %v %v", st, err)
	}
}

// TestOpenReadsOnlyHeader opens a file whose data section is 1 GiB of
// sparse zeros: Open must read only the header.
func TestOpenReadsOnlyHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.gguf")
	const n = 1 << 28 // 2^28 F32 = 1 GiB
	tensors := []TensorInfo{{Name: "big", Type: tensor.F32, Shape: []int64{n}}}
	w, err := Create(path, 3, 0, []KV{String("general.architecture", "test")}, tensors)
	if err != nil {
		t.Fatal(err)
	}
	// Abandon the writer's own stream and build the sparse file directly from
	// its header: writing 1 GiB would make the test slow.
	head, err := encodeHeader(3, []KV{String("general.architecture", "test")}, w.Tensors())
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if err := os.WriteFile(path, head, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, alignUp(int64(len(head)), 32)+4*n); err != nil {
		t.Skipf("cannot make a sparse file: %v", err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.headerRead > 128<<10 {
		t.Errorf("Open read %d bytes for a %d-byte header", f.headerRead, len(head))
	}
	d, err := f.TensorData("big")
	if err != nil || len(d) != 4*n || d[len(d)-1] != 0 {
		t.Fatalf("TensorData: len %d err %v", len(d), err)
	}
}

// TestConcurrentFirstUse maps the file from several goroutines at once.
func TestConcurrentFirstUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	datas := writeFile(t, path, 0, nil, testTensors())
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i, ti := range f.Tensors {
				d, err := f.TensorData(ti.Name)
				if err == nil && !bytes.Equal(d, datas[i]) {
					err = errors.New("data differs")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.TensorData(f.Tensors[0].Name); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("TensorData after Close: %v", err)
	}
}
