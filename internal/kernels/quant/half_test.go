package quant

import (
	"math"
	"testing"
)

// TestFP16RoundTrip checks every half value converts to float32 and back
// unchanged, and that float32 -> half rounds to nearest even against a
// float64 oracle over a dense sweep.
func TestFP16RoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := FP16ToFP32(uint16(h))
		if f != f { // NaN
			if g := FP32ToFP16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x", h, g)
			}
			continue
		}
		if g := FP32ToFP16(f); g != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, g)
		}
	}
}

func TestFP32ToFP16Nearest(t *testing.T) {
	// all halves, sorted by value, for a brute-force nearest search
	for bits := uint32(0); bits < 0x47800000; bits += 0x1001 {
		f := math.Float32frombits(bits)
		got := FP16ToFP32(FP32ToFP16(f))
		// neighbours: the nearest representable half must be within half an ulp
		h := FP32ToFP16(f)
		lo, hi := FP16ToFP32(h-1), FP16ToFP32(h+1)
		if h == 0 {
			lo = 0
		}
		if h == 0x7c00 {
			continue
		}
		d := math.Abs(float64(got) - float64(f))
		if d > math.Abs(float64(lo)-float64(f)) || (h != 0x7bff && d > math.Abs(float64(hi)-float64(f))) {
			t.Fatalf("%v (%#x) -> %v, neighbours %v %v", f, bits, got, lo, hi)
		}
	}
	if FP32ToFP16(65520) != 0x7c00 || FP32ToFP16(65519) != 0x7bff {
		t.Fatal("overflow boundary")
	}
}

func TestBF16(t *testing.T) {
	cases := map[float32]uint16{1: 0x3f80, -2: 0xc000, 1.00390625: 0x3f80, 1.01171875: 0x3f82}
	for f, want := range cases {
		if got := FP32ToBF16(f); got != want {
			t.Errorf("FP32ToBF16(%v)=%#x want %#x", f, got, want)
		}
	}
	if BF16ToFP32(0x3f80) != 1 {
		t.Error("BF16ToFP32")
	}
}
