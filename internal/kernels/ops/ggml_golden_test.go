package ops

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"mica/internal/kernels/quant"
)

// The goldens in testdata/ggml are outputs of ggml's CPU backend (upstream
// ggml, November 2026), recorded once as reference numbers for inputs made
// by goldenGen: a 64-bit LCG whose top 24 bits give a float in [-1, 1).
// Each file is the little-endian F32 output of one op on those inputs.
type goldenGen struct{ st uint64 }

func (g *goldenGen) fill(n int, a float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		g.st = g.st*6364136223846793005 + 1442695040888963407
		v[i] = (float32((g.st>>40)&0xffffff)/16777216*2 - 1) * a
	}
	return v
}

func readGolden(t *testing.T, name string) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ggml", name+".f32"))
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// TestGGMLGoldens compares with ggml's own outputs, on both paths.
// Bit-identical: RMSNorm(*w), LayerNorm, GroupNorm, GELU, QuickGELU, and
// GGMLSmallBatch attention without softcap. Within stated bounds: softmax
// and SiLU (ggml's vector expf vs ours: a few ulps), GELUErf (erff vs
// float64 erf rounded), RoPE (ggml's build may fuse the rotation's
// multiply-adds: 1 ulp of the inputs' scale), softcapped attention (tanhf
// vs float64 tanh rounded), and the default F32 attention, which is more
// accurate than ggml's F16 accumulator: there the bound is ggml's error.
func TestGGMLGoldens(t *testing.T) {
	for _, fast := range []bool{true, false} {
		if fast && !hasAVX2 {
			continue
		}
		prev := useFast
		useFast = fast
		t.Cleanup(func() { useFast = prev })
		g := &goldenGen{st: 12345}
		check := func(name string, got []float32, abs, rel float64) {
			t.Helper()
			want := readGolden(t, name)
			if abs == 0 && rel == 0 {
				sameBits(t, name, got[:len(want)], want)
				return
			}
			closeEnough(t, name, got[:len(want)], want, abs, rel)
		}
		x, w := g.fill(643*4, 3), g.fill(643, 2)
		out := make([]float32, len(x))
		RMSNorm(x, w, out, 643, 1e-6, 0, 4)
		check("rms_y", out, 0, 0)
		x = g.fill(257*3, 3)
		out = make([]float32, len(x))
		LayerNorm(x, nil, nil, out, 257, 1e-5, 0, 3)
		check("ln_y", out, 0, 0)
		x = g.fill(5*7*10, 3)
		out = make([]float32, len(x))
		GroupNorm(x, nil, nil, out, 10, 35, 4, 1e-5, 0, 4)
		check("gn_y", out, 0, 0)
		x = g.fill(100*5, 8)
		out = make([]float32, len(x))
		SoftmaxExt(x, out, SoftmaxParams{N: 100, Scale: 0.37}, 0, 5)
		check("sm_y", out, 1e-12, 5e-7)
		x = g.fill(4099, 12)
		out = make([]float32, len(x))
		GELU(x, out, 0, len(x))
		check("gelu_y", out, 0, 0)
		QuickGELU(x, out, 0, len(x))
		check("quick_y", out, 0, 0)
		SiLU(x, out, 0, len(x))
		check("silu_y", out, 1e-30, 5e-7)
		GELUErf(x, out, 0, len(x))
		check("erf_y", out, 2e-7, 2e-7)
		x = g.fill(64*3*5, 2)
		pos := []int32{0, 1, 7, 300, 4095}
		r := append([]float32(nil), x...)
		RoPE(r, pos, 3, 64, RoPEParams{NRot: 64, Base: 10000, FreqScale: 1, NeoX: true}, 0, 15)
		check("rope_neox", r, 4e-7, 0)
		ff := make([]float32, 24)
		for i := range ff {
			ff[i] = 1 + float32(i)*0.25
		}
		r = append([]float32(nil), x...)
		RoPE(r, pos, 3, 64, RoPEParams{NRot: 48, Base: 1e6, FreqScale: 0.125, Factors: ff}, 0, 15)
		check("rope_norm", r, 4e-7, 0)
		for v := 0; v < 3; v++ {
			const D, nQ, H, NKV, HKV = 64, 5, 4, 70, 2
			q, kf, vf := g.fill(D*nQ*H, 2), g.fill(D*NKV*HKV, 2), g.fill(D*NKV*HKV, 2)
			// ggml's q is [H][nQ][D]; mica's [nQ][H][D]
			qm := make([]float32, len(q))
			for h := 0; h < H; h++ {
				for i := 0; i < nQ; i++ {
					copy(qm[(i*H+h)*D:(i*H+h+1)*D], q[(h*nQ+i)*D:(h*nQ+i+1)*D])
				}
			}
			k, vv := make([]uint16, len(kf)), make([]uint16, len(vf))
			for i := range kf {
				k[i], vv[i] = quant.FP32ToFP16(kf[i]), quant.FP32ToFP16(vf[i])
			}
			p := AttentionParams{NHead: H, NKVHead: HKV, HeadDim: D, Scale: 0.125, Causal: true}
			switch v {
			case 1:
				p.Softcap = 2
			case 2:
				p.Window = 20
			}
			a := &AttentionArgs{Q: qm, NKV: NKV, Out: make([]float32, nQ*H*D),
				K: KV{F16: k, RowStride: D, HeadStride: D * NKV}, V: KV{F16: vv, RowStride: D, HeadStride: D * NKV},
				KPos: make([]int32, NKV), QPos: make([]int32, nQ)}
			for j := range a.KPos {
				a.KPos[j] = int32(j)
			}
			for i := range a.QPos {
				a.QPos[i] = int32(NKV - nQ + i)
			}
			name := []string{"fa0_o", "fa1_o", "fa2_o"}[v]
			// default F32 kernel: within ggml's own F16-accumulator error
			if err := Attention(p, a, nQ, 0, nQ*H); err != nil {
				t.Fatal(err)
			}
			check(name, a.Out, 3e-3, 0)
			p.GGMLSmallBatch = true
			if err := Attention(p, a, nQ, 0, nQ*H); err != nil {
				t.Fatal(err)
			}
			if p.Softcap != 0 {
				check(name, a.Out, 2e-7, 0)
			} else {
				check(name, a.Out, 0, 0)
			}
		}
	}
}
