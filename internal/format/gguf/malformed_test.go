package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/tensor"
)

// validBytes writes a small valid file with the writer and returns its bytes.
func validBytes(t testing.TB, meta []KV, tensors []TensorInfo) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.gguf")
	w, err := Create(path, 3, 0, meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	for i, ti := range w.Tensors() {
		if err := w.WriteTensor(ti.Name, fill(ti.Size, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseBytes(b []byte) (*File, error) {
	return ParseHeader(bytes.NewReader(b), int64(len(b)), "bad.gguf")
}

// TestTruncated cuts a valid file at every length: each prefix that ends
// inside the header or a tensor must be refused with an error naming the file.
func TestTruncated(t *testing.T) {
	b := validBytes(t, allMeta(t), testTensors())
	f, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	last := f.Tensors[len(f.Tensors)-1]
	end := f.DataOffset + last.Offset + last.Size
	for n := 0; n < int(end); n++ {
		_, err := parseBytes(b[:n])
		if err == nil {
			t.Fatalf("prefix of %d bytes (of %d) accepted", n, end)
		}
		if !strings.Contains(err.Error(), "bad.gguf") {
			t.Fatalf("error does not name the file: %v", err)
		}
	}
	if _, err := parseBytes(b[:end]); err != nil {
		t.Fatalf("file without its final padding refused: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	f32 := uint32(tensor.F32)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"magic", []byte("GGUX\x03\x00\x00\x00"), "not a GGUF file"},
		{"v1", new(raw).head(1, 0, 0).Bytes(), "version 1 is not supported"},
		{"v4", new(raw).head(4, 0, 0).Bytes(), "unsupported GGUF version 4"},
		{"big-endian", append([]byte("GGUF"), 0, 0, 0, 3), "big-endian"},
		{"kv-count", new(raw).head(3, 0, 1<<60).Bytes(), "metadata count"},
		{"tensor-count", new(raw).head(3, 1<<62, 0).Bytes(), "tensor count"},
		{"key-length", padded(new(raw).head(3, 0, 1).u64(1 << 40).Bytes()), "key of metadata entry 0 length"},
		{"empty-key", padded(new(raw).head(3, 0, 1).str("").u32(0).Bytes()), "empty key"},
		{"value-type", padded(new(raw).head(3, 0, 1).str("k").u32(13).Bytes()), `key "k" has unknown value type 13`},
		{"elem-type", new(raw).head(3, 0, 1).str("k").u32(9).u32(77).u64(0).Bytes(), "unknown element type 77"},
		{"array-count", new(raw).head(3, 0, 1).str("k").u32(9).u32(4).u64(1 << 61).Bytes(), `key "k": array of`},
		{"array-limit", padded(new(raw).head(3, 0, 1).str("k").u32(9).u32(0).u64(MaxArrayLen + 1).Bytes()), "exceeds the limit"},
		{"string-array-count", new(raw).head(3, 0, 1).str("k").u32(9).u32(8).u64(1 << 20).Bytes(), "cannot fit"},
		{"string-length", new(raw).head(3, 0, 1).str("k").u32(8).u64(1 << 50).Bytes(), `string value of key "k" length`},
		{"bool", new(raw).head(3, 0, 1).str("k").u32(7).Bytes(), "metadata count 1 is impossible"},
		{"dup-key", padded(append(new(raw).head(3, 0, 2).str("k").u32(0).Bytes(), append([]byte{7}, new(raw).str("k").u32(0).Bytes()...)...)), `duplicate metadata key "k"`},
		{"align-type", new(raw).head(3, 0, 1).str("general.alignment").u32(8).str("32").Bytes(), "want uint32"},
		{"align-value", new(raw).head(3, 0, 1).str("general.alignment").u32(4).u32(48).Bytes(), "not a power of two"},
		{"align-zero", new(raw).head(3, 0, 1).str("general.alignment").u32(4).u32(0).Bytes(), "not a power of two"},
		{"n-dims", padded(new(raw).head(3, 1, 0).str("t").u32(5).Bytes()), `tensor "t" has 5 dimensions`},
		{"zero-dim", new(raw).head(3, 1, 0).tensorEntry("t", f32, 0, 4, 0).data(32, 16).Bytes(), "dimension 1 has invalid size 0"},
		{"negative-dim", new(raw).head(3, 1, 0).tensorEntry("t", f32, 0, 1<<63).data(32, 16).Bytes(), "invalid size"},
		{"overflow", new(raw).head(3, 1, 0).tensorEntry("t", f32, 0, 1<<32, 1<<32).data(32, 16).Bytes(), "overflows"},
		{"size-overflow", new(raw).head(3, 1, 0).tensorEntry("t", f32, 0, 1<<62).data(32, 16).Bytes(), "overflows"},
		{"unknown-type", new(raw).head(3, 1, 0).tensorEntry("t", 5, 0, 4).data(32, 16).Bytes(), `tensor "t" has unknown type id 5`},
		{"type-huge", new(raw).head(3, 1, 0).tensorEntry("t", 1000, 0, 4).data(32, 16).Bytes(), "unknown type id 1000"},
		{"block", new(raw).head(3, 1, 0).tensorEntry("t", uint32(tensor.Q4_0), 0, 33).data(32, 64).Bytes(), "not a multiple of the Q4_0 block size 32"},
		{"misaligned", new(raw).head(3, 1, 0).tensorEntry("t", f32, 4, 4).data(32, 32).Bytes(), "offset 4 is not a multiple of the alignment 32"},
		{"outside", new(raw).head(3, 1, 0).tensorEntry("t", f32, 0, 5).data(32, 16).Bytes(), "lies outside the file"},
		{"far-outside", new(raw).head(3, 1, 0).tensorEntry("t", f32, 1<<40, 4).data(32, 16).Bytes(), "lies outside the file"},
		{"overlap", new(raw).head(3, 2, 0).tensorEntry("a", f32, 0, 16).tensorEntry("b", f32, 32, 4).data(32, 96).Bytes(), `tensors "a" and "b" overlap`},
		{"dup-tensor", new(raw).head(3, 2, 0).tensorEntry("a", f32, 0, 4).tensorEntry("a", f32, 32, 4).data(32, 64).Bytes(), `duplicate tensor name "a"`},
		{"empty-name", new(raw).head(3, 1, 0).tensorEntry("", f32, 0, 4).data(32, 16).Bytes(), "empty name"},
		{"nesting", nested(20), "nested more than"},
	}
	for _, c := range cases {
		if c.b == nil {
			continue
		}
		_, err := parseBytes(c.b)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.gguf") {
			t.Errorf("%s: error %q, want it to name the file and mention %q", c.name, err, c.want)
		}
	}
	// bool values other than 0 and 1.
	b := new(raw).head(3, 0, 1).str("k").u32(7).Bytes()
	if _, err := parseBytes(append(b, 2)); err == nil || !strings.Contains(err.Error(), "neither 0 nor 1") {
		t.Errorf("bool 2: %v", err)
	}
	// A string element longer than the file.
	b = padded(new(raw).head(3, 0, 1).str("k").u32(9).u32(8).u64(2).u64(1 << 40).Bytes())
	if _, err := parseBytes(b); err == nil || !strings.Contains(err.Error(), "element 0: string length") {
		t.Errorf("string element length: %v", err)
	}
	// A scalar tensor (no dimensions) is valid, as in ggml.
	b = new(raw).head(3, 1, 0).tensorEntry("s", f32, 0).data(32, 4).Bytes()
	if f, err := parseBytes(b); err != nil || f.Tensors[0].Size != 4 {
		t.Errorf("scalar tensor: %v", err)
	}
}

// nested builds a key whose value is an array of arrays depth deep.
func nested(depth int) []byte {
	r := new(raw).head(3, 0, 1).str("k").u32(uint32(TypeArray))
	for i := 0; i < depth; i++ {
		r.u32(uint32(TypeArray)).u64(1)
	}
	r.u32(0).u64(0)
	return r.Bytes()
}

// padded appends zeros so that count checks against the file size pass and
// the parser reaches the fault under test.
func padded(b []byte) []byte { return append(b, make([]byte, 64)...) }
