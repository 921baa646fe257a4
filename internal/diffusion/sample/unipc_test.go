package sample

import (
	"context"
	"math"
	"testing"

	"mica/internal/diffusion/schedule"
)

// vpUniPC is an independent float64 oracle written the way ComfyUI runs
// UniPC: on the variance-preserving latent x/√(σ²+1), with α, σ_VP and λ
// from ComfyUI's SigmaConvert, the model wrapped as ε and then as the x0
// prediction (x − σ_VP·ε)/α, and the result divided by α of the last
// timestep. The implementation under test works in k-diffusion coordinates
// instead; the two must agree to float32 rounding.
func vpUniPC(d func(x []float64, sigma float64) []float64, xk []float64, sigmas []float64, bh2 bool) []float64 {
	ts := append([]float64(nil), sigmas...)
	if ts[len(ts)-1] < 0.001 {
		ts[len(ts)-1] = 0.001
	}
	logAlpha := func(s float64) float64 { return 0.5 * math.Log(1/(s*s+1)) }
	alpha := func(s float64) float64 { return math.Exp(logAlpha(s)) }
	std := func(s float64) float64 { return math.Sqrt(1 - math.Exp(2*logAlpha(s))) }
	lambda := func(s float64) float64 { la := logAlpha(s); return la - 0.5*math.Log(1-math.Exp(2*la)) }
	model := func(x []float64, s float64) []float64 { // data prediction on the VP latent
		in := make([]float64, len(x))
		for i := range x {
			in[i] = x[i] * math.Sqrt(s*s+1)
		}
		den := d(in, s)
		out := make([]float64, len(x))
		for i := range x {
			eps := (in[i] - den[i]) / s
			out[i] = (x[i] - std(s)*eps) / alpha(s)
		}
		return out
	}
	update := func(x []float64, ms [][]float64, tp []float64, t float64, order int, corrector bool) ([]float64, []float64) {
		p0 := tp[len(tp)-1]
		m0 := ms[len(ms)-1]
		h := lambda(t) - lambda(p0)
		var rks []float64
		var d1s [][]float64
		for i := 1; i < order; i++ {
			rk := (lambda(tp[len(tp)-1-i]) - lambda(p0)) / h
			rks = append(rks, rk)
			mi := ms[len(ms)-1-i]
			dd := make([]float64, len(x))
			for j := range dd {
				dd[j] = (mi[j] - m0[j]) / rk
			}
			d1s = append(d1s, dd)
		}
		rks = append(rks, 1)
		hh := -h
		hphi1 := math.Expm1(hh)
		hphik := hphi1/hh - 1
		bh := hh
		if bh2 {
			bh = math.Expm1(hh)
		}
		var R [][]float64
		var b []float64
		fact := 1.0
		for i := 1; i <= order; i++ {
			row := make([]float64, len(rks))
			for k := range rks {
				row[k] = math.Pow(rks[k], float64(i-1))
			}
			R = append(R, row)
			b = append(b, hphik*fact/bh)
			fact *= float64(i + 1)
			hphik = hphik/hh - 1/fact
		}
		base := make([]float64, len(x))
		for j := range x {
			base[j] = std(t)/std(p0)*x[j] - alpha(t)*hphi1*m0[j]
		}
		xt := append([]float64(nil), base...)
		if len(d1s) > 0 {
			rp := []float64{0.5}
			if order != 2 {
				rp = solve(sub(R, order-1), b[:order-1])
			}
			for j := range xt {
				res := 0.0
				for k := range rp {
					res += rp[k] * d1s[k][j]
				}
				xt[j] -= alpha(t) * bh * res
			}
		}
		if !corrector {
			return xt, nil
		}
		rc := []float64{0.5}
		if order != 1 {
			rc = solve(R, b)
		}
		mt := model(xt, t)
		for j := range xt {
			res := rc[len(rc)-1] * (mt[j] - m0[j])
			for k := range d1s {
				res += rc[k] * d1s[k][j]
			}
			xt[j] = base[j] - alpha(t)*bh*res
		}
		return xt, mt
	}

	n := len(ts) - 1
	x := make([]float64, len(xk))
	for i := range x {
		x[i] = xk[i] / math.Sqrt(1+ts[0]*ts[0])
	}
	order := min(3, n-1)
	ms := [][]float64{model(x, ts[0])}
	tp := []float64{ts[0]}
	for step := 1; step < n; step++ {
		if step < order {
			var m []float64
			x, m = update(x, ms, tp, ts[step], step, true)
			ms, tp = append(ms, m), append(tp, ts[step])
			continue
		}
		last := step
		if step == n-1 {
			last = n
		}
		for k := step; k <= last; k++ {
			var m []float64
			x, m = update(x, ms, tp, ts[k], min(order, n+1-k), k != n)
			ms, tp = append(ms[1:], m), append(tp[1:], ts[k])
			if k == n {
				ms[len(ms)-1] = nil
			}
		}
	}
	for i := range x {
		x[i] /= alpha(ts[n])
	}
	return x
}

func TestUniPCMatchesVPOracle(t *testing.T) {
	tb, _ := schedule.NewScaledLinear(0.00085, 0.012, 1000)
	for _, steps := range []int{2, 3, 4, 10} {
		for _, bh2 := range []bool{false, true} {
			sigmas, _ := tb.Sigmas(schedule.Karras, steps)
			g := newGaussian(64, 0.5)
			x := make([]float32, 64)
			for i := range x {
				x[i] = float32(g.mu[i] + 14*math.Cos(float64(3*i)))
			}
			sampler := UniPC
			if bh2 {
				sampler = UniPCBH2
			}
			got, err := Run(context.Background(), sampler, g.denoise, x, sigmas, Options{})
			if err != nil {
				t.Fatal(err)
			}
			d64 := func(x []float64, s float64) []float64 {
				out := make([]float64, len(x))
				for i := range x {
					out[i] = (g.s2*x[i] + s*s*g.mu[i]) / (g.s2 + s*s)
				}
				return out
			}
			x64 := make([]float64, len(x))
			s64 := make([]float64, len(sigmas))
			for i := range x {
				x64[i] = float64(x[i])
			}
			for i := range sigmas {
				s64[i] = float64(sigmas[i])
			}
			want := vpUniPC(d64, x64, s64, bh2)
			for i := range want {
				// float32 vectors against a float64 oracle over ≤ 10 steps
				// of values up to ~15: allow 1e-5 absolute + 1e-5 relative.
				if math.Abs(float64(got[i])-want[i]) > 1e-5+1e-5*math.Abs(want[i]) {
					t.Fatalf("%s %d steps [%d] = %.7g, VP oracle %.7g", sampler, steps, i, got[i], want[i])
				}
			}
		}
	}
}
