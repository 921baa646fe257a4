package sample

import "math"

// Each sampler walks r.sigmas, updating r.x in place. Vector maths is
// element-wise float32; every product that feeds an addition is wrapped in
// float32(...) so the Go compiler cannot fuse it into an FMA.

// steps is k-diffusion's sampling loop: for each i, D = model(x, σ_i), then
// step(i, σ_i, σ_{i+1}, D) updates r.x, then the step callback. It stops at
// the first error and when the context is done.
func (r *runner) steps(step func(i int, s, sn float32, den []float32) error) error {
	for i := 0; i < r.n; i++ {
		if err := r.check(); err != nil {
			return err
		}
		s := r.sigmas[i]
		den, err := r.denoise(r.x, s, i)
		if err != nil {
			return err
		}
		if err := step(i, s, r.sigmas[i+1], den); err != nil {
			return err
		}
		r.stepDone(i, den)
	}
	return nil
}

// euler: d = (x − D)/σ, x ← x + d·(σ_next − σ) (sd.cpp sample_euler).
func euler(r *runner) error {
	return r.steps(func(i int, s, sn float32, den []float32) error {
		dt := sn - s
		for j, xj := range r.x {
			d := (xj - den[j]) / s
			r.x[j] = xj + float32(d*dt)
		}
		return nil
	})
}

// eulerAncestral is sd.cpp's sample_euler_ancestral (also its DDIM, which is
// this update with η = 0): x ← (σ_down/σ)·x + (1 − σ_down/σ)·D, then
// x ← x + σ_up·noise; the step to σ = 0 sets x ← D.
func eulerAncestral(r *runner) error {
	return r.steps(func(i int, s, sn float32, den []float32) error {
		switch {
		case sn == 0:
			copy(r.x, den)
		case r.eta == 0:
			blend(r.x, sn/s, den)
		default:
			down, up := ancestral(s, sn, r.eta)
			blend(r.x, down/s, den)
			if up > 0 {
				return r.addNoise(up)
			}
		}
		return nil
	})
}

// blend sets x ← ratio·x + (1 − ratio)·den.
func blend(x []float32, ratio float32, den []float32) {
	rest := 1 - ratio
	for j, xj := range x {
		x[j] = float32(ratio*xj) + float32(rest*den[j])
	}
}

// heun is sd.cpp's sample_heun: Euler to σ_next, then the average of the two
// slopes; the step to σ = 0 is plain Euler.
func heun(r *runner) error {
	d := make([]float32, len(r.x))
	x2 := make([]float32, len(r.x))
	return r.steps(func(i int, s, sn float32, den []float32) error {
		dt := sn - s
		for j, xj := range r.x {
			d[j] = (xj - den[j]) / s
		}
		if sn == 0 {
			for j := range r.x {
				r.x[j] += float32(d[j] * dt)
			}
			return nil
		}
		for j, xj := range r.x {
			x2[j] = xj + float32(d[j]*dt)
		}
		den2, err := r.denoise(x2, sn, i)
		if err != nil {
			return err
		}
		for j := range r.x {
			dj := (d[j] + (x2[j]-den2[j])/sn) / 2
			r.x[j] += float32(dj * dt)
		}
		return nil
	})
}

// dpm2 is sd.cpp's sample_dpm2 (k-diffusion's DPM-Solver-2 with the
// log-space midpoint σ_mid = √(σ·σ_next), computed with the double ln/exp).
func dpm2(r *runner) error {
	d := make([]float32, len(r.x))
	x2 := make([]float32, len(r.x))
	return r.steps(func(i int, s, sn float32, den []float32) error {
		for j, xj := range r.x {
			d[j] = (xj - den[j]) / s
		}
		if sn == 0 {
			dt := sn - s
			for j := range r.x {
				r.x[j] += float32(d[j] * dt)
			}
			return nil
		}
		mid := float32(math.Exp(0.5 * (math.Log(float64(s)) + math.Log(float64(sn)))))
		dt1, dt2 := mid-s, sn-s
		for j, xj := range r.x {
			x2[j] = xj + float32(d[j]*dt1)
		}
		den2, err := r.denoise(x2, mid, i)
		if err != nil {
			return err
		}
		for j := range r.x {
			d2 := (x2[j] - den2[j]) / mid
			r.x[j] += float32(d2 * dt2)
		}
		return nil
	})
}

// tOf and sigmaOf are sd.cpp's t_fn = −log σ and sigma_fn = exp(−t): the
// double functions on a float argument, rounded back to float32.
func tOf(sigma float32) float32 { return float32(-math.Log(float64(sigma))) }
func sigmaOf(t float32) float32 { return float32(math.Exp(-float64(t))) }

// expm1d is sd.cpp's `exp(x) − 1` on a float x: double exp and subtraction,
// rounded to float32.
func expm1d(x float32) float32 { return float32(math.Exp(float64(x)) - 1) }

// dpmpp2sAncestral is sd.cpp's sample_dpmpp_2s_ancestral: a DPM-Solver++(2S)
// step to σ_down, then σ_up of noise.
func dpmpp2sAncestral(r *runner) error {
	x2 := make([]float32, len(r.x))
	return r.steps(func(i int, s, sn float32, den []float32) error {
		down, up := ancestral(s, sn, r.eta)
		if down == 0 {
			copy(r.x, den)
		} else {
			t, tNext := tOf(s), tOf(down)
			h := tNext - t
			sMid := t + float32(0.5*h)
			sigmaMid := sigmaOf(sMid)
			a1, b1 := sigmaMid/sigmaOf(t), expm1d(-h*0.5)
			for j, xj := range r.x {
				x2[j] = float32(a1*xj) - float32(b1*den[j])
			}
			den2, err := r.denoise(x2, sigmaMid, i)
			if err != nil {
				return err
			}
			a2, b2 := sigmaOf(tNext)/sigmaOf(t), expm1d(-h)
			for j, xj := range r.x {
				r.x[j] = float32(a2*xj) - float32(b2*den2[j])
			}
		}
		if sn > 0 && r.eta > 0 {
			return r.addNoise(up)
		}
		return nil
	})
}

// dpmpp2m is k-diffusion's sample_dpmpp_2m with sd.cpp's precisions:
// t = float32(−ln σ) and b = float32(e^{−h} − 1) in double, the rest float32.
// The first step and the step to σ = 0 are first order.
func dpmpp2m(r *runner) error {
	var old []float32
	dd := make([]float32, len(r.x))
	return r.steps(func(i int, s, sn float32, den []float32) error {
		t, tNext := tOf(s), tOf(sn)
		h := tNext - t
		a := sn / s
		b := expm1d(-h)
		if i == 0 || sn == 0 {
			for j, xj := range r.x {
				r.x[j] = float32(a*xj) - float32(b*den[j])
			}
		} else {
			hLast := t - tOf(r.sigmas[i-1])
			rr := hLast / h
			c2 := 1 / float32(2*rr)
			c1 := 1 + c2
			for j := range dd {
				dd[j] = float32(c1*den[j]) - float32(c2*old[j])
			}
			for j, xj := range r.x {
				r.x[j] = float32(a*xj) - float32(b*dd[j])
			}
		}
		old = den
		return nil
	})
}

// dpmpp2mSDE is sd.cpp's sample_dpmpp_2m_sde (k-diffusion's midpoint
// variant) with plain per-step noise in place of k-diffusion's Brownian
// tree. Its ln, exp and expm1 are the float32 functions.
func dpmpp2mSDE(r *runner) error {
	var old []float32
	var hLast float32
	return r.steps(func(i int, s, sn float32, den []float32) error {
		if sn == 0 {
			copy(r.x, den)
		} else {
			t, tn := -log32(s), -log32(sn)
			h := tn - t
			etaH := r.eta * h
			a := float32(sn/s) * exp32(-etaH)
			b := -expm132(-h - etaH)
			for j, xj := range r.x {
				r.x[j] = float32(a*xj) + float32(b*den[j])
			}
			if old != nil {
				c := float32(0.5*b) / (hLast / h)
				for j := range r.x {
					r.x[j] += float32(c * (den[j] - old[j]))
				}
			}
			if r.eta > 0 {
				if err := r.addSDENoise(r.x, s, sn, float32(sn*sqrt32(-expm132(-2*etaH)))); err != nil {
					return err
				}
			}
			hLast = h
		}
		old = den
		return nil
	})
}

// dpmppSDE is k-diffusion's sample_dpmpp_sde (DPM-Solver++ stochastic,
// r = 1/2): an ancestral half step to the midpoint in log σ, a model
// evaluation there, then an ancestral full step with the blended estimate.
// Scalars are float64 (sd.cpp has no such sampler); the noise of the two
// half steps comes from the Brownian tree (or two plain draws without one).
func dpmppSDE(r *runner) error {
	const ratio = 0.5
	x2 := make([]float32, len(r.x))
	dd := make([]float32, len(r.x))
	eta := float64(r.eta)
	return r.steps(func(i int, s, sn float32, den []float32) error {
		if sn == 0 { // Euler to 0
			dt := sn - s
			for j, xj := range r.x {
				d := (xj - den[j]) / s
				r.x[j] = xj + float32(d*dt)
			}
			return nil
		}
		s64, sn64 := float64(s), float64(sn)
		t := -math.Log(s64)
		// The midpoint and the Brownian queries as k-diffusion computes
		// them on float32 tensors: t = −ln σ, s = t + h·r, σ = e^(−t).
		t32, tn32 := -log32(s), -log32(sn)
		mid32 := t32 + float32(float32(tn32-t32)*ratio)
		qFrom, qMid, qTo := exp32(-t32), exp32(-mid32), exp32(-tn32)
		sMid := float64(qMid)
		// Step 1: to the midpoint.
		down, up := ancestral64(s64, sMid, eta)
		a, b := float32(down/s64), float32(math.Expm1(t+math.Log(down)))
		for j, xj := range r.x {
			x2[j] = float32(a*xj) - float32(b*den[j])
		}
		if eta > 0 {
			if err := r.addSDENoise(x2, qFrom, qMid, float32(up)); err != nil {
				return err
			}
		}
		den2, err := r.denoise(x2, float32(sMid), i)
		if err != nil {
			return err
		}
		// Step 2: the full step with D' = (1 − 1/(2r))·D + 1/(2r)·D2.
		down, up = ancestral64(s64, sn64, eta)
		const fac = 1 / (2 * ratio)
		for j := range dd {
			dd[j] = float32((1-fac)*den[j]) + float32(fac*den2[j])
		}
		a, b = float32(down/s64), float32(math.Expm1(t+math.Log(down)))
		for j, xj := range r.x {
			r.x[j] = float32(a*xj) - float32(b*dd[j])
		}
		if eta > 0 {
			if err := r.addSDENoise(r.x, qFrom, qTo, float32(up)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ancestral64 is get_ancestral_step in float64.
func ancestral64(from, to, eta float64) (down, up float64) {
	if eta <= 0 {
		return to, 0
	}
	up = math.Min(to, eta*math.Sqrt(math.Max(to*to*(from*from-to*to)/(from*from), 0)))
	return math.Sqrt(math.Max(to*to-up*up, 0)), up
}

// lcm is sd.cpp's sample_lcm: x ← D, then fresh noise at σ_next.
func lcm(r *runner) error {
	return r.steps(func(i int, s, sn float32, den []float32) error {
		copy(r.x, den)
		if sn > 0 {
			return r.addNoise(sn)
		}
		return nil
	})
}

// The float32 functions of the C library (logf, expf, expm1f), correctly
// rounded.
func log32(x float32) float32   { return float32(math.Log(float64(x))) }
func exp32(x float32) float32   { return float32(math.Exp(float64(x))) }
func expm132(x float32) float32 { return float32(math.Expm1(float64(x))) }
