package synth

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mica/internal/format/gguf"
)

// Token types, as GGUF stores them in tokenizer.ggml.token_type.
const (
	tokNormal      = 1
	tokUnknown     = 2
	tokControl     = 3
	tokUserDefined = 4
	tokByte        = 6
)

// Vocab is a tokenizer vocabulary as the GGUF tokenizer.ggml.* keys hold it.
type Vocab struct {
	Source string // the file it came from
	Model  string // tokenizer.ggml.model of the source ("gemma4", "llama"; "hf-bpe" for tokenizer.json)
	Tokens []string
	Scores []float32 // nil: all zero
	Types  []int32
	Merges []string // "left right", rank order; nil for SentencePiece sources

	BOS, EOS, UNK, PAD, EOT int64 // -1: absent
	AddBOS, AddEOS          bool
	ChatTemplate            string // "" when the source has none
}

// EnvVocab names the environment variable that supplies the default
// vocabulary file.
const EnvVocab = "MICA_VOCAB"

// ErrNoVocab is returned by Write when no vocabulary was given.
var ErrNoVocab = errors.New("synth: no vocabulary: pass --vocab FILE (a GGUF file with tokenizer.ggml.* keys, or a Hugging Face tokenizer.json[.gz]) or set " + EnvVocab)

// LoadVocab reads a vocabulary from a GGUF file (its tokenizer.ggml.* keys
// and tokenizer.chat_template) or from a Hugging Face tokenizer.json (or
// .json.gz), with tokenizer_config.json from the same folder when present
// (chat template, add_bos_token).
func LoadVocab(path string) (*Vocab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("synth: vocabulary: %w", err)
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err == nil && string(magic[:]) == "GGUF" {
		return vocabFromGGUF(path)
	}
	return vocabFromHF(path)
}

func vocabFromGGUF(path string) (*Vocab, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("synth: vocabulary: %w", err)
	}
	defer f.Close()
	v := &Vocab{Source: path, BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	fail := func(err error) (*Vocab, error) { return nil, fmt.Errorf("synth: vocabulary %s: %w", path, err) }
	if v.Model, err = f.String("tokenizer.ggml.model"); err != nil {
		return fail(err)
	}
	if v.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		return fail(err)
	}
	n := len(v.Tokens)
	if f.Has("tokenizer.ggml.scores") {
		if v.Scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
			return fail(err)
		}
		if len(v.Scores) != n {
			return fail(fmt.Errorf("tokenizer.ggml.scores has %d entries for %d tokens", len(v.Scores), n))
		}
	}
	if f.Has("tokenizer.ggml.token_type") {
		tt, err := f.Ints("tokenizer.ggml.token_type")
		if err != nil {
			return fail(err)
		}
		if len(tt) != n {
			return fail(fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(tt), n))
		}
		v.Types = make([]int32, n)
		for i, t := range tt {
			v.Types[i] = int32(t)
		}
	} else {
		v.Types = make([]int32, n)
		for i := range v.Types {
			v.Types[i] = tokNormal
		}
	}
	if f.Has("tokenizer.ggml.merges") {
		if v.Merges, err = f.Strings("tokenizer.ggml.merges"); err != nil {
			return fail(err)
		}
	}
	for _, k := range []struct {
		key string
		dst *int64
	}{{"bos_token_id", &v.BOS}, {"eos_token_id", &v.EOS}, {"unknown_token_id", &v.UNK},
		{"padding_token_id", &v.PAD}, {"eot_token_id", &v.EOT}} {
		key := "tokenizer.ggml." + k.key
		if !f.Has(key) {
			continue
		}
		x, err := f.Int(key)
		if err != nil {
			return fail(err)
		}
		if x < 0 || x >= int64(n) {
			return fail(fmt.Errorf("%s = %d is outside the %d tokens", key, x, n))
		}
		*k.dst = x
	}
	v.AddBOS = true
	if f.Has("tokenizer.ggml.add_bos_token") {
		if v.AddBOS, err = f.Bool("tokenizer.ggml.add_bos_token"); err != nil {
			return fail(err)
		}
	}
	if f.Has("tokenizer.ggml.add_eos_token") {
		if v.AddEOS, err = f.Bool("tokenizer.ggml.add_eos_token"); err != nil {
			return fail(err)
		}
	}
	if f.Has("tokenizer.chat_template") {
		if v.ChatTemplate, err = f.String("tokenizer.chat_template"); err != nil {
			return fail(err)
		}
	}
	return v, nil
}

// hfTokenizer is the part of tokenizer.json read here.
type hfTokenizer struct {
	AddedTokens []struct {
		ID      int64  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Model struct {
		Type   string            `json:"type"`
		Vocab  map[string]int64  `json:"vocab"`
		Merges []json.RawMessage `json:"merges"`
		Unk    *string           `json:"unk_token"`
	} `json:"model"`
}

func vocabFromHF(path string) (*Vocab, error) {
	fail := func(err error) (*Vocab, error) { return nil, fmt.Errorf("synth: vocabulary %s: %w", path, err) }
	raw, err := os.ReadFile(path)
	if err != nil {
		return fail(err)
	}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return fail(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return fail(err)
		}
	}
	var hf hfTokenizer
	if err := json.Unmarshal(raw, &hf); err != nil {
		return fail(fmt.Errorf("not a GGUF file nor a tokenizer.json: %w", err))
	}
	if hf.Model.Type != "BPE" {
		return fail(fmt.Errorf("model.type %q: only BPE tokenizer.json files are supported", hf.Model.Type))
	}
	n := int64(0)
	for _, id := range hf.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range hf.AddedTokens {
		n = max(n, a.ID+1)
	}
	if n <= 0 || n > 1<<24 {
		return fail(fmt.Errorf("vocabulary of %d tokens", n))
	}
	v := &Vocab{Source: path, Model: "hf-bpe", Tokens: make([]string, n), Types: make([]int32, n),
		BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1, AddBOS: true}
	set := make([]bool, n)
	for s, id := range hf.Model.Vocab {
		if id < 0 {
			return fail(fmt.Errorf("token %q has id %d", s, id))
		}
		v.Tokens[id], set[id] = s, true
		v.Types[id] = tokNormal
		if len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
			v.Types[id] = tokByte
		}
	}
	for _, a := range hf.AddedTokens {
		if a.ID < 0 {
			return fail(fmt.Errorf("added token %q has id %d", a.Content, a.ID))
		}
		v.Tokens[a.ID], set[a.ID] = a.Content, true
		v.Types[a.ID] = tokUserDefined
		if a.Special {
			v.Types[a.ID] = tokControl
		}
	}
	for id, ok := range set {
		if !ok {
			return fail(fmt.Errorf("no token has id %d", id))
		}
	}
	v.Merges = make([]string, len(hf.Model.Merges))
	for i, m := range hf.Model.Merges {
		var s string
		var pair []string
		if json.Unmarshal(m, &s) == nil {
			v.Merges[i] = s
		} else if json.Unmarshal(m, &pair) == nil && len(pair) == 2 {
			v.Merges[i] = pair[0] + " " + pair[1]
		} else {
			return fail(fmt.Errorf("merge %d is %s, want \"a b\" or [a, b]", i, m))
		}
	}
	ids := make(map[string]int64, n)
	for i, s := range v.Tokens {
		ids[s] = int64(i)
	}
	find := func(s string) int64 {
		if id, ok := ids[s]; ok {
			return id
		}
		return -1
	}
	// Gemma's ids; tokenizer_config.json below overrides them by name.
	v.PAD, v.EOS, v.BOS, v.UNK = find("<pad>"), find("<eos>"), find("<bos>"), find("<unk>")
	if hf.Model.Unk != nil {
		v.UNK = find(*hf.Model.Unk)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	if cb, err := os.ReadFile(cfgPath); err == nil {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(cb, &cfg); err != nil {
			return nil, fmt.Errorf("synth: %s: %w", cfgPath, err)
		}
		str := func(k string) (string, bool) {
			var s string
			if r, ok := cfg[k]; ok && json.Unmarshal(r, &s) == nil {
				return s, true
			}
			var o struct{ Content string }
			if r, ok := cfg[k]; ok && json.Unmarshal(r, &o) == nil && o.Content != "" {
				return o.Content, true
			}
			return "", false
		}
		boolean := func(k string, dst *bool) {
			if r, ok := cfg[k]; ok {
				_ = json.Unmarshal(r, dst)
			}
		}
		v.ChatTemplate, _ = str("chat_template")
		boolean("add_bos_token", &v.AddBOS)
		boolean("add_eos_token", &v.AddEOS)
		for _, k := range []struct {
			key string
			dst *int64
		}{{"bos_token", &v.BOS}, {"eos_token", &v.EOS}, {"unk_token", &v.UNK}, {"pad_token", &v.PAD}} {
			if s, ok := str(k.key); ok {
				if id := find(s); id >= 0 {
					*k.dst = id
				}
			}
		}
	}
	return v, nil
}

// ReadChatTemplate reads a chat template from a Jinja file, or from the
// chat_template field of a tokenizer_config.json.
func ReadChatTemplate(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("synth: chat template: %w", err)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var cfg struct {
			ChatTemplate *string `json:"chat_template"`
		}
		if json.Unmarshal(b, &cfg) == nil {
			if cfg.ChatTemplate == nil {
				return "", fmt.Errorf("synth: chat template %s: a JSON file without a chat_template string", path)
			}
			return *cfg.ChatTemplate, nil
		}
	}
	return string(b), nil
}
