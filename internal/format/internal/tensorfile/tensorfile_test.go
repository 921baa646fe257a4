package tensorfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStream(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.bin")
	s, err := Create("fmt", path, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("head"))
	if _, err := s.Next("b"); err == nil || !strings.Contains(err.Error(), `fmt: `+path+`: tensor "b" written out of order: next is "a"`) {
		t.Fatalf("out of order: %v", err)
	}
	if i, err := s.Next("a"); err != nil || i != 0 {
		t.Fatalf("next a: %d %v", i, err)
	}
	s.Write([]byte("AA"))
	if err := s.Done(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Copy("b", strings.NewReader("B"), 2); err == nil || !strings.Contains(err.Error(), "reader gave 1 bytes, want 2") {
		t.Fatalf("short copy: %v", err)
	}
	// The error is sticky, and Close removes the temporary file.
	if _, err := s.Next("b"); err == nil {
		t.Fatal("no sticky error")
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close after a failed write succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %d files behind", len(ents))
	}

	// A complete file is renamed into place.
	s, err = Create("fmt", path, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("h"))
	if _, err := s.Next("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Copy("a", strings.NewReader("xyz"), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next("a"); err == nil || !strings.Contains(err.Error(), "all 1 declared tensors are already written") {
		t.Fatalf("extra tensor: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, []byte("hxy")) {
		t.Fatalf("file %q %v", b, err)
	}
	if s.Pos != 3 {
		t.Fatalf("Pos %d, want 3", s.Pos)
	}
}

func TestData(t *testing.T) {
	var d Data
	if _, err := d.Map("fmt", "p", 0); err == nil || !strings.Contains(err.Error(), "not opened with Open") {
		t.Fatalf("no file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "d.bin")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenRegular("fmt", filepath.Dir(path)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	f, size, err := OpenRegular("fmt", path)
	if err != nil || size != 10 {
		t.Fatal(size, err)
	}
	d.Attach(f)
	defer d.Close()
	if _, err := d.Map("fmt", path, 11); err == nil || !strings.Contains(err.Error(), "shrank") {
		t.Fatalf("short mapping: %v", err)
	}
	b, err := d.Slice("fmt", path, "t", 0, 2, 5)
	if err != nil || string(b) != "234" || cap(b) != 3 {
		t.Fatalf("slice %q cap %d: %v", b, cap(b), err)
	}
	if _, err := d.Slice("fmt", path, "t", 0, 8, 12); err == nil || !strings.Contains(err.Error(), `tensor "t" lies past the end`) {
		t.Fatalf("past the end: %v", err)
	}
}
