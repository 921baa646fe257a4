package tokenizer

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// Metadata is the part of a GGUF file the tokenizer reads; *gguf.File
// satisfies it. (An interface, so that this package need not import the
// format packages of its own level.)
type Metadata interface {
	Has(key string) bool
	String(key string) (string, error)
	Strings(key string) ([]string, error)
	Float32s(key string) ([]float32, error)
	Ints(key string) ([]int64, error)
	Int(key string) (int64, error)
	Bool(key string) (bool, error)
}

// GGUF metadata keys.
const (
	keyModel       = "tokenizer.ggml.model"
	keyPre         = "tokenizer.ggml.pre"
	keyTokens      = "tokenizer.ggml.tokens"
	keyScores      = "tokenizer.ggml.scores"
	keyTypes       = "tokenizer.ggml.token_type"
	keyMerges      = "tokenizer.ggml.merges"
	keyBOS         = "tokenizer.ggml.bos_token_id"
	keyEOS         = "tokenizer.ggml.eos_token_id"
	keyUNK         = "tokenizer.ggml.unknown_token_id"
	keyPAD         = "tokenizer.ggml.padding_token_id"
	keyEOT         = "tokenizer.ggml.eot_token_id"
	keyAddBOS      = "tokenizer.ggml.add_bos_token"
	keySpacePrefix = "tokenizer.ggml.add_space_prefix"
)

// FromGGUF builds the tokenizer stored in a GGUF file's metadata
// (tokenizer.ggml.*). Supported models: "llama" (SentencePiece with scores)
// and "gemma4" (BPE with merges), tokenized the way llama.cpp does.
// Pass an open *gguf.File (its getters' errors name the file and key; if md
// has a SourceName() string method, this function's own errors use it).
func FromGGUF(md Metadata) (*Tokenizer, error) {
	name := "GGUF metadata"
	if p, ok := md.(interface{ SourceName() string }); ok {
		name = p.SourceName()
	}
	model, err := md.String(keyModel)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t := &Tokenizer{source: name, bos: -1, eos: -1, unk: -1, pad: -1, eot: -1, longestFirst: true, forceTypes: true}
	switch model {
	case "llama":
		t.model = SPM
		t.escapeSpaces = true
		t.addSpacePrefix = true // llama.cpp's default for SPM, overridden by the key below
		t.addBOS = true
		t.byteChar = true
		t.bos, t.eos, t.unk = 1, 2, 0 // llama.cpp's SPM defaults
	case "gemma4":
		t.model = BPE
		t.escapeSpaces = true
		t.nlSplit = true
		t.nlWhole = true
		t.dropUnk = true
		t.addBOS = true // llama.cpp forces add_bos for the gemma4 pre-tokenizer
	default:
		return nil, fmt.Errorf("tokenizer: %s: %s is %q; supported: \"llama\" (SentencePiece) and \"gemma4\" (BPE)", name, keyModel, model)
	}
	// (llama.cpp ignores tokenizer.ggml.pre for model gemma4: it always uses
	// the gemma4 pre-tokenizer.)

	t.tokens, err = md.Strings(keyTokens)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	n := len(t.tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: %s: %s is empty", name, keyTokens)
	}
	t.types = make([]TokenType, n)
	for i := range t.types {
		t.types[i] = TypeNormal
	}
	if md.Has(keyTypes) {
		tt, err := md.Ints(keyTypes)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if len(tt) < n {
			return nil, fmt.Errorf("tokenizer: %s: %s has %d entries for %d tokens", name, keyTypes, len(tt), n)
		}
		for i := range t.types {
			t.types[i] = TokenType(tt[i])
		}
	}
	t.scores = make([]float32, n)
	if md.Has(keyScores) {
		sc, err := md.Float32s(keyScores)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if len(sc) < n {
			return nil, fmt.Errorf("tokenizer: %s: %s has %d entries for %d tokens", name, keyScores, len(sc), n)
		}
		copy(t.scores, sc)
	}
	t.toID = make(map[string]int32, n)
	t.tokens = append([]string(nil), t.tokens...) // the metadata's slice is shared
	for i, s := range t.tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i) // llama.cpp's name for empty tokens
			t.tokens[i] = s
		}
		if j, dup := t.toID[s]; dup {
			return nil, fmt.Errorf("tokenizer: %s: %s: tokens %d and %d are both %q", name, keyTokens, j, i, s)
		}
		t.toID[s] = int32(i)
	}

	if model == "llama" && md.Has(keySpacePrefix) {
		if t.addSpacePrefix, err = md.Bool(keySpacePrefix); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	for _, k := range []struct {
		key string
		dst *int32
	}{{keyBOS, &t.bos}, {keyEOS, &t.eos}, {keyUNK, &t.unk}, {keyPAD, &t.pad}, {keyEOT, &t.eot}} {
		if int(*k.dst) >= n {
			*k.dst = -1
		}
		if !md.Has(k.key) {
			continue
		}
		v, err := md.Int(k.key)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if v < 0 || v >= int64(n) {
			return nil, fmt.Errorf("tokenizer: %s: %s = %d is outside the vocabulary (%d tokens)", name, k.key, v, n)
		}
		*k.dst = int32(v)
	}
	if model == "llama" && md.Has(keyAddBOS) {
		if t.addBOS, err = md.Bool(keyAddBOS); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}

	if t.model == BPE {
		merges, err := md.Strings(keyMerges)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if err := t.setMerges(len(merges), func(i int) (string, string, error) {
			m := merges[i]
			// llama.cpp splits at the first space after the first byte.
			k := -1
			if len(m) > 1 {
				if j := strings.IndexByte(m[1:], ' '); j >= 0 {
					k = j + 1
				}
			}
			if k < 0 {
				return "", "", fmt.Errorf("tokenizer: %s: %s[%d] = %q has no space between its two parts", name, keyMerges, i, m)
			}
			return m[:k], m[k+1:], nil
		}); err != nil {
			return nil, err
		}
	}
	t.stripLeadingSpace = t.model == SPM && t.addSpacePrefix
	if err := t.finish(); err != nil {
		return nil, err
	}
	return t, nil
}

// setMerges builds the merge table from n pairs given as text. Parts and
// results that are not tokens get symbol ids past the vocabulary (llama.cpp
// merges by text, so such merges still act). The first of duplicate pairs
// keeps its rank. The lookups, the bulk of the work for 500k merges, run on
// several goroutines.
func (t *Tokenizer) setMerges(n int, pair func(i int) (string, string, error)) error {
	triples := make([][3]int32, n)
	workers := min(runtime.GOMAXPROCS(0), 4, 1+n/50000)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			look := func(s string) int32 {
				if id, ok := t.toID[s]; ok {
					return id
				}
				return -1 // resolved below
			}
			for i := lo; i < hi; i++ {
				a, b, err := pair(i)
				if err == nil && (a == "" || b == "") {
					err = fmt.Errorf("tokenizer: %s: merge %d has an empty part", t.source, i)
				}
				if err != nil {
					errs[w] = err
					return
				}
				buf = append(append(buf[:0], a...), b...)
				r, ok := t.toID[string(buf)]
				if !ok {
					r = -1
				}
				triples[i] = [3]int32{look(a), look(b), r}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for i := range triples {
		tr := &triples[i]
		if tr[0] >= 0 && tr[1] >= 0 && tr[2] >= 0 {
			continue
		}
		a, b, _ := pair(i)
		tr[0], tr[1], tr[2] = t.internSym(a), t.internSym(b), t.internSym(a+b)
	}
	t.setMergeIDs(triples)
	t.buildRuneSyms()
	return nil
}

// internSym is the symbol id of a merge text: its token, or a new extra id.
func (t *Tokenizer) internSym(s string) int32 {
	if id, ok := t.toID[s]; ok {
		return id
	}
	if id, ok := t.extraID[s]; ok {
		return id
	}
	if t.extraID == nil {
		t.extraID = map[string]int32{}
	}
	id := int32(len(t.tokens) + len(t.extra))
	t.extra = append(t.extra, s)
	t.extraID[s] = id
	return id
}

// setMergeIDs fills the merge table from (left, right, result) ids in rank
// order. Inserting from the last rank down lets the first of duplicate
// pairs win without a lookup per merge.
func (t *Tokenizer) setMergeIDs(m [][3]int32) {
	t.merges = newPairTable(len(m))
	for i := len(m) - 1; i >= 0; i-- {
		t.merges.set(pairKey(m[i][0], m[i][1]), merge{rank: int32(i), result: m[i][2]})
	}
}

// buildRuneSyms maps every one-character token (and extra merge text) to
// its symbol id, for the per-character lookup that starts a BPE word.
func (t *Tokenizer) buildRuneSyms() {
	t.runeSym = make(map[rune]int32, 1<<15)
	add := func(s string, id int32) {
		if len(s) > utf8.UTFMax {
			return
		}
		r, size := utf8.DecodeRuneInString(s)
		if size == len(s) && (r != utf8.RuneError || size > 1) {
			t.runeSym[r] = id
		}
	}
	for id, s := range t.tokens {
		if t.toID[s] == int32(id) {
			add(s, int32(id))
		}
	}
	for i, s := range t.extra {
		add(s, int32(len(t.tokens)+i))
	}
}
