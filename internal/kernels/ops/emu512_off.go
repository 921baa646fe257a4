//go:build !cgo || !amd64 || !avx512emu

package ops

// avx512Emulated is set by the avx512emu build tag (emu512.go).
const avx512Emulated = false
