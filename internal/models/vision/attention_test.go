package vision

import (
	"math"
	"math/rand/v2"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/nn"
)

// TestAttentionOracle: the tower's attention equals a plain float64
// softmax attention to 1e-5 (F32 sums of 24-term products and 37-key
// softmaxes: ~1e-7 relative) and does not depend on the thread count.
func TestAttentionOracle(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	n, H, d := 37, 3, 24
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func() []float32 {
		v := make([]float32, n*H*d)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	qv, kv, vv := mk(), mk(), mk()
	scale := float32(1 / math.Sqrt(float64(d)))
	run := func() []float32 {
		ps := &pass{nn.Pass{B: be}}
		defer ps.Free()
		out := ps.attention(ps.Upload(qv, n, H*d), ps.Upload(kv, n, H*d), ps.Upload(vv, n, H*d), H, scale)
		res := ps.Read(out)
		if ps.Err != nil {
			t.Fatal(ps.Err)
		}
		return res
	}
	whole := run()
	be1 := be
	be = cpu.New(1)
	one := run()
	be.Close()
	be = be1
	for i := range whole {
		if whole[i] != one[i] {
			t.Fatalf("1-thread result differs at %d: %v vs %v", i, one[i], whole[i])
		}
	}
	maxd := 0.0
	for h := 0; h < H; h++ {
		for i := 0; i < n; i++ {
			w := make([]float64, n)
			sum, top := 0.0, math.Inf(-1)
			for j := 0; j < n; j++ {
				for c := 0; c < d; c++ {
					w[j] += float64(qv[(i*H+h)*d+c]) * float64(kv[(j*H+h)*d+c])
				}
				w[j] *= float64(scale)
				top = math.Max(top, w[j])
			}
			for j := range w {
				w[j] = math.Exp(w[j] - top)
				sum += w[j]
			}
			for c := 0; c < d; c++ {
				o := 0.0
				for j := 0; j < n; j++ {
					o += w[j] / sum * float64(vv[(j*H+h)*d+c])
				}
				maxd = math.Max(maxd, math.Abs(o-float64(whole[(i*H+h)*d+c])))
			}
		}
	}
	if maxd > 1e-5 {
		t.Errorf("attention differs from the float64 oracle by %g", maxd)
	}
}
