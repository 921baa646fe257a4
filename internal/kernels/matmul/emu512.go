//go:build cgo && amd64 && avx512emu

package matmul

// Built with -tags avx512emu (tests only; needs the SIMDe headers, Debian
// package libsimde-dev): the AVX-512 kernels (f_avx512.c, q_avx512.c) are
// compiled against SIMDe's portable AVX-512 intrinsics and selected on any
// CPU with AVX2, so their results can be checked against the plain-Go
// reference on machines without AVX-512. Slow; never for a release build.

// #cgo CFLAGS: -DMICA_AVX512_EMU -march=haswell -Wno-psabi
import "C"

const avx512Emulated = true
