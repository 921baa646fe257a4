package synth

import (
	"fmt"
	"strings"

	"mica/internal/format/gguf"
)

// gemma4Special are Gemma 4's special tokens at the ids its tokenizer gives
// them (docs/research/gemma.md §7.1). The seven user-defined ones stay
// visible as text so that output parsers can see them; the rest are control
// tokens.
var gemma4Special = []struct {
	id   int
	text string
	typ  int32
}{
	{46, "<|tool>", tokControl}, {47, "<tool|>", tokControl},
	{48, "<|tool_call>", tokUserDefined}, {49, "<tool_call|>", tokUserDefined},
	{50, "<|tool_response>", tokUserDefined}, {51, "<tool_response|>", tokUserDefined},
	{52, `<|"|>`, tokUserDefined},
	{98, "<|think|>", tokControl},
	{100, "<|channel>", tokUserDefined}, {101, "<channel|>", tokUserDefined},
	{105, "<|turn>", tokControl}, {106, "<turn|>", tokControl},
	{255999, "<|image>", tokControl}, {256000, "<|audio>", tokControl},
	{258880, "<|image|>", tokControl}, {258881, "<|audio|>", tokControl},
	{258882, "<image|>", tokControl}, {258883, "<audio|>", tokControl},
	{258884, "<|video|>", tokControl},
}

// Gemma 4's end-of-turn token, written as tokenizer.ggml.eot_token_id.
const gemma4EOT = 106

// tokenizerMeta builds the tokenizer.* keys of preset p from vocabulary v,
// and the mica.synth.* keys that say how the vocabulary was derived.
func tokenizerMeta(p *Preset, v *Vocab, chatTemplate string) (tok, notes []gguf.KV, err error) {
	n := p.NVocab
	if len(v.Tokens) < n {
		return nil, nil, fmt.Errorf("synth: vocabulary %s has %d tokens; preset %s needs %d", v.Source, len(v.Tokens), p.Name, n)
	}
	tokens := append([]string(nil), v.Tokens[:n]...)
	types := append([]int32(nil), v.Types[:n]...)
	scores := make([]float32, n)
	if v.Scores != nil {
		copy(scores, v.Scores[:n])
	}
	desc := []string{fmt.Sprintf("vocabulary from %s (tokenizer model %q, %d tokens)", baseName(v.Source), v.Model, len(v.Tokens))}
	if dropped := len(v.Tokens) - n; dropped > 0 {
		desc = append(desc, fmt.Sprintf("%d tokens past id %d dropped (%s) to match the %d-row embedding", dropped, n-1, strings.Join(v.Tokens[n:min(len(v.Tokens), n+3)], " "), n))
	}
	special := func(id int64) int64 {
		if id >= int64(n) {
			return -1
		}
		return id
	}
	bos, eos, unk, pad, eot := special(v.BOS), special(v.EOS), special(v.UNK), special(v.PAD), special(v.EOT)

	switch p.Arch {
	case ArchGemma4:
		if v.Merges == nil {
			return nil, nil, fmt.Errorf("synth: vocabulary %s has no BPE merges; %s presets write the gemma4 BPE tokenizer and need a vocabulary with merges (a gemma4 GGUF or a tokenizer.json)", v.Source, p.Arch)
		}
		var over []string
		for _, s := range gemma4Special {
			if s.id >= n {
				continue
			}
			if tokens[s.id] != s.text {
				over = append(over, fmt.Sprintf("%d %s→%s", s.id, tokens[s.id], s.text))
			}
			tokens[s.id], types[s.id], scores[s.id] = s.text, s.typ, 0
		}
		if err := checkUnique(tokens, v.Source); err != nil {
			return nil, nil, err
		}
		if eot < 0 {
			eot = gemma4EOT
		}
		tok = []gguf.KV{
			gguf.String("tokenizer.ggml.model", "gemma4"),
			gguf.Strings("tokenizer.ggml.tokens", tokens),
			gguf.Float32s("tokenizer.ggml.scores", scores),
			gguf.Int32s("tokenizer.ggml.token_type", types),
			gguf.Strings("tokenizer.ggml.merges", v.Merges),
		}
		if len(over) > 0 {
			desc = append(desc, fmt.Sprintf("Gemma 4 special tokens written over %d ids of the source vocabulary", len(over)))
			notes = append(notes, gguf.Strings("mica.synth.vocab_overrides", over))
		}
	case ArchGemma3:
		// llama.cpp's converter writes Gemma 3's SentencePiece model as
		// "llama" (scores, no merges). A BPE source has no usable scores:
		// derive them from the merge ranks.
		if v.Model != "llama" || allZero(scores) {
			if v.Merges == nil {
				return nil, nil, fmt.Errorf("synth: vocabulary %s has neither SentencePiece scores nor BPE merges", v.Source)
			}
			scores = scoresFromMerges(tokens, types, v.Merges)
			desc = append(desc, "SentencePiece scores derived from the BPE merge ranks (score = -rank of the first merge that forms the token)")
		}
		tok = []gguf.KV{
			gguf.String("tokenizer.ggml.model", "llama"),
			gguf.String("tokenizer.ggml.pre", "default"),
			gguf.Strings("tokenizer.ggml.tokens", tokens),
			gguf.Float32s("tokenizer.ggml.scores", scores),
			gguf.Int32s("tokenizer.ggml.token_type", types),
		}
	}
	for _, k := range []struct {
		key string
		id  int64
	}{{"bos_token_id", bos}, {"eos_token_id", eos}, {"unknown_token_id", unk}, {"padding_token_id", pad}, {"eot_token_id", eot}} {
		if k.id >= 0 {
			tok = append(tok, gguf.Uint32("tokenizer.ggml."+k.key, uint32(k.id)))
		}
	}
	addBOS := v.AddBOS
	if p.Arch == ArchGemma4 {
		addBOS = true // llama.cpp forces it for the gemma4 tokenizer
	}
	tok = append(tok,
		gguf.Bool("tokenizer.ggml.add_bos_token", addBOS),
		gguf.Bool("tokenizer.ggml.add_eos_token", v.AddEOS),
		gguf.Bool("tokenizer.ggml.add_space_prefix", false))
	if chatTemplate != "" {
		tok = append(tok, gguf.String("tokenizer.chat_template", chatTemplate))
	}
	notes = append([]gguf.KV{gguf.String("mica.synth.vocab", strings.Join(desc, "; "))}, notes...)
	return tok, notes, nil
}

func allZero(xs []float32) bool {
	for _, x := range xs {
		if x != 0 {
			return false
		}
	}
	return true
}

func checkUnique(tokens []string, src string) error {
	seen := make(map[string]int, len(tokens))
	for i, t := range tokens {
		if j, ok := seen[t]; ok {
			return fmt.Errorf("synth: vocabulary %s: token %q appears at ids %d and %d after the Gemma 4 special tokens were placed", src, t, j, i)
		}
		seen[t] = i
	}
	return nil
}

// scoresFromMerges gives each token formed by a merge the score -rank of the
// first merge that forms it, so that SentencePiece's "join the adjacent pair
// whose joined text has the highest score" follows the BPE merge order.
// Normal multi-character tokens no merge forms get a score below every
// merge; the others keep 0 (single characters, bytes and specials are never
// formed by joining).
func scoresFromMerges(tokens []string, types []int32, merges []string) []float32 {
	id := make(map[string]int, len(tokens))
	for i, t := range tokens {
		if _, dup := id[t]; !dup {
			id[t] = i
		}
	}
	scores := make([]float32, len(tokens))
	formed := make([]bool, len(tokens))
	for rank, m := range merges {
		k := -1
		if len(m) > 1 {
			if j := strings.IndexByte(m[1:], ' '); j >= 0 {
				k = j + 1
			}
		}
		if k < 0 {
			continue
		}
		if i, ok := id[m[:k]+m[k+1:]]; ok && !formed[i] {
			formed[i] = true
			scores[i] = -float32(rank)
		}
	}
	for i, t := range tokens {
		if !formed[i] && types[i] == tokNormal && len([]rune(t)) > 1 {
			scores[i] = -float32(len(merges) + 1)
		}
	}
	return scores
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
