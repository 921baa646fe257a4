package vae

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/internal/oracle"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

func tiny() Config {
	return Config{Ch: 32, ChMult: []int{1, 2}, NumResBlocks: 1, ZChannels: 4, InChannels: 3}
}

// The float64 oracle, layer by layer as LDM's AutoencoderKL defines it.

func oracleRes(b compute.Backend, r *ResnetBlock, x *oracle.Map) *oracle.Map {
	h := oracle.Conv(b, &r.Conv1, oracle.GroupNorm(b, &r.Norm1, x, true))
	h = oracle.Conv(b, &r.Conv2, oracle.GroupNorm(b, &r.Norm2, h, true))
	skip := x
	if r.Shortcut != nil {
		skip = oracle.Conv(b, r.Shortcut, x)
	}
	return oracle.Add(h, skip)
}

func oracleAttn(b compute.Backend, a *AttnBlock, x *oracle.Map) *oracle.Map {
	n := oracle.GroupNorm(b, &a.Norm, x, false)
	q := oracle.Conv(b, &a.Q, n).Tokens()
	k := oracle.Conv(b, &a.K, n).Tokens()
	v := oracle.Conv(b, &a.V, n).Tokens()
	o := oracle.FromTokens(oracle.Attention(q, k, v, 1), x.H, x.W)
	return oracle.Add(oracle.Conv(b, &a.ProjOut, o), x)
}

func oracleMid(b compute.Backend, m *Mid, x *oracle.Map) *oracle.Map {
	return oracleRes(b, m.Block2, oracleAttn(b, m.Attn, oracleRes(b, m.Block1, x)))
}

func oracleDecode(b compute.Backend, m *Model, z *oracle.Map) *oracle.Map {
	d := m.Decoder
	h := oracle.Conv(b, &d.ConvIn, oracle.Conv(b, &m.PostQuant, z))
	h = oracleMid(b, &d.Mid, h)
	for l := len(d.Up) - 1; l >= 0; l-- {
		for _, r := range d.Up[l] {
			h = oracleRes(b, r, h)
		}
		if d.Upconv[l] != nil {
			h = oracle.Conv(b, d.Upconv[l], oracle.Upsample2(h))
		}
	}
	return oracle.Conv(b, &d.ConvOut, oracle.GroupNorm(b, &d.NormOut, h, true))
}

func oracleEncode(b compute.Backend, m *Model, x *oracle.Map) *oracle.Map {
	e := m.Encoder
	h := oracle.Conv(b, &e.ConvIn, x)
	for l := range e.Down {
		for _, r := range e.Down[l] {
			h = oracleRes(b, r, h)
		}
		if e.Downconv[l] != nil {
			p := oracle.NewMap(h.C, h.H+1, h.W+1) // zero row and column at the bottom and right
			for c := 0; c < h.C; c++ {
				for y := 0; y < h.H; y++ {
					copy(p.V[(c*p.H+y)*p.W:], h.V[(c*h.H+y)*h.W:(c*h.H+y+1)*h.W])
				}
			}
			h = oracle.Conv(b, e.Downconv[l], p)
		}
	}
	h = oracleMid(b, &e.Mid, h)
	h = oracle.Conv(b, &e.ConvOut, oracle.GroupNorm(b, &e.NormOut, h, true))
	return oracle.Conv(b, m.Quant, h)
}

func randMap(t *testing.T, b compute.Backend, seed uint64, c, h, w int) (*compute.Tensor, *oracle.Map) {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := oracle.NewMap(c, h, w)
	v := make([]float32, len(m.V))
	for i := range v {
		v[i] = float32(2*rng.Float64() - 1)
		m.V[i] = float64(v[i])
	}
	x, err := nn.UploadF32(b, v, 1, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	return x, m
}

func relErr(a []float32, b []float64) (float64, float64) {
	var mx, ss float64
	for i := range b {
		mx = math.Max(mx, math.Abs(float64(a[i])-b[i]))
		ss += b[i] * b[i]
	}
	rms := math.Sqrt(ss / float64(len(b)))
	return mx / rms, rms
}

func load(t *testing.T, b compute.Backend, o Options) (*Model, *param.Random) {
	src := param.NewRandom(b, 11, 0.2)
	m, err := LoadConfig(src, "first_stage_model.", tiny(), o)
	if err != nil {
		t.Fatal(err)
	}
	return m, src
}

// TestDecodeEncodeMatchOracle runs the tiny decoder at an 8×8 latent and
// the encoder at a 16×16 image against the float64 oracle, with and
// without SDXL's 1/32 conv scale.
//
// Tolerance: every conv rounds its input to F16 in both; the backend sums
// in float32, so a value on an F16 rounding boundary can round the other
// way (one F16 step, 4.9e-4 relative) and ~14 layers compound it: measured
// max |diff|/rms 1e-4 .. 2e-3. 1e-2 leaves room; a wrong layer, padding or
// scale gives order-1 errors.
func TestDecodeEncodeMatchOracle(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	for _, scale := range []float32{1, 1.0 / 32} {
		m, src := load(t, b, Options{ConvScale: scale})
		if cfg, err := DetectConfig(src, "first_stage_model."); err != nil || !reflect.DeepEqual(cfg, tiny()) {
			t.Fatalf("DetectConfig = %+v, %v; want %+v", cfg, err, tiny())
		}
		z, z64 := randMap(t, b, 1, 4, 8, 8)
		img, _ := b.Alloc(tensor.F32, 1, 3, 16, 16)
		before := b.Memory().Allocated
		if err := m.Decode(b, z, img); err != nil {
			t.Fatal(err)
		}
		if leak := b.Memory().Allocated - before; leak != 0 {
			t.Errorf("decode left %d bytes allocated", leak)
		}
		got, _ := nn.ReadF32(b, img)
		rel, rms := relErr(got, oracleDecode(b, m, z64).V)
		t.Logf("scale %g decode: max |diff|/rms %.2e (rms %.3f)", scale, rel, rms)
		if rel > 1e-2 || rms < 1e-3 {
			t.Errorf("scale %g: decode differs from the oracle: %.2e", scale, rel)
		}
		zBack, _ := nn.ReadF32(b, z)
		for i := range zBack {
			if float64(zBack[i]) != z64.V[i] {
				t.Fatalf("scale %g: Decode changed its input at %d", scale, i)
			}
		}

		x, x64 := randMap(t, b, 2, 3, 16, 16)
		mean, logvar, err := m.Encode(b, x)
		if err != nil {
			t.Fatal(err)
		}
		want := oracleEncode(b, m, x64)
		for i, tt := range []*compute.Tensor{mean, logvar} {
			if !reflect.DeepEqual(tt.Shape, []int{1, 4, 8, 8}) {
				t.Fatalf("encode output %v", tt)
			}
			got, _ := nn.ReadF32(b, tt)
			rel, rms := relErr(got, want.V[i*256:(i+1)*256])
			t.Logf("scale %g encode half %d: max |diff|/rms %.2e (rms %.3f)", scale, i, rel, rms)
			if rel > 1e-2 || rms < 1e-3 {
				t.Errorf("scale %g: encode half %d differs from the oracle: %.2e", scale, i, rel)
			}
			b.Free(tt)
		}
	}
}

// TestDecodeTiled: one tile covering the latent is exactly Decode; with
// two overlapping tiles, pixels only one tile covers are that tile's
// decode exactly and the overlap is a convex blend whose weight moves from
// one tile to the other.
func TestDecodeTiled(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	m, _ := load(t, b, Options{})
	z, _ := randMap(t, b, 3, 4, 4, 6)
	whole, _ := b.Alloc(tensor.F32, 1, 3, 8, 12)
	if err := m.Decode(b, z, whole); err != nil {
		t.Fatal(err)
	}
	tiled, _ := b.Alloc(tensor.F32, 1, 3, 8, 12)
	if err := m.DecodeTiled(b, z, tiled, 8, 2); err != nil {
		t.Fatal(err)
	}
	w, _ := nn.ReadF32(b, whole)
	g, _ := nn.ReadF32(b, tiled)
	if !reflect.DeepEqual(w, g) {
		t.Fatal("a single tile differs from Decode")
	}

	// Tiles of 4×4 latent px with overlap 2 on 4×6: x origins 0 and 2.
	if err := m.DecodeTiled(b, z, tiled, 4, 2); err != nil {
		t.Fatal(err)
	}
	g, _ = nn.ReadF32(b, tiled)
	tile := func(x0 int) []float32 {
		zv, _ := nn.ReadF32(b, z)
		sub := make([]float32, 4*4*4)
		for c := 0; c < 4; c++ {
			for y := 0; y < 4; y++ {
				copy(sub[(c*4+y)*4:(c*4+y+1)*4], zv[(c*4+y)*6+x0:])
			}
		}
		zt, _ := nn.UploadF32(b, sub, 1, 4, 4, 4)
		out, _ := b.Alloc(tensor.F32, 1, 3, 8, 8)
		if err := m.Decode(b, zt, out); err != nil {
			t.Fatal(err)
		}
		v, _ := nn.ReadF32(b, out)
		return v
	}
	a, c := tile(0), tile(2)
	prevWeight := 2.0
	for x := 0; x < 12; x++ {
		for y := 0; y < 8; y++ {
			for ch := 0; ch < 3; ch++ {
				got := g[(ch*8+y)*12+x]
				switch {
				case x < 4: // only tile A (image columns 0..3)
					if got != a[(ch*8+y)*8+x] {
						t.Fatalf("pixel (%d,%d,%d) = %v, tile A has %v", ch, y, x, got, a[(ch*8+y)*8+x])
					}
				case x >= 8: // only tile B
					if got != c[(ch*8+y)*8+x-4] {
						t.Fatalf("pixel (%d,%d,%d) = %v, tile B has %v", ch, y, x, got, c[(ch*8+y)*8+x-4])
					}
				default:
					va, vb := float64(a[(ch*8+y)*8+x]), float64(c[(ch*8+y)*8+x-4])
					if math.Abs(va-vb) < 1e-3 {
						continue
					}
					wA := (float64(got) - vb) / (va - vb)
					if wA < -1e-5 || wA > 1+1e-5 {
						t.Fatalf("pixel (%d,%d,%d) = %v is not between %v and %v", ch, y, x, got, va, vb)
					}
					if y == 0 && ch == 0 {
						if wA > prevWeight+1e-4 {
							t.Fatalf("tile A's weight rises at column %d: %.3f after %.3f", x, wA, prevWeight)
						}
						prevWeight = wA
					}
				}
			}
		}
	}
	if err := m.DecodeTiled(b, z, tiled, 4, 4); err == nil {
		t.Error("overlap equal to the tile size accepted")
	}
}

// TestRealCheckpointNames: the VAE binder asks for exactly the
// first_stage_model tensors of the SD 1.5 and SDXL checkpoints.
func TestRealCheckpointNames(t *testing.T) {
	for _, folder := range []string{"sd", "sdxl"} {
		raw, err := os.ReadFile(testenv.Shared(t, "reference", folder, "tensors.json"))
		if err != nil {
			t.Skip(err)
		}
		var list []struct {
			Name  string `json:"name"`
			Shape []int  `json:"shape"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		shapes := map[string][]int{}
		for _, e := range list {
			shapes[e.Name] = e.Shape
		}
		src := nn.NewShapeSource(shapes)
		m, err := Load(src, "first_stage_model.", Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := Config{Ch: 128, ChMult: []int{1, 2, 4, 4}, NumResBlocks: 2, ZChannels: 4, InChannels: 3}
		if !reflect.DeepEqual(m.Config, want) {
			t.Errorf("%s: config %+v, want %+v", folder, m.Config, want)
		}
		if extra := src.Unasked("first_stage_model."); len(extra) > 0 {
			t.Errorf("%s: %d VAE tensors not bound, e.g. %v", folder, len(extra), extra[:min(5, len(extra))])
		}
		n := 0
		for k := range src.Asked {
			if strings.HasPrefix(k, "first_stage_model.") {
				n++
			}
		}
		if n != 248 {
			t.Errorf("%s: %d VAE tensors bound, want 248", folder, n)
		}
	}
}

func TestTileStarts(t *testing.T) {
	for _, tc := range []struct {
		n, tile, overlap int
		want             []int
	}{
		{6, 8, 2, nil}, {6, 4, 2, []int{0, 2}}, {64, 32, 8, []int{0, 16, 32}}, {100, 32, 8, []int{0, 22, 45, 68}}, {33, 32, 0, []int{0, 1}},
	} {
		got := tileStarts(tc.n, tc.tile, tc.overlap)
		if tc.want == nil {
			tc.want = []int{0}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("tileStarts(%d, %d, %d) = %v, want %v", tc.n, tc.tile, tc.overlap, got, tc.want)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1]+tc.tile-got[i] < tc.overlap {
				t.Errorf("tiles at %d and %d overlap by less than %d", got[i-1], got[i], tc.overlap)
			}
		}
		if last := got[len(got)-1]; last+min(tc.tile, tc.n) != tc.n {
			t.Errorf("last tile at %d does not end at %d", last, tc.n)
		}
	}
}
