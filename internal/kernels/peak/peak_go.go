package peak

import (
	"encoding/binary"
	"math"
)

// sumBytesGo is the plain-Go streaming sum: the little-endian 64-bit words
// (four chains) plus the bytes of a tail shorter than a word, mod 2⁶⁴. The
// SIMD versions compute the same value.
func sumBytesGo(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	i := 0
	for ; i+32 <= len(b); i += 32 {
		s0 += binary.LittleEndian.Uint64(b[i:])
		s1 += binary.LittleEndian.Uint64(b[i+8:])
		s2 += binary.LittleEndian.Uint64(b[i+16:])
		s3 += binary.LittleEndian.Uint64(b[i+24:])
	}
	for ; i+8 <= len(b); i += 8 {
		s0 += binary.LittleEndian.Uint64(b[i:])
	}
	for ; i < len(b); i++ {
		s0 += uint64(b[i])
	}
	return s0 + s1 + s2 + s3
}

// fmaChainsGo runs eight independent scalar FMA chains (math.FMA) and
// returns the floating-point operations done.
func fmaChainsGo(iters int) float64 {
	a, b := 0.999999, 1e-7
	c := [8]float64{1, 2, 3, 4, 5, 6, 7, 8}
	for i := 0; i < iters; i++ {
		for k := range c {
			c[k] = math.FMA(c[k], a, b)
		}
	}
	if c[0]+c[7] == 42 { // keep the result alive
		return 0
	}
	return float64(iters) * 8 * 2
}
