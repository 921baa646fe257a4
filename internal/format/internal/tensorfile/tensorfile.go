// Package tensorfile holds what the tensor file formats (GGUF, safetensors)
// share around their own headers: opening a regular file and mapping it
// read-only on first use (Data), and the streaming writer of declared
// tensors, in order, under a temporary name that is renamed into place only
// when the file is complete (Stream). Errors start with the format's name
// and the file's path, as the formats' own do.
package tensorfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"

	"mica/internal/atomicfile"
	"mica/internal/format/mmap"
)

// OpenRegular opens path for reading and returns it with its size; anything
// but a regular file is refused.
func OpenRegular(format, path string) (*os.File, int64, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", format, err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, 0, fmt.Errorf("%s: %w", format, err)
	}
	if !st.Mode().IsRegular() {
		fd.Close()
		return nil, 0, fmt.Errorf("%s: %s: not a regular file", format, path)
	}
	return fd, st.Size(), nil
}

// Data is an open file's bytes, mapped read-only on first use. The zero
// value has no file (a header parsed from a reader): mapping it fails.
type Data struct {
	mu   sync.Mutex
	file *os.File
	m    *mmap.Map
}

// Attach gives d the open file it maps and closes.
func (d *Data) Attach(f *os.File) { d.file = f }

// Close releases the mapping and the file.
func (d *Data) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if d.m != nil {
		err = d.m.Close()
		d.m = nil
	}
	if d.file != nil {
		if cerr := d.file.Close(); err == nil {
			err = cerr
		}
		d.file = nil
	}
	return err
}

// Map maps the file on first use; a mapping shorter than minLen (the file
// shrank after its header was read) is an error.
func (d *Data) Map(format, path string, minLen int64) (*mmap.Map, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m != nil {
		return d.m, nil
	}
	if d.file == nil {
		return nil, fmt.Errorf("%s: %s: file is closed or was not opened with Open", format, path)
	}
	m, err := mmap.OpenFile(d.file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	if int64(m.Len()) < minLen {
		m.Close()
		return nil, fmt.Errorf("%s: %s: file shrank after it was opened", format, path)
	}
	d.m = m
	return m, nil
}

// Slice is bytes [start, end) of the mapping, the named tensor's data: a
// zero-copy slice, valid until Close, that faults when written.
func (d *Data) Slice(format, path, name string, minLen, start, end int64) ([]byte, error) {
	m, err := d.Map(format, path, minLen)
	if err != nil {
		return nil, err
	}
	b := m.Bytes()
	if end > int64(len(b)) {
		return nil, fmt.Errorf("%s: %s: tensor %q lies past the end of the file (was it truncated?)", format, path, name)
	}
	return b[start:end:end], nil
}

// Advise passes an access hint for bytes [off, off+size) to the OS.
func (d *Data) Advise(format, path string, minLen, off, size int64, advice mmap.Advice) error {
	m, err := d.Map(format, path, minLen)
	if err != nil {
		return err
	}
	return m.Advise(off, size, advice)
}

// Stream writes a tensor file: the caller writes its header, then each
// declared tensor's data in order (Next, Write or Copy, Done). Errors are
// sticky; Close fails and removes the temporary file unless every tensor
// was written.
type Stream struct {
	Format string // "gguf", "safetensors": the errors' prefix
	Path   string
	Pos    int64 // bytes written so far
	Err    error // the first error

	f     *atomicfile.File
	bw    *bufio.Writer
	names []string // the declared tensors, in order
	next  int      // index of the next tensor to write
	done  bool
}

// Create starts writing path under a temporary name, for the declared
// tensors names (in write order).
func Create(format, path string, names []string) (*Stream, error) {
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	return &Stream{Format: format, Path: path, f: f, bw: bufio.NewWriterSize(f, 1<<20), names: names}, nil
}

// Write writes b unless an error is recorded.
func (s *Stream) Write(b []byte) {
	if s.Err != nil {
		return
	}
	n, err := s.bw.Write(b)
	s.Pos += int64(n)
	if err != nil {
		s.Err = fmt.Errorf("%s: %s: write: %w", s.Format, s.Path, err)
	}
}

// Next checks that name is the next declared tensor and returns its index.
func (s *Stream) Next(name string) (int, error) {
	if s.Err != nil {
		return 0, s.Err
	}
	if s.done {
		return 0, fmt.Errorf("%s: %s: writer is closed", s.Format, s.Path)
	}
	if s.next >= len(s.names) {
		return 0, fmt.Errorf("%s: %s: tensor %q: all %d declared tensors are already written", s.Format, s.Path, name, len(s.names))
	}
	if s.names[s.next] != name {
		return 0, fmt.Errorf("%s: %s: tensor %q written out of order: next is %q", s.Format, s.Path, name, s.names[s.next])
	}
	return s.next, nil
}

// Copy copies exactly size bytes of tensor name's data from r.
func (s *Stream) Copy(name string, r io.Reader, size int64) error {
	n, err := io.Copy(s.bw, io.LimitReader(r, size))
	s.Pos += n
	if err == nil && n != size {
		err = fmt.Errorf("reader gave %d bytes, want %d", n, size)
	}
	if err != nil {
		s.Err = fmt.Errorf("%s: %s: tensor %q: %w", s.Format, s.Path, name, err)
	}
	return s.Err
}

// Done moves on to the next declared tensor and returns the error so far.
func (s *Stream) Done() error {
	s.next++
	return s.Err
}

// Close finishes the file: it fails (and removes the temporary file) if a
// declared tensor was not written or a write failed; otherwise it flushes,
// syncs and renames the file into place.
func (s *Stream) Close() error {
	if s.done {
		return s.Err
	}
	if s.Err == nil && s.next < len(s.names) {
		s.Err = fmt.Errorf("%s: %s: closed after %d of %d tensors; tensor %q was not written",
			s.Format, s.Path, s.next, len(s.names), s.names[s.next])
	}
	if s.Err == nil {
		if err := s.bw.Flush(); err != nil {
			s.Err = fmt.Errorf("%s: %s: %w", s.Format, s.Path, err)
		}
	}
	if s.Err != nil {
		s.Abort()
		return s.Err
	}
	s.done = true
	if err := s.f.Commit(); err != nil {
		s.Err = fmt.Errorf("%s: %s: %w", s.Format, s.Path, err)
		return s.Err
	}
	return nil
}

// Abort discards the file. It is harmless after Close.
func (s *Stream) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.Err == nil {
		s.Err = fmt.Errorf("%s: %s: writer aborted", s.Format, s.Path)
	}
	if err := s.f.Abort(); err != nil {
		return fmt.Errorf("%s: %w", s.Format, err)
	}
	return nil
}
