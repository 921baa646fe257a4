package sample

import (
	"fmt"
	"sort"
	"strings"

	"mica/internal/diffusion/schedule"
)

// Canonical sampler names (sd.cpp's spelling where it has the sampler).
const (
	Euler      = "euler"
	EulerA     = "euler_a"
	Heun       = "heun"
	DPM2       = "dpm2"
	DPMPP2SA   = "dpm++2s_a"
	DPMPP2M    = "dpm++2m"
	DPMPPSDE   = "dpm++sde"
	DPMPP2MSDE = "dpm++2m_sde"
	DDIM       = "ddim"
	LCM        = "lcm"
	UniPC      = "unipc"
	UniPCBH2   = "unipc_bh2"
)

// Info describes a sampler for the APIs (the shape of A1111's
// /sdapi/v1/samplers entries: name, aliases, options).
type Info struct {
	Name    string   // canonical name
	Label   string   // A1111's name ("DPM++ 2M")
	Aliases []string // every other accepted spelling (A1111 k_ names, ComfyUI, sd.cpp, SD.Next)
	// Scheduler is the schedule A1111's "Automatic" picks for this sampler.
	Scheduler string
	// Stochastic samplers draw noise from Options.Noise.
	Stochastic bool
	// SecondOrder samplers evaluate the model twice per step.
	SecondOrder bool
	// DiscardPenultimate: A1111 computes one extra step and drops the
	// sigma before the final 0 (schedule.DiscardPenultimate).
	DiscardPenultimate bool
	// Options are A1111's sampler options, as its API lists them.
	Options map[string]string

	defaultEta float32
	run        func(*runner) error
}

var samplers = []Info{
	{Name: Euler, Label: "Euler", Aliases: []string{"k_euler"},
		Scheduler: schedule.Discrete, run: euler},
	{Name: EulerA, Label: "Euler a", Aliases: []string{"k_euler_a", "k_euler_ancestral", "euler_ancestral", "Euler Ancestral"},
		Scheduler: schedule.Discrete, Stochastic: true, defaultEta: 1, run: eulerAncestral,
		Options: map[string]string{"uses_ensd": "True"}},
	{Name: Heun, Label: "Heun", Aliases: []string{"k_heun"},
		Scheduler: schedule.Discrete, SecondOrder: true, run: heun,
		Options: map[string]string{"second_order": "True"}},
	{Name: DPM2, Label: "DPM2", Aliases: []string{"k_dpm_2", "dpm_2"},
		Scheduler: schedule.Discrete, SecondOrder: true, DiscardPenultimate: true, run: dpm2,
		Options: map[string]string{"discard_next_to_last_sigma": "True", "second_order": "True"}},
	{Name: DPMPP2SA, Label: "DPM++ 2S a", Aliases: []string{"k_dpmpp_2s_a", "dpmpp_2s_ancestral", "dpmpp_2s_a"},
		Scheduler: schedule.Karras, Stochastic: true, SecondOrder: true, defaultEta: 1, run: dpmpp2sAncestral,
		Options: map[string]string{"scheduler": "karras", "second_order": "True", "uses_ensd": "True"}},
	{Name: DPMPP2M, Label: "DPM++ 2M", Aliases: []string{"k_dpmpp_2m", "dpmpp_2m"},
		Scheduler: schedule.Karras, run: dpmpp2m,
		Options: map[string]string{"scheduler": "karras"}},
	{Name: DPMPPSDE, Label: "DPM++ SDE", Aliases: []string{"k_dpmpp_sde", "dpmpp_sde", "dpmpp_sde_gpu", "DPM SDE"},
		Scheduler: schedule.Karras, Stochastic: true, SecondOrder: true, defaultEta: 1, run: dpmppSDE,
		Options: map[string]string{"scheduler": "karras", "second_order": "True", "brownian_noise": "True"}},
	{Name: DPMPP2MSDE, Label: "DPM++ 2M SDE", Aliases: []string{"k_dpmpp_2m_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu"},
		Scheduler: schedule.Exponential, Stochastic: true, defaultEta: 1, run: dpmpp2mSDE,
		Options: map[string]string{"scheduler": "exponential", "brownian_noise": "True"}},
	{Name: DDIM, Label: "DDIM", Aliases: []string{"ddim_trailing"},
		Scheduler: schedule.DDIMUniform, run: eulerAncestral},
	{Name: LCM, Label: "LCM", Aliases: []string{"k_lcm"},
		Scheduler: schedule.SGMUniform, Stochastic: true, run: lcm},
	{Name: UniPC, Label: "UniPC", Aliases: []string{"uni_pc", "unipc_bh1", "uni_pc_bh1"},
		Scheduler: schedule.Discrete, run: unipcBH1},
	{Name: UniPCBH2, Label: "UniPC BH2", Aliases: []string{"uni_pc_bh2"},
		Scheduler: schedule.Discrete, run: unipcBH2},
}

// Samplers lists the samplers Run accepts, in A1111's order.
func Samplers() []Info {
	out := make([]Info, len(samplers))
	for i, s := range samplers {
		c := s
		c.Aliases = append([]string(nil), s.Aliases...)
		c.Options = make(map[string]string, len(s.Options))
		for k, v := range s.Options {
			c.Options[k] = v
		}
		c.run = nil
		out[i] = c
	}
	return out
}

// Schedulers lists the schedulers (schedule.Schedulers).
func Schedulers() []schedule.Info { return schedule.Schedulers() }

func lookup(name string) (Info, bool) {
	key := squash(name)
	if key == "" {
		return Info{}, false
	}
	for _, s := range samplers {
		if key == squash(s.Name) || key == squash(s.Label) {
			return s, true
		}
		for _, a := range s.Aliases {
			if key == squash(a) {
				return s, true
			}
		}
	}
	return Info{}, false
}

// squash lower-cases and drops spaces, "_" and "-", so "Euler a",
// "euler_a" and "EULER-A" are one key; "+" is kept ("DPM++ 2M" is
// "dpm++2m").
func squash(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		if r != ' ' && r != '_' && r != '-' {
			b.WriteRune(r)
		}
	}
	k := b.String()
	// ComfyUI and A1111 spell "++" as "pp" in identifiers (dpmpp_2m).
	if strings.HasPrefix(k, "dpmpp") {
		k = "dpm++" + k[len("dpmpp"):]
	}
	return k
}

// ParseName splits a sampler name as the front ends write it into a
// canonical sampler and scheduler: "Euler a", "DPM++ 2M Karras",
// "DPM++ 2M SDE Exponential", "dpmpp_2m", "euler_ancestral", "dpm++2m",
// "UniPC", … A name without a schedule suffix gets the sampler's A1111
// default (Info.Scheduler), as A1111's "Automatic" does.
func ParseName(s string) (sampler, scheduler string, err error) {
	return Resolve(s, "")
}

// Resolve is ParseName for A1111 1.9+'s split form: a sampler_name and a
// separate scheduler ("Karras", "karras", "Automatic" or ""). An explicit
// scheduler overrides a suffix in the name; "Automatic" or "" keeps the
// suffix, or else the sampler's default.
func Resolve(samplerName, schedulerName string) (sampler, scheduler string, err error) {
	info, suffix, err := splitName(samplerName)
	if err != nil {
		return "", "", err
	}
	switch squash(schedulerName) {
	case "", "automatic":
		scheduler = suffix
	default:
		if scheduler, err = schedule.Canonical(schedulerName); err != nil {
			return "", "", fmt.Errorf("sample: sampler %q: %w", samplerName, err)
		}
	}
	if scheduler == "" {
		scheduler = info.Scheduler
	}
	return info.Name, scheduler, nil
}

// splitName finds the sampler a name starts with and the scheduler suffix
// after it ("" if none).
func splitName(name string) (Info, string, error) {
	if info, ok := lookup(name); ok {
		return info, "", nil
	}
	key := squash(name)
	for _, sc := range schedule.Schedulers() {
		for _, spelling := range append([]string{sc.Name, sc.Label}, sc.Aliases...) {
			suf := squash(spelling)
			if suf == "" || len(suf) >= len(key) || !strings.HasSuffix(key, suf) {
				continue
			}
			if info, ok := lookup(key[:len(key)-len(suf)]); ok {
				return info, sc.Name, nil
			}
		}
	}
	names := make([]string, 0, len(samplers))
	for _, s := range samplers {
		names = append(names, s.Label)
	}
	sort.Strings(names)
	return Info{}, "", fmt.Errorf("sample: unknown sampler %q (known: %s)", name, strings.Join(names, ", "))
}
