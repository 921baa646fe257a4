package matmul

import (
	"encoding/binary"
	"math"

	"mica/internal/kernels/quant"
)

// Independent activation quantizers reproducing, bit for bit, ggml-cpu's x86
// quantize_row_q8_0 and quantize_row_q8_1 (AVX/AVX2: id = 127/amax, products
// rounded half to even) and quantize_row_q8_K_ref. len(src) is a multiple of
// the block size and dst holds the blocks.

func absf(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// roundEven rounds half to even, as _mm256_round_ps(v, _MM_ROUND_NEAREST).
func roundEven(x float32) int8 { return int8(math.RoundToEven(float64(x))) }

func quantizeQ8_0(src []float32, dst []byte) {
	for i := 0; i < len(src)/32; i++ {
		x := src[i*32 : i*32+32]
		b := dst[i*34 : i*34+34]
		var amax float32
		for _, v := range x {
			amax = max(amax, absf(v))
		}
		d := amax / 127
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		binary.LittleEndian.PutUint16(b, quant.FP32ToFP16(d))
		for j, v := range x {
			b[2+j] = byte(roundEven(v * id))
		}
	}
}

func quantizeQ8_1(src []float32, dst []byte) {
	for i := 0; i < len(src)/32; i++ {
		x := src[i*32 : i*32+32]
		b := dst[i*36 : i*36+36]
		var amax float32
		for _, v := range x {
			amax = max(amax, absf(v))
		}
		d := amax / 127
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		binary.LittleEndian.PutUint16(b, quant.FP32ToFP16(d))
		sum := 0
		for j, v := range x {
			q := roundEven(v * id)
			b[4+j] = byte(q)
			sum += int(q)
		}
		binary.LittleEndian.PutUint16(b[2:], quant.FP32ToFP16(float32(sum)*d))
	}
}

// nearestInt rounds to nearest, ties to even (ggml's nearest_int).
func nearestInt(f float32) int { return int(math.RoundToEven(float64(f))) }

func quantizeQ8_K(src []float32, dst []byte) {
	for i := 0; i < len(src)/256; i++ {
		x := src[i*256 : i*256+256]
		b := dst[i*292 : i*292+292]
		var amax, mx float32
		for _, v := range x {
			if a := absf(v); a > amax {
				amax, mx = a, v
			}
		}
		if amax == 0 {
			clear(b)
			continue
		}
		iscale := -127 / mx
		for j, v := range x {
			b[4+j] = byte(int8(min(127, nearestInt(iscale*v))))
		}
		for j := 0; j < 16; j++ {
			s := 0
			for _, q := range b[4+j*16 : 4+j*16+16] {
				s += int(int8(q))
			}
			binary.LittleEndian.PutUint16(b[260+2*j:], uint16(int16(s)))
		}
		binary.LittleEndian.PutUint32(b, math.Float32bits(1/iscale))
	}
}
