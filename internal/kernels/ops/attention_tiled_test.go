package ops

import (
	"fmt"
	"math"
	"testing"
)

// tiledCases: sizes around the kernel's strips (24 rows), tiles (96 rows),
// key blocks (64) and micro-kernels (4 keys, 4 channels), the head
// dimensions of Stable Diffusion (40, 80, 160, 512) and Gemma (256), GQA,
// F16 caches, every kind of masking.
var tiledCases = []attnCase{
	{name: "sd d40", nHead: 2, nKVHead: 2, d: 40, dv: 40, nQ: 100, nKV: 130},
	{name: "sd cross d80", nHead: 2, nKVHead: 2, d: 80, dv: 80, nQ: 97, nKV: 77},
	{name: "d160", nHead: 1, nKVHead: 1, d: 160, dv: 160, nQ: 50, nKV: 67},
	{name: "vae d512", nHead: 1, nKVHead: 1, d: 512, dv: 512, nQ: 40, nKV: 70},
	{name: "d64 one key", nHead: 1, nKVHead: 1, d: 64, dv: 64, nQ: 33, nKV: 1},
	{name: "odd dims", nHead: 3, nKVHead: 3, d: 7, dv: 9, nQ: 45, nKV: 5},
	{name: "gqa causal f16", nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: 37, nKV: 150, causal: true, kf16: true, vf16: true},
	{name: "gqa window", nHead: 4, nKVHead: 2, d: 40, dv: 40, nQ: 70, nKV: 200, causal: true, window: 70},
	{name: "softcap", nHead: 2, nKVHead: 1, d: 33, dv: 17, nQ: 40, nKV: 65, causal: true, softcap: 5},
	{name: "mask holes", nHead: 2, nKVHead: 1, d: 32, dv: 32, nQ: 60, nKV: 100, causal: true, mask: true, holes: true, vf16: true},
	{name: "f16 k only, holes", nHead: 8, nKVHead: 8, d: 80, dv: 80, nQ: 32, nKV: 129, kf16: true, holes: true},
	{name: "window 1", nHead: 2, nKVHead: 2, d: 16, dv: 16, nQ: 40, nKV: 40, causal: true, window: 1},
	{name: "mask only", nHead: 1, nKVHead: 1, d: 24, dv: 24, nQ: 200, nKV: 90, mask: true},
}

// runTiled runs AttentionTiled over all tiles, split into the given parts.
func runTiled(t *testing.T, p AttentionParams, a *AttentionArgs, nQ int, parts [][2]int) []float32 {
	t.Helper()
	for i := range a.Out {
		a.Out[i] = float32(math.NaN()) // every output must be written
	}
	for _, s := range parts {
		if err := AttentionTiled(p, a, nQ, s[0], s[1]); err != nil {
			t.Fatal(err)
		}
	}
	return append([]float32(nil), a.Out...)
}

// Tolerances. Outputs are convex combinations of v entries (|v| ≲ 6 at
// the test's scale 1.5). Against the float64 oracle: the scores are float32
// dot products (error ≲ √d·2^-24·Σ|q_e k_e|·scale ≈ 1e-5 for d = 512
// here), which move each weight by that relative amount and so the output
// by at most that times max|v|; the float32 softmax adds ~1e-7 relative.
// 5e-5 absolute (the largest seen is 8e-6, at d = 512) is half the row
// kernel's own bound of 1e-4. Against attentionRef, the same algorithm in
// another summation order with another exp (both ~1e-7 relative): 2e-5
// absolute, about 3e-6 of the output scale, as the row kernel's fast path.
func TestAttentionTiled(t *testing.T) {
	for ci, c := range tiledCases {
		t.Run(c.name, func(t *testing.T) {
			p, a := makeAttn(c, uint64(300+ci))
			poisonHoles(c, a)
			n, ok := AttentionTiles(p, c.nQ)
			if !ok {
				t.Fatalf("AttentionTiles(%d queries) does not apply", c.nQ)
			}
			want := naiveAttention(c, p, a)
			got := runTiled(t, p, a, c.nQ, [][2]int{{0, n}})
			var worst float64
			for i, w := range want {
				d := math.Abs(float64(got[i]) - w)
				if !(d <= 5e-5) {
					t.Fatalf("tiled [%d] = %g, oracle %g", i, got[i], w)
				}
				worst = max(worst, d)
			}
			rows := c.nQ * c.nHead
			var ref []float32
			withRef(func() {
				clear(a.Out)
				if err := Attention(p, a, c.nQ, 0, rows); err != nil {
					t.Fatal(err)
				}
				ref = append([]float32(nil), a.Out...)
				// the reference tiles are attentionRef's rows, bit for bit
				sameBits(t, "reference tiles vs rows", runTiled(t, p, a, c.nQ, [][2]int{{0, n}}), ref)
			})
			closeEnough(t, "tiled vs attentionRef", got, ref, 2e-5, 0)
			for _, parts := range splits(n) {
				sameBits(t, fmt.Sprintf("split %d", len(parts)), runTiled(t, p, a, c.nQ, parts), got)
			}
			t.Logf("%d tiles, max |tiled - oracle| %.3g", n, worst)
		})
	}
}

// poisonHoles fills the keys and values of empty cells (negative
// positions) with NaN: they must never be read.
func poisonHoles(c attnCase, a *AttentionArgs) {
	for j, kp := range a.KPos {
		if kp >= 0 {
			continue
		}
		for _, kv := range []struct {
			x KV
			d int
		}{{a.K, c.d}, {a.V, c.dv}} {
			for g := 0; g < c.nKVHead; g++ {
				off := j*kv.x.RowStride + g*kv.x.HeadStride
				for e := 0; e < kv.d; e++ {
					if kv.x.F16 != nil {
						kv.x.F16[off+e] = 0x7e00
					} else {
						kv.x.F32[off+e] = float32(math.NaN())
					}
				}
			}
		}
	}
}

// A query that sees no key gets zeros, as in Attention.
func TestAttentionTiledNoVisibleKey(t *testing.T) {
	c := attnCase{nHead: 2, nKVHead: 1, d: 40, dv: 40, nQ: 50, nKV: 70, mask: true}
	p, a := makeAttn(c, 7)
	for j := 0; j < c.nKV; j++ {
		a.Mask[5*c.nKV+j] = float32(math.Inf(-1)) // query 5 sees nothing
	}
	for _, fast := range []bool{true, false} {
		if fast && !hasAVX2 {
			continue
		}
		prev := useFast
		useFast = fast
		n, _ := AttentionTiles(p, c.nQ)
		got := runTiled(t, p, a, c.nQ, [][2]int{{0, n}})
		useFast = prev
		for e, v := range got[5*c.nHead*c.dv : 6*c.nHead*c.dv] {
			if v != 0 {
				t.Fatalf("fast=%v: out[5][%d] = %g, want 0", fast, e, v)
			}
		}
	}
	// no keys at all
	a.NKV, a.Mask = 0, nil
	n, _ := AttentionTiles(p, c.nQ)
	for _, v := range runTiled(t, p, a, c.nQ, [][2]int{{0, n}}) {
		if v != 0 {
			t.Fatalf("no keys: output %g, want 0", v)
		}
	}
}

func TestAttentionTiles(t *testing.T) {
	p := AttentionParams{NHead: 8, NKVHead: 2, HeadDim: 16, Scale: 1}
	for _, tc := range []struct {
		nQ, tiles int
		ok        bool
	}{{1, 0, false}, {7, 0, false}, {8, 2, true}, {24, 2, true}, {25, 4, true}, {4096, 2 * 171, true}} {
		n, ok := AttentionTiles(p, tc.nQ)
		if n != tc.tiles || ok != tc.ok {
			t.Errorf("AttentionTiles(%d queries) = %d, %v; want %d, %v", tc.nQ, n, ok, tc.tiles, tc.ok)
		}
	}
	for _, q := range []AttentionParams{
		{NHead: 8, NKVHead: 2, HeadDim: 16, GGMLSmallBatch: true},
		{NHead: 8, NKVHead: 2, HeadDim: 16, Numerics: NumericsGGMLNoFlash},
		{NHead: 8, NKVHead: 3, HeadDim: 16},
	} {
		if _, ok := AttentionTiles(q, 1000); ok {
			t.Errorf("AttentionTiles(%+v) applies", q)
		}
	}
	// the tiles of a kv head partition its rows
	for _, rows := range []int{32, 95, 96, 97, 500, 4096} {
		n := (rows + attnTileRows - 1) / attnTileRows
		seen := make([]int, rows)
		for tt := 0; tt < n; tt++ {
			r0, r1 := tileRows(tt, n, rows)
			for r := r0; r < r1; r++ {
				seen[r]++
			}
		}
		for r, k := range seen {
			if k != 1 {
				t.Fatalf("%d rows: row %d in %d tiles", rows, r, k)
			}
		}
	}
	c := attnCase{nHead: 2, nKVHead: 2, d: 8, dv: 8, nQ: 40, nKV: 3}
	pp, a := makeAttn(c, 1)
	n, _ := AttentionTiles(pp, c.nQ)
	for _, r := range [][2]int{{-1, 1}, {0, n + 1}, {2, 1}} {
		if err := AttentionTiled(pp, a, c.nQ, r[0], r[1]); err == nil {
			t.Errorf("tile range %v accepted", r)
		}
	}
	if err := AttentionTiled(pp, a, 3, 0, 1); err == nil {
		t.Error("3 queries accepted (below the tiled minimum)")
	}
}

// The AVX-512 kernel runs the same operations per lane as the AVX2 one, so
// both give the same bits (skipped on CPUs without AVX-512F).
func TestAttentionTiledAVX512(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512F on this CPU (or no cgo): the AVX-512 tiled kernel cannot run here")
	}
	for ci, c := range tiledCases {
		t.Run(c.name, func(t *testing.T) {
			p, a := makeAttn(c, uint64(300+ci))
			n, _ := AttentionTiles(p, c.nQ)
			wide := runTiled(t, p, a, c.nQ, [][2]int{{0, n}})
			prev := tiledAVX512
			tiledAVX512 = false
			defer func() { tiledAVX512 = prev }()
			sameBits(t, "avx512 vs avx2", wide, runTiled(t, p, a, c.nQ, [][2]int{{0, n}}))
		})
	}
}

// The 16-lane layout of the AVX-512 kernel (strips of 48 rows), emulated
// with pairs of AVX2 vectors, gives the AVX2 kernel's bits too.
func TestAttentionTiledEmu16(t *testing.T) {
	needFast(t)
	for ci, c := range tiledCases {
		t.Run(c.name, func(t *testing.T) {
			p, a := makeAttn(c, uint64(300+ci))
			n, _ := AttentionTiles(p, c.nQ)
			prev, prevEmu := tiledAVX512, tiledEmu16
			defer func() { tiledAVX512, tiledEmu16 = prev, prevEmu }()
			tiledAVX512 = false
			narrow := runTiled(t, p, a, c.nQ, [][2]int{{0, n}})
			tiledEmu16 = true
			for _, parts := range splits(n) {
				sameBits(t, fmt.Sprintf("emu16 (split %d) vs avx2", len(parts)), runTiled(t, p, a, c.nQ, parts), narrow)
			}
		})
	}
}

// FuzzAttentionTiled draws a random configuration (sizes, GQA, F16 caches,
// causal, window, softcap, mask, empty cells) from the fuzzer's bytes and
// checks the tiled kernel against attentionRef (2e-5 absolute, as above)
// and its own bits at another split.
func FuzzAttentionTiled(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8} {
		f.Add(seed, uint16(seed*7919))
	}
	f.Fuzz(func(t *testing.T, seed uint64, shape uint16) {
		r := newRand(seed)
		kvh := 1 + int(shape%3)
		c := attnCase{
			nKVHead: kvh, nHead: kvh * (1 + int(shape/3%3)),
			d: 1 + r.IntN(96), dv: 1 + r.IntN(96),
			nQ: 1 + r.IntN(140), nKV: 1 + r.IntN(200),
			causal: r.IntN(2) == 0, kf16: r.IntN(2) == 0, vf16: r.IntN(2) == 0,
			mask: r.IntN(3) == 0, holes: r.IntN(3) == 0,
		}
		if r.IntN(3) == 0 {
			c.window = 1 + r.IntN(80)
		}
		if r.IntN(4) == 0 {
			c.softcap = 1 + 30*r.Float32()
		}
		p, a := makeAttn(c, seed)
		poisonHoles(c, a)
		n, ok := AttentionTiles(p, c.nQ)
		if !ok {
			return
		}
		got := runTiled(t, p, a, c.nQ, [][2]int{{0, n}})
		var ref []float32
		withRef(func() {
			clear(a.Out)
			if err := Attention(p, a, c.nQ, 0, c.nQ*c.nHead); err != nil {
				t.Fatal(err)
			}
			ref = append([]float32(nil), a.Out...)
		})
		closeEnough(t, fmt.Sprintf("%+v: tiled vs attentionRef", c), got, ref, 2e-5, 0)
		sameBits(t, "split", runTiled(t, p, a, c.nQ, [][2]int{{0, n / 2}, {n / 2, n}}), got)
	})
}
