package sample

import (
	"math"
	"slices"
)

// Top-p and typical over the whole vocabulary without sorting it. Both keep
// the shortest prefix of some order whose mass reaches a target, so a
// histogram of the mass over a monotone key finds the bucket where the
// target is crossed; only that bucket is sorted. The key's bucket is the
// float32's bits >> bitsShift, which for non-negative floats is monotone
// and logarithmic (32 buckets per octave), so no range pass is needed.
const (
	bitsShift = 18
	nBits     = 1 << (31 - bitsShift) // buckets for all non-negative floats
)

func bucketOf(x float32) int { return int(math.Float32bits(x) >> bitsShift) }

// blockSums sizes the block-mass scratch for n weights.
func (s *Sampler) blockSums(n int) []float64 {
	nb := (n + pickBlock - 1) / pickBlock
	s.sc.sums = slices.Grow(s.sc.sums[:0], nb)[:nb]
	return s.sc.sums
}

// allProbs writes every token's temperature-1 probability w/z to the probs
// scratch (w = exp32(l-m), z their mass) and returns it.
func (s *Sampler) allProbs(logits []float32, m float32, z float64) []float32 {
	n := len(logits)
	s.sc.probs = slices.Grow(s.sc.probs[:0], n)[:n]
	probs := s.sc.probs
	expShift(logits, m, 1, probs)
	inv := 1 / z
	for i, w := range probs {
		probs[i] = float32(float64(w) * inv)
	}
	return probs
}

// topPFull is top-p over the whole vocabulary: m is the largest logit (the
// logits were validated by the argmax pass that found it).
//
// First try: the tokens whose probability is at least (1-p)/1024 — found
// as a logit threshold, m + ln(z*(1-p)/1024), by the vector scan — form a
// prefix of the order; if their mass reaches p, the nucleus is among them
// and only they are ranked (the common case: a few dozen tokens).
// Otherwise the probabilities of all tokens are histogrammed (a bucket can
// disagree with the logit order only within an ulp of exp32, which is
// monotone on the tested grids).
func (s *Sampler) topPFull(logits []float32, m float32) []cand {
	z := sumExpBlocks(logits, m, 1, s.blockSums(len(logits)))
	target := float64(s.p.TopP)
	minKeep := max(s.p.MinKeep, 1)
	thr := min(m, m+float32(math.Log(z*(1-target)/1024)))
	c := s.sc.c1[:0]
	mass := 0.0
	var buf [scanBuf]int32
	for pos := 0; pos < len(logits); {
		got, next := collectAbove(logits[pos:], math.Nextafter32(thr, float32(math.Inf(-1))), buf[:0])
		for _, j := range got {
			i := pos + int(j)
			l := logits[i]
			q := float32(float64(exp32(l-m)) / z)
			c = append(c, cand{id: int32(i), l: l, p: q, k: -l})
			mass += float64(q)
		}
		pos += next
	}
	s.sc.c1 = c
	if mass >= target && len(c) >= minKeep {
		return c[:massPrefix(c, target, false, minKeep, s.sc)]
	}
	probs := s.allProbs(logits, m, z)
	var count [nBits]int32
	var bmass [nBits]float64
	for _, q := range probs {
		if q > 0 {
			b := bucketOf(q)
			count[b]++
			bmass[b] += float64(q)
		}
	}
	cross, cum, cnt := -1, 0.0, 0
	for b := nBits - 1; b >= 0; b-- { // most probable first
		cum += bmass[b]
		cnt += int(count[b])
		if cum >= target && cnt >= minKeep {
			cross = b
			break
		}
	}
	nBefore, nMid := cnt, 0
	if cross >= 0 {
		nBefore, nMid = cnt-int(count[cross]), int(count[cross])
	}
	c = slices.Grow(c[:0], nBefore)
	mid := slices.Grow(s.sc.c2[:0], nMid)
	for i, q := range probs {
		if q > 0 {
			switch b := bucketOf(q); {
			case b > cross:
				c = append(c, cand{id: int32(i), l: logits[i], p: q, k: -logits[i]})
			case b == cross:
				mid = append(mid, cand{id: int32(i), l: logits[i], p: q, k: -logits[i]})
			}
		}
	}
	s.sc.c1, s.sc.c2 = c, mid
	if cross < 0 { // not reached by rounding: keep every token of nonzero probability
		return c
	}
	return s.appendPrefix(c, mid, target, false, minKeep)
}

// appendPrefix appends to before (all kept) the shortest key-order prefix
// of mid that makes the mass reach target with at least minKeep tokens.
func (s *Sampler) appendPrefix(before, mid []cand, target float64, strict bool, minKeep int) []cand {
	slices.SortFunc(mid, byKey)
	cum := 0.0
	for _, x := range before {
		cum += float64(x.p)
	}
	for _, x := range mid {
		before = append(before, x)
		cum += float64(x.p)
		if len(before) >= minKeep && (cum > target || (!strict && cum >= target)) {
			break
		}
	}
	s.sc.c1 = before
	return before
}

// typicalFull is typical sampling over the whole vocabulary (m is the
// largest logit): the key is |l - mu| with mu the probability-weighted mean
// logit (tokens of probability 0 are dropped), histogrammed like
// topPFull's fallback.
func (s *Sampler) typicalFull(logits []float32, m float32) []cand {
	z := sumExpBlocks(logits, m, 1, s.blockSums(len(logits)))
	probs := s.allProbs(logits, m, z)
	var mus [8]float64
	for i, q := range probs {
		if q > 0 {
			mus[i&7] += float64(q) * float64(logits[i])
		}
	}
	mu := ((mus[0] + mus[4]) + (mus[1] + mus[5])) + ((mus[2] + mus[6]) + (mus[3] + mus[7]))
	key := func(l float32) float32 { return float32(math.Abs(float64(l) - mu)) }
	var count [nBits]int32
	var bmass [nBits]float64
	for i, q := range probs {
		if q > 0 {
			b := bucketOf(key(logits[i]))
			count[b]++
			bmass[b] += float64(q)
		}
	}
	target := float64(s.p.TypicalP)
	minKeep := max(s.p.MinKeep, 1)
	cross, cum, cnt := -1, 0.0, 0
	for b := range nBits { // most typical first
		cum += bmass[b]
		cnt += int(count[b])
		if cum > target && cnt >= minKeep {
			cross = b
			break
		}
	}
	nBefore, nMid := cnt, 0
	if cross >= 0 {
		nBefore, nMid = cnt-int(count[cross]), int(count[cross])
	}
	c := slices.Grow(s.sc.c1[:0], nBefore)
	mid := slices.Grow(s.sc.c2[:0], nMid)
	for i, q := range probs {
		if q > 0 {
			k := key(logits[i])
			b := bucketOf(k)
			if b < cross || cross < 0 {
				c = append(c, cand{id: int32(i), l: logits[i], p: q, k: k})
			} else if b == cross {
				mid = append(mid, cand{id: int32(i), l: logits[i], p: q, k: k})
			}
		}
	}
	s.sc.c1, s.sc.c2 = c, mid
	if cross < 0 {
		return c
	}
	return s.appendPrefix(c, mid, target, true, minKeep)
}
