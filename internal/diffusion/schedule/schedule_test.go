package schedule

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"mica/internal/testenv"
)

func sdTable(t *testing.T) *Table {
	t.Helper()
	tb, err := NewScaledLinear(0.00085, 0.012, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

type refSchedule struct {
	Cases []struct {
		ID     string `json:"id"`
		Params struct {
			Steps     int     `json:"steps"`
			Scheduler string  `json:"scheduler"`
			Mode      string  `json:"mode"`
			Strength  float32 `json:"strength"`
		} `json:"params"`
		Schedule struct {
			Sigmas    []float64 `json:"sigmas"`
			Timesteps []float64 `json:"unet_timesteps"`
			CIn       []float64 `json:"c_in"`
		} `json:"schedule"`
	} `json:"cases"`
}

// same reports whether a float32 equals a value printed with 9 significant
// digits (cases.json's format), which identifies a float32 uniquely: the
// printed value must round to exactly the float32.
func same(got float32, printed float64) bool {
	return got == float32(printed)
}

// TestReferenceSchedules checks every SD 1.5 and SDXL case's sigma schedule
// (discrete and Karras, txt2img and sd.cpp img2img trimming), its UNet
// timesteps (SigmaToT) and c_in = 1/√(σ²+1), bit for bit.
func TestReferenceSchedules(t *testing.T) {
	tb := sdTable(t)
	n := 0
	for _, model := range []string{"sd", "sdxl"} {
		b, err := os.ReadFile(testenv.Shared(t, "reference", model, "cases.json"))
		if err != nil {
			t.Skipf("reference cases: %v", err)
		}
		var ref refSchedule
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatal(err)
		}
		for _, c := range ref.Cases {
			p := c.Params
			var got []float32
			if p.Mode == "img2img" {
				got, err = tb.Img2ImgSDCPP(p.Scheduler, p.Steps, p.Strength)
			} else {
				got, err = tb.Sigmas(p.Scheduler, p.Steps)
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", model, c.ID, err)
			}
			want := c.Schedule.Sigmas
			if len(got) != len(want) {
				t.Fatalf("%s/%s: %d sigmas %v, want %v", model, c.ID, len(got), got, want)
			}
			for i := range want {
				if !same(got[i], want[i]) {
					t.Errorf("%s/%s: σ[%d] = %.9g, want %.9g", model, c.ID, i, got[i], want[i])
				}
			}
			for i, wt := range c.Schedule.Timesteps {
				if tt := tb.SigmaToT(got[i]); !same(tt, wt) {
					t.Errorf("%s/%s: t(σ[%d]) = %.9g, want %.9g", model, c.ID, i, tt, wt)
				}
			}
			for i, wc := range c.Schedule.CIn {
				s := got[i]
				cin := 1 / sqrt32(float32(s*s)+1)
				if !same(cin, wc) {
					t.Errorf("%s/%s: c_in[%d] = %.9g, want %.9g", model, c.ID, i, cin, wc)
				}
			}
			n++
		}
	}
	t.Logf("%d reference schedules checked", n)
}

func TestTableEnds(t *testing.T) {
	tb := sdTable(t)
	// README: σ_min = 0.0291675329, σ_max = 14.6146555 (printed to 9 digits).
	if !same(tb.SigmaMin(), 0.0291675329) || !same(tb.SigmaMax(), 14.6146555) {
		t.Fatalf("σ_min %.9g σ_max %.9g", tb.SigmaMin(), tb.SigmaMax())
	}
	// Every integer timestep maps to its own σ and back.
	for i := 0; i < tb.Len(); i++ {
		s := tb.TToSigma(float32(i))
		// log σ is stored in float32: its absolute error ≤ 2^-24·|log σ| ≤
		// 2^-22 (|log σ| < 4), which exp turns into a relative error of
		// 2.4e-7, plus 6e-8 for the final rounding: < 2^-21 relative.
		if math.Abs(float64(s-tb.Sigma(i))) > float64(tb.Sigma(i))*(1.0/(1<<21)) {
			t.Fatalf("σ(%d) = %v, table %v", i, s, tb.Sigma(i))
		}
		// and back: within 1e-3 of a timestep (the log-σ interpolation is
		// exact at the knots up to float32 rounding of log σ).
		if back := tb.SigmaToT(tb.Sigma(i)); math.Abs(float64(back)-float64(i)) > 1e-3 {
			t.Fatalf("t(σ_%d) = %v", i, back)
		}
	}
}

func TestScheduleShapes(t *testing.T) {
	tb := sdTable(t)
	for _, kind := range []string{Discrete, Karras, Exponential, SGMUniform, Simple, LCM, "Normal", "Automatic", "SGM Uniform"} {
		for _, n := range []int{1, 2, 3, 7, 20, 50} {
			s, err := tb.Sigmas(kind, n)
			if err != nil {
				t.Fatalf("%s %d: %v", kind, n, err)
			}
			if len(s) != n+1 || s[n] != 0 {
				t.Fatalf("%s %d: %d values, last %v", kind, n, len(s), s[len(s)-1])
			}
			for i := 0; i < n; i++ {
				if !(s[i] > s[i+1]) || math.IsNaN(float64(s[i])) {
					t.Fatalf("%s %d: not decreasing at %d: %v", kind, n, i, s)
				}
				if s[i] > tb.SigmaMax()*1.0001 || s[i] < tb.SigmaMin()*0.9999 {
					t.Fatalf("%s %d: σ[%d] = %v outside the table", kind, n, i, s[i])
				}
			}
		}
	}
	// Hand-checked values: 3 discrete steps are t = 999, 499.5, 0.
	s, _ := tb.Sigmas("discrete", 3)
	if tt := tb.SigmaToT(s[1]); tt != 499.5 {
		t.Fatalf("t(σ[1]) = %v, want 499.5", tt)
	}
	// Exponential runs exactly from σ_max to σ_min.
	s, _ = tb.Sigmas(Exponential, 5)
	if math.Abs(float64(s[0]/tb.SigmaMax()-1)) > 1e-6 || math.Abs(float64(s[4]/tb.SigmaMin()-1)) > 1e-6 {
		t.Fatalf("exponential ends %v %v", s[0], s[4])
	}
	// Simple with 4 steps takes table entries 999, 749, 499, 249.
	s, _ = tb.Sigmas(Simple, 4)
	for i, idx := range []int{999, 749, 499, 249} {
		if s[i] != tb.TToSigma(float32(idx)) {
			t.Fatalf("simple[%d] = %v, want σ_%d", i, s[i], idx)
		}
	}
	// SGM uniform with 4 steps: t = 999, 749.25, 499.5, 249.75.
	s, _ = tb.Sigmas(SGMUniform, 4)
	for i, tt := range []float32{999, 749.25, 499.5, 249.75} {
		if s[i] != tb.TToSigma(tt) {
			t.Fatalf("sgm_uniform[%d] = %v, want σ(%v)", i, s[i], tt)
		}
	}
	// DDIM uniform with 4 steps: table entries 751, 501, 251, 1.
	s, _ = tb.Sigmas(DDIMUniform, 4)
	if len(s) != 5 || s[0] != tb.Sigma(751) || s[3] != tb.Sigma(1) || s[4] != 0 {
		t.Fatalf("ddim_uniform 4 = %v", s)
	}
	// LCM with 4 steps: timesteps 999, 759, 499, 259.
	s, _ = tb.Sigmas(LCM, 4)
	for i, ts := range []float32{999, 759, 499, 259} {
		if s[i] != tb.TToSigma(ts) {
			t.Fatalf("lcm[%d] = %v, want σ(%v)", i, s[i], ts)
		}
	}
	if s, err := tb.Sigmas("karras", 0); err != nil || len(s) != 0 {
		t.Fatalf("0 steps: %v %v", s, err)
	}
	for _, bad := range []struct {
		kind string
		n    int
	}{{"warp", 4}, {"karras", -1}, {"karras", MaxSteps + 1}} {
		if _, err := tb.Sigmas(bad.kind, bad.n); err == nil {
			t.Fatalf("%q %d accepted", bad.kind, bad.n)
		}
	}
}

func TestKarrasFormula(t *testing.T) {
	tb := sdTable(t)
	s, _ := tb.Sigmas(Karras, 10)
	// float64 oracle of Karras et al. eq. (5); the float32 ramp and powers
	// keep each value within 1e-6 relative of it.
	lo, hi := math.Pow(float64(tb.SigmaMin()), 1.0/7), math.Pow(float64(tb.SigmaMax()), 1.0/7)
	for i := 0; i < 10; i++ {
		w := math.Pow(hi+float64(i)/9*(lo-hi), 7)
		if math.Abs(float64(s[i])/w-1) > 1e-6 {
			t.Fatalf("karras[%d] = %v, oracle %v", i, s[i], w)
		}
	}
}

func TestImg2Img(t *testing.T) {
	tb := sdTable(t)
	full, _ := tb.Sigmas(Discrete, 4)
	// Strength 0.5 of 4 steps: 3 steps from σ(666) in sd.cpp and A1111.
	for name, f := range map[string]func() ([]float32, error){
		"sdcpp": func() ([]float32, error) { return tb.Img2ImgSDCPP(Discrete, 4, 0.5) },
		"a1111": func() ([]float32, error) { return tb.Img2ImgA1111(Discrete, 4, 0.5, false) },
	} {
		got, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 || got[0] != full[1] {
			t.Fatalf("%s: %v, want %v", name, got, full[1:])
		}
	}
	// Strength 0.75 of 4: t_enc = 3, the whole schedule (README example).
	got, _ := tb.Img2ImgSDCPP(Discrete, 4, 0.75)
	if len(got) != 5 {
		t.Fatalf("sd.cpp 0.75: %v", got)
	}
	// Strength 1: sd.cpp keeps all steps; A1111 caps at 0.999 → t_enc = N−1, also all.
	a, _ := tb.Img2ImgA1111(Discrete, 20, 1, false)
	b, _ := tb.Img2ImgSDCPP(Discrete, 20, 1)
	if len(a) != 21 || len(b) != 21 {
		t.Fatalf("strength 1: %d, %d values", len(a), len(b))
	}
	// A1111 20 steps at 0.3: t_enc = 6, 7 steps of the 20-step schedule.
	a, _ = tb.Img2ImgA1111(Discrete, 20, 0.3, false)
	full20, _ := tb.Sigmas(Discrete, 20)
	if len(a) != 8 || a[0] != full20[13] {
		t.Fatalf("A1111 20@0.3: %v", a)
	}
	// A1111 fix-steps 20 at 0.5: schedule of 40, its last 20 steps.
	a, _ = tb.Img2ImgA1111(Discrete, 20, 0.5, true)
	full40, _ := tb.Sigmas(Discrete, 40)
	if len(a) != 21 || a[0] != full40[20] {
		t.Fatalf("A1111 fix-steps: %v", a)
	}
	// ComfyUI 4 steps at denoise 0.5: last 4 steps of an 8-step schedule.
	c, _ := tb.Img2ImgComfy(Discrete, 4, 0.5)
	full8, _ := tb.Sigmas(Discrete, 8)
	if len(c) != 5 || c[0] != full8[4] {
		t.Fatalf("comfy: %v", c)
	}
	for _, bad := range []func() error{
		func() error { _, err := tb.Img2ImgA1111(Discrete, 0, 0.5, false); return err },
		func() error { _, err := tb.Img2ImgSDCPP(Discrete, 4, -0.5); return err },
		func() error { _, err := tb.Img2ImgComfy(Discrete, 4, 0); return err },
		func() error { _, err := tb.Img2ImgA1111(Discrete, 4, math.NaN(), false); return err },
		func() error { _, err := Trim([]float32{1, 0}, 1); return err },
	} {
		if bad() == nil {
			t.Fatal("bad img2img input accepted")
		}
	}
}

func TestBadTables(t *testing.T) {
	if _, err := NewScaledLinear(0.012, 0.00085, 1000); err == nil {
		t.Fatal("reversed betas accepted")
	}
	if _, err := NewScaledLinear(0.00085, 0.012, 1); err == nil {
		t.Fatal("1 step accepted")
	}
	for _, ac := range [][]float32{{1, 0}, {0.5, float32(math.NaN())}, {0.5, 0.9}, {0.9}} {
		if _, err := NewFromAlphasCumprod(ac); err == nil {
			t.Fatalf("alphas_cumprod %v accepted", ac)
		}
	}
}

func TestDiscardPenultimate(t *testing.T) {
	got := DiscardPenultimate([]float32{3, 2, 1, 0})
	if len(got) != 3 || got[0] != 3 || got[1] != 2 || got[2] != 0 {
		t.Fatalf("%v", got)
	}
}
