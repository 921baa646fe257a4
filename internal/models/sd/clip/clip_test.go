package clip

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/kernels/quant"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

func tinyConfig(f Flavor, act compute.UnaryKind, proj int, transposed bool) Config {
	return Config{Flavor: f, Vocab: 40, Positions: 9, Hidden: 128, Heads: 2, Layers: 3, MLP: 256,
		Act: act, Eps: 1e-5, ProjDim: proj, ProjTransposed: transposed}
}

func tinyPrefix(f Flavor) string {
	if f == OpenCLIP {
		return "conditioner.embedders.1.model."
	}
	return "te.transformer.text_model."
}

func randomIDs(c Config, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	ids := make([]int32, c.Positions)
	for i := range ids {
		ids[i] = int32(rng.IntN(c.Vocab))
	}
	return ids
}

// load binds a tiny random model (weights uniform ±0.1, norm weights 1±0.1)
// through a recorder, so the oracle sees the same weights.
func load(t *testing.T, b compute.Backend, c Config, dt tensor.DType, seed uint64) (*Model, *recorder) {
	t.Helper()
	r := param.NewRandom(b, seed, 0.1)
	r.DType = dt
	rec := newRecorder(r)
	m, err := Load(rec, tinyPrefix(c.Flavor), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, rec
}

func readF32(t *testing.T, b compute.Backend, x *compute.Tensor) []float64 {
	t.Helper()
	return readF64(t, b, x)
}

// maxDiff is the largest |got−want| and the largest |want|.
func maxDiff(got []float64, want [][]float64) (d, scale float64) {
	i := 0
	for _, row := range want {
		for _, w := range row {
			d = math.Max(d, math.Abs(got[i]-w))
			scale = math.Max(scale, math.Abs(w))
			i++
		}
	}
	return d, scale
}

func f32s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestEncodeMatchesOracle runs both flavors, every activation, F32 and F16
// weights and every combination of clip skip, final norm and pooling
// against the float64 oracle.
//
// Tolerances (the oracle's values are O(1): max |hidden| ≈ 3–5 here):
//   - GELUErf with F32 weights has no table and no F16 rounding: mica differs
//     from the oracle only by float32 arithmetic (unit roundoff 6e-8 relative)
//     over sums of ≤ 256 terms and 3 layers; measured ≤ 1.1e-6, bound 1e-5.
//   - With an F16 table or F16 weights, both sides round to F16 at the same
//     points, but a float32 value within a few ulps of an F16 rounding
//     boundary can round the other way (one F16 ulp, 2^-11 relative, ≈ 5e-4
//     at |x| ≈ 1); a flipped activation enters the next product with a weight
//     ≤ 0.1 and spreads through attention to later tokens and layers.
//     Measured: after one block a handful of the 1152 values differ by more
//     than 1e-5, none by 1e-4; after three blocks the worst is 1.1e-3. So
//     5e-3 absolute. A real error (a wrong norm, mask or orientation) is
//     O(0.1–1): the double final norm this test caught was 0.1–0.3.
func TestEncodeMatchesOracle(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	type variant struct {
		flavor Flavor
		act    compute.UnaryKind
		dt     tensor.DType
		proj   int
		tol    float64
	}
	variants := []variant{
		{OpenAI, compute.QuickGELU, tensor.F32, 0, 5e-3},
		{OpenAI, compute.QuickGELU, tensor.F16, 96, 5e-3},
		{OpenCLIP, compute.GELU, tensor.F16, 96, 5e-3},
		{OpenCLIP, compute.GELU, tensor.F32, 0, 5e-3},
		{OpenCLIP, compute.GELUErf, tensor.F32, 96, 1e-5},
		{OpenAI, compute.GELUErf, tensor.F32, 128, 1e-5},
	}
	for vi, v := range variants {
		c := tinyConfig(v.flavor, v.act, v.proj, v.flavor == OpenAI)
		m, rec := load(t, b, c, v.dt, uint64(10+vi))
		ids := randomIDs(c, uint64(vi))
		for _, layers := range []int{1, c.Layers - 1, c.Layers} {
			for _, final := range []bool{false, true} {
				for _, pooledAt := range []int{NoPool, 4} {
					o := EncodeOptions{Layers: layers, FinalNorm: final, PooledAt: pooledAt}
					name := fmt.Sprintf("%v/act%d/%v/proj%d/layers%d/final%v/pool%d", v.flavor, v.act, v.dt, v.proj, layers, final, pooledAt)
					hidden, pooled, err := m.Encode(b, ids, o)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					wantH, wantP := oracleEncode(c, tinyPrefix(c.Flavor), rec.weights(t, b), ids, o)
					d, scale := maxDiff(readF32(t, b, hidden), wantH)
					b.Free(hidden)
					if d > v.tol || scale < 0.5 {
						t.Errorf("%s: hidden differs from the oracle by %.3g (max |value| %.3g), tolerance %g", name, d, scale, v.tol)
					}
					if pooledAt == NoPool {
						if pooled != nil {
							t.Errorf("%s: pooled output without PooledAt", name)
						}
						continue
					}
					wantLen := c.ProjDim
					if wantLen == 0 {
						wantLen = c.Hidden
					}
					if len(pooled) != wantLen {
						t.Fatalf("%s: pooled has %d values, want %d", name, len(pooled), wantLen)
					}
					if d, scale := maxDiff(f32s(pooled), [][]float64{wantP}); d > v.tol || scale < 0.1 {
						t.Errorf("%s: pooled differs from the oracle by %.3g (max |value| %.3g), tolerance %g", name, d, scale, v.tol)
					}
				}
			}
		}
	}
}

// TestPooledIsHTimesT checks the projection orientation with a
// non-symmetric, non-square T: pooled = h·T (SGM, OpenCLIP, diffusers), not
// T·h (what stable-diffusion.cpp does), whether T is stored as SGM's matrix
// or as diffusers' Linear weight Tᵀ.
func TestPooledIsHTimesT(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	for k := range 4 {
		square, dt := k%2 == 1, []tensor.DType{tensor.F32, tensor.F16}[k/2]
		c := tinyConfig(OpenCLIP, compute.GELUErf, 96, false)
		if square {
			c.ProjDim = c.Hidden
		}
		C, Pd := c.Hidden, c.ProjDim
		// T[i][j] = sin(i + 3j)/4 + i/(10 C): not symmetric.
		T := make([]float32, C*Pd)
		Tt := make([]float32, Pd*C)
		for i := range C {
			for j := range Pd {
				T[i*Pd+j] = float32(math.Sin(float64(i+3*j))/4 + float64(i)/float64(10*C))
				if dt == tensor.F16 { // the values the F16 tensor will hold
					T[i*Pd+j] = quant.FP16ToFP32(quant.FP32ToFP16(T[i*Pd+j]))
				}
				Tt[j*C+i] = T[i*Pd+j]
			}
		}
		if square && T[1*Pd+2] == T[2*Pd+1] {
			t.Fatal("T is symmetric; the test could not tell h·T from T·h")
		}
		ids := randomIDs(c, 7)
		o := EncodeOptions{Layers: c.Layers, FinalNorm: true, PooledAt: 5}
		var results [2][]float32
		for k, transposed := range []bool{false, true} {
			c.ProjTransposed = transposed
			r := param.NewRandom(b, 3, 0.1)
			rec := newRecorder(r)
			name := tinyPrefix(OpenCLIP) + "text_projection"
			var err error
			if transposed {
				rec.override[name], err = param.Upload(b, dt, Tt, Pd, C)
			} else {
				rec.override[name], err = param.Upload(b, dt, T, C, Pd)
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(rec, tinyPrefix(OpenCLIP), c)
			if err != nil {
				t.Fatal(err)
			}
			hidden, pooled, err := m.Encode(b, ids, o)
			if err != nil {
				t.Fatal(err)
			}
			// h is the final-normed hidden row 5 (Layers = all, FinalNorm).
			h := readF32(t, b, hidden)[5*C : 6*C]
			b.Free(hidden)
			m.Close()
			var hT, Th float64 // max differences from h·T and from T·h
			for j := range Pd {
				s := 0.0
				for i := range C {
					s += h[i] * float64(T[i*Pd+j])
				}
				hT = math.Max(hT, math.Abs(float64(pooled[j])-s))
				if square {
					s = 0
					for i := range C {
						s += float64(T[j*Pd+i]) * h[i]
					}
					Th = math.Max(Th, math.Abs(float64(pooled[j])-s))
				}
			}
			// Pooled values are O(1); an F32 product of 128 terms is good
			// to ~1e-5.
			if hT > 1e-4 {
				t.Errorf("%v, square %v, transposed %v: pooled differs from h·T by %.3g", dt, square, transposed, hT)
			}
			if square && Th < 1e-2 {
				t.Errorf("square %v, transposed %v: pooled is also within %.3g of T·h: T does not tell them apart", square, transposed, Th)
			}
			results[k] = pooled
		}
		for j := range results[0] {
			if results[0][j] != results[1][j] {
				t.Fatalf("square %v: pooled[%d] = %v from SGM's T but %v from the Linear weight Tᵀ", square, j, results[0][j], results[1][j])
			}
		}
	}
}

// TestPooledTapEqualsSeparateRun: computing the pooled vector in the same
// pass as a clip-skipped hidden state gives bit for bit what two separate
// runs give (as stable-diffusion.cpp does it: hidden run, pooled run).
func TestPooledTapEqualsSeparateRun(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	for _, f := range []Flavor{OpenAI, OpenCLIP} {
		c := tinyConfig(f, compute.GELU, 96, f == OpenAI)
		m, _ := load(t, b, c, tensor.F16, 5)
		ids := randomIDs(c, 9)
		before := b.Memory().Allocated
		for _, final := range []bool{false, true} {
			tapped, pooled, err := m.Encode(b, ids, EncodeOptions{Layers: c.Layers - 1, FinalNorm: final, PooledAt: 6})
			if err != nil {
				t.Fatal(err)
			}
			alone, none, err := m.Encode(b, ids, EncodeOptions{Layers: c.Layers - 1, FinalNorm: final, PooledAt: NoPool})
			if err != nil {
				t.Fatal(err)
			}
			full, pooledFull, err := m.Encode(b, ids, EncodeOptions{Layers: c.Layers, FinalNorm: true, PooledAt: 6})
			if err != nil {
				t.Fatal(err)
			}
			if none != nil {
				t.Error("pooled output without PooledAt")
			}
			a, bb := readF32(t, b, tapped), readF32(t, b, alone)
			for i := range a {
				if a[i] != bb[i] {
					t.Fatalf("%v final %v: hidden[%d] = %v with the pooled tap, %v without", f, final, i, a[i], bb[i])
				}
			}
			for j := range pooled {
				if pooled[j] != pooledFull[j] {
					t.Fatalf("%v final %v: pooled[%d] = %v tapped, %v from a full run", f, final, j, pooled[j], pooledFull[j])
				}
			}
			// The hidden states after Layers−1 and all blocks differ: the
			// tap really is taken early.
			fl := readF32(t, b, full)
			same := true
			for i := range a {
				same = same && a[i] == fl[i]
			}
			if same {
				t.Errorf("%v: hidden after %d blocks equals the full stack's", f, c.Layers-1)
			}
			for _, x := range []*compute.Tensor{tapped, alone, full} {
				b.Free(x)
			}
		}
		if after := b.Memory().Allocated; after != before {
			t.Errorf("%v: encodes leaked %d bytes", f, after-before)
		}
	}
}

func TestEncodeRejectsBadInput(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	c := tinyConfig(OpenAI, compute.QuickGELU, 0, true)
	m, _ := load(t, b, c, tensor.F32, 1)
	ids := randomIDs(c, 1)
	bad := append([]int32(nil), ids...)
	bad[3] = int32(c.Vocab)
	other := cpu.New(1)
	defer other.Close()
	cases := []struct {
		name string
		be   compute.Backend
		ids  []int32
		o    EncodeOptions
		want string
	}{
		{"short", b, ids[:5], EncodeOptions{Layers: 1, PooledAt: NoPool}, "token ids"},
		{"layers0", b, ids, EncodeOptions{Layers: 0, PooledAt: NoPool}, "layers"},
		{"layers>", b, ids, EncodeOptions{Layers: c.Layers + 1, PooledAt: NoPool}, "layers"},
		{"pool>", b, ids, EncodeOptions{Layers: 1, PooledAt: c.Positions}, "pooled row"},
		{"pool<", b, ids, EncodeOptions{Layers: 1, PooledAt: -2}, "pooled row"},
		{"vocab", b, bad, EncodeOptions{Layers: 1, PooledAt: NoPool}, "out of range"},
		{"backend", other, ids, EncodeOptions{Layers: 1, PooledAt: NoPool}, "backend"},
	}
	before := b.Memory().Allocated
	for _, tc := range cases {
		h, p, err := m.Encode(tc.be, tc.ids, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || h != nil || p != nil {
			t.Errorf("%s: got %v, %v, error %v; want an error about %q", tc.name, h, p, err, tc.want)
		}
	}
	if after := b.Memory().Allocated; after != before {
		t.Errorf("failed encodes leaked %d bytes", after-before)
	}
}

func TestLoadReportsEveryBadTensor(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	c := tinyConfig(OpenCLIP, compute.GELU, 96, false)
	r := param.NewRandom(b, 1, 0.1)
	p := tinyPrefix(OpenCLIP)
	r.Set(p+"transformer.resblocks.1.attn.in_proj_weight", 3*c.Hidden, c.Hidden+1)
	r.Set(p+"text_projection", c.ProjDim, c.Hidden) // a Linear weight where SGM's matrix is expected
	_, err := Load(r, p, c)
	if err == nil {
		t.Fatal("Load accepted mis-shaped tensors")
	}
	for _, want := range []string{"resblocks.1.attn.in_proj_weight", "text_projection"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := Load(r, p, Config{}); err == nil {
		t.Error("Load accepted an empty config")
	}
}

func TestClipSkipLayers(t *testing.T) {
	c := Config{Layers: 12}
	for k, want := range map[int]int{1: 12, 2: 11, 12: 1} {
		if got, err := c.ClipSkipLayers(k); err != nil || got != want {
			t.Errorf("clip skip %d: %d, %v; want %d", k, got, err, want)
		}
	}
	for _, k := range []int{0, -1, 13} {
		if _, err := c.ClipSkipLayers(k); err == nil {
			t.Errorf("clip skip %d accepted", k)
		}
	}
}

// TestActivationsUseF16Table pins the backend behaviour the encoders rely
// on (stable-diffusion.cpp's numerics): quick-GELU and GELU come from ggml's
// F16 tables, so every output is an F16 value computed from the F16-rounded
// input, which an exact activation would not give.
func TestActivationsUseF16Table(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	const n = 4096
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i-n/2) / 300 * 1.0001 // not F16 values
	}
	x, err := param.Upload(b, tensor.F32, in, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []compute.UnaryKind{compute.QuickGELU, compute.GELU} {
		y, err := b.Alloc(tensor.F32, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := compute.Unary(kind, x, y, 0); err != nil {
			t.Fatal(err)
		}
		got := readF64(t, b, y)
		b.Free(y)
		for i, v := range got {
			want := oracleAct(kind, float64(in[i]))
			if f16round(v) != v || math.Abs(v-want) > 1e-3*math.Max(1, math.Abs(want)) {
				t.Fatalf("act %d(%v) = %v: not the F16 table value %v", kind, in[i], v, want)
			}
		}
	}
}
