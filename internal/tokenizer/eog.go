package tokenizer

// llama.cpp recognises end-of-generation and fill-in-the-middle tokens by
// their text when it loads a vocabulary, and makes them control tokens (so
// that they are parsed in text only with parse_special). The lists are
// llama.cpp's (src/llama-vocab.cpp, impl::load).
var (
	eogTexts = []string{
		"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
		"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
		"_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
		"<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
	}
	fimTexts = []string{
		"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
		"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>",
		"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>",
		"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
		"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
		"<|file_sep|>",
	}
	// FIM pad, repo and file-separator tokens also end generation.
	fimEOG = []string{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
		"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"}
	alwaysUserDefined = []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}
)

// markEOG builds the end-of-generation set: EOS and the texts llama.cpp
// lists. With forceTypes (GGUF vocabularies, as llama.cpp loads them) the
// listed tokens also become control tokens, with llama.cpp's exceptions:
// "<|end|>" is not EOG next to "<|return|>"+"<|call|>" or
// "<|calls|>"+"<|flush|>" (it becomes user-defined), and "</s>" is not EOG
// (and becomes normal) in a vocabulary with "<|tool_response>" (Gemma 4).
//
// Consequence for the Gemma 3 vocabulary in GGUF form: "</s>" (an HTML
// tag, user-defined in tokenizer.json) is a control token and ends
// generation, exactly as in llama.cpp; so with ParseSpecial off, the text
// "</s>" is tokenized as characters from a GGUF but as token 212 from
// tokenizer.json.
func (t *Tokenizer) markEOG() {
	t.eog = map[int32]bool{}
	setControl := func(id int32) {
		if t.forceTypes && t.types[id] != TypeControl {
			t.types[id] = TypeControl
		}
	}
	if t.forceTypes {
		for _, s := range fimTexts {
			if id, ok := t.toID[s]; ok {
				setControl(id)
			}
		}
		for _, s := range fimEOG {
			if id, ok := t.toID[s]; ok {
				t.eog[id] = true
			}
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.toID[s]; ok {
			t.eog[id] = true
			setControl(id)
		}
	}
	for _, id := range []int32{t.eos, t.eot} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	has := func(s string) (int32, bool) {
		id, ok := t.toID[s]
		return id, ok && t.eog[id]
	}
	if end, ok := has("<|end|>"); ok {
		_, ret := has("<|return|>")
		_, call := has("<|call|>")
		_, calls := has("<|calls|>")
		_, flush := has("<|flush|>")
		if (ret && call) || (calls && flush) {
			delete(t.eog, end)
			if t.forceTypes {
				t.types[end] = TypeUserDefined
			}
		}
	}
	if _, ok := has("<|tool_response>"); ok {
		if s, ok := has("</s>"); ok {
			delete(t.eog, s)
			if t.forceTypes {
				t.types[s] = TypeNormal
			}
		}
	}
	if t.forceTypes {
		for _, s := range alwaysUserDefined {
			if id, ok := t.toID[s]; ok {
				t.types[id] = TypeUserDefined
			}
		}
	}
}
