package sample

import (
	"cmp"
	"math"
	"slices"
)

// This file is the plain reference the fast filters are checked against: a
// direct transcription of the definitions in float64, sorting everything.

type refCand struct {
	id int32
	l  float64
}

func refSoftmax(c []refCand) []float64 {
	m := math.Inf(-1)
	for _, x := range c {
		m = max(m, x.l)
	}
	p := make([]float64, len(c))
	sum := 0.0
	for i, x := range c {
		p[i] = math.Exp(x.l - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

func refSortDesc(c []refCand) {
	slices.SortFunc(c, func(a, b refCand) int {
		if a.l != b.l {
			return -cmp.Compare(a.l, b.l)
		}
		return cmp.Compare(a.id, b.id)
	})
}

// refSurvivors applies top-k, typical, top-p and min-p (in that order) to
// already biased/penalised logits and returns the surviving ids, sorted.
func refSurvivors(logits []float32, p Params) []int32 {
	c := make([]refCand, len(logits))
	for i, v := range logits {
		c[i] = refCand{int32(i), float64(v)}
	}
	minKeep := max(p.MinKeep, 1)
	if p.TopK > 0 && p.TopK < len(c) {
		refSortDesc(c)
		c = c[:p.TopK]
	}
	if p.TypicalP > 0 && p.TypicalP < 1 {
		pr := refSoftmax(c)
		h := 0.0
		for _, q := range pr {
			if q > 0 {
				h -= q * math.Log(q)
			}
		}
		type sc struct {
			c     refCand
			p, sc float64
		}
		var s []sc
		for i, q := range pr {
			if q > 0 {
				s = append(s, sc{c[i], q, math.Abs(-math.Log(q) - h)})
			}
		}
		slices.SortFunc(s, func(a, b sc) int {
			if a.sc != b.sc {
				return cmp.Compare(a.sc, b.sc)
			}
			return cmp.Compare(a.c.id, b.c.id)
		})
		cum, keep := 0.0, len(s)
		for i, x := range s {
			cum += x.p
			if cum > float64(p.TypicalP) && i+1 >= minKeep {
				keep = i + 1
				break
			}
		}
		c = c[:0]
		for _, x := range s[:keep] {
			c = append(c, x.c)
		}
	}
	if p.TopP > 0 && p.TopP < 1 {
		refSortDesc(c)
		pr := refSoftmax(c)
		cum, keep := 0.0, len(c)
		for i, q := range pr {
			cum += q
			if cum >= float64(p.TopP) && i+1 >= minKeep {
				keep = i + 1
				break
			}
		}
		c = c[:keep]
	}
	if p.MinP > 0 {
		refSortDesc(c)
		thr := c[0].l + math.Log(float64(p.MinP))
		keep := 1
		for keep < len(c) && (c[keep].l >= thr || keep < minKeep) {
			keep++
		}
		c = c[:keep]
	}
	ids := make([]int32, len(c))
	for i, x := range c {
		ids[i] = x.id
	}
	slices.Sort(ids)
	return ids
}
