//go:build cgo && amd64 && avx512emu

package matmul

import "testing"

// TestEmulatedAVX512Selected: with -tags avx512emu the tests run the
// AVX-512 kernels (through SIMDe) whatever the CPU, so a build where they
// would silently fall back to AVX2 must fail.
func TestEmulatedAVX512Selected(t *testing.T) {
	if maxISA != isaAVX512VNNI {
		t.Fatalf("avx512emu build selected ISA level %d, want %d (AVX-512 VNNI, emulated)", maxISA, isaAVX512VNNI)
	}
	if got := ISA(); got != "avx512-vnni (emulated)" {
		t.Fatalf("ISA() = %q, want avx512-vnni (emulated)", got)
	}
}
