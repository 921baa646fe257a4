// Package mmap maps a file read-only into memory, so that model weights can
// be used in place without being copied or read up front.
//
// On Unix systems the file is mapped with mmap(2); elsewhere the file is read
// into memory (a correct but slower fallback). The mapping must not be used
// after Close: slices obtained from Bytes become invalid then. As with any
// mmap, a file truncated by another process while mapped makes reads past
// its new end fault (SIGBUS); model files are expected to be replaced by
// rename, never rewritten in place.
package mmap

import (
	"errors"
	"fmt"
	"os"
)

// Map is a read-only view of a whole file.
type Map struct {
	path   string
	data   []byte
	mapped bool // data comes from mmap and must be unmapped
}

// Advice is a hint about how a range of the mapping will be accessed.
type Advice int

// Access hints for Advise.
const (
	Normal     Advice = iota // no particular pattern
	Sequential               // read once, front to back (read-ahead helps)
	Random                   // scattered access (read-ahead wastes I/O)
	WillNeed                 // start reading the range in now
	DontNeed                 // the range will not be needed soon
)

// Open maps the file at path read-only. An empty file yields an empty Map.
func Open(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	defer f.Close()
	return OpenFile(f)
}

// OpenFile maps an already open file read-only. The file may be closed
// afterwards; the mapping stays valid until Map.Close.
func OpenFile(f *os.File) (*Map, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("mmap: %s: not a regular file", f.Name())
	}
	size := st.Size()
	if size < 0 || int64(int(size)) != size {
		return nil, fmt.Errorf("mmap: %s: file size %d does not fit in memory", f.Name(), size)
	}
	m := &Map{path: f.Name()}
	if size == 0 {
		return m, nil
	}
	data, mapped, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("mmap: %s: %w", f.Name(), err)
	}
	m.data, m.mapped = data, mapped
	return m, nil
}

// Bytes returns the mapped contents. The slice must not be written to and
// must not be used after Close.
func (m *Map) Bytes() []byte { return m.data }

// Len is the size of the mapping in bytes.
func (m *Map) Len() int { return len(m.data) }

// Path is the path of the mapped file.
func (m *Map) Path() string { return m.path }

// Close releases the mapping. Closing twice is harmless.
func (m *Map) Close() error {
	if m == nil || m.data == nil {
		return nil
	}
	data, mapped := m.data, m.mapped
	m.data, m.mapped = nil, false
	if !mapped {
		return nil
	}
	if err := unmap(data); err != nil {
		return fmt.Errorf("mmap: %s: unmap: %w", m.path, err)
	}
	return nil
}

// Advise passes an access hint for the byte range [offset, offset+length)
// to the operating system. It is only a hint: where the system has no such
// call it does nothing. The range is clipped to the mapping.
func (m *Map) Advise(offset, length int64, advice Advice) error {
	if offset < 0 || length < 0 {
		return errors.New("mmap: Advise: negative offset or length")
	}
	n := int64(len(m.data))
	if !m.mapped || offset >= n || length == 0 {
		return nil
	}
	end := n
	if length < n-offset {
		end = offset + length
	}
	// madvise wants a page-aligned start address.
	page := int64(os.Getpagesize())
	start := offset &^ (page - 1)
	if err := advise(m.data[start:end], advice); err != nil {
		return fmt.Errorf("mmap: %s: madvise: %w", m.path, err)
	}
	return nil
}
