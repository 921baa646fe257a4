// Package sample turns a model's logits into the next token: a chain of
// samplers in llama.cpp's order and with llama.cpp's semantics, seeded and
// deterministic. One Sampler serves one sequence.
//
// # The chain
//
// Each Sample call runs, on the logits of one sequence:
//
//  1. logit bias: logits[id] += bias (-Inf bans a token);
//  2. penalties over the last RepeatLastN accepted tokens: for each token
//     seen c > 0 times, a logit l > 0 becomes l/RepeatPenalty and l <= 0
//     becomes l*RepeatPenalty, then l -= c*FrequencyPenalty +
//     PresencePenalty (llama.cpp's penalties sampler; float32 arithmetic);
//  3. top-k, 4. typical, 5. top-p, 6. min-p, each over the survivors of the
//     previous one; their probabilities are the softmax of the survivors'
//     logits at temperature 1 (llama.cpp applies temperature last);
//  7. temperature and the draw (below). Temperature 0 is greedy: the highest
//     logit wins, ties to the lowest id, and no random number is used.
//
// The bias comes before the penalties because that is what llama.cpp's
// common sampler does (it adds the logit-bias sampler ahead of its
// configurable list "penalties, …, top-k, typical, top-p, min-p, …,
// temperature"). Top-k, top-p and min-p always keep the greedy token, so
// with Temperature 0 (and typical off) they are skipped and greedy decoding
// is one pass over the logits.
//
// Filter details. Top-k keeps the k highest logits, ties to the lower id.
// Top-p keeps the shortest highest-first prefix whose probability sum is
// >= p and that has at least MinKeep tokens. Min-p keeps logits >= max +
// ln(p), and the best MinKeep if fewer pass. Typical ranks tokens by the
// distance of their surprisal from the entropy, |-ln p_i - H|, which equals
// |l_i - E_p[l]| (so no logarithm is taken), and keeps the shortest
// closest-first prefix whose sum is > p, at least MinKeep long; tokens of
// probability 0 are dropped. The kept sets are llama.cpp's up to float
// rounding right at a boundary, and up to the order of tied logits (which
// llama.cpp leaves unspecified and mica breaks by id). The tests compare all
// of them with a sort-everything float64 reference.
//
// # The draw (exact algorithm)
//
// The random source is math/rand/v2's PCG (PCG-DXSM, 128-bit state) made by
// rand.NewPCG(uint64(seed), 0x6d6963612f73616d) (the second word spells
// "mica/sam"). Every Sample call with Temperature > 0 takes exactly one
// 64-bit output x and forms u = (x >> 11) * 2^-53, uniform in [0, 1).
//
// The survivors, in increasing token id, get weights w = exp32((l - m) *
// (1/T)) in float32, where m is the largest surviving logit, T the
// temperature and exp32 the package's own exponential (exp.go: Cody-Waite
// reduction and a degree-6 polynomial, every step rounded to float32, 0
// below ln 2^-126). They are grouped in blocks of 256; a block's mass is the
// float64 sum of eight partial sums (the i-th weight of a block goes to
// partial i mod 8) combined as ((s0+s4)+(s1+s5))+((s2+s6)+(s3+s7)), and the
// total is the sequential sum of the block masses. The first block of
// positive mass whose running mass reaches u*total is entered, and in it
// the first positive weight whose running float64 sum (continuing from the
// mass before the block) reaches u*total is chosen, or the block's last
// positive weight if rounding leaves the block short.
//
// The filters' probabilities are the same weights at T = 1 divided by
// their float64 sum (then rounded to float32).
//
// So the same seed, logits, parameters and accepted history give the same
// tokens at any thread count (a Sampler starts no goroutines and shares no
// state), and in cgo and CGO_ENABLED=0 builds alike: the AVX2 exp32 and
// block sums perform the Go reference's operations in the same order and
// are tested to be bit-identical. A random seed (-1) is drawn once in New
// and can be read back with Seed to replay the run; Reset restarts from the
// same seed.
//
// # Log-probabilities
//
// SampleWithLogprobs reports what llama.cpp's server reports by default for
// n_probs (and what OpenAI's temperature-independent logprobs suggest): the
// log-softmax of the model's raw logits at temperature 1, before logit bias,
// penalties and truncation, for the chosen token and the top N.
//
// # Cost
//
// Nothing sorts the vocabulary. The passes over all logits run in AVX2 when
// cgo and the CPU allow (scan_amd64.c), in plain Go otherwise: a scan that
// returns the few indices above a rising threshold, and exp32 sums. Greedy
// is one scan; top-k one scan feeding a k-element heap; min-p one scan with
// a running threshold. Top-p without top-k takes the maximum, the mass z
// of all weights, and one scan for the tokens of probability >=
// (1-p)/1024; if they hold mass p the nucleus is among them and only they
// are sorted; otherwise (flat distributions) a histogram of the mass over
// the probability's float32 exponent and top mantissa bits finds the
// bucket where the sum crosses p, and only that bucket is sorted. Typical
// without top-k histograms |l - E_p[l]| the same way. The draw touches the
// survivors only, or, when no filter is on, recomputes one block's weights
// after summing all of them.
package sample
