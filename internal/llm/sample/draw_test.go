package sample

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

func randomLogits(seed uint64, n int, sigma float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * sigma)
	}
	return l
}

func draws(t *testing.T, p Params, logits []float32, n int) []int32 {
	t.Helper()
	s, err := New(p, len(logits))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int32, n)
	x := make([]float32, len(logits))
	for i := range out {
		copy(x, logits)
		if out[i], err = s.Sample(x); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestDeterminism(t *testing.T) {
	l := randomLogits(1, 600, 2)
	for name, p := range map[string]Params{
		"plain":   {Temperature: 1, Seed: 42},
		"default": {Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: 42},
		"topp":    {Temperature: 1.2, TopP: 0.9, Seed: 42},
		"minp":    {Temperature: 1, MinP: 0.02, Seed: 42},
		"typical": {Temperature: 1, TypicalP: 0.8, Seed: 42},
	} {
		a := draws(t, p, l, 1000)
		b := draws(t, p, l, 1000)
		if !slices.Equal(a, b) {
			t.Errorf("%s: same seed gave different sequences", name)
		}
		p.Seed = 43
		c := draws(t, p, l, 1000)
		same := 0
		for i := range a {
			if a[i] == c[i] {
				same++
			}
		}
		// Each config spreads its mass over many tokens, so two independent
		// 1000-draw sequences agree in well under 900 places.
		if same > 900 {
			t.Errorf("%s: seeds 42 and 43 agree on %d of 1000 draws", name, same)
		}
		distinct := map[int32]bool{}
		for _, id := range a {
			distinct[id] = true
		}
		if len(distinct) < 5 {
			t.Errorf("%s: only %d distinct tokens in 1000 draws", name, len(distinct))
		}
	}
}

func TestResetAndRandomSeed(t *testing.T) {
	l := randomLogits(2, 500, 1)
	s, _ := New(Params{Temperature: 1, Seed: -1}, len(l))
	if s.Seed() < 0 {
		t.Fatalf("random seed %d is negative", s.Seed())
	}
	first := make([]int32, 100)
	for i := range first {
		first[i], _ = s.Sample(slices.Clone(l))
	}
	s.Reset()
	for i := range first {
		if got, _ := s.Sample(slices.Clone(l)); got != first[i] {
			t.Fatalf("after Reset draw %d = %d, want %d", i, got, first[i])
		}
	}
	replay := draws(t, Params{Temperature: 1, Seed: s.Seed()}, l, 100)
	if !slices.Equal(replay, first) {
		t.Error("replaying Seed() did not reproduce the random-seed run")
	}
	s2, _ := New(Params{Temperature: 1, Seed: -1}, len(l))
	if s2.Seed() == s.Seed() {
		t.Error("two random seeds are equal")
	}
}

// TestPinnedSequence pins the documented draw: the PCG seeding, u, exp32,
// the block sums and the walk. If this fails, every seeded run in the field
// changes: that needs a reason and a note in the package doc. The first
// sequence is also recomputed from the documented algorithm in the test.
func TestPinnedSequence(t *testing.T) {
	l := lnProbs(0.1, 0.5, 0.05, 0.2, 0.15)
	got := draws(t, Params{Temperature: 1, Seed: 1234}, l, 24)
	golden := []int32{4, 4, 1, 3, 3, 1, 0, 1, 1, 1, 3, 4, 3, 3, 1, 0, 4, 0, 0, 1, 1, 2, 3, 1}
	if !slices.Equal(got, golden) {
		t.Errorf("seed 1234 gave %v, pinned %v", got, golden)
	}
	rng := rand.NewPCG(1234, pcgStream)
	m := slices.Max(l)
	w := make([]float32, len(l))
	for i, v := range l {
		w[i] = exp32(v - m)
	}
	total := blockMass(w)
	for i := range got {
		u := float64(rng.Uint64()>>11) * 0x1p-53
		cum, want := 0.0, int32(-1)
		for id, x := range w {
			cum += float64(x)
			if cum >= u*total {
				want = int32(id)
				break
			}
		}
		// blockMass sums in a different order than the walk: only a draw
		// within 1e-12 of a boundary could tell them apart.
		if got[i] != want && !nearBoundary(w, u*total, 1e-12) {
			t.Errorf("draw %d = %d, documented algorithm gives %d (u = %v)", i, got[i], want, u)
		}
	}
	big := randomLogits(77, 1000, 2)
	if got := draws(t, Params{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: 99}, big, 12); !slices.Equal(got,
		[]int32{179, 320, 806, 624, 320, 914, 294, 824, 294, 778, 217, 385}) {
		t.Errorf("pinned default-chain sequence changed: %v", got)
	}
	if got := draws(t, Params{Temperature: 1.1, Seed: 99}, big, 12); !slices.Equal(got,
		[]int32{179, 320, 851, 570, 361, 973, 294, 914, 273, 778, 217, 425}) {
		t.Errorf("pinned whole-vocabulary sequence changed: %v", got)
	}
}

func nearBoundary(p []float32, u, eps float64) bool {
	cum := 0.0
	for _, q := range p {
		cum += float64(q)
		if math.Abs(cum-u) < eps {
			return true
		}
	}
	return false
}

// checkFrequencies draws n tokens and requires every token's count to be
// within 5 binomial standard deviations of n*want (plus 1 for rounding):
// a false failure has probability below 1e-5 per token, and with the seed
// fixed the test is deterministic anyway.
func checkFrequencies(t *testing.T, name string, p Params, logits []float32, want map[int32]float64, n int) {
	t.Helper()
	counts := map[int32]int{}
	for _, id := range draws(t, p, logits, n) {
		counts[id]++
	}
	for id, c := range counts {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: token %d drawn %d times, expected never", name, id, c)
		}
	}
	for id, q := range want {
		mean := float64(n) * q
		sd := math.Sqrt(float64(n) * q * (1 - q))
		if d := math.Abs(float64(counts[id]) - mean); d > 5*sd+1 {
			t.Errorf("%s: token %d drawn %d times, expected %.0f ± %.0f", name, id, counts[id], mean, 5*sd)
		}
	}
}

func TestDistributions(t *testing.T) {
	l := lnProbs(0.1, 0.5, 0.05, 0.2, 0.15)
	const n = 20000
	checkFrequencies(t, "T=1", Params{Temperature: 1, Seed: 1}, l,
		map[int32]float64{0: 0.1, 1: 0.5, 2: 0.05, 3: 0.2, 4: 0.15}, n)
	// T=0.5 squares the probabilities: 0.01, 0.25, 0.0025, 0.04, 0.0225.
	sq := map[int32]float64{0: 0.01, 1: 0.25, 2: 0.0025, 3: 0.04, 4: 0.0225}
	z := 0.0
	for _, q := range sq {
		z += q
	}
	for id := range sq {
		sq[id] /= z
	}
	checkFrequencies(t, "T=0.5", Params{Temperature: 0.5, Seed: 2}, l, sq, n)
	checkFrequencies(t, "top-k 2", Params{Temperature: 1, TopK: 2, Seed: 3}, l,
		map[int32]float64{1: 0.5 / 0.7, 3: 0.2 / 0.7}, n)
	checkFrequencies(t, "top-p 0.8", Params{Temperature: 1, TopP: 0.8, Seed: 4}, l,
		map[int32]float64{1: 0.5 / 0.85, 3: 0.2 / 0.85, 4: 0.15 / 0.85}, n)
	checkFrequencies(t, "min-p 0.35", Params{Temperature: 1, MinP: 0.35, Seed: 5}, l,
		map[int32]float64{1: 0.5 / 0.7, 3: 0.2 / 0.7}, n)

	// A large vocabulary through the full-softmax path (no filters) and the
	// one-pass min-p path: 3 heavy tokens among 4000 at -30.
	big := make([]float32, 4000)
	for i := range big {
		big[i] = -30
	}
	h := lnProbs(0.6, 0.3, 0.1)
	big[777], big[3000], big[3999] = h[0], h[1], h[2]
	heavy := map[int32]float64{777: 0.6, 3000: 0.3, 3999: 0.1}
	checkFrequencies(t, "big plain", Params{Temperature: 1, Seed: 6}, big, heavy, 3000)
	checkFrequencies(t, "big min-p", Params{Temperature: 1, MinP: 0.01, Seed: 7}, big, heavy, 3000)
	checkFrequencies(t, "big top-p", Params{Temperature: 1, TopP: 0.95, Seed: 8}, big, heavy, 3000)
}

func TestLogprobs(t *testing.T) {
	l := randomLogits(9, 3000, 3)
	l[100] = float32(math.Inf(-1))
	// float64 reference log-softmax of the raw logits.
	m := math.Inf(-1)
	for _, v := range l {
		m = max(m, float64(v))
	}
	sum := 0.0
	for _, v := range l {
		sum += math.Exp(float64(v) - m)
	}
	ref := func(id int32) float64 { return float64(l[id]) - m - math.Log(sum) }
	order := make([]int32, len(l))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if l[a] != l[b] {
			if l[a] > l[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	// The bias lifts token order[500] to the top; the reported logprob must
	// still be the raw one.
	biased := order[500]
	s, _ := New(Params{LogitBias: map[int32]float32{biased: 100}}, len(l))
	for _, topN := range []int{0, 1, 5, 20} {
		x := slices.Clone(l)
		r, err := s.SampleWithLogprobs(x, topN)
		if err != nil {
			t.Fatal(err)
		}
		if r.ID != biased {
			t.Fatalf("greedy with bias chose %d, want %d", r.ID, biased)
		}
		// float32 log-probabilities of values up to ~30: 1e-5 absolute
		// covers float32 rounding of l-m and of the softmax sum.
		if d := math.Abs(float64(r.Logprob) - ref(biased)); d > 1e-5 {
			t.Errorf("chosen logprob %v, reference %v", r.Logprob, ref(biased))
		}
		if len(r.Top) != topN {
			t.Fatalf("top_logprobs %d returned %d", topN, len(r.Top))
		}
		for i, e := range r.Top {
			if e.ID != order[i] {
				t.Errorf("top[%d] = %d, want %d", i, e.ID, order[i])
			}
			if d := math.Abs(float64(e.Logprob) - ref(e.ID)); d > 1e-5 {
				t.Errorf("top[%d] logprob %v, reference %v", i, e.Logprob, ref(e.ID))
			}
		}
	}
	// A whole-vocabulary top list works too, and -Inf gives -Inf.
	small := []float32{0, float32(math.Inf(-1)), 1}
	s, _ = New(Params{Temperature: 1, Seed: 1}, 3)
	r, err := s.SampleWithLogprobs(small, 3)
	if err != nil || len(r.Top) != 3 || r.Top[0].ID != 2 || r.Top[2].ID != 1 || !math.IsInf(float64(r.Top[2].Logprob), -1) {
		t.Errorf("full top list: %+v, %v", r, err)
	}
	if _, err := s.SampleWithLogprobs(small, 4); err == nil {
		t.Error("top_logprobs beyond the vocabulary: no error")
	}
	if _, err := s.SampleWithLogprobs([]float32{0, float32(math.NaN()), 1}, 1); err == nil {
		t.Error("NaN logit with logprobs: no error")
	}
}

// TestSameTokensAnyThreads runs the same seeded sequence alone, and then in
// eight goroutines at once under GOMAXPROCS 1 and 2: a Sampler uses no
// threads and no shared state, so every run must match.
func TestSameTokensAnyThreads(t *testing.T) {
	l := randomLogits(21, 5000, 2)
	p := Params{Temperature: 0.9, TopK: 100, TopP: 0.9, MinP: 0.01, RepeatPenalty: 1.1, RepeatLastN: 16, Seed: 77}
	run := func() []int32 {
		s, _ := New(p, len(l))
		out := make([]int32, 300)
		x := make([]float32, len(l))
		for i := range out {
			copy(x, l)
			id, err := s.Sample(x)
			if err != nil {
				panic(err)
			}
			_ = s.Accept(id)
			out[i] = id
		}
		return out
	}
	want := run()
	for _, procs := range []int{1, 2} {
		old := runtime.GOMAXPROCS(procs)
		results := make([][]int32, 8)
		var wg sync.WaitGroup
		for g := range results {
			wg.Go(func() { results[g] = run() })
		}
		wg.Wait()
		runtime.GOMAXPROCS(old)
		for g, r := range results {
			if !slices.Equal(r, want) {
				t.Errorf("GOMAXPROCS %d goroutine %d: sequence differs", procs, g)
			}
		}
	}
}

// TestTinyTemperature: l/T overflows float32 for T = 1e-38, which must
// behave like greedy rather than fail (both draw paths).
func TestTinyTemperature(t *testing.T) {
	l := []float32{3, 30, -5, 29.5, 0}
	for _, p := range []Params{{Temperature: 1e-38, Seed: 1}, {Temperature: 1e-38, TopK: 3, Seed: 1}} {
		for _, id := range draws(t, p, l, 20) {
			if id != 1 {
				t.Fatalf("%+v: drew %d, want 1", p, id)
			}
		}
	}
}
