// Package testenv gives tests the outside reference data: the shared folder
// (../shared beside the repository root) that holds reference models,
// logits and tokenizer cases. Tests read those files where they are; they
// are never copied into the repository.
package testenv

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once   sync.Once
	shared string
)

// find walks up from the working directory to the folder holding go.mod and
// returns the shared folder beside it ("" if there is none).
func find() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s := filepath.Join(filepath.Dir(dir), "shared")
			if st, err := os.Stat(s); err == nil && st.IsDir() {
				return s
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Shared returns the shared folder, joined with the path elements given,
// and skips the test when the folder is missing (a checkout without it).
func Shared(t testing.TB, elem ...string) string {
	t.Helper()
	once.Do(func() { shared = find() })
	if shared == "" {
		t.Skip("shared reference folder (../shared beside the repository root) is missing")
	}
	return filepath.Join(append([]string{shared}, elem...)...)
}

// Find returns the shared folder and whether it exists, for optional uses
// such as fuzz seeds.
func Find() (string, bool) {
	once.Do(func() { shared = find() })
	return shared, shared != ""
}

// GzipJSON decodes the gzip-compressed JSON file at path into v, failing
// the test on any error (the references' *.json.gz files).
func GzipJSON(t testing.TB, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.NewDecoder(zr).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
