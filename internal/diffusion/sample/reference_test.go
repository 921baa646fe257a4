package sample

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"mica/internal/testenv"
)

type tapCases struct {
	Cases []struct {
		ID     string `json:"id"`
		Params struct {
			Sampler string `json:"sampler"`
		} `json:"params"`
		Schedule struct {
			Sigmas []float64 `json:"sigmas"`
		} `json:"schedule"`
		Philox []struct {
			Offset  int       `json:"offset"`
			First16 []float64 `json:"first16"`
		} `json:"philox"`
		Internals struct {
			Steps []struct {
				Sigma  float64 `json:"sigma"`
				EpsCFG struct {
					First8 []float64 `json:"first8"`
				} `json:"eps_cfg"`
				Denoised struct {
					First8 []float64 `json:"first8"`
				} `json:"denoised"`
			} `json:"steps"`
			FinalLatent struct {
				First8 []float64 `json:"first8"`
			} `json:"final_latent"`
		} `json:"internals"`
	} `json:"cases"`
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x) // 9 printed digits identify the float32 exactly
	}
	return out
}

// TestSDXLTapReplay replays sd.cpp's own sampling of the SDXL reference
// cases (euler, case a; dpm++2m, case b) on the first 8 latent values, which
// is possible because the updates are element-wise. The fake denoiser
// returns sd.cpp's tapped D for each step. sd.cpp computed each D from its
// latent as D = x − σ·ε (c_skip 1, c_out −σ); so if our latent entering
// step k is bit-identical to sd.cpp's, float32(x − float32(σ·ε_k)) with the
// tapped guided ε_k reproduces the tapped D_k exactly. That checks the
// initial latent σ_0·noise and every sampler update bit for bit, and the
// final latent too.
func TestSDXLTapReplay(t *testing.T) {
	b, err := os.ReadFile(testenv.Shared(t, "reference", "sdxl", "cases.json"))
	if err != nil {
		t.Skipf("reference cases: %v", err)
	}
	var ref tapCases
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	for _, c := range ref.Cases {
		sampler, _, err := ParseName(c.Params.Sampler)
		if err != nil {
			t.Fatal(err)
		}
		sigmas := f32s(c.Schedule.Sigmas)
		noise := f32s(c.Philox[0].First16[:8])
		x := make([]float32, 8)
		for i := range x {
			x[i] = float32(noise[i] * sigmas[0])
		}
		steps := c.Internals.Steps
		checked := 0
		d := func(_ context.Context, x []float32, sigma float32, step int) ([]float32, error) {
			st := steps[step]
			if sigma != float32(st.Sigma) {
				t.Fatalf("%s step %d: σ %v, tap %v", c.ID, step, sigma, st.Sigma)
			}
			eps, den := f32s(st.EpsCFG.First8), f32s(st.Denoised.First8)
			for i := range x {
				if got := x[i] - float32(sigma*eps[i]); got != den[i] {
					t.Errorf("%s (%s) step %d [%d]: x − σε = %.9g, sd.cpp's D = %.9g (latent %.9g)", c.ID, sampler, step, i, got, den[i], x[i])
				} else {
					checked++
				}
			}
			return den, nil
		}
		got, err := Run(context.Background(), sampler, d, x, sigmas, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range f32s(c.Internals.FinalLatent.First8) {
			if got[i] != w {
				t.Errorf("%s final [%d] = %.9g, sd.cpp %.9g", c.ID, i, got[i], w)
			}
		}
		t.Logf("case %s (%s): %d denoiser inputs bit-identical", c.ID, sampler, checked)
	}
}
