package matmul

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"mica/internal/tensor"
)

// quantPins are FNV-1a hashes of the AVX2 kernels' quantized outputs in
// TestQuantPinnedBits, recorded from the kernels before the matrix-vector
// row-stream rewrite (2026-11-27; IQ4_NL, Q5_0, Q4_1 and Q5_1 again on
// 2026-11-28, when they took Q4_0's block-pair order, and IQ4_XS when its
// chunks went in pairs). The kernels' summation order is part of their
// contract (the outputs are compared with
// llama.cpp's, decode and batches must agree): a change of any output bit
// fails here. After an intended change of the order, print the new values
// with MICA_PIN_PRINT=1 go test -run QuantPinnedBits -v.
var quantPins = map[tensor.DType]uint64{
	tensor.Q8_0: 0x62a7e68c868587ec, tensor.Q4_0: 0xdf1fc52573900381, tensor.Q4_1: 0xb3570c37e0140ed6,
	tensor.Q5_0: 0xef5be2cbbf5bddb9, tensor.Q5_1: 0x5b89a0491d225575, tensor.Q2_K: 0x5b9f0a9364ce040f,
	tensor.Q3_K: 0x38837080f79c876b, tensor.Q4_K: 0xbfb558a8697d1a20, tensor.Q5_K: 0x31d371dbb157eb7d,
	tensor.Q6_K: 0x37e5986b8bd42fb7, tensor.IQ4_NL: 0x88dcdd162c6a6979, tensor.IQ4_XS: 0xc5178ecac42b323e,
}

// TestQuantPinnedBits: the AVX2 quantized kernels give exactly the pinned
// outputs for n = 1 (the matrix-vector kernels, under three row splits,
// which must agree) and n = 5 (the batch kernels and tiles). Tolerance 0:
// see quantPins.
func TestQuantPinnedBits(t *testing.T) {
	if maxISA < isaAVX2 {
		t.Skip("no AVX2: the plain-Go reference sums in another order")
	}
	print := os.Getenv("MICA_PIN_PRINT") != ""
	for _, wt := range allTypes {
		if !wt.Quantized() {
			continue
		}
		h := fnv.New64a()
		var buf [4]byte
		add := func(y []float32) {
			for _, v := range y {
				u := math.Float32bits(v)
				buf[0], buf[1], buf[2], buf[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
				h.Write(buf[:])
			}
		}
		for _, cols := range []int{3 * wt.BlockSize(), 4096} {
			rng := rand.New(rand.NewPCG(uint64(cols), uint64(wt)))
			const rows = 37
			w, err := RandomWeights(wt, rows, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 5} {
				p, err := Prepare(wt, RandomActivations(n, cols, rng), n, cols)
				if err != nil {
					t.Fatal(err)
				}
				var first []float32
				for _, split := range [][]int{{0, rows}, {0, 1, 2, 3, 7, 37}, {0, 18, 37}} {
					y := make([]float32, n*rows)
					withISA(isaAVX2, func() {
						for k := 0; k+1 < len(split); k++ {
							if err = MulRows(wt, w, cols, p, y, rows, split[k], split[k+1]); err != nil {
								break
							}
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					if first == nil {
						first = y
						add(y)
					} else if !sameBits(y, first) {
						t.Errorf("%v cols=%d n=%d: row split %v changes the outputs", wt, cols, n, split)
					}
				}
			}
		}
		got := h.Sum64()
		if print {
			fmt.Printf("\ttensor.%v: %#016x,\n", wt, got)
			continue
		}
		if want, ok := quantPins[wt]; !ok || got != want {
			t.Errorf("%v: outputs hash to %#016x, pinned %#016x", wt, got, want)
		}
	}
}
