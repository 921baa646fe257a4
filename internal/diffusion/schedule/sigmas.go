package schedule

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Scheduler names, as sd.cpp spells them; Canonical maps the A1111,
// ComfyUI and SD.Next spellings onto these.
const (
	Discrete    = "discrete"     // t linear from T−1 to 0 (A1111 "Uniform", ComfyUI/A1111 "Normal")
	Karras      = "karras"       // Karras et al. (2022), ρ = 7, between σ_min and σ_max
	Exponential = "exponential"  // log σ linear between σ_max and σ_min
	SGMUniform  = "sgm_uniform"  // n+1 timesteps linear from T−1 to 0, the last dropped
	Simple      = "simple"       // every (T/n)-th table entry from the top (ComfyUI "simple")
	DDIMUniform = "ddim_uniform" // table entries 1, 1+T/n, … reversed (A1111 "DDIM", ComfyUI "ddim_uniform")
	LCM         = "lcm"          // LCM's 50-step training grid (sd.cpp "lcm")
)

// Info describes a scheduler for the APIs (A1111 /sdapi/v1/schedulers).
type Info struct {
	Name    string   // canonical name
	Label   string   // A1111's label
	Aliases []string // other accepted spellings
}

var schedulers = []Info{
	{Discrete, "Uniform", []string{"default", "normal", "Normal", "automatic", "Automatic", "uniform"}},
	{Karras, "Karras", nil},
	{Exponential, "Exponential", nil},
	{SGMUniform, "SGM Uniform", []string{"SGMUniform", "sgm uniform"}},
	{Simple, "Simple", nil},
	{DDIMUniform, "DDIM", []string{"ddim", "DDIM Uniform"}},
	{LCM, "LCM", nil},
}

// Schedulers lists the schedulers Sigmas accepts.
func Schedulers() []Info {
	out := make([]Info, len(schedulers))
	for i, s := range schedulers {
		out[i] = Info{s.Name, s.Label, append([]string(nil), s.Aliases...)}
	}
	return out
}

// Canonical maps a scheduler name in any accepted spelling (case and the
// separators " ", "-", "_" ignored) to its canonical name.
//
// "Automatic" maps to discrete here; A1111's Automatic means "the sampler's
// default", which sample.ParseName resolves before it gets here. A1111's
// "Normal" and "Uniform" both give t linear from T−1 to 0, which is
// discrete.
func Canonical(name string) (string, error) {
	key := squash(name)
	for _, s := range schedulers {
		if squash(s.Name) == key || squash(s.Label) == key {
			return s.Name, nil
		}
		for _, a := range s.Aliases {
			if squash(a) == key {
				return s.Name, nil
			}
		}
	}
	names := make([]string, len(schedulers))
	for i, s := range schedulers {
		names[i] = s.Name
	}
	sort.Strings(names)
	return "", fmt.Errorf("schedule: unknown scheduler %q (known: %s)", name, strings.Join(names, ", "))
}

func squash(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		if r != ' ' && r != '_' && r != '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MaxSteps bounds the step count Sigmas accepts.
const MaxSteps = 10000

// Sigmas returns the schedule of kind for n sampling steps: n sigmas,
// decreasing, followed by 0. DDIM uniform is the exception: like A1111 and
// ComfyUI it takes every ⌊T/n⌋-th table entry, which gives more than n
// sigmas when n does not divide T. n = 0 gives an empty schedule.
func (tb *Table) Sigmas(kind string, n int) ([]float32, error) {
	if n < 0 || n > MaxSteps {
		return nil, fmt.Errorf("schedule: %d steps is outside 0..%d", n, MaxSteps)
	}
	name, err := Canonical(kind)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return []float32{}, nil
	}
	tMax := len(tb.sigmas) - 1
	out := make([]float32, 0, n+1)
	switch name {
	case Discrete:
		if n == 1 {
			out = append(out, tb.TToSigma(float32(tMax)))
			break
		}
		step := float32(tMax) / float32(n-1)
		for i := 0; i < n; i++ {
			out = append(out, tb.TToSigma(float32(tMax)-float32(step*float32(i))))
		}
	case Karras:
		out = tb.karras(n, out)
	case Exponential:
		if n == 1 {
			out = append(out, tb.SigmaMax())
			break
		}
		lmin, lmax := log32(tb.SigmaMin()), log32(tb.SigmaMax())
		step := (lmax - lmin) / float32(n-1)
		for i := 0; i < n; i++ {
			out = append(out, exp32(lmax-float32(step*float32(i))))
		}
	case SGMUniform:
		// sd.cpp's linear_space: start, then repeated float additions.
		t := float32(tMax)
		inc := (0 - float32(tMax)) / float32(n)
		for i := 0; i < n; i++ {
			out = append(out, tb.TToSigma(t))
			t += inc
		}
	case Simple:
		factor := float32(len(tb.sigmas)) / float32(n)
		for i := 0; i < n; i++ {
			idx := max(tMax-int(float32(float32(i)*factor)), 0)
			out = append(out, tb.TToSigma(float32(idx)))
		}
	case DDIMUniform:
		ss := max(len(tb.sigmas)/n, 1)
		for x := 1; x < len(tb.sigmas); x += ss {
			out = append(out, tb.sigmas[x])
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case LCM:
		const original = 50
		k := len(tb.sigmas) / original
		for i := 0; i < n; i++ {
			index := i * original / n
			ts := (original-index)*k - 1
			out = append(out, tb.TToSigma(float32(ts)))
		}
	}
	return append(out, 0), nil
}

// karras is sd.cpp's KarrasScheduler: ρ = 7; the ramp in float32, the
// powers in float64 (its unqualified pow on float arguments), rounded to
// float32. n = 1 gives σ_max^{1/ρ·ρ}, as k-diffusion's ramp [0].
func (tb *Table) karras(n int, out []float32) []float32 {
	const rho = float32(7)
	smin, smax := max(tb.SigmaMin(), 1e-6), tb.SigmaMax()
	minInv := float32(math.Pow(float64(smin), float64(1/rho)))
	maxInv := float32(math.Pow(float64(smax), float64(1/rho)))
	for i := 0; i < n; i++ {
		ramp := float32(0)
		if n > 1 {
			ramp = float32(i) / (float32(n) - 1)
		}
		v := maxInv + float32(ramp*(minInv-maxInv))
		out = append(out, float32(math.Pow(float64(v), float64(rho))))
	}
	return out
}

// DiscardPenultimate drops the next-to-last sigma of a schedule, as A1111
// does for DPM2 and DPM2 a (it asks for one more step, then removes the
// sigma just before the final 0).
func DiscardPenultimate(sigmas []float32) []float32 {
	if len(sigmas) < 3 {
		return append([]float32(nil), sigmas...)
	}
	out := append([]float32(nil), sigmas[:len(sigmas)-2]...)
	return append(out, sigmas[len(sigmas)-1])
}
