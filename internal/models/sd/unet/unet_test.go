package unet

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/internal/oracle"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

func tinySD1() Config {
	return Config{Family: SD1, InChannels: 4, OutChannels: 4, ModelChannels: 32, ChannelMult: []int{1, 2},
		NumResBlocks: 1, Depth: []int{1, 1}, MiddleDepth: 1, ContextDim: 24}
}

func tinySDXL() Config {
	return Config{Family: SDXL, InChannels: 4, OutChannels: 4, ModelChannels: 64, ChannelMult: []int{1, 2},
		NumResBlocks: 1, Depth: []int{0, 2}, MiddleDepth: 1, ContextDim: 40, ADMDim: 20, LinearProj: true}
}

func randTensor(t *testing.T, b compute.Backend, rng *rand.Rand, scale float64, shape ...int) (*compute.Tensor, []float64) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	v64 := make([]float64, n)
	for i := range v {
		v[i] = float32((2*rng.Float64() - 1) * scale)
		v64[i] = float64(v[i])
	}
	x, err := nn.UploadF32(b, v, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x, v64
}

func rows(v []float64, n int) [][]float64 {
	out := make([][]float64, len(v)/n)
	for i := range out {
		out[i] = v[i*n : (i+1)*n]
	}
	return out
}

// TestForwardMatchesOracle runs tiny SD1- and SDXL-style UNets on the
// backend and in the float64 oracle, with F16 and F32 linear weights.
func TestForwardMatchesOracle(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		dt   tensor.DType
	}{
		{"sd1-f16", tinySD1(), tensor.F16},
		{"sd1-f32", tinySD1(), tensor.F32},
		{"sdxl-f16", tinySDXL(), tensor.F16},
		{"sd1-odd", tinySD1(), tensor.F16}, // a 6×10 latent: sizes that do not halve evenly
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := param.NewRandom(b, 1, 0.15)
			src.DType = tc.dt
			m, err := Load(src, "model.diffusion_model.", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DetectConfig(src, "model.diffusion_model.", tc.cfg.Family)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.cfg) {
				t.Fatalf("DetectConfig = %+v, want %+v", got, tc.cfg)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			hh, ww := 8, 8
			if tc.name == "sd1-odd" {
				hh, ww = 6, 10
			}
			x, x64 := randTensor(t, b, rng, 1, 1, 4, hh, ww)
			ctx, ctx64 := randTensor(t, b, rng, 1, 5, tc.cfg.ContextDim)
			var y *compute.Tensor
			var y64 []float64
			if tc.cfg.ADMDim > 0 {
				y, y64 = randTensor(t, b, rng, 1, tc.cfg.ADMDim)
			}
			out, err := b.Alloc(tensor.F32, 1, 4, hh, ww)
			if err != nil {
				t.Fatal(err)
			}
			before := b.Memory().Allocated
			if err := m.Forward(b, x, 427.49, ctx, y, out); err != nil {
				t.Fatal(err)
			}
			if leak := b.Memory().Allocated - before; leak != 0 {
				t.Errorf("forward left %d bytes allocated", leak)
			}
			want := oracleUNet(b, m, &oracle.Map{C: 4, H: hh, W: ww, V: x64}, 427.49, rows(ctx64, tc.cfg.ContextDim), y64)
			gotV, _ := nn.ReadF32(b, out)
			// The backend sums in float32 and the oracle in float64; both
			// round the same values to F16 (conv inputs, F16-weight linear
			// inputs, GELU), but a float32 value that lands on the other
			// side of an F16 rounding boundary moves by one F16 step
			// (2^-11 ≈ 4.9e-4 relative), and through ~20 layers of random
			// weights those flips compound: measured max error 3–5e-3 of
			// the output RMS. 1.5e-2 leaves room; a wrong layer, order or
			// constant gives errors of order 1 (TestBlocksMatchOracle
			// checks single blocks much tighter).
			rel, rms := relErr(gotV, want.V)
			t.Logf("max |diff| / rms = %.2e (rms %.3f)", rel, rms)
			if rel > 1.5e-2 || rms < 1e-3 {
				t.Errorf("UNet output differs from the oracle: max |diff|/rms %.2e, rms %.3g", rel, rms)
			}
		})
	}
}

// TestBlocksMatchOracle checks single blocks against the oracle, where
// F16 rounding flips have no depth to compound in.
func TestBlocksMatchOracle(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		dt   tensor.DType
		pick func(m *Model) layer
		tol  float64
	}{
		// Tolerances: ~4x the measured max |diff|/rms. With F32 linear
		// weights only conv inputs are rounded to F16 and flips are rare
		// (measured 5e-6 .. 3e-5); F16 linear weights round every
		// projection's input (measured ~2e-4 through attention).
		{"resblock-f16", tinySD1(), tensor.F16, func(m *Model) layer { return m.Input[3][0] }, 6e-4},
		{"transformer-conv-f32", tinySD1(), tensor.F32, func(m *Model) layer { return m.Input[1][1] }, 1e-4},
		{"transformer-conv-f16", tinySD1(), tensor.F16, func(m *Model) layer { return m.Input[1][1] }, 1e-3},
		{"transformer-linear-f32", tinySDXL(), tensor.F32, func(m *Model) layer { return m.Middle[1] }, 1e-4},
		{"upsample", tinySD1(), tensor.F16, func(m *Model) layer { return m.Output[1][2] }, 1e-4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := param.NewRandom(b, 7, 0.15)
			src.DType = tc.dt
			m, err := Load(src, "model.diffusion_model.", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			l := tc.pick(m)
			ch := 32
			switch l := l.(type) {
			case *ResBlock:
				ch = l.Norm1.W.Elems()
			case *SpatialTransformer:
				ch = l.Norm.W.Elems()
			case *Upsample:
				ch = l.Conv.W.Shape[1]
			}
			rng := rand.New(rand.NewPCG(5, 6))
			x, x64 := randTensor(t, b, rng, 1, 1, ch, 4, 4)
			ctx, ctx64 := randTensor(t, b, rng, 1, 5, tc.cfg.ContextDim)
			emb, emb64 := randTensor(t, b, rng, 1, 1, tc.cfg.TimeEmbedDim())
			y, err := l.forward(b, x, emb, ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := oracleLayer(b, l, &oracle.Map{C: ch, H: 4, W: 4, V: x64}, emb64, rows(ctx64, tc.cfg.ContextDim))
			got, _ := nn.ReadF32(b, y)
			rel, rms := relErr(got, want.V)
			t.Logf("%T: max |diff|/rms %.2e (rms %.3f)", l, rel, rms)
			if rel > tc.tol || rms < 1e-3 {
				t.Errorf("%T differs from the oracle: %.2e > %.0e", l, rel, tc.tol)
			}
		})
	}
}
