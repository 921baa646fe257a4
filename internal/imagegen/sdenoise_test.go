package imagegen

import (
	"testing"

	"mica/internal/diffusion/noise"
	"mica/internal/diffusion/sample"
)

// TestSDENoiseSchedule: the SDE samplers get a Brownian tree over the whole
// schedule of the pass, also for img2img, where the sampler only sees the
// schedule's tail; other samplers get none.
func TestSDENoiseSchedule(t *testing.T) {
	m := tiny(t, 1)
	r := &Request{Steps: 10, RNG: "philox"}
	full, err := sample.Sigmas(m.table, sample.DPMPPSDE, "karras", r.Steps)
	if err != nil {
		t.Fatal(err)
	}
	j := &imageJob{m: m, r: r, sampler: sample.DPMPPSDE, sched: "karras", seed: 42}
	tail := full[6:]
	const n = 37
	got := j.sdeNoise("img2img", tail, n).Noise(tail[0], tail[1])
	want := noise.NewBrownianNoise(full[len(full)-2], full[0], n, 1, []uint64{42}, noise.PhiloxSource).Noise(tail[0], tail[1])
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("img2img tree is not the full schedule's: [%d] %v vs %v", i, got[i], want[i])
		}
	}
	// txt2img over the tail alone is another tree.
	other := j.sdeNoise("txt2img", tail, n).Noise(tail[0], tail[1])
	if other[0] == want[0] {
		t.Error("a tree over the tail equals the full schedule's")
	}
	if (&imageJob{m: m, r: r, sampler: sample.Euler}).sdeNoise("txt2img", full, n) != nil {
		t.Error("euler got a Brownian tree")
	}
}

// TestSDESamplersReproducible: DPM++ SDE and 2M SDE pictures depend only on
// the seed and the generator (same picture twice and at another thread
// count; the CPU generator gives another picture).
func TestSDESamplersReproducible(t *testing.T) {
	m1, m2 := tiny(t, 1), tiny(t, 2)
	for _, s := range []string{"DPM++ SDE Karras", "DPM++ 2M SDE"} {
		r := Request{Prompt: "a cat", Width: 64, Height: 64, Steps: 3, Sampler: s, Seed: 5}
		a, b := gen(t, m1, r).Images[0], gen(t, m2, r).Images[0]
		if !samePixels(a.RGBA, b.RGBA) {
			t.Errorf("%s: pictures differ between runs", s)
		}
		r.RNG = "cpu"
		if c := gen(t, m1, r).Images[0]; samePixels(a.RGBA, c.RGBA) {
			t.Errorf("%s: the CPU generator gave the Philox picture", s)
		}
	}
}
