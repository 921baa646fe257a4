package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSafetensors feeds arbitrary bytes to the header parser, seeded with
// files made by the writer and hand-written headers. A parse must either
// fail with an error naming the file or yield tensors that lie inside the
// input, do not overlap, and whose byte length matches dtype and shape.
func FuzzSafetensors(f *testing.F) {
	dir := f.TempDir()
	for i, md := range []map[string]string{nil, {"format": "pt", "ss_network_dim": "8"}} {
		path := filepath.Join(dir, "seed.safetensors")
		tensors := testTensors()
		if i == 0 {
			tensors = tensors[:3]
		}
		writeFile(f, path, md, tensors)
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F4","shape":[4],"data_offsets":[8,10]}}`, 10))
	f.Add(file(`{"__metadata__":{"a":"b"},"x":{"dtype":"BOOL","shape":[],"data_offsets":[0,1]}}`, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseHeader(bytes.NewReader(data), int64(len(data)), "fuzz.safetensors")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var prevEnd int64
		for i, ti := range file.Tensors {
			if ti.Begin < 0 || ti.End < ti.Begin || file.DataOffset+ti.End > int64(len(data)) {
				t.Fatalf("tensor %q escapes validation: %+v", ti.Name, ti)
			}
			if ti.Size() > 0 && ti.Begin < prevEnd {
				t.Fatalf("tensor %q overlaps an earlier one", ti.Name)
			}
			prevEnd = max(prevEnd, ti.End)
			d, _ := lookupName(ti.RawDType)
			if ti.Elements()*d.bits != ti.Size()*8 {
				t.Fatalf("tensor %q: %d elements of %d bits in %d bytes", ti.Name, ti.Elements(), d.bits, ti.Size())
			}
			if got, ok := file.Tensor(ti.Name); !ok || got != &file.Tensors[i] {
				t.Fatalf("index broken for %q", ti.Name)
			}
		}
	})
}
