package sample

import (
	"context"
	"errors"
	"math"
	"testing"

	"mica/internal/diffusion/noise"
	"mica/internal/diffusion/schedule"
)

// gaussian is the exact denoiser for data x0 ~ N(μ_i, s²) element-wise:
// D(x; σ) = (s²·x + σ²·μ)/(s² + σ²). Its probability-flow ODE has the closed
// form x(σ) = μ + (x(σ_T) − μ)·√(s²+σ²)/√(s²+σ_T²), and sampling it exactly
// (any correct SDE sampler in the limit) gives x0 ~ N(μ, s²).
type gaussian struct {
	mu    []float64
	s2    float64
	calls int
}

func (g *gaussian) denoise(_ context.Context, x []float32, sigma float32, _ int) ([]float32, error) {
	g.calls++
	out := make([]float32, len(x))
	v := float64(sigma) * float64(sigma)
	for i, xi := range x {
		out[i] = float32((g.s2*float64(xi) + v*g.mu[i]) / (g.s2 + v))
	}
	return out, nil
}

func newGaussian(n int, s float64) *gaussian {
	g := &gaussian{mu: make([]float64, n), s2: s * s}
	for i := range g.mu {
		g.mu[i] = math.Sin(float64(i))
	}
	return g
}

func sdTable(t *testing.T) *schedule.Table {
	t.Helper()
	tb, err := schedule.NewScaledLinear(0.00085, 0.012, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// odeError runs a deterministic sampler on the Gaussian from σ_max down to
// the last sigma given and returns the largest deviation from the ODE's
// exact solution there.
func odeError(t *testing.T, sampler string, sigmas []float32, o Options) float64 {
	t.Helper()
	const n = 256
	g := newGaussian(n, 0.5)
	z := noise.NewPhilox(11).Randn(n)
	sT := float64(sigmas[0])
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(g.mu[i] + math.Sqrt(g.s2+sT*sT)*float64(z[i]))
	}
	out, err := Run(context.Background(), sampler, g.denoise, x, sigmas, o)
	if err != nil {
		t.Fatalf("%s: %v", sampler, err)
	}
	end := float64(sigmas[len(sigmas)-1])
	worst := 0.0
	for i := range out {
		want := g.mu[i] + (float64(x[i])-g.mu[i])*math.Sqrt(g.s2+end*end)/math.Sqrt(g.s2+sT*sT)
		worst = math.Max(worst, math.Abs(float64(out[i])-want))
	}
	return worst
}

// TestODEConvergence: every deterministic sampler converges to the exact
// ODE solution with its order. The schedules are Karras from σ_max to σ_min
// without the final jump to 0 (whose one-step error, ≈ σ_min²/(2s²)·|x−μ|,
// would not shrink with more steps). Quadrupling the steps must divide the
// error by at least 2.5 for first-order samplers (ideal 4), 8 for
// second-order ones (ideal 16) and 12 for UniPC; the bounds at 24 steps are
// the measured errors with about 3× headroom.
func TestODEConvergence(t *testing.T) {
	tb := sdTable(t)
	det := Options{Eta: -1}
	karras := func(n int) []float32 {
		s, _ := tb.Sigmas(schedule.Karras, n)
		return s[:n]
	}
	for _, c := range []struct {
		sampler string
		gain    float64 // required error ratio from 24 to 96 steps
		at24    float64 // bound on the error with 24 steps
	}{
		{Euler, 2.5, 0.35},  // measured 0.116, ratio 4.0
		{EulerA, 2.5, 0.35}, // η = 0: the DDIM update, first order like Euler
		{DDIM, 2.5, 0.35},
		{Heun, 8, 0.05},     // measured 0.016, ratio 18
		{DPM2, 8, 0.03},     // measured 0.0093, ratio 18
		{DPMPP2M, 8, 0.05},  // measured 0.016, ratio 18
		{DPMPP2SA, 8, 0.03}, // η = 0: DPM-Solver++(2S); measured 0.0084
		{DPMPPSDE, 8, 0.03}, // η = 0: the same solver with r = 1/2
		{DPMPP2MSDE, 8, 0.05},
		{UniPC, 12, 3e-3},    // measured 8.6e-4, ratio 23 (third order after warm-up)
		{UniPCBH2, 12, 3e-3}, // measured 1.1e-3, ratio 30
	} {
		e24, e96 := odeError(t, c.sampler, karras(24), det), odeError(t, c.sampler, karras(96), det)
		t.Logf("%-12s max error: 24 steps %.2e, 96 steps %.2e (ratio %.1f)", c.sampler, e24, e96, e24/e96)
		if e24/e96 < c.gain {
			t.Errorf("%s: error %.3g → %.3g, ratio below %v", c.sampler, e24, e96, c.gain)
		}
		if e24 > c.at24 {
			t.Errorf("%s: error %.3g with 24 steps, bound %.3g", c.sampler, e24, c.at24)
		}
	}
}

// TestStochasticSamplers: the ancestral and SDE samplers, run on the
// Gaussian with η = 1, must produce samples with the data's mean and
// standard deviation (0.3, 0.5) as the steps grow. Ancestral steps are
// biased (too little variance) at coarse steps, so the check is at 150
// steps: measured |std − 0.5| ≤ 0.01 there. With 16384 values the sampling
// error of the mean is 0.5/128 ≈ 0.004 and of the std ≈ 0.003; the bounds
// are 0.015 and 0.02. The std error must also shrink from 20 to 150 steps.
func TestStochasticSamplers(t *testing.T) {
	tb := sdTable(t)
	const n = 1 << 14
	sample := func(sampler string, steps int) (float64, float64) {
		sigmas, _ := tb.Sigmas(schedule.Karras, steps)
		g := &gaussian{mu: make([]float64, n), s2: 0.25}
		for i := range g.mu {
			g.mu[i] = 0.3
		}
		gen := noise.NewPhilox(5)
		z := gen.Randn(n)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(0.3 + math.Sqrt(0.25+float64(sigmas[0])*float64(sigmas[0]))*float64(z[i]))
		}
		out, err := Run(context.Background(), sampler, g.denoise, x, sigmas, Options{Noise: gen})
		if err != nil {
			t.Fatal(err)
		}
		return stats(out)
	}
	for _, sampler := range []string{EulerA, DPMPP2SA, DPMPPSDE, DPMPP2MSDE} {
		_, std20 := sample(sampler, 20)
		mean, std := sample(sampler, 150)
		t.Logf("%-12s 20 steps: std %.4f; 150 steps: mean %.4f std %.4f", sampler, std20, mean, std)
		if math.Abs(mean-0.3) > 0.015 || math.Abs(std-0.5) > 0.02 {
			t.Errorf("%s: mean %.4f std %.4f, want 0.3 and 0.5", sampler, mean, std)
		}
		if math.Abs(std-0.5) > math.Abs(std20-0.5)+0.005 {
			t.Errorf("%s: std error grows with steps: %.4f → %.4f", sampler, std20, std)
		}
	}
}

func stats(v []float32) (mean, std float64) {
	var s, ss float64
	for _, x := range v {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	mean = s / float64(len(v))
	return mean, math.Sqrt(ss/float64(len(v)) - mean*mean)
}

// fixed returns the denoised values it is given, in order of calls.
func fixed(dens ...[]float32) Denoiser {
	i := 0
	return func(_ context.Context, x []float32, _ float32, _ int) ([]float32, error) {
		d := dens[i]
		i++
		return append([]float32(nil), d...), nil
	}
}

// constNoise returns the same values on every draw.
type constNoise struct {
	v     []float32
	draws int
}

func (c *constNoise) Randn(n int) []float32 {
	c.draws++
	return append([]float32(nil), c.v[:n]...)
}

// TestEulerStepByHand: one step from σ 2 to σ 1 with values whose results
// are exact in binary: d = (x − D)/2, x + d·(1 − 2).
func TestEulerStepByHand(t *testing.T) {
	x := []float32{1.5, -0.25, 3}
	den := []float32{0.5, 0.125, -1}
	got, err := Run(context.Background(), Euler, fixed(den), x, []float32{2, 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []float32{1, -0.0625, 1} {
		if got[i] != w {
			t.Fatalf("[%d] = %v, want %v", i, got[i], w)
		}
	}
	if x[0] != 1.5 {
		t.Fatal("Run modified its input")
	}
}

// TestEulerAncestralStepByHand: σ 2 → 1, η = 1: σ_up = √(1·(4−1)/4) = √0.75,
// σ_down = √(1 − 0.75) = 0.5, x ← 0.25·x + 0.75·D + σ_up·z. float64 oracle;
// the float32 path rounds each of about six operations, so agreement to
// 4 float32 ULPs (≈ 5e-7 relative) is expected.
func TestEulerAncestralStepByHand(t *testing.T) {
	x := []float32{1.5, -0.25, 3}
	den := []float32{0.5, 0.125, -1}
	z := &constNoise{v: []float32{0.5, -1, 2}}
	got, err := Run(context.Background(), EulerA, fixed(den, den), x, []float32{2, 1, 0}, Options{Noise: z})
	if err != nil {
		t.Fatal(err)
	}
	// The second step (to σ = 0) sets x to its D, which is den again.
	if got[0] != den[0] || z.draws != 1 {
		t.Fatalf("last step: %v, %d draws", got, z.draws)
	}
	got, _ = Run(context.Background(), EulerA, fixed(den), x, []float32{2, 1}, Options{Noise: z})
	up := math.Sqrt(0.75)
	for i := range x {
		want := 0.25*float64(x[i]) + 0.75*float64(den[i]) + up*float64(z.v[i])
		if math.Abs(float64(got[i])-want) > 5e-7*math.Max(1, math.Abs(want)) {
			t.Fatalf("[%d] = %.9g, oracle %.9g", i, got[i], want)
		}
	}
}

// TestDPMPP2MByHand: two steps σ 4 → 2 → 1 checked against the formulas in
// float64. Step 1 is first order: x ← (σ1/σ0)·x − (e^{−h} − 1)·D0 with
// h = ln 2, i.e. 0.5·x + 0.5·D0. Step 2 (r = h_last/h = 1) uses
// D' = 1.5·D1 − 0.5·D0: x ← 0.5·x + 0.5·D'. Exact in binary here, but the
// double ln/exp round; allow 2 float32 ULPs.
func TestDPMPP2MByHand(t *testing.T) {
	x := []float32{8, -4, 2}
	d0 := []float32{1, 2, -3}
	d1 := []float32{0.5, -1, 4}
	got, err := Run(context.Background(), DPMPP2M, fixed(d0, d1), x, []float32{4, 2, 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range x {
		x1 := 0.5*float64(x[i]) + 0.5*float64(d0[i])
		want := 0.5*x1 + 0.5*(1.5*float64(d1[i])-0.5*float64(d0[i]))
		if math.Abs(float64(got[i])-want) > 2.5e-7*math.Max(1, math.Abs(want)) {
			t.Fatalf("[%d] = %.9g, oracle %.9g", i, got[i], want)
		}
	}
}

// TestEulerAncestralOffsets: with the Philox generator that drew the
// initial noise (offset 0), euler_a draws offsets 1..N−1 (README), one per
// step except the last.
func TestEulerAncestralOffsets(t *testing.T) {
	tb := sdTable(t)
	sigmas, _ := tb.Sigmas(schedule.Discrete, 4)
	p := noise.NewPhilox(7)
	x := p.Randn(16)
	var offsets []uint64
	rec := recorder{p: p, seen: &offsets}
	g := newGaussian(16, 0.5)
	if _, err := Run(context.Background(), EulerA, g.denoise, x, sigmas, Options{Noise: rec}); err != nil {
		t.Fatal(err)
	}
	if len(offsets) != 3 || offsets[0] != 1 || offsets[2] != 3 {
		t.Fatalf("offsets %v, want [1 2 3]", offsets)
	}
}

type recorder struct {
	p    *noise.Philox
	seen *[]uint64
}

func (r recorder) Randn(n int) []float32 {
	*r.seen = append(*r.seen, r.p.Offset())
	return r.p.Randn(n)
}

// TestEvaluationsAndCallbacks: model evaluations per sampler and one OnStep
// call per step, in order.
func TestEvaluationsAndCallbacks(t *testing.T) {
	tb := sdTable(t)
	sigmas, _ := tb.Sigmas(schedule.Karras, 6)
	for _, c := range []struct {
		sampler string
		evals   int
	}{
		{Euler, 6}, {EulerA, 6}, {DDIM, 6}, {LCM, 6}, {DPMPP2M, 6}, {DPMPP2MSDE, 6},
		{Heun, 11}, {DPM2, 11}, {DPMPP2SA, 11}, {DPMPPSDE, 11}, // second order: no 2nd call on the step to 0
		{UniPC, 6}, {UniPCBH2, 6},
	} {
		g := newGaussian(8, 0.5)
		var steps []int
		o := Options{Noise: noise.NewPhilox(1), OnStep: func(step, total int, x, den []float32) {
			if total != 6 || len(x) != 8 || len(den) != 8 {
				t.Fatalf("%s: OnStep(%d, %d, %d, %d)", c.sampler, step, total, len(x), len(den))
			}
			steps = append(steps, step)
		}}
		x := make([]float32, 8)
		if _, err := Run(context.Background(), c.sampler, g.denoise, x, sigmas, o); err != nil {
			t.Fatal(err)
		}
		if g.calls != c.evals {
			t.Errorf("%s: %d evaluations, want %d", c.sampler, g.calls, c.evals)
		}
		for i, s := range steps {
			if s != i {
				t.Fatalf("%s: OnStep order %v", c.sampler, steps)
			}
		}
		if len(steps) != 6 {
			t.Errorf("%s: %d OnStep calls", c.sampler, len(steps))
		}
	}
}

func TestDeterministicRepeat(t *testing.T) {
	tb := sdTable(t)
	sigmas, _ := tb.Sigmas(schedule.Karras, 5)
	for _, s := range Samplers() {
		run := func() []float32 {
			g := newGaussian(64, 0.5)
			x := noise.NewPhilox(3).Randn(64)
			out, err := Run(context.Background(), s.Name, g.denoise, x, sigmas, Options{Noise: noise.NewTorchCPU(9)})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		a, b := run(), run()
		for i := range a {
			if a[i] != b[i] || math.IsNaN(float64(a[i])) {
				t.Fatalf("%s: run differs or NaN at %d: %v %v", s.Name, i, a[i], b[i])
			}
		}
	}
}

func TestCancellation(t *testing.T) {
	tb := sdTable(t)
	sigmas, _ := tb.Sigmas(schedule.Discrete, 5)
	ctx, cancel := context.WithCancel(context.Background())
	g := newGaussian(4, 0.5)
	o := Options{OnStep: func(step, _ int, _, _ []float32) {
		if step == 1 {
			cancel()
		}
	}}
	out, err := Run(ctx, Euler, g.denoise, make([]float32, 4), sigmas, o)
	if !errors.Is(err, context.Canceled) || g.calls != 2 || len(out) != 4 {
		t.Fatalf("err %v after %d calls, %d values", err, g.calls, len(out))
	}
}

func TestBadInput(t *testing.T) {
	g := newGaussian(4, 0.5)
	x := make([]float32, 4)
	short := func(_ context.Context, x []float32, _ float32, _ int) ([]float32, error) { return x[:2], nil }
	failing := func(context.Context, []float32, float32, int) ([]float32, error) { return nil, errors.New("boom") }
	for name, err := range map[string]error{
		"unknown":    run("warp", g.denoise, x, []float32{1, 0}, Options{}),
		"nil model":  run(Euler, nil, x, []float32{1, 0}, Options{}),
		"empty x":    run(Euler, g.denoise, nil, []float32{1, 0}, Options{}),
		"no sigmas":  run(Euler, g.denoise, x, nil, Options{}),
		"increasing": run(Euler, g.denoise, x, []float32{1, 2, 0}, Options{}),
		"NaN":        run(Euler, g.denoise, x, []float32{float32(math.NaN()), 0}, Options{}),
		"zero early": run(Euler, g.denoise, x, []float32{1, 0, 0}, Options{}),
		"no noise":   run(EulerA, g.denoise, x, []float32{2, 1, 0}, Options{}),
		"short D":    run(Heun, short, x, []float32{2, 1, 0}, Options{}),
		"model err":  run(UniPC, failing, x, []float32{2, 1, 0}, Options{}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Deterministic eta needs no generator.
	if err := run(EulerA, g.denoise, x, []float32{2, 1, 0}, Options{Eta: -1}); err != nil {
		t.Fatal(err)
	}
}

func run(sampler string, d Denoiser, x, sigmas []float32, o Options) error {
	_, err := Run(context.Background(), sampler, d, x, sigmas, o)
	return err
}
