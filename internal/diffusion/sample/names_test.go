package sample

import (
	"testing"

	"mica/internal/diffusion/schedule"
)

func TestParseName(t *testing.T) {
	for _, c := range []struct{ in, sampler, scheduler string }{
		// A1111 (pre-1.9 combined names and labels)
		{"Euler a", EulerA, schedule.Discrete},
		{"Euler", Euler, schedule.Discrete},
		{"Heun", Heun, schedule.Discrete},
		{"DPM2", DPM2, schedule.Discrete},
		{"DPM2 Karras", DPM2, schedule.Karras},
		{"DPM++ 2M", DPMPP2M, schedule.Karras},
		{"DPM++ 2M Karras", DPMPP2M, schedule.Karras},
		{"DPM++ 2S a Karras", DPMPP2SA, schedule.Karras},
		{"DPM++ SDE", DPMPPSDE, schedule.Karras},
		{"DPM++ SDE Karras", DPMPPSDE, schedule.Karras},
		{"DPM++ 2M SDE", DPMPP2MSDE, schedule.Exponential},
		{"DPM++ 2M SDE Exponential", DPMPP2MSDE, schedule.Exponential},
		{"DPM++ 2M SDE Karras", DPMPP2MSDE, schedule.Karras},
		{"Euler a SGM Uniform", EulerA, schedule.SGMUniform},
		{"UniPC", UniPC, schedule.Discrete},
		{"LCM", LCM, schedule.SGMUniform},
		{"DDIM", DDIM, schedule.DDIMUniform},
		{"k_euler_a", EulerA, schedule.Discrete},
		{"k_dpmpp_2m", DPMPP2M, schedule.Karras},
		// SD.Next
		{"DPM SDE", DPMPPSDE, schedule.Karras},
		{"Euler Ancestral", EulerA, schedule.Discrete},
		// sd.cpp
		{"euler_a", EulerA, schedule.Discrete},
		{"dpm++2m", DPMPP2M, schedule.Karras},
		{"dpm++2s_a", DPMPP2SA, schedule.Karras},
		{"dpm++2m_sde", DPMPP2MSDE, schedule.Exponential},
		{"ddim_trailing", DDIM, schedule.DDIMUniform},
		// ComfyUI
		{"euler_ancestral", EulerA, schedule.Discrete},
		{"dpmpp_2m", DPMPP2M, schedule.Karras},
		{"dpmpp_2m_sde", DPMPP2MSDE, schedule.Exponential},
		{"dpmpp_2m_sde_gpu", DPMPP2MSDE, schedule.Exponential},
		{"dpmpp_sde", DPMPPSDE, schedule.Karras},
		{"dpm_2", DPM2, schedule.Discrete},
		{"uni_pc", UniPC, schedule.Discrete},
		{"uni_pc_bh2", UniPCBH2, schedule.Discrete},
		{"lcm", LCM, schedule.SGMUniform},
		{"ddim", DDIM, schedule.DDIMUniform},
		{"  dpm++ 2m karras ", DPMPP2M, schedule.Karras},
	} {
		sm, sc, err := ParseName(c.in)
		if err != nil || sm != c.sampler || sc != c.scheduler {
			t.Errorf("ParseName(%q) = %q, %q, %v; want %q, %q", c.in, sm, sc, err, c.sampler, c.scheduler)
		}
	}
	for _, bad := range []string{"", "Warp", "DPM++ 2M Warp", "Karras", "DPM++ 2M SDE Heun"} {
		if sm, sc, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) = %q, %q", bad, sm, sc)
		}
	}
}

func TestResolveSplit(t *testing.T) {
	for _, c := range []struct{ name, sched, sampler, scheduler string }{
		{"DPM++ 2M", "Karras", DPMPP2M, schedule.Karras},
		{"DPM++ 2M", "karras", DPMPP2M, schedule.Karras},
		{"DPM++ 2M", "Automatic", DPMPP2M, schedule.Karras},
		{"Euler a", "", EulerA, schedule.Discrete},
		{"Euler", "SGM Uniform", Euler, schedule.SGMUniform},
		{"Euler", "Uniform", Euler, schedule.Discrete},
		{"Euler", "Normal", Euler, schedule.Discrete},
		{"Euler", "Simple", Euler, schedule.Simple},
		{"DPM++ 2M Karras", "Automatic", DPMPP2M, schedule.Karras},
		{"DPM++ 2M Karras", "Exponential", DPMPP2M, schedule.Exponential},
		{"dpmpp_2m", "sgm_uniform", DPMPP2M, schedule.SGMUniform},
	} {
		sm, sc, err := Resolve(c.name, c.sched)
		if err != nil || sm != c.sampler || sc != c.scheduler {
			t.Errorf("Resolve(%q, %q) = %q, %q, %v; want %q, %q", c.name, c.sched, sm, sc, err, c.sampler, c.scheduler)
		}
	}
	if _, _, err := Resolve("Euler", "Warp"); err == nil {
		t.Error("unknown scheduler accepted")
	}
}

// TestListsConsistent: every listed sampler runs by every spelling, and
// the defaults are valid schedules.
func TestListsConsistent(t *testing.T) {
	for _, s := range Samplers() {
		for _, name := range append([]string{s.Name, s.Label}, s.Aliases...) {
			sm, _, err := ParseName(name)
			if err != nil || sm != s.Name {
				t.Errorf("%q → %q, %v; want %q", name, sm, err, s.Name)
			}
		}
		if _, err := schedule.Canonical(s.Scheduler); err != nil {
			t.Errorf("%s: default scheduler %q: %v", s.Name, s.Scheduler, err)
		}
	}
	if len(Schedulers()) == 0 {
		t.Fatal("no schedulers")
	}
	// The lists are copies: changing one does not change the package.
	l := Samplers()
	l[0].Aliases = append(l[0].Aliases[:0], "changed")
	if Samplers()[0].Aliases[0] == "changed" {
		t.Fatal("Samplers returns shared slices")
	}
}

// FuzzParseName: any string either parses to a listed sampler and a valid
// scheduler, or gives an error; never a panic.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"Euler a", "DPM++ 2M Karras", "dpmpp_2m_sde_gpu", "", "++", "karras", "DPM++ 2M SDE Exponential", "\xff"} {
		f.Add(s, "")
		f.Add(s, "Karras")
	}
	f.Fuzz(func(t *testing.T, name, sched string) {
		sm, sc, err := Resolve(name, sched)
		if err != nil {
			return
		}
		if _, ok := lookup(sm); !ok {
			t.Fatalf("Resolve(%q, %q) gave unknown sampler %q", name, sched, sm)
		}
		if c, err := schedule.Canonical(sc); err != nil || c != sc {
			t.Fatalf("Resolve(%q, %q) gave scheduler %q", name, sched, sc)
		}
	})
}

func TestSigmasDiscard(t *testing.T) {
	tb, _ := schedule.NewScaledLinear(0.00085, 0.012, 1000)
	got, err := Sigmas(tb, DPM2, schedule.Karras, 4)
	if err != nil {
		t.Fatal(err)
	}
	five, _ := tb.Sigmas(schedule.Karras, 5)
	if len(got) != 5 || got[3] != five[3] || got[4] != 0 {
		t.Fatalf("DPM2 4 steps: %v (5-step schedule %v)", got, five)
	}
	plain, _ := Sigmas(tb, Euler, schedule.Karras, 4)
	four, _ := tb.Sigmas(schedule.Karras, 4)
	if len(plain) != 5 || plain[1] != four[1] {
		t.Fatalf("Euler: %v", plain)
	}
	if _, err := Sigmas(tb, "warp", schedule.Karras, 4); err == nil {
		t.Fatal("unknown sampler accepted")
	}
}
