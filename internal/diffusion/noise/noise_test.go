package noise

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"runtime"
	"testing"

	"mica/internal/testenv"
)

type philoxDraw struct {
	Offset  uint64    `json:"offset"`
	Use     string    `json:"use"`
	First16 []float64 `json:"first16"`
	SHA256  string    `json:"sha256_f32le"`
	N       int       `json:"n"`
}

type refCases struct {
	Cases []struct {
		ID     string `json:"id"`
		Params struct {
			Seed uint64 `json:"seed"`
		} `json:"params"`
		Philox []philoxDraw `json:"philox"`
	} `json:"cases"`
}

func loadCases(t *testing.T, model string) refCases {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "reference", model, "cases.json"))
	if err != nil {
		t.Skipf("reference cases: %v", err)
	}
	var c refCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s/cases.json: %v", model, err)
	}
	return c
}

func sha256f32(v []float32) string {
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	s := sha256.Sum256(buf)
	return hex.EncodeToString(s[:])
}

// TestPhiloxReference checks every Philox draw sd.cpp consumed in the SD 1.5
// (4096 values) and SDXL (16384 values) cases: all values bit for bit
// (SHA-256), and the printed first 16 to their 9 printed digits.
func TestPhiloxReference(t *testing.T) {
	checked := 0
	for _, model := range []string{"sd", "sdxl"} {
		for _, c := range loadCases(t, model).Cases {
			for _, d := range c.Philox {
				n := d.N
				if n == 0 {
					n = 4096
				}
				p := NewPhilox(c.Params.Seed)
				p.Seek(d.Offset)
				got := p.Randn(n)
				if p.Offset() != d.Offset+1 {
					t.Errorf("%s/%s: offset after draw %d, want %d", model, c.ID, p.Offset(), d.Offset+1)
				}
				if h := sha256f32(got); h != d.SHA256 {
					t.Errorf("%s case %s seed %d offset %d: SHA-256 %s, want %s", model, c.ID, c.Params.Seed, d.Offset, h, d.SHA256)
				}
				for i, w := range d.First16 {
					// cases.json prints 9 significant digits: enough to
					// identify a float32 to within one part in 1e8.
					if math.Abs(float64(got[i])-w) > 1e-8*math.Max(1, math.Abs(w)) {
						t.Errorf("%s case %s offset %d [%d] = %.9g, want %.9g", model, c.ID, d.Offset, i, got[i], w)
					}
				}
				checked++
			}
		}
	}
	t.Logf("%d reference draws checked", checked)
}

// TestPhiloxSeed42 is the README's value list: torch.randn on CUDA after
// manual_seed(42).
func TestPhiloxSeed42(t *testing.T) {
	want := []float32{0.194018871, 2.16137385, -0.172050595, 0.849060118}
	got := NewPhilox(42).Randn(4)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %.9g, want %.9g", i, got[i], want[i])
		}
	}
}

// TestPhiloxPrefix: element i does not depend on n, and successive calls
// advance the offset.
func TestPhiloxPrefix(t *testing.T) {
	long := NewPhilox(7).Randn(100)
	short := NewPhilox(7).Randn(10)
	for i := range short {
		if short[i] != long[i] {
			t.Fatalf("[%d]: %v in a draw of 10, %v in a draw of 100", i, short[i], long[i])
		}
	}
	p := NewPhilox(7)
	p.Randn(3)
	second := p.Randn(3)
	q := NewPhilox(7)
	q.Seek(1)
	if again := q.Randn(3); again[0] != second[0] || second[0] == short[0] {
		t.Fatalf("second draw %v, seek(1) draw %v, first draw %v", second, again, short[:3])
	}
}

// TestDeterministicAcrossThreads: the same seed gives the same values at any
// GOMAXPROCS (the parallel path splits by index only).
func TestDeterministicAcrossThreads(t *testing.T) {
	const n = 4 * parallelMin
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one := NewPhilox(1234).Randn(n)
	cpu1 := NewTorchCPU(1234).Randn(n)
	for _, procs := range []int{2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		many := NewPhilox(1234).Randn(n)
		cpuN := NewTorchCPU(1234).Randn(n)
		for i := range one {
			if one[i] != many[i] || cpu1[i] != cpuN[i] {
				t.Fatalf("GOMAXPROCS %d: element %d differs", procs, i)
			}
		}
	}
}

// Values torch printed (as float64 of its float32 results) in public
// code: manual_seed(0) then randn(3, 9); manual_seed(0) then randn(6, 4),
// randn(3, 4), randn(3); manual_seed(42) then randn(2, 2, 4, 4),
// randn(3, 2, 3, 3), randn(3). They cover both paths, tails, the stream
// continuing across calls and the cached second normal.
var (
	torchSeed0Randn27 = []float64{
		-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383,
		0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166,
		0.32227492332458496, -1.2633347511291504, 0.34998318552970886, 0.26604941487312317,
		0.16645534336566925, 0.8743818402290344, -0.14347384870052338, -0.1116093322634697,
		-0.6135830879211426, 0.03159274160861969, -0.4926769733428955, 0.05373690277338028,
		0.6180566549301147, -0.41280221939086914, -0.8410648107528687, -2.316041946411133,
		-0.10230965167284012, 0.7924439907073975, -0.28966769576072693,
	}
	torchSeed0Randn24 = []float64{
		-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383,
		0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166,
		0.46809640526771545, -0.1577124446630478, 1.4436601400375366, 0.26604941487312317,
		0.16645534336566925, 0.8743818402290344, -0.14347384870052338, -0.1116093322634697,
		0.9318265914916992, 1.2590092420578003, 2.0049805641174316, 0.05373690277338028,
		0.6180566549301147, -0.41280221939086914, -0.8410648107528687, -2.316041946411133,
	}
	torchSeed0Then12And3 = []float64{
		0.3703935444355011, 1.4565025568008423, 0.9398099184036255, 0.7748488187789917,
		0.19186942279338837, 1.2637947797775269, -1.2904350757598877, -0.7911027073860168,
		-0.02087947353720665, -0.7184800505638123, 0.5186367630958557, -1.3125219345092773,
		0.1919950693845749, 0.5427713394165039, -2.2187793254852295,
	}
	torchSeed42Randn64 = []float64{
		1.9269152879714966, 1.4872840642929077, 0.9007171988487244, -2.1055209636688232,
		0.6784184575080872, -1.2345448732376099, -0.04306747764348984, -1.6046669483184814,
		-0.7521352767944336, 1.6487230062484741, -0.3924786448478699, -1.4036071300506592,
		-0.7278813123703003, -0.5594301819801331, -0.7688388824462891, 0.7624453902244568,
		1.6423169374465942, -0.1595974713563919, -0.4973975419998169, 0.439589262008667,
		-0.7581311464309692, 1.078317642211914, 0.8008005619049072, 1.680620551109314,
		1.27912437915802, 1.2964228391647339, 0.610466480255127, 1.334737777709961,
		-0.2316243201494217, 0.041759490966796875, -0.2515752911567688, 0.859858512878418,
		-1.3846737146377563, -0.8712361454963684, -0.223365917801857, 1.7173614501953125,
		0.3188803195953369, -0.42451897263526917, 0.3057209253311157, -0.7745925188064575,
		-1.5575724840164185, 0.9956361055374146, -0.8797858357429504, -0.6011420488357544,
		-1.2741512060165405, 2.1227850914001465, -1.234653115272522, -0.4879138767719269,
		-0.9138230085372925, -0.6581372618675232, 0.07802387326955795, 0.5258087515830994,
		-0.48799172043800354, 1.1913690567016602, -0.8140076398849487, -0.7359927892684937,
		-1.4032478332519531, 0.03600366786122322, -0.06347727030515671, 0.6756148934364319,
		-0.0978068932890892, 1.8445940017700195, -1.184537410736084, 1.3835493326187134,
	}
	torchSeed42Then54 = []float64{
		1.4451338052749634, 0.8564125299453735, 2.218075752258301, 0.5231655240058899,
		0.34664666652679443, -0.19733144342899323, -1.0545889139175415, 1.2779955863952637,
		-0.1721901297569275, 0.5237884521484375, 0.056621819734573364, 0.4262961447238922,
		0.575005054473877, -0.6417241096496582, -2.2063984870910645, -0.7508030533790588,
		0.01086814422160387, -0.33874234557151794, -1.3406795263290405, -0.5853705406188965,
		0.5361881256103516, 0.5246226191520691, 1.1412016153335571, 0.05164359509944916,
		0.7439519762992859, -0.4815843999385834, -1.0494661331176758, 0.603898823261261,
		-1.7222950458526611, -0.827768862247467, 1.334702968597412, 0.48353928327560425,
		-2.5095443725585938, 0.4880010485649109, 0.7845868468284607, 0.02864718623459339,
		0.640755295753479, 0.5832474231719971, -0.3890652060508728, 0.5279164910316467,
		1.031091570854187, -0.7047650218009949, 1.013148307800293, -0.330817848443985,
		0.517693042755127, 0.38777846097946167, 0.7199674844741821, 0.41140761971473694,
		-0.5733190178871155, 0.5068639516830444, -0.4752098321914673, -0.49202650785446167,
		0.27037355303764343, -0.5628241896629333,
	}
	torchSeed42Then3 = []float64{1.2175776958465576, -0.8914098143577576, 0.7859604954719543}
)

// TestTorchCPUPublished: NewTorchCPU equals torch's AVX2 kernel bit for bit
// on all 187 published values.
func TestTorchCPUPublished(t *testing.T) {
	check := func(name string, got []float32, want []float64) {
		t.Helper()
		for i, w := range want {
			if got[i] != float32(w) {
				t.Errorf("%s[%d] = %.9g, torch %.9g", name, i, got[i], float32(w))
			}
		}
	}
	check("seed 0 randn(27)", NewTorchCPU(0).Randn(27), torchSeed0Randn27)
	g := NewTorchCPU(0)
	check("seed 0 randn(24)", g.Randn(24), torchSeed0Randn24)
	check("then randn(12), randn(3)", append(g.Randn(12), g.Randn(3)...), torchSeed0Then12And3)
	g = NewTorchCPU(42)
	check("seed 42 randn(64)", g.Randn(64), torchSeed42Randn64)
	check("then randn(54)", g.Randn(54), torchSeed42Then54)
	check("then randn(3)", g.Randn(3), torchSeed42Then3)
}

// TestTorchCPUKnown checks both kernels against the values every PyTorch
// tutorial prints (4 decimals): manual_seed(42) then randn(2, 3) (scalar
// path), manual_seed(0) then randn(5) and randn(4, 4) (16-block path).
func TestTorchCPUKnown(t *testing.T) {
	cases := []struct {
		seed uint64
		n    int
		want []float64
	}{
		{42, 4, []float64{0.3367, 0.1288, 0.2345, 0.2303}},
		{42, 6, []float64{0.3367, 0.1288, 0.2345, 0.2303, -1.1229, -0.1863}},
		{0, 5, []float64{1.5410, -0.2934, -2.1788, 0.5684, -1.0845}},
		{0, 16, []float64{-1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.6920, -0.3160, -2.1152,
			0.3223, -1.2633, 0.3500, 0.3081, 0.1198, 1.2377, 1.1168, -0.2473}},
	}
	for _, mk := range []func(uint64) *TorchCPU{NewTorchCPU, NewTorchCPUPortable} {
		for _, c := range cases {
			got := mk(c.seed).Randn(c.n)
			for i, w := range c.want {
				// The references are rounded to 4 decimals: |error| ≤ 5e-5.
				if math.Abs(float64(got[i])-w) > 5.01e-5 {
					t.Errorf("seed %d randn(%d)[%d] = %.5f, want %.4f", c.seed, c.n, i, got[i], w)
				}
			}
		}
	}
}

// TestCephesAccuracy: the Cephes approximations stay within a few float32
// ULPs of the true functions over the kernel's input ranges (ln on (0, 1],
// sin and cos on [0, 2π)); 4 ULPs is Cephes' documented bound with margin.
func TestCephesAccuracy(t *testing.T) {
	ulps := func(got float32, want float64) float64 {
		ulp := math.Abs(float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want)))
		return math.Abs(float64(got)-want) / ulp
	}
	for i := 1; i <= 1<<16; i++ {
		u := float32(i) / (1 << 16)
		if d := ulps(cephesLog(u), math.Log(float64(u))); d > 4 && math.Abs(math.Log(float64(u))) > 1e-3 {
			t.Fatalf("ln(%v): %v vs %v (%.1f ULP)", u, cephesLog(u), math.Log(float64(u)), d)
		}
		x := twoPi32 * (float32(i) / (1 << 16))
		s, c := cephesSinCos(x)
		if math.Abs(float64(s)-math.Sin(float64(x))) > 3e-7 || math.Abs(float64(c)-math.Cos(float64(x))) > 3e-7 {
			t.Fatalf("sincos(%v) = %v, %v; want %v, %v", x, s, c, math.Sin(float64(x)), math.Cos(float64(x)))
		}
	}
}

// TestTorchCPUTail: for n ≥ 16 not a multiple of 16, the values before the
// last 16 equal those of the largest multiple-of-16 prefix computed alone
// only if no extra uniforms were consumed before them, which holds: the
// tail's fresh uniforms come after all n.
func TestTorchCPUTail(t *testing.T) {
	a := NewTorchCPU(3).Randn(40)
	b := NewTorchCPU(3).Randn(48)
	for i := 0; i < 16; i++ { // the first full block uses uniforms 0..15 in both
		if a[i] != b[i] {
			t.Fatalf("[%d]: %v vs %v", i, a[i], b[i])
		}
	}
	// In the draw of 40 the last 16 (24..39) were recomputed from uniforms
	// 40..55, so value 39 must differ from what the 48-draw has there.
	if a[39] == b[39] {
		t.Fatalf("tail was not recomputed")
	}
	// The scalar path's cache survives across calls: randn(1) twice equals randn(2).
	g := NewTorchCPU(42)
	x, y := g.Randn(1)[0], g.Randn(1)[0]
	two := NewTorchCPU(42).Randn(2)
	if x != two[0] || y != two[1] {
		t.Fatalf("randn(1)+randn(1) = %v %v, randn(2) = %v", x, y, two)
	}
}

func TestTorchCPUStats(t *testing.T) {
	v := NewTorchCPU(99).Randn(1 << 16)
	var s, ss float64
	for _, x := range v {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	mean := s / float64(len(v))
	std := math.Sqrt(ss/float64(len(v)) - mean*mean)
	// 65536 samples: the mean's standard error is 1/256 ≈ 0.004, the std's ≈ 0.003.
	if math.Abs(mean) > 0.02 || math.Abs(std-1) > 0.02 {
		t.Fatalf("mean %v std %v", mean, std)
	}
}

func TestSlerp(t *testing.T) {
	a := NewPhilox(1).Randn(4096)
	b := NewPhilox(2).Randn(4096)
	for _, tt := range []float32{0, 1} {
		got, err := Slerp(tt, a, b)
		if err != nil {
			t.Fatal(err)
		}
		want := a
		if tt == 1 {
			want = b
		}
		for i := range got {
			// sin(ω)/sin(ω) in float64 is 1 to within a few ULP; rounding to
			// float32 then leaves at most one float32 ULP.
			if math.Abs(float64(got[i]-want[i])) > 1e-6*math.Max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("t=%v [%d] = %v, want %v", tt, i, got[i], want[i])
			}
		}
	}
	// Halfway between two orthogonal-ish unit-variance vectors the norm is
	// preserved (spherical), unlike a linear blend (norm · √0.5).
	mid, _ := Slerp(0.5, a, b)
	na, nm := norm(a), norm(mid)
	if math.Abs(nm/na-1) > 0.05 {
		t.Fatalf("slerp midpoint norm %v vs %v", nm, na)
	}
	// Nearly parallel: A1111's linear fallback a·t + b·(1−t).
	c := append([]float32(nil), a...)
	c[0] += 1e-3
	got, _ := Slerp(0.25, a, c)
	if w := float32(float64(a[0])*0.25 + float64(c[0])*0.75); got[0] != w {
		t.Fatalf("fallback %v, want %v", got[0], w)
	}
	if _, err := Slerp(0.5, a, b[:10]); err == nil {
		t.Fatal("length mismatch accepted")
	}
}

func TestSlerpA1111(t *testing.T) {
	const c, h, w = 4, 8, 8
	a := NewPhilox(1).Randn(c * h * w)
	b := NewPhilox(2).Randn(c * h * w)
	got, err := SlerpA1111(0.3, a, b, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	// Oracle: column (c, w) interpolated alone with the flat Slerp.
	for ci := 0; ci < c; ci++ {
		for wi := 0; wi < w; wi++ {
			ca, cb := make([]float32, h), make([]float32, h)
			for hi := 0; hi < h; hi++ {
				ca[hi], cb[hi] = a[(ci*h+hi)*w+wi], b[(ci*h+hi)*w+wi]
			}
			col, _ := Slerp(0.3, ca, cb)
			for hi := 0; hi < h; hi++ {
				if g := got[(ci*h+hi)*w+wi]; g != col[hi] {
					t.Fatalf("(%d,%d,%d) = %v, column slerp %v", ci, hi, wi, g, col[hi])
				}
			}
		}
	}
	if _, err := SlerpA1111(0.3, a, b, c, h, w+1); err == nil {
		t.Fatal("shape mismatch accepted")
	}
}

func norm(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// Benchmarks for one SD 512×512 latent (4×64×64 values).
func BenchmarkPhilox16384(b *testing.B) {
	p := NewPhilox(1)
	for b.Loop() {
		p.Randn(16384)
	}
}

func BenchmarkTorchCPU16384(b *testing.B) {
	g := NewTorchCPU(1)
	for b.Loop() {
		g.Randn(16384)
	}
}
