package sample

import (
	"fmt"
	"math"
)

// UniPC (Zhao et al. 2023), multistep, data prediction, as ComfyUI's
// sample_unipc runs it on a k-diffusion sigma schedule (variant "bh1" for
// "uni_pc", "bh2" for "uni_pc_bh2"): order min(3, N−1), lower orders for the
// first and last steps, the corrector after every step but the last, and a
// final schedule value of 0 replaced by 0.001 (so the result is the latent
// at σ = 0.001, not a last denoise).
//
// ComfyUI works on the variance-preserving latent x/√(σ²+1) with
// λ = log α − log σ_VP; both reduce exactly to k-diffusion's x and
// λ = −ln σ, which is what this implementation uses: each update reads
// x_t = (σ_t/σ_s)·x − (e^{−h} − 1)·D_s − B(h)·Σρ_k·D1_k. The scalars are
// float64 and the vectors float32, so results agree with ComfyUI's to
// float32 rounding, not bit for bit.
//
// A1111's UniPC (a "timesteps" sampler) runs the same solver on its own
// time grid, t linear in [1/1000, 1] of the VP schedule, not on the chosen
// sigma schedule, and ends at t = 0 without the 0.001 substitution; it is
// approximated here by the discrete schedule.

type unipcVariant int

const (
	bh1 unipcVariant = iota
	bh2
)

func unipcBH1(r *runner) error { return unipc(r, bh1) }
func unipcBH2(r *runner) error { return unipc(r, bh2) }

func unipc(r *runner, variant unipcVariant) error {
	ts := append([]float32(nil), r.sigmas...)
	if ts[r.n] < 0.001 {
		ts[r.n] = 0.001
	}
	n := r.n
	if err := r.check(); err != nil {
		return err
	}
	m0, err := r.denoise(r.x, ts[0], 0)
	if err != nil {
		return err
	}
	if n == 1 {
		// ComfyUI's order min(3, N−1) is 0 here and it never updates;
		// take the one first-order (DPM-Solver++ 1) step instead.
		x, _, err := unipcUpdate(r, variant, r.x, []float32{ts[0]}, [][]float32{m0}, ts[1], 1, false, 0)
		if err != nil {
			return err
		}
		r.x = x
		r.stepDone(0, m0)
		return nil
	}
	order := min(3, n-1)
	tPrev := []float32{ts[0]}
	mPrev := [][]float32{m0}
	for step := 1; step < n; step++ {
		if err := r.check(); err != nil {
			return err
		}
		if step < order { // warm-up: lower orders, the lists grow
			used := mPrev[len(mPrev)-1]
			x, m, err := unipcUpdate(r, variant, r.x, tPrev, mPrev, ts[step], step, true, step)
			if err != nil {
				return err
			}
			r.x = x
			tPrev = append(tPrev, ts[step])
			mPrev = append(mPrev, m)
			r.stepDone(step-1, used)
			continue
		}
		last := step
		if step == n-1 {
			last = n // the final step to ts[n] follows without a model call
		}
		for k := step; k <= last; k++ {
			used := mPrev[len(mPrev)-1]
			stepOrder := min(order, n+1-k)
			x, m, err := unipcUpdate(r, variant, r.x, tPrev, mPrev, ts[k], stepOrder, k != n, k)
			if err != nil {
				return err
			}
			r.x = x
			copy(tPrev, tPrev[1:])
			copy(mPrev, mPrev[1:])
			tPrev[len(tPrev)-1] = ts[k]
			if k < n {
				mPrev[len(mPrev)-1] = m
			}
			r.stepDone(k-1, used)
		}
	}
	return nil
}

// unipcUpdate is ComfyUI's multistep_uni_pc_bh_update with predict_x0, in
// k-diffusion coordinates: it steps x from tPrev[last] to t with the given
// order, runs the corrector if asked (evaluating the model at the predicted
// point, whose value it returns for reuse), and returns the new x.
func unipcUpdate(r *runner, variant unipcVariant, x []float32, tPrev []float32, mPrev [][]float32, t float32, order int, corrector bool, step int) ([]float32, []float32, error) {
	if order > len(mPrev) || order < 1 {
		return nil, nil, fmt.Errorf("sample: UniPC order %d with %d previous values", order, len(mPrev))
	}
	last := len(mPrev) - 1
	s0 := float64(tPrev[last])
	m0 := mPrev[last]
	lambda0, lambdaT := -math.Log(s0), -math.Log(float64(t))
	h := lambdaT - lambda0

	rks := make([]float64, 0, order)
	d1s := make([][]float32, 0, order-1)
	for i := 1; i < order; i++ {
		rk := (-math.Log(float64(tPrev[last-i])) - lambda0) / h
		rks = append(rks, rk)
		mi := mPrev[last-i]
		d := make([]float32, len(x))
		for j := range d {
			d[j] = float32(float64(mi[j]-m0[j]) / rk)
		}
		d1s = append(d1s, d)
	}
	rks = append(rks, 1)

	hh := -h
	hPhi1 := math.Expm1(hh)
	hPhiK := hPhi1/hh - 1
	bh := hh
	if variant == bh2 {
		bh = math.Expm1(hh)
	}
	R := make([][]float64, order)
	b := make([]float64, order)
	factorial := 1.0
	for i := 1; i <= order; i++ {
		R[i-1] = make([]float64, order)
		for k := range rks {
			R[i-1][k] = math.Pow(rks[k], float64(i-1))
		}
		b[i-1] = hPhiK * factorial / bh
		factorial *= float64(i + 1)
		hPhiK = hPhiK/hh - 1/factorial
	}

	var rhosP, rhosC []float64
	if len(d1s) > 0 {
		if order == 2 {
			rhosP = []float64{0.5}
		} else {
			rhosP = solve(sub(R, order-1), b[:order-1])
		}
	}
	if corrector {
		if order == 1 {
			rhosC = []float64{0.5}
		} else {
			rhosC = solve(R, b)
		}
	}

	// x_t_ = (σ_t/σ_s)·x − (e^{−h} − 1)·m0
	ratio := float32(float64(t) / s0)
	c0 := float32(hPhi1)
	base := make([]float32, len(x))
	for j, xj := range x {
		base[j] = float32(ratio*xj) - float32(c0*m0[j])
	}
	xt := make([]float32, len(x))
	copy(xt, base)
	if rhosP != nil {
		addCombination(xt, float32(bh), rhosP, d1s)
	}
	if !corrector {
		return xt, nil, nil
	}
	mt, err := r.denoise(xt, t, step)
	if err != nil {
		return nil, nil, err
	}
	d1t := make([]float32, len(x))
	for j := range d1t {
		d1t[j] = mt[j] - m0[j]
	}
	copy(xt, base)
	vs := append(append(make([][]float32, 0, order), d1s...), d1t)
	addCombination(xt, float32(bh), rhosC, vs)
	return xt, mt, nil
}

// addCombination sets x ← x − bh·Σ_k rho_k·v_k.
func addCombination(x []float32, bh float32, rho []float64, v [][]float32) {
	for j := range x {
		var acc float64
		for k := range rho {
			acc += rho[k] * float64(v[k][j])
		}
		x[j] -= float32(bh * float32(acc))
	}
}

// sub is the leading n×n block of a.
func sub(a [][]float64, n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		out[i] = append([]float64(nil), a[i][:n]...)
	}
	return out
}

// solve solves a·x = b (n ≤ 3) by Gaussian elimination with partial
// pivoting. UniPC's matrices are Vandermonde in distinct r_k, so they are
// never singular.
func solve(a [][]float64, b []float64) []float64 {
	n := len(b)
	m := make([][]float64, n)
	for i := range m {
		m[i] = append(append([]float64(nil), a[i]...), b[i])
	}
	for c := 0; c < n; c++ {
		p := c
		for i := c + 1; i < n; i++ {
			if math.Abs(m[i][c]) > math.Abs(m[p][c]) {
				p = i
			}
		}
		m[c], m[p] = m[p], m[c]
		for i := c + 1; i < n; i++ {
			f := m[i][c] / m[c][c]
			for k := c; k <= n; k++ {
				m[i][k] -= f * m[c][k]
			}
		}
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := m[i][n]
		for k := i + 1; k < n; k++ {
			s -= m[i][k] * x[k]
		}
		x[i] = s / m[i][i]
	}
	return x
}
