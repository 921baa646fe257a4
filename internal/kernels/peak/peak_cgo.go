//go:build cgo && amd64

package peak

/*
#cgo CFLAGS: -O2 -std=c11
#include <stdint.h>
#include <stddef.h>
uint64_t mica_sum_avx2(const uint8_t *p, size_t n);
uint64_t mica_sum4_avx2(const uint8_t *p, size_t n);
uint64_t mica_sum_avx512(const uint8_t *p, size_t n);
double mica_fma_avx2(long iters);
double mica_fma_avx512(long iters);
*/
import "C"

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

var (
	hasAVX512 = cpu.X86.HasAVX512F
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	isaName   = map[bool]string{true: "avx512", false: map[bool]string{true: "avx2", false: "go"}[hasAVX2]}[hasAVX512]
)

func sumBytes(b []byte) uint64 {
	if len(b) == 0 || !hasAVX2 {
		return sumBytesGo(b)
	}
	p := (*C.uint8_t)(unsafe.Pointer(&b[0]))
	if hasAVX512 {
		return uint64(C.mica_sum_avx512(p, C.size_t(len(b))))
	}
	return uint64(C.mica_sum_avx2(p, C.size_t(len(b))))
}

// sumBytes4 is sumBytes reading four quarters of b side by side.
func sumBytes4(b []byte) uint64 {
	if len(b) == 0 || !hasAVX2 {
		return sumBytesGo(b)
	}
	return uint64(C.mica_sum4_avx2((*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))))
}

func fmaChains(iters int) float64 {
	switch {
	case hasAVX512:
		return float64(C.mica_fma_avx512(C.long(iters)))
	case hasAVX2:
		return float64(C.mica_fma_avx2(C.long(iters)))
	}
	return fmaChainsGo(iters)
}
