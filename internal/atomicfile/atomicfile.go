// Package atomicfile writes files so that nothing half-written is ever seen
// under the final name: data goes to a temporary file in the destination's
// folder, which is synced and renamed into place only when complete.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// File is a file being written. Write to it like an *os.File, then Commit
// (rename into place) or Abort (discard).
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing the file that will be named path.
func Create(path string) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Path is the final name.
func (f *File) Path() string { return f.path }

// Commit makes the file readable (0644), syncs it, and renames it to its
// final name, then syncs the folder so the rename survives a crash (best
// effort where the system cannot sync folders). On error the temporary file
// is removed.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: " + f.path + ": already committed or aborted")
	}
	f.done = true
	tmp := f.File.Name()
	err := f.File.Chmod(0o644)
	if err == nil {
		err = f.File.Sync()
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort discards the file; it is harmless after Commit or a second Abort.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	tmp := f.File.Name()
	f.File.Close()
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// WriteFile writes data to path through a temporary file and a rename, so
// path holds either its old contents or all of data, never a part. The
// file is readable by all (0644), as Commit leaves it.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
