package gguf

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"mica/internal/tensor"
)

// FuzzGGUF feeds arbitrary bytes to the header parser. Seeds are small
// files made by the writer and the first bytes of the real reference files.
// A parse must either fail with an error naming the file or yield a table
// whose tensors lie inside the input and whose header re-encodes to exactly
// the bytes that were parsed.
func FuzzGGUF(f *testing.F) {
	f.Add(validBytes(f, allMeta(f), testTensors()))
	f.Add(validBytes(f, []KV{String("general.architecture", "llama"), Uint32("general.alignment", 64)},
		[]TensorInfo{{Name: "a", Type: tensor.Q8_0, Shape: []int64{32, 2}}, {Name: "b", Type: tensor.F16, Shape: []int64{3}}}))
	f.Add(validBytes(f, nil, nil))
	f.Add(nested(3))
	if shared, ok := findShared(); ok {
		f.Add(shrunkCopy(f, shared+"/reference/gemma/gemma3-tiny-zoo.gguf"))
		f.Add(shrunkCopy(f, shared+"/reference/gemma/gemma4-moe-f32.gguf"))
		for _, path := range []string{
			"reference/gemma/gemma3-tiny-q4_k_m.gguf",
			"reference/gemma/gemma4-moe-f32.gguf",
			"reference/vision/mmproj-gemma3-tiny-f32.gguf",
			"testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf",
		} {
			if b := readPrefix(shared+"/"+path, 2<<10); b != nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseHeader(bytes.NewReader(data), int64(len(data)), "fuzz.gguf")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.gguf") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, ti := range file.Tensors {
			end := file.DataOffset + ti.Offset + ti.Size
			if ti.Offset%file.Alignment != 0 || end > int64(len(data)) || ti.Size <= 0 {
				t.Fatalf("tensor %q escapes validation: %+v (data offset %d, %d bytes)", ti.Name, ti, file.DataOffset, len(data))
			}
			if got, ok := file.Tensor(ti.Name); !ok || got.Offset != ti.Offset {
				t.Fatalf("index broken for %q", ti.Name)
			}
		}
		head, err := encodeHeader(file.Version, file.Meta, file.Tensors)
		if err != nil {
			t.Fatalf("parsed header does not re-encode: %v", err)
		}
		if !bytes.Equal(head, data[:file.headerSize]) {
			t.Fatalf("re-encoded header differs from the input (%d vs %d bytes)", len(head), file.headerSize)
		}
	})
}

// shrunkCopy re-creates a real file's header with every tensor cut to one
// block and large arrays cut short: a small, valid seed with real keys,
// names and types.
func shrunkCopy(tb testing.TB, path string) []byte {
	f, err := Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var meta []KV
	for _, kv := range f.Meta {
		if kv.Value.Len() <= 16 {
			meta = append(meta, kv)
		}
	}
	var tensors []TensorInfo
	for i, ti := range f.Tensors {
		if i == 24 {
			break
		}
		tensors = append(tensors, TensorInfo{Name: ti.Name, Type: ti.Type, Shape: []int64{int64(ti.Type.BlockSize())}})
	}
	return validBytes(tb, meta, tensors)
}

func readPrefix(path string, n int) []byte {
	fd, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fd.Close()
	b, _ := io.ReadAll(io.LimitReader(fd, int64(n)))
	return b
}
