package engine

import "mica/internal/llm/sample"

// Several answers to one prompt (ChatRequest.N > 1). The prompt is computed
// once: with the batcher, the first answer prefills it and the others, held
// back until then, copy its KV cache for every prompt position but the
// last, which each feeds itself to get its own logits (one position per
// answer instead of the whole prompt); one at a time (Options.Batch ≤ 1),
// the answers run one after another and each later one reuses the cached
// sequence's prompt the same way. Each answer samples on its own: with a
// seed s ≥ 0, answer i uses seed s+i (answer 0 is what N = 1 gives); with a
// random seed (-1) each answer draws its own.

// MaxChoices is the most answers one request may ask for.
const MaxChoices = 16

// choiceParams are the sampling parameters of answer i.
func choiceParams(p sample.Params, i int) sample.Params {
	if p.Seed >= 0 {
		p.Seed += int64(i)
	}
	return p
}

// combine makes a request's Result from its answers' (see Result.Choices).
func combine(res []Result) Result {
	if len(res) == 0 {
		return Result{}
	}
	if len(res) == 1 {
		return res[0]
	}
	out := res[0]
	out.Choices = res
	u := &out.Usage
	for _, r := range res[1:] {
		u.GeneratedTokens += r.Usage.GeneratedTokens
		u.DecodeSteps += r.Usage.DecodeSteps
		u.Decode += r.Usage.Decode
		if t := r.Usage.TimeToFirstToken; t > 0 && t < u.TimeToFirstToken {
			u.TimeToFirstToken = t
		}
	}
	return out
}
