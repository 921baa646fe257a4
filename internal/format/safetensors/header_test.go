package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Header gives exactly the bytes Create writes before the data, and the
// same offsets.
func TestHeaderIsFilePrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.safetensors")
	md := map[string]string{"format": "pt", "note": "x"}
	head, err := Header(md, testTensors())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, md, testTensors())
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(file, head) || len(head)%8 != 0 {
		t.Fatalf("Header (%d bytes) is not the file's first %d bytes", len(head), len(head))
	}
	if !strings.HasPrefix(string(head[8:]), `{"__metadata__":{"format":"pt","note":"x"},`) {
		t.Errorf("header starts %q", head[8:60])
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.DataOffset != int64(len(head)) {
		t.Errorf("data offset %d, header %d bytes", f.DataOffset, len(head))
	}
	if _, err := Header(nil, []TensorInfo{{Name: "a", DType: OtherDType, RawDType: "Q9"}}); err == nil {
		t.Error("Header accepted an unknown dtype")
	}
}
