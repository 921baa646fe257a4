package sample

import (
	"math/rand/v2"
	"slices"
	"testing"
)

const benchVocab = 262144 // Gemma 3/4

// realisticLogits imitates a language model's output: a bulk of N(0, 2.5)
// logits (the spread measured on Llama/Gemma-style models) and 300
// plausible tokens lifted by 8 to 22, so the top few tokens hold most of the
// mass and the 0.95 nucleus has a few dozen tokens (reported as
// "survivors").
func realisticLogits(seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 99))
	l := make([]float32, benchVocab)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 2.5)
	}
	for range 300 {
		l[r.IntN(benchVocab)] += float32(8 + 14*r.Float64()*r.Float64())
	}
	return l
}

// flatLogits is the worst case for top-p and min-p: N(0, 1) everywhere, so
// the nucleus is most of the vocabulary.
func flatLogits() []float32 { return randomLogits(5, benchVocab, 1) }

func benchSample(b *testing.B, p Params, l []float32) {
	s, err := New(p, len(l))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Sample(l); err != nil { // no bias or penalties: l is not modified
			b.Fatal(err)
		}
	}
	release := s.acquire()
	defer release()
	c, full, err := s.survivors(slices.Clone(l))
	if err != nil {
		b.Fatal(err)
	}
	if !full {
		b.ReportMetric(float64(len(c)), "survivors")
	}
}

func BenchmarkGreedy(b *testing.B) { benchSample(b, Greedy(), realisticLogits(1)) }

func BenchmarkDefaultChain(b *testing.B) {
	benchSample(b, Params{Temperature: 0.8, TopK: 40, TopP: 0.95}, realisticLogits(1))
}

func BenchmarkLlamaDefaults(b *testing.B) { // + min-p 0.05
	p := DefaultParams()
	p.Seed = 1
	benchSample(b, p, realisticLogits(1))
}

func BenchmarkTopPOnly(b *testing.B) {
	benchSample(b, Params{Temperature: 1, TopP: 0.95}, realisticLogits(1))
}

func BenchmarkMinPOnly(b *testing.B) {
	benchSample(b, Params{Temperature: 1, MinP: 0.05}, realisticLogits(1))
}

func BenchmarkTypicalOnly(b *testing.B) {
	benchSample(b, Params{Temperature: 1, TypicalP: 0.95}, realisticLogits(1))
}

func BenchmarkNoFilters(b *testing.B) { benchSample(b, Params{Temperature: 1}, realisticLogits(1)) }

func BenchmarkTopPOnlyFlat(b *testing.B) {
	benchSample(b, Params{Temperature: 1, TopP: 0.95}, flatLogits())
}

func BenchmarkMinPOnlyFlat(b *testing.B) {
	benchSample(b, Params{Temperature: 1, MinP: 0.05}, flatLogits())
}

func BenchmarkDefaultChainLogprobs5(b *testing.B) {
	l := realisticLogits(1)
	s, _ := New(Params{Temperature: 0.8, TopK: 40, TopP: 0.95}, len(l))
	for b.Loop() {
		if _, err := s.SampleWithLogprobs(l, 5); err != nil {
			b.Fatal(err)
		}
	}
}
