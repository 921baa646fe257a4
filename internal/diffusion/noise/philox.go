// Package noise makes the seeded Gaussian noise of diffusion sampling as
// the generators that A1111, ComfyUI and stable-diffusion.cpp use: a
// Philox4x32-10 generator for torch's CUDA randn (A1111's default "GPU"
// seed source, sd.cpp's --rng cuda), torch's CPU randn (mt19937; ComfyUI,
// A1111's "CPU" source), A1111's slerp for variation seeds, and torchsde's
// Brownian tree over numpy's SeedSequence for k-diffusion's DPM++ SDE
// samplers.
//
// Checked against torch 2.11 (../testdata/torch-golden.json): the CPU
// generator and the Brownian tree on it are bit-identical; Philox equals
// sd.cpp's and A1111's own emulation bit for bit and real CUDA randn within
// 3e-6 (CUDA takes the Box–Muller sine from the GPU's approximate
// hardware unit, which no CPU code reproduces exactly).
//
// A generator's Randn(n) is one draw of n values. Every value depends only
// on the seed, the draw number and the element index, never on how many
// goroutines compute it, so the same seed gives the same noise at any
// GOMAXPROCS.
package noise

import (
	"math"
	"runtime"
	"sync"
)

// Generator draws standard normal noise: each call returns n new values.
type Generator interface {
	Randn(n int) []float32
}

// Philox is torch's CUDA randn re-implemented on the CPU, as A1111's
// rng_philox.py and sd.cpp's --rng cuda (equal to them bit for bit, to the
// GPU's own values within 3e-6): key = seed, and draw k (offset k,
// starting at 0) gives element i from Philox4x32-10 on the counter
// (offset, 0, i, 0) followed by a Box–Muller transform of the first two
// output words. Each Randn call uses the current offset and then advances
// it by one.
type Philox struct {
	seed   uint64
	offset uint64
}

// NewPhilox returns a Philox generator seeded like torch.manual_seed(seed)
// on CUDA: offset 0.
func NewPhilox(seed uint64) *Philox { return &Philox{seed: seed} }

// Seek sets the offset the next Randn call uses.
func (p *Philox) Seek(offset uint64) { p.offset = offset }

// Offset is the offset the next Randn call will use.
func (p *Philox) Offset() uint64 { return p.offset }

const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85

	// twoPow32Inv is the float32 constant 2.3283064e-10f (≈ 2^-32) and
	// twoPow32Inv2Pi is float32(2.3283064e-10f · 6.2831855f), both as in
	// rng_philox.py; the product is rounded to float32 once.
	twoPow32Inv float32 = 2.3283064e-10
)

var twoPow32Inv2Pi = float32(twoPow32Inv * float32(6.2831855))

// parallelMin is the draw size from which Randn splits the work over
// goroutines. The split is by element index only, so results do not
// depend on it.
const parallelMin = 1 << 15

// Randn draws n values at the current offset and advances the offset.
func (p *Philox) Randn(n int) []float32 {
	out := make([]float32, max(n, 0))
	if n <= 0 {
		p.offset++
		return out
	}
	k0, k1 := uint32(p.seed), uint32(p.seed>>32)
	c0, c1 := uint32(p.offset), uint32(p.offset>>32)
	fill := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			w0, w1 := philox4x32(c0, c1, uint32(i), uint32(uint64(i)>>32), k0, k1)
			out[i] = boxMuller(w0, w1)
		}
	}
	parallel(n, fill)
	p.offset++
	return out
}

// philox4x32 runs the 10 Philox rounds on counter (c0, c1, c2, c3) with
// key (k0, k1) and returns the first two output words (the only ones the
// Box–Muller transform uses).
func philox4x32(c0, c1, c2, c3, k0, k1 uint32) (uint32, uint32) {
	for r := 0; r < 10; r++ {
		if r > 0 {
			k0 += philoxW0
			k1 += philoxW1
		}
		p0 := uint64(c0) * philoxM0
		p2 := uint64(c2) * philoxM1
		c0, c1, c2, c3 = uint32(p2>>32)^c1^k0, uint32(p2), uint32(p0>>32)^c3^k1, uint32(p0)
	}
	return c0, c1
}

// boxMuller turns two uniform 32-bit words into one normal value with
// rng_philox.py's exact mix of precisions: u and v in float32, ln and √ in
// float64, the sine in float64 of the float32 angle, one final rounding.
func boxMuller(x, y uint32) float32 {
	u := float32(float32(x)*twoPow32Inv) + twoPow32Inv/2
	v := float32(float32(y)*twoPow32Inv2Pi) + twoPow32Inv2Pi/2
	s := float32(math.Sqrt(-2 * math.Log(float64(u))))
	return float32(float64(s) * math.Sin(float64(v)))
}

// parallel runs fill over [0, n) in contiguous chunks, on several
// goroutines when n is large. fill must write only its own range.
func parallel(n int, fill func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < parallelMin || workers < 2 {
		fill(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fill(lo, hi)
		}()
	}
	wg.Wait()
}
