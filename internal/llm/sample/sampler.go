package sample

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// pcgStream is the second PCG seed word ("mica/sam").
const pcgStream = 0x6d6963612f73616d

// TokenLogprob is one token and its log-probability.
type TokenLogprob struct {
	ID      int32
	Logprob float32
}

// Result is a sampled token with log-probabilities (see SampleWithLogprobs).
type Result struct {
	ID      int32
	Logprob float32
	// Top holds the TopN most likely tokens, most likely first (ties to
	// the lower id).
	Top []TokenLogprob
}

// Sampler samples tokens for one sequence. It is not safe for concurrent
// use; create one per sequence.
type Sampler struct {
	p     Params
	vocab int
	seed  int64
	rng   *rand.PCG

	lnMinP   float32
	biasIDs  []int32 // LogitBias keys, sorted
	penalize bool

	hist   []int32 // penalty window (ring when RepeatLastN > 0)
	head   int
	counts map[int32]int32

	undo []cand   // original logits of the entries bias/penalties changed
	sc   *scratch // during a call only (see acquire)
}

type scratch struct {
	c1, c2 []cand
	probs  []float32
	buf    []float32
	bidx   []uint16
	sums   []float64
}

// New validates p for a vocabulary of vocab tokens and returns a Sampler.
func New(p Params, vocab int) (*Sampler, error) {
	if err := p.Validate(vocab); err != nil {
		return nil, err
	}
	s := &Sampler{p: p, vocab: vocab, counts: map[int32]int32{}}
	s.p.LogitBias = maps.Clone(p.LogitBias) // the caller may reuse its map
	if s.p.RepeatPenalty == 0 {
		s.p.RepeatPenalty = 1
	}
	if s.p.TopP == 0 {
		s.p.TopP = 1
	}
	if s.p.TypicalP == 0 {
		s.p.TypicalP = 1
	}
	if s.p.MinP > 0 {
		s.lnMinP = float32(math.Log(float64(s.p.MinP)))
	}
	for id := range p.LogitBias {
		s.biasIDs = append(s.biasIDs, id)
	}
	slices.Sort(s.biasIDs)
	s.penalize = s.p.RepeatLastN != 0 &&
		(s.p.RepeatPenalty != 1 || s.p.FrequencyPenalty != 0 || s.p.PresencePenalty != 0)
	s.seed = p.Seed
	if s.seed == -1 {
		s.seed = rand.Int64N(math.MaxInt64) // never -1, so it can be replayed
	}
	s.rng = rand.NewPCG(uint64(s.seed), pcgStream)
	return s, nil
}

// Params returns the parameters (with "off" zeros normalised: TopP,
// TypicalP and RepeatPenalty of 0 read as 1).
func (s *Sampler) Params() Params {
	p := s.p
	p.LogitBias = maps.Clone(p.LogitBias)
	return p
}

// Seed returns the seed in use: Params.Seed, or the random one drawn for -1.
func (s *Sampler) Seed() int64 { return s.seed }

// Reset forgets the penalty history and restarts the random sequence from
// the seed (the same seed, also when it was drawn at random).
func (s *Sampler) Reset() {
	s.hist = s.hist[:0]
	s.head = 0
	clear(s.counts)
	s.rng = rand.NewPCG(uint64(s.seed), pcgStream)
}

// Accept records a token in the penalty history. Sample does not call it:
// call it for every token the sequence keeps (llama.cpp's server also
// accepts the prompt's tokens, so that penalties see them).
func (s *Sampler) Accept(token int32) error {
	if token < 0 || int(token) >= s.vocab {
		return fmt.Errorf("sample: accepted token id %d outside the vocabulary [0, %d)", token, s.vocab)
	}
	n := s.p.RepeatLastN
	if n == 0 {
		return nil
	}
	if n > 0 && len(s.hist) == n {
		old := s.hist[s.head]
		if s.counts[old]--; s.counts[old] == 0 {
			delete(s.counts, old)
		}
		s.hist[s.head] = token
		s.head = (s.head + 1) % n
	} else if n > 0 {
		s.hist = append(s.hist, token)
	}
	s.counts[token]++
	return nil
}

// Sample returns the next token. It modifies logits in place: the logit
// bias and the penalties are applied to the entries they concern (nothing
// else is written). A NaN logit, a +Inf logit, or every logit -Inf (after
// the bias) is an error naming the token.
func (s *Sampler) Sample(logits []float32) (int32, error) {
	if len(logits) != s.vocab {
		return 0, fmt.Errorf("sample: got %d logits, the vocabulary has %d tokens", len(logits), s.vocab)
	}
	defer s.acquire()()
	s.adjust(logits)
	return s.chain(logits)
}

// scratchPool holds the work buffers (up to ~10 MB for a flat 262k
// distribution), shared by all Samplers: memory grows with the number of
// Sample calls running at once, not with the number of sequences.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// acquire takes a scratch from the pool for one call (nested calls keep the
// outer one) and returns its release.
func (s *Sampler) acquire() func() {
	if s.sc != nil {
		return func() {}
	}
	s.sc = scratchPool.Get().(*scratch)
	return func() {
		scratchPool.Put(s.sc)
		s.sc = nil
	}
}

// SampleWithLogprobs samples like Sample and also reports log-probabilities
// as llama.cpp's server does by default (and as OpenAI's logprobs are
// temperature-independent): the log-softmax of the model's raw logits, at
// temperature 1, before logit bias, penalties and any truncation. Top holds
// the topN (0 <= topN <= vocab) most likely tokens of that distribution.
// It costs one more scan (the top N) and one exp-sum over the vocabulary.
func (s *Sampler) SampleWithLogprobs(logits []float32, topN int) (Result, error) {
	if len(logits) != s.vocab {
		return Result{}, fmt.Errorf("sample: got %d logits, the vocabulary has %d tokens", len(logits), s.vocab)
	}
	if topN < 0 || topN > s.vocab {
		return Result{}, fmt.Errorf("sample: top_logprobs %d outside [0, %d]", topN, s.vocab)
	}
	defer s.acquire()()
	n := len(logits)
	var best []cand
	var err error
	if k := max(topN, 1); k < n {
		best, err = topK(logits, k, s.sc.c1)
		s.sc.c1 = best
	} else {
		best = make([]cand, n)
		for i, v := range logits {
			best[i] = cand{id: int32(i), l: v}
		}
		slices.SortFunc(best, byLogitDesc)
		err = checkMax(logits, best[0].l)
		if err == nil {
			for _, v := range logits {
				if v != v {
					err = diagnose(logits)
					break
				}
			}
		}
	}
	if err != nil {
		return Result{}, err
	}
	m := best[0].l
	logZ := math.Log(sumExpBlocks(logits, m, 1, s.blockSums(n)))
	lp := func(l float32) float32 { return float32(float64(l-m) - logZ) }
	res := Result{Top: make([]TokenLogprob, topN)}
	for i := range topN {
		res.Top[i] = TokenLogprob{ID: best[i].id, Logprob: lp(best[i].l)}
	}
	id, err := s.Sample(logits)
	if err != nil {
		return Result{}, err
	}
	raw := logits[id]
	for _, u := range s.undo { // the first entry for an id is its original
		if u.id == id {
			raw = u.l
			break
		}
	}
	res.ID, res.Logprob = id, lp(raw)
	return res, nil
}

// adjust applies the logit bias and the penalties in place, remembering the
// original values in s.undo.
func (s *Sampler) adjust(logits []float32) {
	s.undo = s.undo[:0]
	for _, id := range s.biasIDs {
		s.undo = append(s.undo, cand{id: id, l: logits[id]})
		logits[id] += s.p.LogitBias[id]
	}
	if !s.penalize {
		return
	}
	rep, freq, pres := s.p.RepeatPenalty, s.p.FrequencyPenalty, s.p.PresencePenalty
	for id, c := range s.counts {
		l := logits[id]
		s.undo = append(s.undo, cand{id: id, l: l})
		if l <= 0 {
			l *= rep
		} else {
			l /= rep
		}
		logits[id] = l - (float32(c)*freq + pres)
	}
}

// chain runs top-k, typical, top-p, min-p, temperature and the draw.
func (s *Sampler) chain(logits []float32) (int32, error) {
	p := s.p
	if p.Temperature == 0 && p.TypicalP == 1 {
		return argmax(logits)
	}
	c, full, err := s.survivors(logits)
	if err != nil {
		return 0, err
	}
	if p.Temperature == 0 { // greedy after typical
		slices.SortFunc(c, byLogitDesc)
		return c[0].id, nil
	}
	x := s.rng.Uint64()
	u := float64(x>>11) * 0x1p-53
	scale := 1 / p.Temperature
	var i int
	if full {
		top, err := argmax(logits) // validates the logits
		if err != nil {
			return 0, err
		}
		i, s.sc.sums = pickFull(logits, logits[top], scale, u, s.sc.sums)
		if i < 0 {
			return 0, fmt.Errorf("sample: internal error: the vocabulary has no probability mass")
		}
		return int32(i), nil
	}
	sortByID(c, s.sc)
	s.sc.buf = weightsOf(c, scale, s.sc.buf)
	i, s.sc.sums = pick(s.sc.buf, u, s.sc.sums)
	if i < 0 {
		return 0, fmt.Errorf("sample: internal error: the survivors have no probability mass")
	}
	return c[i].id, nil
}

// survivors runs the filters: top-k, typical, top-p, min-p. full means none
// of them removed anything and c is not built (the whole vocabulary
// survives); otherwise c holds the survivors in no particular order.
func (s *Sampler) survivors(logits []float32) (c []cand, full bool, err error) {
	p := s.p
	n := len(logits)
	full = true
	// maxLogit validates the logits and finds the largest, once.
	m, haveMax := float32(0), false
	maxLogit := func() (float32, error) {
		if !haveMax {
			top, err := argmax(logits)
			if err != nil {
				return 0, err
			}
			m, haveMax = logits[top], true
		}
		return m, nil
	}
	if p.TopK > 0 && p.TopK < n {
		c, err = topK(logits, p.TopK, s.sc.c1)
		s.sc.c1 = c
		if err != nil {
			return nil, false, err
		}
		full = false
	}
	if p.TypicalP < 1 {
		if full {
			m, err := maxLogit()
			if err != nil {
				return nil, false, err
			}
			c, full = s.typicalFull(logits, m), false
		} else {
			c = s.typicalCands(c)
		}
	}
	if p.TopP < 1 {
		if full {
			m, err := maxLogit()
			if err != nil {
				return nil, false, err
			}
			c, full = s.topPFull(logits, m), false
		} else {
			s.sc.buf = probsOf(c, s.sc.buf)
			for i := range c {
				c[i].k = -c[i].l
			}
			c = c[:massPrefix(c, float64(p.TopP), false, p.MinKeep, s.sc)]
		}
	}
	if p.MinP > 0 {
		if full {
			c, err = minPFull(logits, s.lnMinP, s.sc.c1)
			s.sc.c1 = c
			if err != nil {
				return nil, false, err
			}
			if len(c) < p.MinKeep {
				c, err = topK(logits, p.MinKeep, s.sc.c1)
				s.sc.c1 = c
				if err != nil {
					return nil, false, err
				}
			}
			full = false
		} else {
			c = minPCands(c, s.lnMinP, p.MinKeep)
		}
	}
	return c, full, nil
}

// typicalCands is typical sampling over an explicit set.
func (s *Sampler) typicalCands(c []cand) []cand {
	s.sc.buf = probsOf(c, s.sc.buf)
	mu := 0.0
	for _, x := range c {
		if x.p > 0 {
			mu += float64(x.p) * float64(x.l)
		}
	}
	j := 0
	for _, x := range c {
		if x.p > 0 {
			x.k = float32(math.Abs(float64(x.l) - mu))
			c[j] = x
			j++
		}
	}
	c = c[:j]
	return c[:massPrefix(c, float64(s.p.TypicalP), true, s.p.MinKeep, s.sc)]
}
