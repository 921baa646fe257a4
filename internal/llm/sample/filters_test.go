package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// survivorIDs runs the filters of a fresh Sampler on a copy of logits and
// returns the surviving ids, sorted.
func survivorIDs(t *testing.T, p Params, logits []float32) []int32 {
	t.Helper()
	s, err := New(p, len(logits))
	if err != nil {
		t.Fatal(err)
	}
	x := slices.Clone(logits)
	defer s.acquire()()
	s.adjust(x)
	c, full, err := s.survivors(x)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	if full {
		for i := range x {
			ids = append(ids, int32(i))
		}
		return ids
	}
	for _, e := range c {
		ids = append(ids, e.id)
	}
	slices.Sort(ids)
	return ids
}

// lnProbs turns probabilities into logits (softmax inverts it exactly up to
// rounding).
func lnProbs(p ...float64) []float32 {
	l := make([]float32, len(p))
	for i, q := range p {
		l[i] = float32(math.Log(q))
	}
	return l
}

func TestGreedyIsArgmaxTiesLowest(t *testing.T) {
	s, _ := New(Greedy(), 6)
	for _, tc := range []struct {
		l    []float32
		want int32
	}{
		{[]float32{1, 5, 3, 5, 2, 3}, 1},
		{[]float32{7, 5, 3, 7, 2, 7}, 0},
		{[]float32{-1, -2, -0.5, -0.5, -3, -9}, 2},
		{[]float32{float32(math.Inf(-1)), -2, -0.5, -0.5, -3, 4}, 5},
	} {
		got, err := s.Sample(slices.Clone(tc.l))
		if err != nil || got != tc.want {
			t.Errorf("greedy %v = %d, %v; want %d", tc.l, got, err, tc.want)
		}
	}
}

func TestTopKExact(t *testing.T) {
	l := []float32{1, 5, 3, 5, 2, 3}
	for k, want := range map[int][]int32{
		1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {1, 2, 3, 5}, 5: {1, 2, 3, 4, 5}, 6: {0, 1, 2, 3, 4, 5},
	} {
		got := survivorIDs(t, Params{Temperature: 1, TopK: k}, l)
		if !slices.Equal(got, want) {
			t.Errorf("top-k %d = %v, want %v", k, got, want)
		}
	}
}

func TestTopPExact(t *testing.T) {
	// Probabilities 0.5, 0.2, 0.15, 0.1, 0.05 at shuffled ids; cumulative
	// 0.5, 0.7, 0.85, 0.95, 1. Targets stay 0.01 away from the boundaries.
	l := lnProbs(0.1, 0.5, 0.05, 0.2, 0.15)
	for _, tc := range []struct {
		p       float32
		minKeep int
		want    []int32
	}{
		{0.3, 0, []int32{1}},
		{0.49, 0, []int32{1}},
		{0.51, 0, []int32{1, 3}},
		{0.69, 0, []int32{1, 3}},
		{0.71, 0, []int32{1, 3, 4}},
		{0.9, 0, []int32{0, 1, 3, 4}},
		{0.96, 0, []int32{0, 1, 2, 3, 4}},
		{0.3, 3, []int32{1, 3, 4}},
	} {
		got := survivorIDs(t, Params{Temperature: 1, TopP: tc.p, MinKeep: tc.minKeep}, l)
		if !slices.Equal(got, tc.want) {
			t.Errorf("top-p %v min_keep %d = %v, want %v", tc.p, tc.minKeep, got, tc.want)
		}
	}
	// After top-k 3 the probabilities renormalise over 0.5, 0.2, 0.15:
	// cumulative 0.588, 0.824, 1.
	for p, want := range map[float32][]int32{0.5: {1}, 0.8: {1, 3}, 0.85: {1, 3, 4}} {
		got := survivorIDs(t, Params{Temperature: 1, TopK: 3, TopP: p}, l)
		if !slices.Equal(got, want) {
			t.Errorf("top-k 3 + top-p %v = %v, want %v", p, got, want)
		}
	}
}

func TestMinPExact(t *testing.T) {
	// Relative to the top probability 0.5: 0.4, 0.3, 0.2, 0.1.
	l := lnProbs(0.1, 0.5, 0.05, 0.2, 0.15)
	for _, tc := range []struct {
		p    float32
		want []int32
	}{
		{0.09, []int32{0, 1, 2, 3, 4}},
		{0.11, []int32{0, 1, 3, 4}},
		{0.35, []int32{1, 3}},
		{0.45, []int32{1}},
		{1, []int32{1}},
	} {
		got := survivorIDs(t, Params{Temperature: 1, MinP: tc.p}, l)
		if !slices.Equal(got, tc.want) {
			t.Errorf("min-p %v = %v, want %v", tc.p, got, tc.want)
		}
		got = survivorIDs(t, Params{Temperature: 1, MinP: tc.p, TopK: 4}, l) // the explicit-set path
		want := slices.DeleteFunc(slices.Clone(tc.want), func(id int32) bool { return id == 2 })
		if !slices.Equal(got, want) {
			t.Errorf("top-k 4 + min-p %v = %v, want %v", tc.p, got, want)
		}
	}
	got := survivorIDs(t, Params{Temperature: 1, MinP: 0.45, MinKeep: 3}, l)
	if want := []int32{1, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("min-p 0.45 min_keep 3 = %v, want %v", got, want)
	}
}

func TestTypicalExact(t *testing.T) {
	// p = 0.5, 0.2, 0.15, 0.1, 0.05: entropy H = 1.3325 nats; surprisals
	// 0.693, 1.609, 1.897, 2.303, 2.996; distances to H 0.639, 0.277,
	// 0.565, 0.970, 1.663. So the order is ids 3 (0.2), 4 (0.15), 1 (0.5),
	// 0 (0.1), 2 (0.05), cumulative 0.2, 0.35, 0.85, 0.95, 1.
	l := lnProbs(0.1, 0.5, 0.05, 0.2, 0.15)
	for _, tc := range []struct {
		p    float32
		want []int32
	}{
		{0.1, []int32{3}},
		{0.3, []int32{3, 4}},
		{0.5, []int32{1, 3, 4}},
		{0.9, []int32{0, 1, 3, 4}},
		{0.97, []int32{0, 1, 2, 3, 4}},
	} {
		got := survivorIDs(t, Params{Temperature: 1, TypicalP: tc.p}, l)
		if !slices.Equal(got, tc.want) {
			t.Errorf("typical %v = %v, want %v", tc.p, got, tc.want)
		}
	}
	// Greedy after typical takes the best survivor: with typical 0.3 the
	// top token (id 1) is not typical, so id 3 wins.
	s, _ := New(Params{TypicalP: 0.3}, len(l))
	if got, err := s.Sample(slices.Clone(l)); err != nil || got != 3 {
		t.Errorf("greedy after typical 0.3 = %d, %v; want 3", got, err)
	}
}

// TestFiltersMatchReference compares random parameter combinations with the
// sort-everything reference, on small vocabularies and on large ones (which
// take the bucketed paths). Logits are continuous random values, so no
// cumulative sum lands within rounding of a target.
func TestFiltersMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	sizes := []int{1, 2, 5, 17, 64, 600, 5000, 40000}
	nontrivial, bigNontrivial := 0, 0
	defer func() {
		// Guard against a test that passes by keeping everything or one.
		if !t.Failed() && (nontrivial < 100 || bigNontrivial < 10) {
			t.Errorf("only %d trials (%d large) kept a proper subset of 2+ tokens", nontrivial, bigNontrivial)
		}
	}()
	for trial := range 400 {
		n := sizes[trial%len(sizes)]
		if n >= 5000 && trial%3 != 0 {
			continue
		}
		sigma := []float64{0.3, 1, 3, 8}[r.IntN(4)]
		l := make([]float32, n)
		for i := range l {
			l[i] = float32(r.NormFloat64() * sigma)
		}
		if n > 4 && r.IntN(4) == 0 {
			l[r.IntN(n)] = float32(math.Inf(-1))
		}
		p := Params{Temperature: 1}
		if r.IntN(2) == 0 {
			p.TopK = 1 + r.IntN(n+3)
		}
		if r.IntN(3) == 0 {
			p.TypicalP = 0.05 + 0.9*r.Float32()
		}
		if r.IntN(2) == 0 {
			p.TopP = 0.05 + 0.9*r.Float32()
		}
		if r.IntN(2) == 0 {
			p.MinP = 0.001 + 0.5*r.Float32()
		}
		if r.IntN(4) == 0 {
			p.MinKeep = r.IntN(min(n, 8) + 1)
		}
		got := survivorIDs(t, p, l)
		want := refSurvivors(l, p)
		if len(want) > 1 && len(want) < n {
			nontrivial++
			if n >= 5000 {
				bigNontrivial++
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d n=%d sigma=%v %+v: got %d survivors, reference %d\n got %v\nwant %v",
				trial, n, sigma, p, len(got), len(want), head(got), head(want))
		}
	}
}

func head(x []int32) []int32 { return x[:min(len(x), 20)] }

func TestMassPrefixBucketedMatchesSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var sc scratch
	for trial := range 50 {
		n := 513 + r.IntN(20000)
		c := make([]cand, n)
		sum := 0.0
		for i := range c {
			q := math.Exp(r.NormFloat64() * 2)
			c[i] = cand{id: int32(i), p: float32(q), k: float32(r.NormFloat64())}
			sum += q
		}
		for i := range c {
			c[i].p = float32(float64(c[i].p) / sum)
		}
		target := 0.05 + 0.9*r.Float64()
		strict := trial%2 == 0
		a := slices.Clone(c)
		got := massPrefix(a, target, strict, 0, &sc)
		b := slices.Clone(c)
		slices.SortFunc(b, byKey)
		want, cum := n, 0.0
		for i, x := range b {
			cum += float64(x.p)
			if (strict && cum > target) || (!strict && cum >= target) {
				want = i + 1
				break
			}
		}
		ga, gb := ids(a[:got]), ids(b[:want])
		if !slices.Equal(ga, gb) {
			t.Fatalf("trial %d n=%d: bucketed keeps %d, sorted %d", trial, n, got, want)
		}
	}
}

func ids(c []cand) []int32 {
	out := make([]int32, len(c))
	for i, x := range c {
		out[i] = x.id
	}
	slices.Sort(out)
	return out
}

func TestSortByID(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var sc scratch
	for _, n := range []int{0, 1, 7, 256, 257, 3000, 100000} {
		perm := r.Perm(300000)[:n]
		c := make([]cand, n)
		for i, id := range perm {
			c[i] = cand{id: int32(id), l: float32(id)}
		}
		sortByID(c, &sc)
		for i := range c {
			if c[i].l != float32(c[i].id) || (i > 0 && c[i-1].id >= c[i].id) {
				t.Fatalf("n=%d: not sorted at %d", n, i)
			}
		}
	}
}

func TestPenalties(t *testing.T) {
	p := Params{RepeatPenalty: 2, FrequencyPenalty: 0.5, PresencePenalty: 0.25, RepeatLastN: 3}
	s, err := New(p, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []int32{4, 0, 1, 0} { // the window of 3 drops the 4
		if err := s.Accept(tok); err != nil {
			t.Fatal(err)
		}
	}
	l := []float32{2, -1, 0.5, 3, 1}
	s.adjust(l)
	// token 0 (twice): 2/2 - (2*0.5 + 0.25) = -0.25; token 1 (once):
	// -1*2 - (0.5 + 0.25) = -2.75; 2, 3 and 4 unchanged.
	if want := []float32{-0.25, -2.75, 0.5, 3, 1}; !slices.Equal(l, want) {
		t.Errorf("penalised logits %v, want %v", l, want)
	}
	// Zero is "non-positive": it is multiplied (stays 0) and then shifted.
	s.Reset()
	_ = s.Accept(2)
	l = []float32{2, -1, 0, 3, 1}
	s.adjust(l)
	if l[2] != -0.75 {
		t.Errorf("penalised zero logit %v, want -0.75", l[2])
	}
	// -1 keeps the whole history; 0 disables penalties.
	s, _ = New(Params{FrequencyPenalty: 1, RepeatLastN: -1}, 5)
	for range 100 {
		_ = s.Accept(3)
	}
	l = []float32{0, 0, 0, 0, 0}
	s.adjust(l)
	if l[3] != -100 {
		t.Errorf("whole-history frequency penalty gave %v, want -100", l[3])
	}
	s, _ = New(Params{FrequencyPenalty: 1, PresencePenalty: 1, RepeatPenalty: 3, RepeatLastN: 0}, 5)
	_ = s.Accept(3)
	l = []float32{0, 1, 2, 3, 4}
	s.adjust(l)
	if !slices.Equal(l, []float32{0, 1, 2, 3, 4}) {
		t.Errorf("repeat_last_n 0 changed the logits: %v", l)
	}
	// Penalties steer greedy decoding away from the repeated token.
	s, _ = New(Params{RepeatPenalty: 1.5, RepeatLastN: 64}, 3)
	_ = s.Accept(0)
	if got, _ := s.Sample([]float32{3, 2.5, 1}); got != 1 {
		t.Errorf("greedy with repeat penalty = %d, want 1", got)
	}
	if err := s.Accept(3); err == nil {
		t.Error("Accept of an out-of-range token: no error")
	}
}

func TestLogitBias(t *testing.T) {
	inf := float32(math.Inf(-1))
	s, _ := New(Params{LogitBias: map[int32]float32{0: inf, 2: 1.5}}, 4)
	l := []float32{5, 4, 3, 1}
	got, err := s.Sample(l)
	if err != nil || got != 2 {
		t.Errorf("greedy with bias = %d, %v; want 2 (0 banned, 2 lifted to 4.5)", got, err)
	}
	if l[0] != inf || l[2] != 4.5 || l[1] != 4 {
		t.Errorf("biased logits %v", l)
	}
	// Bias comes before the penalties: 2+2 = 4, then /2 = 2 (penalty
	// first would give 1+2 = 3).
	s, _ = New(Params{LogitBias: map[int32]float32{1: 2}, RepeatPenalty: 2, RepeatLastN: 8}, 3)
	_ = s.Accept(1)
	l = []float32{0, 2, 0}
	s.adjust(l)
	if l[1] != 2 {
		t.Errorf("bias then penalty gave %v, want 2", l[1])
	}
	// Banning everything is an error.
	s, _ = New(Params{Temperature: 1, LogitBias: map[int32]float32{0: inf, 1: inf}}, 2)
	if _, err := s.Sample([]float32{1, 2}); err == nil || !strings.Contains(err.Error(), "-Inf") {
		t.Errorf("all banned: err = %v", err)
	}
}

func TestBadLogits(t *testing.T) {
	nan := float32(math.NaN())
	pinf := float32(math.Inf(1))
	ninf := float32(math.Inf(-1))
	configs := map[string]Params{
		"greedy":  Greedy(),
		"default": {Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05},
		"topk":    {Temperature: 1, TopK: 3},
		"topp":    {Temperature: 1, TopP: 0.9},
		"minp":    {Temperature: 1, MinP: 0.1},
		"typical": {Temperature: 1, TypicalP: 0.9},
		"plain":   {Temperature: 1},
	}
	for name, p := range configs {
		for _, tc := range []struct {
			bad  float32
			at   int
			want string
		}{
			{nan, 0, "token 0 is NaN"},
			{nan, 37, "token 37 is NaN"},
			{pinf, 11, "token 11 is +Inf"},
		} {
			l := make([]float32, 50)
			for i := range l {
				l[i] = float32(i % 7)
			}
			l[tc.at] = tc.bad
			s, _ := New(p, len(l))
			if _, err := s.Sample(l); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s with %v at %d: err = %v, want %q", name, tc.bad, tc.at, err, tc.want)
			}
		}
		l := make([]float32, 50)
		for i := range l {
			l[i] = ninf
		}
		s, _ := New(p, len(l))
		if _, err := s.Sample(l); err == nil || !strings.Contains(err.Error(), "-Inf") {
			t.Errorf("%s with all -Inf: err = %v", name, err)
		}
		// Some -Inf is fine: those tokens are never chosen.
		l[3], l[9] = 1, 2
		for range 50 {
			got, err := s.Sample(l)
			if err != nil || (got != 3 && got != 9) {
				t.Fatalf("%s with banned tokens: got %d, %v", name, got, err)
			}
		}
	}
	s, _ := New(Greedy(), 4)
	if _, err := s.Sample(make([]float32, 5)); err == nil {
		t.Error("wrong logits length: no error")
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	ok := []Params{Greedy(), DefaultParams(), {TopP: 1, TypicalP: 1, MinP: 1, RepeatPenalty: 1, TopK: 1000},
		{LogitBias: map[int32]float32{0: float32(math.Inf(-1)), 9: 100}}, {RepeatLastN: -1, PresencePenalty: -2, FrequencyPenalty: 2}}
	for _, p := range ok {
		if err := p.Validate(10); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []struct {
		p    Params
		want string
	}{
		{Params{Temperature: -0.1}, "temperature -0.1 outside [0, 100]"},
		{Params{Temperature: nan}, "temperature is NaN"},
		{Params{Temperature: 1000}, "temperature 1000 outside"},
		{Params{TopK: -1}, "top_k -1 is negative"},
		{Params{TopP: 1.5}, "top_p 1.5 outside [0, 1]"},
		{Params{TopP: -0.5}, "top_p -0.5 outside"},
		{Params{TopP: nan}, "top_p is NaN"},
		{Params{MinP: 2}, "min_p 2 outside [0, 1]"},
		{Params{TypicalP: -1}, "typical_p -1 outside"},
		{Params{MinKeep: 11}, "min_keep 11 outside [0, 10]"},
		{Params{RepeatPenalty: -1}, "repeat_penalty -1 outside [0, 10]"},
		{Params{RepeatPenalty: nan}, "repeat_penalty is NaN"},
		{Params{PresencePenalty: 3}, "presence_penalty 3 outside [-2, 2]"},
		{Params{FrequencyPenalty: -2.5}, "frequency_penalty -2.5 outside"},
		{Params{RepeatLastN: -2}, "repeat_last_n -2 outside [-1,"},
		{Params{LogitBias: map[int32]float32{10: 1}}, "logit_bias token id 10 outside the vocabulary [0, 10)"},
		{Params{LogitBias: map[int32]float32{-1: 1}}, "logit_bias token id -1 outside"},
		{Params{LogitBias: map[int32]float32{3: 101}}, "logit_bias for token 3 is 101"},
		{Params{LogitBias: map[int32]float32{3: nan}}, "logit_bias for token 3 is NaN"},
		{Params{LogitBias: map[int32]float32{3: float32(math.Inf(1))}}, "logit_bias for token 3 is +Inf"},
	}
	for _, tc := range bad {
		err := tc.p.Validate(10)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.p, err, tc.want)
		}
		if _, err := New(tc.p, 10); err == nil {
			t.Errorf("New accepted %+v", tc.p)
		}
	}
	if err := Greedy().Validate(0); err == nil {
		t.Error("vocabulary 0 accepted")
	}
}

// TestFullPathsMatchReference drives top-p and typical over whole
// vocabularies (no top-k): peaked logits take top-p's first try, flat ones
// its histogram; typical always histograms.
func TestFullPathsMatchReference(t *testing.T) {
	for _, n := range []int{3000, 20000} {
		for _, sigma := range []float64{0.3, 1, 3, 8} {
			l := randomLogits(uint64(n)+uint64(sigma*10), n, sigma)
			for _, p := range []Params{
				{Temperature: 1, TopP: 0.5}, {Temperature: 1, TopP: 0.9}, {Temperature: 1, TopP: 0.99},
				{Temperature: 1, TypicalP: 0.5}, {Temperature: 1, TypicalP: 0.9}, {Temperature: 1, TypicalP: 0.99},
				{Temperature: 1, TopP: 0.9, MinKeep: 50}, {Temperature: 1, TypicalP: 0.2, MinKeep: 50},
			} {
				got := survivorIDs(t, p, l)
				want := refSurvivors(l, p)
				if !slices.Equal(got, want) {
					t.Errorf("n=%d sigma=%v %+v: got %d survivors, reference %d", n, sigma, p, len(got), len(want))
				}
			}
		}
	}
}

func TestPickMatchesSequentialWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var sums []float64
	for trial := range 200 {
		n := 1 + r.IntN(3000)
		p := make([]float32, n)
		for i := range p {
			if r.IntN(5) > 0 {
				p[i] = float32(r.ExpFloat64())
			}
		}
		total := 0.0
		for _, x := range p {
			total += float64(x)
		}
		for range 20 {
			u := r.Float64()
			got, s := pick(p, u, sums)
			sums = s
			want, cum := -1, 0.0
			for i, x := range p {
				if x > 0 {
					cum += float64(x)
					want = i
					if cum >= u*total {
						break
					}
				}
			}
			if total == 0 {
				want = -1
			}
			// The blocked sum can differ from the sequential one by
			// rounding (~1e-13 of the total here); only a draw that close to
			// a boundary may differ.
			if got != want && math.Abs(cumTo(p, got)-u*total) > 1e-9*total && math.Abs(cumTo(p, want)-u*total) > 1e-9*total {
				t.Fatalf("trial %d n=%d u=%v: pick %d, sequential walk %d", trial, n, u, got, want)
			}
			if got >= 0 && p[got] == 0 {
				t.Fatalf("picked a zero-probability entry %d", got)
			}
		}
	}
	if got, _ := pick([]float32{0, float32(math.NaN()), 1}, 0.5, nil); got != -1 {
		t.Errorf("NaN probabilities: pick = %d, want -1", got)
	}
	if got, _ := pick([]float32{0, 0}, 0.5, nil); got != -1 {
		t.Errorf("zero mass: pick = %d, want -1", got)
	}
}

// cumTo is the sequential mass up to and including entry i.
func cumTo(p []float32, i int) float64 {
	c := 0.0
	for _, x := range p[:i+1] {
		c += float64(x)
	}
	return c
}

// TestManyBannedInLargeSet: a large explicit set (top-k 600) in which most
// tokens are banned gives top-p +Inf keys and zero masses.
func TestManyBannedInLargeSet(t *testing.T) {
	l := randomLogits(31, 1000, 2)
	for i := 0; i < 1000; i += 10 {
		for j := i; j < i+7; j++ {
			l[j] = float32(math.Inf(-1))
		}
	}
	for _, p := range []Params{
		{Temperature: 1, TopK: 600, TopP: 0.9},
		{Temperature: 1, TopK: 600, TopP: 0.999999, MinKeep: 500},
		{Temperature: 1, TopK: 600, TypicalP: 0.9},
		{Temperature: 1, TopK: 600, MinP: 0.01, MinKeep: 400},
	} {
		got := survivorIDs(t, p, l)
		want := refSurvivors(l, p)
		if !slices.Equal(got, want) {
			t.Errorf("%+v: got %d survivors, reference %d", p, len(got), len(want))
		}
	}
}
