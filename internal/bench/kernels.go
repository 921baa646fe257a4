// Package bench measures mica's speed the way users compare it: kernels
// against the machine's own limits (read bandwidth, FMA peak), and later
// models against llama.cpp and stable-diffusion.cpp. It measures through the
// same backend and code paths as real runs.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/kernels/matmul"
	"mica/internal/kernels/peak"
	"mica/internal/tensor"
)

// KernelOptions selects what `mica bench kernels` measures.
type KernelOptions struct {
	Threads int           // worker threads (0: all cores)
	MinTime time.Duration // per measurement (0: 300 ms)
	// Rounds is how many times each kernel is measured, each time followed
	// by its local limit; the report gives the medians (0: 1). On a shared
	// machine single measurements swing by tens of percent.
	Rounds   int
	Types    []tensor.DType
	Progress func(what string)
}

// MatVecTypes are the weight types measured by default.
var MatVecTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1,
	tensor.Q5_0, tensor.Q5_1, tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_NL, tensor.IQ4_XS}

// GEMMTypes are the weight types of the GEMM measurements.
var GEMMTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0}

// Shape is a matrix product: Y[M, N] = X[M, K]·W[N, K]ᵀ.
type Shape struct{ M, K, N int }

// MatVecShapes: a square 4096 matrix, and Gemma's tied output projection
// (262144 vocabulary × 640 hidden).
var MatVecShapes = []Shape{{1, 4096, 4096}, {1, 640, 262144}}

// GEMMShapes: a 512-token prefill through a 640→2048 projection, and an SD
// 3×3 convolution of 320 channels over 64×64 latents as a GEMM.
var GEMMShapes = []Shape{{512, 640, 2048}, {4096, 2880, 320}}

// KernelReport is the result; the JSON names are stable.
type KernelReport struct {
	Backend       string         `json:"backend"`
	Threads       int            `json:"threads"`
	Rounds        int            `json:"rounds"` // measurements per kernel; the figures are their medians
	CPU           string         `json:"cpu"`
	ReadGBps      float64        `json:"read_bandwidth_gbps"`
	FMAGFlops     float64        `json:"fma_peak_gflops"`
	MatVec        []KernelResult `json:"matvec"`
	GEMM          []KernelResult `json:"gemm"`
	GoVersion     string         `json:"go"`
	MeasuredAtUTC string         `json:"measured_at"`
}

// KernelResult is one measurement.
type KernelResult struct {
	Type  string  `json:"type"`
	Shape Shape   `json:"shape"`
	GBps  float64 `json:"gbps,omitempty"`   // weight bytes per second (matvec)
	Flops float64 `json:"gflops,omitempty"` // GEMM
	Pct   float64 `json:"pct_of_peak"`      // of read bandwidth (matvec) or FMA peak (GEMM), measured once at the start
	// LocalPct is against the limit measured again right after this
	// kernel (with Rounds > 1: the median of the rounds' ratios): on a
	// shared machine, the fairer ratio.
	LocalPeak float64 `json:"local_peak"`
	LocalPct  float64 `json:"pct_of_local_peak"`
	Secs      float64 `json:"seconds_per_call"`
	NA        bool    `json:"not_applicable,omitempty"` // the type's blocks do not divide K
}

// Kernels runs the kernel benchmarks.
func Kernels(ctx context.Context, o KernelOptions) (*KernelReport, error) {
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	if o.MinTime <= 0 {
		o.MinTime = 300 * time.Millisecond
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	say := func(s string) {
		if o.Progress != nil {
			o.Progress(s)
		}
	}
	b := cpu.New(o.Threads)
	defer b.Close()
	r := &KernelReport{Backend: b.Name(), Threads: o.Threads, Rounds: o.Rounds, CPU: cpuModel(), GoVersion: runtime.Version(),
		MeasuredAtUTC: time.Now().UTC().Format(time.RFC3339)}
	var err error
	say("read bandwidth")
	bwBuf := make([]byte, 1<<30)
	for i := 0; i < len(bwBuf); i += 4096 {
		bwBuf[i] = 1
	}
	if r.ReadGBps, err = peak.ReadBandwidthBuf(bwBuf, o.Threads, 5); err != nil {
		return nil, err
	}
	runtime.GC()
	say("FMA peak")
	if r.FMAGFlops, err = peak.FMAPeak(o.Threads, time.Second); err != nil {
		return nil, err
	}
	types := o.Types
	if len(types) == 0 {
		types = MatVecTypes
	}
	for _, s := range MatVecShapes {
		for _, t := range types {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if s.K%t.BlockSize() != 0 {
				// e.g. K-quants (256-blocks) on a 640-wide matrix: llama.cpp
				// stores such tensors in another type too.
				r.MatVec = append(r.MatVec, KernelResult{Type: t.String(), Shape: s, NA: true})
				continue
			}
			say(fmt.Sprintf("matvec %s %d×%d", t, s.N, s.K))
			var m rounds
			for range o.Rounds {
				sec, wbytes, err := timeMatMul(b, t, s, o.MinTime)
				if err != nil {
					return nil, err
				}
				local, err := peak.ReadBandwidthBuf(bwBuf[:256<<20], o.Threads, 3)
				if err != nil {
					return nil, err
				}
				m.add(sec, float64(wbytes)/sec/1e9, local)
			}
			gbps := median(m.rate)
			r.MatVec = append(r.MatVec, KernelResult{Type: t.String(), Shape: s, GBps: gbps, Pct: 100 * gbps / r.ReadGBps,
				Secs: median(m.secs), LocalPeak: median(m.local), LocalPct: median(m.pct)})
		}
	}
	gtypes := GEMMTypes
	if len(o.Types) > 0 {
		gtypes = o.Types
	}
	for _, s := range GEMMShapes {
		for _, t := range gtypes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if s.K%t.BlockSize() != 0 {
				r.GEMM = append(r.GEMM, KernelResult{Type: t.String(), Shape: s, NA: true})
				continue
			}
			say(fmt.Sprintf("gemm %s %d×%d×%d", t, s.M, s.K, s.N))
			var m rounds
			for range o.Rounds {
				sec, _, err := timeMatMul(b, t, s, o.MinTime)
				if err != nil {
					return nil, err
				}
				local, err := peak.FMAPeak(o.Threads, 200*time.Millisecond)
				if err != nil {
					return nil, err
				}
				m.add(sec, 2*float64(s.M)*float64(s.K)*float64(s.N)/sec/1e9, local)
			}
			gf := median(m.rate)
			r.GEMM = append(r.GEMM, KernelResult{Type: t.String(), Shape: s, Flops: gf, Pct: 100 * gf / r.FMAGFlops,
				Secs: median(m.secs), LocalPeak: median(m.local), LocalPct: median(m.pct)})
		}
	}
	return r, nil
}

// rounds collects one kernel's measurements: seconds per call, the rate
// (GB/s or GFLOP/s), the local limit measured right after, and the rate as
// % of that limit (per round, so a round's kernel meets its own limit).
type rounds struct{ secs, rate, local, pct []float64 }

func (m *rounds) add(sec, rate, local float64) {
	m.secs = append(m.secs, sec)
	m.rate = append(m.rate, rate)
	m.local = append(m.local, local)
	m.pct = append(m.pct, 100*rate/local)
}

// median is the middle value of v (the mean of the two middle ones for an
// even count); v is not changed.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// timeMatMul times compute.MatMul on the backend for shape s with random
// weights of type t; it returns seconds per call and the weight bytes.
func timeMatMul(b *cpu.Backend, t tensor.DType, s Shape, minTime time.Duration) (float64, int, error) {
	rng := rand.New(rand.NewPCG(uint64(t), uint64(s.N)))
	// Random weights are made for up to 4096 rows and repeated: values do
	// not change the speed, and making 262144 rows of K-quants would take
	// longer than measuring them.
	unique := min(s.N, 4096)
	w0, err := matmul.RandomWeights(t, unique, s.K, rng)
	if err != nil {
		return 0, 0, err
	}
	w := make([]byte, len(w0)/unique*s.N)
	for off := 0; off < len(w); off += len(w0) {
		copy(w[off:], w0)
	}
	wt, err := b.Wrap(t, w, s.N, s.K)
	if err != nil {
		return 0, 0, err
	}
	x, err := b.Alloc(tensor.F32, s.M, s.K)
	if err != nil {
		return 0, 0, err
	}
	defer b.Free(x)
	xs := matmul.RandomActivations(s.M, s.K, rng)
	if err := b.Write(x, f32Bytes(xs)); err != nil {
		return 0, 0, err
	}
	y, err := b.Alloc(tensor.F32, s.M, s.N)
	if err != nil {
		return 0, 0, err
	}
	defer b.Free(y)
	call := func() error { return compute.MatMul(wt, x, y) }
	if err := call(); err != nil { // warm-up: page in the weights
		return 0, 0, err
	}
	runs, start := 0, time.Now()
	for runs < 2 || time.Since(start) < minTime {
		if err := call(); err != nil {
			return 0, 0, err
		}
		runs++
	}
	return time.Since(start).Seconds() / float64(runs), len(w), nil
}
