package mmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestMapContents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	want := bytes.Repeat([]byte("mica"), 5000) // spans several pages
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes(), want) || m.Len() != len(want) {
		t.Fatalf("mapped contents differ")
	}
	for _, a := range []Advice{Normal, Sequential, Random, WillNeed} {
		if err := m.Advise(4097, 100, a); err != nil {
			t.Errorf("Advise(%d): %v", a, err)
		}
	}
	if err := m.Advise(0, 1<<40, Sequential); err != nil { // clipped to the mapping
		t.Errorf("Advise past end: %v", err)
	}
	if err := m.Advise(-1, 1, Normal); err == nil {
		t.Errorf("Advise(-1) accepted")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if m.Bytes() != nil {
		t.Fatalf("Bytes after Close is not nil")
	}
}

func TestEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "empty")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Bytes()) != 0 {
		t.Fatal("empty file maps to non-empty bytes")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("opening a missing file succeeded")
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("mapping a directory succeeded")
	}
}
