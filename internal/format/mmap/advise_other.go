//go:build !linux

package mmap

// advise is a no-op where mica does not use madvise.
func advise(b []byte, a Advice) error { return nil }
