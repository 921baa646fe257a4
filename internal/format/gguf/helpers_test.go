package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// findShared finds the shared reference folder: next to the repository
// root (../shared from the directory holding go.mod) or inside it.
func findShared() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			for _, c := range []string{filepath.Join(dir, "..", "shared"), filepath.Join(dir, "shared")} {
				if st, err := os.Stat(filepath.Join(c, "reference")); err == nil && st.IsDir() {
					return c, true
				}
			}
			return "", false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// sharedDir is findShared, skipping the test when the folder is missing.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, ok := findShared()
	if !ok {
		t.Skip("shared reference folder (../shared next to the repository root) is missing")
	}
	return dir
}

// raw builds GGUF bytes by hand, for malformed inputs.
type raw struct{ bytes.Buffer }

func (r *raw) u32(x uint32) *raw { r.Write(binary.LittleEndian.AppendUint32(nil, x)); return r }
func (r *raw) u64(x uint64) *raw { r.Write(binary.LittleEndian.AppendUint64(nil, x)); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }
func (r *raw) head(version uint32, nTensors, nKV uint64) *raw {
	r.WriteString("GGUF")
	return r.u32(version).u64(nTensors).u64(nKV)
}

// tensorEntry appends one tensor-table entry.
func (r *raw) tensorEntry(name string, typ uint32, off uint64, shape ...uint64) *raw {
	r.str(name).u32(uint32(len(shape)))
	for _, d := range shape {
		r.u64(d)
	}
	return r.u32(typ).u64(off)
}

// padTo pads with zeros to a multiple of a, then appends n data bytes.
func (r *raw) data(a, n int) *raw {
	for r.Len()%a != 0 {
		r.WriteByte(0)
	}
	r.Write(make([]byte, n))
	return r
}
