//go:build linux

package mmap

import "syscall"

func advise(b []byte, a Advice) error {
	var flag int
	switch a {
	case Sequential:
		flag = syscall.MADV_SEQUENTIAL
	case Random:
		flag = syscall.MADV_RANDOM
	case WillNeed:
		flag = syscall.MADV_WILLNEED
	case DontNeed:
		flag = syscall.MADV_DONTNEED
	default:
		flag = syscall.MADV_NORMAL
	}
	return syscall.Madvise(b, flag)
}
