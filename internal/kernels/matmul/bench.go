package matmul

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// scaleOffsets are the byte offsets of the F16 scale (and min) fields in one
// block of each quantized type; RandomWeights sets them to sane values.
var scaleOffsets = map[tensor.DType][]int{
	tensor.Q4_0: {0}, tensor.Q4_1: {0, 2}, tensor.Q5_0: {0}, tensor.Q5_1: {0, 2},
	tensor.Q8_0: {0}, tensor.IQ4_NL: {0}, tensor.Q2_K: {80, 82}, tensor.Q3_K: {108},
	tensor.Q4_K: {0, 2}, tensor.Q5_K: {0, 2}, tensor.Q6_K: {208}, tensor.IQ4_XS: {0},
}

// RandomWeights makes a rows×cols weight matrix of type wt from rng: F32
// values uniform in [-1, 1) (F16/BF16 rounded from them); quantized blocks
// are random bytes (every bit pattern of the quants and sub-block scales
// occurs) with positive F16 block scales in [0.5, 1.5)/64. The values are
// arbitrary but valid, which is what timing and fast-versus-reference tests
// need; they are not the quantization of any particular matrix.
func RandomWeights(wt tensor.DType, rows, cols int, rng *rand.Rand) ([]byte, error) {
	if err := checkCols(wt, cols); err != nil {
		return nil, err
	}
	rb64, _ := wt.RowBytes(int64(cols))
	w := make([]byte, rows*int(rb64))
	switch wt {
	case tensor.F32:
		for i := 0; i < len(w); i += 4 {
			binary.LittleEndian.PutUint32(w[i:], math.Float32bits(rng.Float32()*2-1))
		}
		return w, nil
	case tensor.F16, tensor.BF16:
		for i := 0; i < len(w); i += 2 {
			v := rng.Float32()*2 - 1
			h := quant.FP32ToBF16(v)
			if wt == tensor.F16 {
				h = quant.FP32ToFP16(v)
			}
			binary.LittleEndian.PutUint16(w[i:], h)
		}
		return w, nil
	}
	for i := 0; i+8 <= len(w); i += 8 {
		binary.LittleEndian.PutUint64(w[i:], rng.Uint64())
	}
	for i := len(w) &^ 7; i < len(w); i++ {
		w[i] = byte(rng.Uint32())
	}
	bs := wt.TypeSize()
	for b := 0; b < len(w); b += bs {
		for _, o := range scaleOffsets[wt] {
			binary.LittleEndian.PutUint16(w[b+o:], quant.FP32ToFP16((0.5+rng.Float32())/64))
		}
	}
	return w, nil
}

// RandomActivations is n×cols values uniform in [-1, 1).
func RandomActivations(n, cols int, rng *rand.Rand) []float32 {
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	return x
}

// mulParallel runs MulRows over rows split into `threads` contiguous chunks,
// one goroutine each (benchmarks only; the engine's pool lives elsewhere).
func mulParallel(wt tensor.DType, w []byte, rows, cols int, p *Prepared, y []float32, threads int) error {
	if threads <= 1 {
		return MulRows(wt, w, cols, p, y, rows, 0, rows)
	}
	var wg sync.WaitGroup
	errs := make([]error, threads)
	for t := 0; t < threads; t++ {
		r0, r1 := rows*t/threads, rows*(t+1)/threads
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[t] = MulRows(wt, w, cols, p, y, rows, r0, r1)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// timeLoop runs f repeatedly for at least dur (and at least twice, the
// first run being a warm-up) and returns the mean seconds per run.
func timeLoop(dur time.Duration, f func() error) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	start := time.Now()
	runs := 0
	for runs < 1 || time.Since(start) < dur {
		if err := f(); err != nil {
			return 0, err
		}
		runs++
	}
	return time.Since(start).Seconds() / float64(runs), nil
}

// BenchMatVec measures the matrix-vector product (n = 1) of a rows×cols
// weight matrix of type t on `threads` goroutines for about dur, and returns
// the weight bytes streamed per second in GB/s (10⁹ bytes). Activation
// quantization is included in each run.
func BenchMatVec(t tensor.DType, rows, cols, threads int, dur time.Duration) (float64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	w, err := RandomWeights(t, rows, cols, rng)
	if err != nil {
		return 0, fmt.Errorf("bench matvec %v %d×%d: %w", t, rows, cols, err)
	}
	x := RandomActivations(1, cols, rng)
	y := make([]float32, rows)
	var p Prepared
	sec, err := timeLoop(dur, func() error {
		if err := PrepareInto(&p, t, x, 1, cols); err != nil {
			return err
		}
		return mulParallel(t, w, rows, cols, &p, y, threads)
	})
	if err != nil {
		return 0, fmt.Errorf("bench matvec %v %d×%d: %w", t, rows, cols, err)
	}
	return float64(len(w)) / sec / 1e9, nil
}

// BenchGEMM measures Y (m×n) = X (m×k) · Wᵀ for W n×k of type t: m
// activation rows (tokens, pixels), k columns, n weight rows (output
// features), on `threads` goroutines for about dur. It returns GFLOP/s
// counting 2·m·n·k operations; activation conversion is included.
func BenchGEMM(t tensor.DType, m, k, n, threads int, dur time.Duration) (float64, error) {
	rng := rand.New(rand.NewPCG(3, 4))
	w, err := RandomWeights(t, n, k, rng)
	if err != nil {
		return 0, fmt.Errorf("bench gemm %v %d×%d×%d: %w", t, m, k, n, err)
	}
	x := RandomActivations(m, k, rng)
	y := make([]float32, m*n)
	var p Prepared
	sec, err := timeLoop(dur, func() error {
		if err := PrepareInto(&p, t, x, m, k); err != nil {
			return err
		}
		return mulParallel(t, w, n, k, &p, y, threads)
	})
	if err != nil {
		return 0, fmt.Errorf("bench gemm %v %d×%d×%d: %w", t, m, k, n, err)
	}
	return 2 * float64(m) * float64(n) * float64(k) / sec / 1e9, nil
}
