// Package tokenizer turns text into Gemma token ids and back: SentencePiece
// (scores) and BPE (merges) vocabularies read from GGUF metadata or from a
// Hugging Face tokenizer.json, with byte fallback, special tokens that are
// recognised only on request, and a streaming detokenizer that never emits
// half a UTF-8 character.
//
// Fidelity. FromGGUF reproduces llama.cpp (src/llama-vocab.cpp):
//   - "llama": llm_tokenizer_spm — spaces become U+2581, a space prefix
//     (tokenizer.ggml.add_space_prefix) goes before the first text fragment
//     and after each special token, adjacent pieces whose joined text is a
//     token are joined highest score first (ties: leftmost), leftovers fall
//     back to <0xNN> byte tokens;
//   - "gemma4": BPE with the gemma4 pre-tokenizer — spaces become U+2581, the
//     text is split only into runs of newlines and runs of other characters
//     ([^\n]+|[\n]+), a newline run that is a token stays whole, merges are
//     applied by rank on raw UTF-8 characters (ties: leftmost), and pieces
//     that are not tokens fall back to <0xNN> byte tokens (dropped if the
//     vocabulary has none, as llama.cpp does);
//   - special tokens are cut out of the raw text first, longest token text
//     first (tokenizer_st_partition): user-defined tokens always, control
//     and unknown tokens only with ParseSpecial; and llama.cpp's load-time
//     retyping by text applies (see markEOG: "</s>" becomes a control,
//     end-of-generation token in the Gemma 3 vocabulary).
//
// FromHFJSON reproduces Hugging Face tokenizers for the BPE model with byte
// fallback: added tokens are cut out leftmost-longest (special ones only
// with ParseSpecial), the Replace(" " -> U+2581) normalizer applies to the
// rest, characters missing from the vocabulary become byte tokens before
// merging, and the whole text between added tokens is one word.
//
// Decode follows the tokenizer.json decoder for both: U+2581 -> ' ' in every
// token, byte tokens joined into characters, control tokens written out.
// (llama.cpp writes user-defined tokens verbatim, so it would print "▁▁"
// where Decode prints two spaces.)
package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TokenType is a token's kind, with the values GGUF stores in
// tokenizer.ggml.token_type.
type TokenType int32

// The GGUF token types.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

func (t TokenType) String() string {
	switch t {
	case TypeUndefined:
		return "undefined"
	case TypeNormal:
		return "normal"
	case TypeUnknown:
		return "unknown"
	case TypeControl:
		return "control"
	case TypeUserDefined:
		return "user-defined"
	case TypeUnused:
		return "unused"
	case TypeByte:
		return "byte"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Model is the segmentation algorithm.
type Model int

const (
	// SPM is SentencePiece's BPE variant: adjacent pieces are joined while the
	// joined text is a token, highest score first (llama.cpp llm_tokenizer_spm).
	SPM Model = iota
	// BPE joins adjacent pieces by merge rank, lowest first.
	BPE
)

func (m Model) String() string {
	if m == SPM {
		return "spm"
	}
	return "bpe"
}

// EncodeOptions control Encode.
type EncodeOptions struct {
	// ParseSpecial recognises control tokens (e.g. "<start_of_turn>") written
	// in the text. Leave it false for user text: then such strings are
	// tokenized as ordinary characters. User-defined tokens (HTML tags,
	// whitespace runs) are recognised either way, as in llama.cpp and
	// Hugging Face tokenizers.
	ParseSpecial bool
	// AddBOS puts the BOS token first.
	AddBOS bool
}

// ErrInvalidID is returned for token ids outside the vocabulary.
var ErrInvalidID = errors.New("token id out of range")

// escapedSpace is U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
const escapedSpace = "\u2581"

// Tokenizer is a loaded vocabulary. It is safe for concurrent use.
type Tokenizer struct {
	model  Model
	source string // where it was loaded from, for messages

	tokens []string    // id -> text as stored in the vocabulary
	types  []TokenType // id -> type
	scores []float32   // id -> score (SPM only)
	toID   map[string]int32

	// BPE: the symbol table extends the vocabulary with texts that appear
	// in merges but are not tokens (possible in a GGUF, where llama.cpp
	// merges by text); ids >= len(tokens) index extra.
	extra    []string
	extraID  map[string]int32
	runeSym  map[rune]int32 // single-character symbol id (vocabulary or extra)
	merges   *pairTable
	byteID   [256]int32 // <0xNN> token, or -1
	hfBytes  bool       // split unknown characters into byte tokens before merging (Hugging Face)
	dropUnk  bool       // drop bytes that have no byte token (llama.cpp BPE) instead of emitting unk
	nlSplit  bool       // split words at newline runs (llama.cpp gemma4 pre-tokenizer)
	nlWhole  bool       // a newline-only word that is a token stays whole (llama.cpp gemma4)
	byteChar bool       // SPM: a byte with no <0xNN> token may use the one-byte token (llama.cpp)

	// normalisation
	escapeSpaces      bool // ' ' -> U+2581
	addSpacePrefix    bool // SPM: ' ' before the first fragment and after each special token
	prependSpace      bool // Hugging Face Prepend("▁"): before every fragment
	ignoreMerges      bool // Hugging Face ignore_merges: a word that is a token stays whole
	stripLeadingSpace bool // decoding drops one space at the very start (SPM add_space_prefix; Strip decoder)

	special      *trie // user-defined and control tokens matched in raw text
	longestFirst bool  // llama.cpp's special-token partition instead of leftmost-longest

	bos, eos, unk, pad int32
	eot                int32 // tokenizer.ggml.eot_token_id, or -1
	addBOS             bool
	eog                map[int32]bool
	forceTypes         bool // apply llama.cpp's load-time type changes (GGUF)
}

type merge struct {
	rank   int32
	result int32
}

// Model reports the segmentation algorithm.
func (t *Tokenizer) Model() Model { return t.model }

// VocabSize is the number of token ids (valid ids are 0..VocabSize()-1).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenText is the token's text as the vocabulary stores it (with U+2581 for
// spaces, "<0x41>" for byte tokens). Out-of-range ids give "".
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// Type is the token's type; out-of-range ids give TypeUndefined.
func (t *Tokenizer) Type(id int32) TokenType {
	if id < 0 || int(id) >= len(t.types) {
		return TypeUndefined
	}
	return t.types[id]
}

// Score is the token's SentencePiece score (0 for BPE vocabularies).
func (t *Tokenizer) Score(id int32) float32 {
	if id < 0 || int(id) >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// ID finds a token by its exact vocabulary text, e.g. ID("<start_of_turn>").
func (t *Tokenizer) ID(text string) (int32, bool) {
	id, ok := t.toID[text]
	return id, ok
}

// IsControl reports whether id is a control token (BOS, EOS, turn markers…).
func (t *Tokenizer) IsControl(id int32) bool { return t.Type(id) == TypeControl }

// IsSpecial reports whether id is a control or unknown token: the ids that
// Encode yields only when ParseSpecial is set (or for BOS, when AddBOS is).
func (t *Tokenizer) IsSpecial(id int32) bool {
	ty := t.Type(id)
	return ty == TypeControl || ty == TypeUnknown
}

// IsEOG reports whether generation should stop at id: EOS and the
// end-of-turn markers llama.cpp recognises by text (for Gemma: <eos>,
// <end_of_turn>, <turn|>, <|tool_response>, and </s> unless the vocabulary
// has <|tool_response>); see markEOG.
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// BOS, EOS, UNK and PAD ids; -1 when the vocabulary has none.
func (t *Tokenizer) BOS() int32 { return t.bos }
func (t *Tokenizer) EOS() int32 { return t.eos }
func (t *Tokenizer) UNK() int32 { return t.unk }
func (t *Tokenizer) PAD() int32 { return t.pad }

// AddBOSByDefault reports whether the vocabulary asks for BOS before a
// prompt (tokenizer.ggml.add_bos_token; the tokenizer.json post-processor).
func (t *Tokenizer) AddBOSByDefault() bool { return t.addBOS }

// CheckIDs returns an error naming the first id outside the vocabulary.
func (t *Tokenizer) CheckIDs(ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) {
			return fmt.Errorf("tokenizer: id %d at position %d: %w (vocabulary has %d tokens)", id, i, ErrInvalidID, len(t.tokens))
		}
	}
	return nil
}

// Encode tokenizes text.
func (t *Tokenizer) Encode(text string, opts EncodeOptions) ([]int32, error) {
	if t == nil || len(t.tokens) == 0 {
		return nil, errors.New("tokenizer: empty vocabulary")
	}
	out := make([]int32, 0, len(text)/3+2)
	if opts.AddBOS {
		if t.bos < 0 {
			return nil, fmt.Errorf("tokenizer %s: AddBOS set but the vocabulary has no BOS token", t.source)
		}
		out = append(out, t.bos)
	}
	st := state{guard: !opts.ParseSpecial}
	prevSpecial := true // SPM: a space prefix goes before the first fragment
	for _, sp := range t.special.spans(text, opts.ParseSpecial, t.longestFirst, nil) {
		if sp.id >= 0 {
			out = append(out, sp.id)
			prevSpecial = true
			continue
		}
		out = t.encodeFragment(&st, out, text[sp.start:sp.end], prevSpecial)
		prevSpecial = false
	}
	return out, nil
}

// encodeFragment tokenizes text that holds no special token.
func (t *Tokenizer) encodeFragment(st *state, out []int32, frag string, prevSpecial bool) []int32 {
	if t.model == SPM && t.addSpacePrefix && prevSpecial {
		frag = " " + frag
	}
	if t.escapeSpaces && strings.IndexByte(frag, ' ') >= 0 {
		frag = strings.ReplaceAll(frag, " ", escapedSpace)
	}
	if t.prependSpace {
		frag = escapedSpace + frag
	}
	if t.model == SPM {
		return t.spm(st, out, frag)
	}
	if !t.nlSplit {
		return t.bpe(st, out, frag)
	}
	// llama.cpp gemma4 pre-tokenizer: [^\n]+|[\n]+
	for len(frag) > 0 {
		i := 0
		nl := frag[0] == '\n'
		for i < len(frag) && (frag[i] == '\n') == nl {
			i++
		}
		word := frag[:i]
		frag = frag[i:]
		if nl && t.nlWhole {
			if id, ok := t.toID[word]; ok {
				out = append(out, id)
				continue
			}
		}
		out = t.bpe(st, out, word)
	}
	return out
}

// charLen is the length of the UTF-8 sequence a lead byte announces, as
// llama.cpp's unicode_len_utf8 computes it (1 for stray continuation bytes),
// cut to what is left of s.
func charLen(s string, i int) int {
	b := s[i]
	n := 1
	switch {
	case b < 0x80:
		n = 1
	case b>>5 == 0x6:
		n = 2
	case b>>4 == 0xE:
		n = 3
	case b>>3 == 0x1E:
		n = 4
	}
	if i+n > len(s) {
		n = len(s) - i
	}
	return n
}

// appendBytes appends the byte-fallback tokens of s.
func (t *Tokenizer) appendBytes(out []int32, s string) []int32 {
	for i := 0; i < len(s); i++ {
		if id := t.byteID[s[i]]; id >= 0 {
			out = append(out, id)
			continue
		}
		if t.byteChar {
			if id, ok := t.toID[s[i:i+1]]; ok {
				out = append(out, id)
				continue
			}
		}
		if !t.dropUnk && t.unk >= 0 {
			out = append(out, t.unk)
		}
	}
	return out
}

// isByteText reports whether s is a byte token text "<0xNN>" and its value.
func isByteText(s string) (byte, bool) {
	if len(s) != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// finish builds the derived tables shared by both loaders: byte tokens, the
// special-token matcher and the EOG set. toID must be filled.
func (t *Tokenizer) finish() error {
	// Byte fallback looks tokens up by text, "<0x0A>" with upper-case hex,
	// whatever their type (llama.cpp byte_to_token; tokenizers' byte_fallback).
	const hex = "0123456789ABCDEF"
	for b := range t.byteID {
		t.byteID[b] = -1
		if id, ok := t.toID[string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})]; ok {
			t.byteID[b] = id
		}
	}
	t.markEOG()
	t.special = newTrie()
	for id, s := range t.tokens {
		switch t.types[id] {
		case TypeControl, TypeUnknown:
			t.special.insert(s, int32(id), true)
		case TypeUserDefined:
			t.special.insert(s, int32(id), false)
		}
	}
	return nil
}

// state is per-call scratch space.
type state struct {
	syms  []symbol
	heap  []candidate
	guard bool // ParseSpecial is off: merges must not yield control tokens
}

// emit appends a merged piece's token, unless the guard forbids it (a
// control or unknown token spelled out by merges of user text: never the
// case in Gemma's vocabularies, but user text must not become control
// tokens): then its bytes.
func (t *Tokenizer) emit(st *state, out []int32, id int32, text string) []int32 {
	if st.guard {
		if ty := t.types[id]; ty == TypeControl || ty == TypeUnknown {
			return t.appendBytes(out, text)
		}
	}
	return append(out, id)
}
