package quant

import (
	"math"
	"testing"

	"mica/internal/tensor"
)

// TestF8E4M3 checks known values of the E4M3FN format (the largest finite
// value is 448, the smallest subnormal 2^-9) and that every non-NaN code
// is ordered and round-trips through its bit pattern's definition.
func TestF8E4M3(t *testing.T) {
	known := map[uint8]float32{0x00: 0, 0x80: 0, 0x38: 1, 0xb8: -1, 0x7e: 448, 0xfe: -448, 0x01: 1.0 / 512, 0x08: 1.0 / 64, 0x40: 2, 0x3c: 1.5}
	for b, want := range known {
		if got := F8E4M3ToFP32(b); got != want {
			t.Errorf("%#02x -> %v want %v", b, got, want)
		}
	}
	if !math.IsNaN(float64(F8E4M3ToFP32(0x7f))) || !math.IsNaN(float64(F8E4M3ToFP32(0xff))) {
		t.Error("0x7f/0xff must be NaN")
	}
	prev := float32(-1)
	for b := 0; b < 0x7f; b++ { // positive codes increase strictly
		v := F8E4M3ToFP32(uint8(b))
		if v <= prev && b > 0 {
			t.Fatalf("%#02x = %v not above %v", b, v, prev)
		}
		prev = v
	}
}

func TestIntegerTensors(t *testing.T) {
	dst := make([]float32, 2)
	if err := Dequantize(tensor.I64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0}, dst); err != nil || dst[0] != -1 || dst[1] != 7 {
		t.Fatalf("I64: %v %v", dst, err)
	}
	if err := Dequantize(tensor.I32, []byte{0xfe, 0xff, 0xff, 0xff, 3, 0, 0, 0}, dst); err != nil || dst[0] != -2 || dst[1] != 3 {
		t.Fatalf("I32: %v %v", dst, err)
	}
	if err := Dequantize(tensor.U8, []byte{200, 1}, dst); err != nil || dst[0] != 200 || dst[1] != 1 {
		t.Fatalf("U8: %v %v", dst, err)
	}
	if CanQuantize(tensor.F8_E4M3) {
		t.Fatal("F8_E4M3 cannot be produced")
	}
}
