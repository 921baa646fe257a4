package sample

import (
	"fmt"
	"math"
	"slices"
)

// Params configures a Sampler. The zero value of every filter field means
// "off", so Params{} is greedy decoding with no penalties. DefaultParams
// returns llama.cpp's defaults.
type Params struct {
	// Temperature divides the logits of the surviving candidates before the
	// final draw (applied last, as llama.cpp does). 0 means greedy: the
	// highest logit wins, ties going to the lowest token id, and no random
	// number is drawn. Allowed: [0, 100].
	Temperature float32

	// TopK keeps the K highest logits (ties to the lower id). 0 = off; a K
	// at or above the vocabulary size is a no-op. Allowed: >= 0.
	TopK int

	// TopP (nucleus) keeps the smallest set of highest-probability tokens
	// whose probabilities sum to at least TopP. 0 and 1 = off (0 is "unset",
	// not "keep one token": use TopK 1 for that). Allowed: [0, 1].
	TopP float32

	// MinP keeps tokens whose probability is at least MinP times the top
	// token's (a logit threshold max+ln(MinP)). 0 = off. Allowed: [0, 1].
	MinP float32

	// TypicalP is locally typical sampling: tokens are ranked by how close
	// their surprisal -ln p is to the distribution's entropy, and the
	// smallest such prefix whose probability exceeds TypicalP is kept.
	// 0 and 1 = off. Allowed: [0, 1].
	TypicalP float32

	// MinKeep is llama.cpp's min_keep: top-p, min-p and typical never keep
	// fewer than this many tokens (at least 1 is always kept). Allowed:
	// [0, vocabulary size].
	MinKeep int

	// RepeatPenalty (llama.cpp's repeat_penalty) divides the positive
	// logits and multiplies the non-positive ones of every token seen in
	// the last RepeatLastN accepted tokens. 0 and 1 = off. Allowed: [0, 10].
	RepeatPenalty float32
	// PresencePenalty is subtracted once from the logit of every token seen
	// in the window (OpenAI's presence_penalty). Allowed: [-2, 2].
	PresencePenalty float32
	// FrequencyPenalty times the token's count in the window is subtracted
	// from its logit (OpenAI's frequency_penalty). Allowed: [-2, 2].
	FrequencyPenalty float32
	// RepeatLastN is the penalty window in accepted tokens: 0 disables all
	// three penalties (llama.cpp semantics), -1 means every token accepted
	// since the last Reset. Allowed: [-1, 1<<24].
	RepeatLastN int

	// LogitBias is added to the logits of the given token ids before
	// anything else. -Inf bans a token. Ids must be in [0, vocab); values
	// must be in [-100, 100] (OpenAI's range) or -Inf.
	LogitBias map[int32]float32

	// Seed seeds the random generator; -1 means a random seed (read it back
	// with Sampler.Seed to reproduce the run). Any other value is used as
	// is (converted to uint64).
	Seed int64
}

// DefaultParams returns llama.cpp's default sampling settings: temperature
// 0.8, top-k 40, top-p 0.95, min-p 0.05, no typical sampling, penalties off
// (window 64), random seed.
func DefaultParams() Params {
	return Params{
		Temperature:   0.8,
		TopK:          40,
		TopP:          0.95,
		MinP:          0.05,
		RepeatPenalty: 1,
		RepeatLastN:   64,
		Seed:          -1,
	}
}

// Greedy returns parameters for deterministic argmax decoding.
func Greedy() Params { return Params{} }

// Limits of the parameter ranges (see the field comments).
const (
	MaxTemperature   = 100
	MaxRepeatPenalty = 10
	MaxPenalty       = 2   // presence and frequency: [-MaxPenalty, MaxPenalty]
	MaxLogitBias     = 100 // finite biases: [-MaxLogitBias, MaxLogitBias]
	MaxRepeatLastN   = 1 << 24
)

// Validate reports the first absurd value, naming the field (by its JSON
// name in OpenAI/llama.cpp requests) and the allowed range. vocab is the
// model's vocabulary size.
func (p Params) Validate(vocab int) error {
	if vocab <= 0 {
		return fmt.Errorf("sample: vocabulary size %d must be positive", vocab)
	}
	if err := checkRange("temperature", p.Temperature, 0, MaxTemperature); err != nil {
		return err
	}
	if p.TopK < 0 {
		return fmt.Errorf("sample: top_k %d is negative (allowed: 0 = off, or >= 1)", p.TopK)
	}
	if err := checkRange("top_p", p.TopP, 0, 1); err != nil {
		return err
	}
	if err := checkRange("min_p", p.MinP, 0, 1); err != nil {
		return err
	}
	if err := checkRange("typical_p", p.TypicalP, 0, 1); err != nil {
		return err
	}
	if p.MinKeep < 0 || p.MinKeep > vocab {
		return fmt.Errorf("sample: min_keep %d outside [0, %d]", p.MinKeep, vocab)
	}
	if err := checkRange("repeat_penalty", p.RepeatPenalty, 0, MaxRepeatPenalty); err != nil {
		return err
	}
	if err := checkRange("presence_penalty", p.PresencePenalty, -MaxPenalty, MaxPenalty); err != nil {
		return err
	}
	if err := checkRange("frequency_penalty", p.FrequencyPenalty, -MaxPenalty, MaxPenalty); err != nil {
		return err
	}
	if p.RepeatLastN < -1 || p.RepeatLastN > MaxRepeatLastN {
		return fmt.Errorf("sample: repeat_last_n %d outside [-1, %d] (-1 = whole history, 0 = penalties off)", p.RepeatLastN, MaxRepeatLastN)
	}
	// Sorted so that the error names the same id every time.
	ids := make([]int32, 0, len(p.LogitBias))
	for id := range p.LogitBias {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b := p.LogitBias[id]
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("sample: logit_bias token id %d outside the vocabulary [0, %d)", id, vocab)
		}
		if math.IsInf(float64(b), -1) {
			continue
		}
		if b != b || b < -MaxLogitBias || b > MaxLogitBias {
			return fmt.Errorf("sample: logit_bias for token %d is %v, outside [%d, %d] (or -Inf to ban it)", id, b, -MaxLogitBias, MaxLogitBias)
		}
	}
	return nil
}

func checkRange(name string, v, lo, hi float32) error {
	if v != v {
		return fmt.Errorf("sample: %s is NaN (allowed: [%g, %g])", name, lo, hi)
	}
	if v < lo || v > hi {
		return fmt.Errorf("sample: %s %g outside [%g, %g]", name, v, lo, hi)
	}
	return nil
}
