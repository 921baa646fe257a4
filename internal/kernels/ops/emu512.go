//go:build cgo && amd64 && avx512emu

package ops

// Built with -tags avx512emu (tests only; needs the SIMDe headers, Debian
// package libsimde-dev): the AVX-512 tiled attention kernel is compiled
// against SIMDe's portable AVX-512 intrinsics and selected on any CPU with
// AVX2, so the tests compare its results with the AVX2 kernel's on
// machines without AVX-512. Slow; never for a release build.

// #cgo CFLAGS: -DMICA_AVX512_EMU -march=haswell -Wno-psabi
import "C"

const avx512Emulated = true
