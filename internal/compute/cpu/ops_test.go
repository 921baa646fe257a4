package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"mica/internal/compute"
	"mica/internal/kernels/ops"
	"mica/internal/tensor"
)

// runBoth runs f on a 1-thread and a 3-thread backend and requires
// bit-identical outputs: work is split by rows only, never inside a
// reduction, so the thread count must not change a single bit.
func runBoth(t *testing.T, name string, f func(b *Backend) []float32) []float32 {
	t.Helper()
	b1, b3 := New(1), New(3)
	defer b1.Close()
	defer b3.Close()
	a, c := f(b1), f(b3)
	if !sameBits(a, c) {
		t.Fatalf("%s: 1 and 3 threads differ", name)
	}
	return a
}

func TestRowOpsThreadInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const rows, n = 37, 259
	x := randVals(rng, rows*n)
	w := randVals(rng, n)
	bias := randVals(rng, n)
	rms := runBoth(t, "rmsnorm", func(b *Backend) []float32 {
		xt, wt, yt := newF32(t, b, x, rows, n), newF32(t, b, w, n), newF32(t, b, nil, rows, n)
		if err := compute.Norm(compute.RMSNorm, xt, wt, nil, yt, 1e-6); err != nil {
			t.Fatal(err)
		}
		return readF32(t, b, yt)
	})
	// Check the dispatch against the definition (float64): rows are
	// normalised, 1e-5 relative covers float32 rounding of a 259-term sum.
	for r := 0; r < rows; r++ {
		var ss float64
		for _, v := range x[r*n : (r+1)*n] {
			ss += float64(v) * float64(v)
		}
		scale := 1 / math.Sqrt(ss/n+1e-6)
		for i := 0; i < n; i++ {
			want := float64(x[r*n+i]) * scale * float64(w[i])
			if d := math.Abs(float64(rms[r*n+i]) - want); d > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("rmsnorm [%d,%d] = %v want %v", r, i, rms[r*n+i], want)
			}
		}
	}
	runBoth(t, "layernorm", func(b *Backend) []float32 {
		xt, wt, bt, yt := newF32(t, b, x, rows, n), newF32(t, b, w, n), newF32(t, b, bias, n), newF32(t, b, nil, rows, n)
		if err := compute.Norm(compute.LayerNorm, xt, wt, bt, yt, 1e-5); err != nil {
			t.Fatal(err)
		}
		return readF32(t, b, yt)
	})
	sm := runBoth(t, "softmax", func(b *Backend) []float32 {
		xt, yt := newF32(t, b, x, rows, n), newF32(t, b, nil, rows, n)
		if err := compute.Softmax(xt, yt, 0.5); err != nil {
			t.Fatal(err)
		}
		return readF32(t, b, yt)
	})
	for r := 0; r < rows; r++ {
		var s float64
		for _, v := range sm[r*n : (r+1)*n] {
			s += float64(v)
		}
		if math.Abs(s-1) > 1e-5 {
			t.Fatalf("softmax row %d sums to %v", r, s)
		}
	}
	for _, k := range []compute.UnaryKind{compute.GELU, compute.GELUErf, compute.SiLU, compute.QuickGELU, compute.Softcap, compute.Tanh} {
		runBoth(t, "unary", func(b *Backend) []float32 {
			xt, yt := newF32(t, b, x, rows, n), newF32(t, b, nil, rows, n)
			if err := compute.Unary(k, xt, yt, 0.7); err != nil {
				t.Fatal(err)
			}
			return readF32(t, b, yt)
		})
	}
	// Gated activations: f(x)·g in one pass, written over the gate (the
	// way a feed-forward block calls it), equal to the activation then the
	// product (x spans ±12, so GELU's clamped ends at ±10 are covered).
	wide := make([]float32, len(x))
	for i, v := range x {
		wide[i] = 12 * v
	}
	for _, k := range []compute.UnaryKind{compute.GELU, compute.SiLU} {
		got := runBoth(t, "gated", func(b *Backend) []float32 {
			xt, gt := newF32(t, b, wide, rows, n), newF32(t, b, x, rows, n)
			if err := compute.Gated(k, xt, gt, gt); err != nil {
				t.Fatal(err)
			}
			return readF32(t, b, gt)
		})
		b := New(2)
		xt, yt := newF32(t, b, wide, rows, n), newF32(t, b, nil, rows, n)
		if err := compute.Unary(k, xt, yt, 0); err != nil {
			t.Fatal(err)
		}
		act := readF32(t, b, yt)
		b.Close()
		for i := range got {
			if want := act[i] * x[i]; got[i] != want {
				t.Fatalf("gated %d: [%d] f(%v)·%v = %v, want %v", k, i, wide[i], x[i], got[i], want)
			}
		}
	}
	{
		b := New(1)
		xt := newF32(t, b, x, rows, n)
		if err := compute.Gated(compute.Softcap, xt, xt, xt); err == nil {
			t.Fatal("a gated softcap was accepted")
		}
		if err := compute.Gated(compute.GELU, xt, newF32(t, b, x[:n], n), xt); err == nil {
			t.Fatal("a gate of another shape was accepted")
		}
		b.Close()
	}
	added := runBoth(t, "add-row", func(b *Backend) []float32 {
		xt, wt, yt := newF32(t, b, x, rows, n), newF32(t, b, w, n), newF32(t, b, nil, rows, n)
		if err := compute.AddTo(xt, wt, yt); err != nil {
			t.Fatal(err)
		}
		return readF32(t, b, yt)
	})
	if added[5*n+3] != x[5*n+3]+w[3] {
		t.Fatal("row broadcast add")
	}
}

// TestAttentionOnCacheView: attention over a strided view of a larger
// F16 cache (the way a KV cache is read) against a float64 reference.
// Tolerance 2e-3: K/V are F16 (the reference uses the same rounded values),
// the rest is float32 arithmetic over ≤ 40 keys.
func TestAttentionOnCacheView(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const heads, kvHeads, d, nq, nk, capacity = 4, 2, 32, 5, 23, 40
	q := randVals(rng, nq*heads*d)
	cache := randVals(rng, capacity*kvHeads*d)
	vcache := randVals(rng, capacity*kvHeads*d)
	qpos := make([]int32, nq)
	for i := range qpos {
		qpos[i] = int32(nk - nq + i)
	}
	kpos := make([]int32, nk)
	for i := range kpos {
		kpos[i] = int32(i)
	}
	const window = 9
	out := runBoth(t, "attention", func(b *Backend) []float32 {
		k32, v32 := newF32(t, b, cache, capacity, kvHeads, d), newF32(t, b, vcache, capacity, kvHeads, d)
		k16, _ := b.Alloc(tensor.F16, capacity, kvHeads, d)
		v16, _ := b.Alloc(tensor.F16, capacity, kvHeads, d)
		if err := compute.Copy(k32, k16); err != nil {
			t.Fatal(err)
		}
		if err := compute.Copy(v32, v16); err != nil {
			t.Fatal(err)
		}
		kv, _ := compute.Rows(k16, 0, nk)
		vv, _ := compute.Rows(v16, 0, nk)
		qt, ot := newF32(t, b, q, nq, heads, d), newF32(t, b, nil, nq, heads, d)
		err := compute.Attention(compute.AttentionOp{Q: qt, K: kv, V: vv, Out: ot, QPos: qpos, KPos: kpos,
			Scale: 1 / float32(math.Sqrt(d)), Causal: true, Window: window})
		if err != nil {
			t.Fatal(err)
		}
		return readF32(t, b, ot)
	})
	round := func(vals []float32) []float64 {
		out := make([]float64, len(vals))
		for i, v := range vals {
			out[i] = float64(halfRound(v))
		}
		return out
	}
	kr, vr := round(cache), round(vcache)
	for i := 0; i < nq; i++ {
		for h := 0; h < heads; h++ {
			g := h / (heads / kvHeads)
			var scores []float64
			var idx []int
			maxS := math.Inf(-1)
			for j := 0; j < nk; j++ {
				if kpos[j] > qpos[i] || qpos[i]-kpos[j] >= window {
					continue
				}
				var s float64
				for e := 0; e < d; e++ {
					s += float64(q[(i*heads+h)*d+e]) * kr[(j*kvHeads+g)*d+e]
				}
				s /= math.Sqrt(d)
				scores, idx = append(scores, s), append(idx, j)
				maxS = math.Max(maxS, s)
			}
			var sum float64
			for k := range scores {
				scores[k] = math.Exp(scores[k] - maxS)
				sum += scores[k]
			}
			for e := 0; e < d; e++ {
				var o float64
				for k, j := range idx {
					o += scores[k] / sum * vr[(j*kvHeads+g)*d+e]
				}
				if got := out[(i*heads+h)*d+e]; math.Abs(float64(got)-o) > 2e-3 {
					t.Fatalf("q%d h%d e%d: %v want %v", i, h, e, got, o)
				}
			}
		}
	}
}

// TestTiledAttentionThreadInvariant: many queries take the tiled attention
// kernel; its result must not depend on the number of threads.
func TestTiledAttentionThreadInvariant(t *testing.T) {
	const nq, nk, heads, d = 300, 77, 8, 40
	rng := rand.New(rand.NewPCG(5, 6))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32()*2 - 1
		}
		return v
	}
	q, k, v := fill(nq*heads*d), fill(nk*heads*d), fill(nk*heads*d)
	var outs [][]float32
	for _, threads := range []int{1, 3} {
		b := New(threads)
		qt, _ := compute.FromF32(b, q, nq, heads, d)
		kt, _ := compute.FromF32(b, k, nk, heads, d)
		vt, _ := compute.FromF32(b, v, nk, heads, d)
		ot, _ := b.Alloc(tensor.F32, nq, heads, d)
		qpos, kpos := make([]int32, nq), make([]int32, nk)
		if err := compute.Attention(compute.AttentionOp{Q: qt, K: kt, V: vt, Out: ot, QPos: qpos, KPos: kpos, Scale: 0.158}); err != nil {
			t.Fatal(err)
		}
		o, _ := compute.ToF32(ot)
		outs = append(outs, o)
		b.Close()
	}
	for i := range outs[0] {
		if outs[0][i] != outs[1][i] {
			t.Fatalf("element %d: %v with 1 thread, %v with 3", i, outs[0][i], outs[1][i])
		}
	}
}

// TestRoPEKeptTables: RoPE through the backend's kept angle tables gives
// the bits of ops.RoPE computing its own angles, when a table is reused
// (same positions and parameters), when only the parameters differ (base,
// frequency factors — a kept table must not be taken for them — or NeoX,
// which only changes how a table is applied), when
// the positions differ, after more parameter sets than tables are kept,
// and for a run too long to keep.
func TestRoPEKeptTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const heads, dim = 3, 16
	factors := make([]float32, 4)
	for i := range factors {
		factors[i] = 1 + float32(i)
	}
	type call struct {
		pos     []int32
		base    float32
		neoX    bool
		factors []float32
	}
	long := make([]int32, maxRopeTable/8+1)
	for i := range long {
		long[i] = int32(i)
	}
	calls := []call{
		{[]int32{5, 9}, 10000, true, nil},
		{[]int32{5, 9}, 10000, true, nil}, // kept
		{[]int32{5, 9}, 1e6, true, nil},
		{[]int32{5, 9}, 10000, false, nil},
		{[]int32{5, 9}, 10000, true, factors},
		{[]int32{5, 10}, 10000, true, nil},
		{[]int32{5, 9}, 10000, true, factors}, // kept
		{[]int32{5, 9}, 10000, true, nil},     // dropped by then: computed again
		{long, 10000, true, nil},
	}
	b := New(2)
	defer b.Close()
	for i, c := range calls {
		n := len(c.pos)
		x := randVals(rng, n*heads*dim)
		xt := newF32(t, b, x, n, heads, dim)
		op := compute.RoPEOp{X: xt, Pos: c.pos, NRot: 8, Base: c.base, FreqScale: 1, NeoX: c.neoX}
		p := ops.RoPEParams{NRot: 8, Base: c.base, FreqScale: 1, NeoX: c.neoX}
		if c.factors != nil {
			op.Factors = newF32(t, b, c.factors, len(c.factors))
			p.Factors = c.factors
		}
		if err := compute.RoPE(op); err != nil {
			t.Fatal(err)
		}
		ops.RoPE(x, c.pos, heads, dim, p, 0, n*heads)
		if got := readF32(t, b, xt); !sameBits(got, x) {
			t.Fatalf("call %d: the backend's RoPE differs from ops.RoPE", i)
		}
	}
}
