//go:build cgo && amd64 && avx512emu

package ops

import "testing"

// TestEmulatedAVX512Selected: with -tags avx512emu the AVX-512 tiled
// kernel runs (through SIMDe) whatever the CPU, so the AVX-512 tests cannot
// silently skip.
func TestEmulatedAVX512Selected(t *testing.T) {
	if !hasAVX512 || !tiledAVX512 {
		t.Fatal("avx512emu build: the AVX-512 tiled kernel is not selected")
	}
}
