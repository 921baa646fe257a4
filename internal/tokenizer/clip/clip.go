// Package clip is OpenAI CLIP's byte-level BPE tokenizer, the one the text
// encoders of Stable Diffusion 1.x/2.x/XL were trained with: text is cleaned
// (HTML entities, whitespace), lower-cased, split by CLIP's pre-tokenizer
// (special tokens, English contractions, letter runs, single digits, runs of
// other symbols), and each piece is merged by the BPE ranks, the last symbol
// of a word carrying the "</w>" suffix. Ids are those of OpenAI's reference
// tokenizer (simple_tokenizer.py); start and end markers are BOS and EOS.
package clip

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// The special tokens of CLIP's vocabulary.
const (
	BOS int32 = 49406 // <|startoftext|>
	EOS int32 = 49407 // <|endoftext|>
)

// Merges is the number of BPE merges CLIP uses from the vocabulary file
// (49408 entries = 512 byte symbols + Merges + 2 special tokens).
const Merges = 49152 - 256 - 2

const (
	startText = "<|startoftext|>"
	endText   = "<|endoftext|>"
	wordEnd   = "</w>"
	cacheMax  = 1 << 14 // cached pieces before the cache is emptied
)

// Tokenizer encodes and decodes CLIP token ids. It is safe for concurrent
// use.
type Tokenizer struct {
	tokens   []string         // id → token (byte-level symbols, "</w>" kept)
	ids      map[string]int32 // token → id (the last of duplicates, as the reference)
	byteSym  [256]int32       // id of each byte's symbol
	byteEnd  [256]int32       // id of each byte's symbol + "</w>"
	merges   map[uint64]merge // (left id, right id) → rank and merged id
	byteOf   map[rune]byte    // byte-level symbol → byte (for Decode)
	mu       sync.RWMutex
	cache    map[string][]int32
	specials map[string]int32
}

type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// byteSymbols is the reversible byte → printable rune mapping of byte-level
// BPE: printable Latin-1 bytes map to themselves, the others to U+0100 up.
func byteSymbols() [256]rune {
	var m [256]rune
	var used [256]bool
	for _, r := range [][2]int{{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}} {
		for b := r[0]; b <= r[1]; b++ {
			m[b], used[b] = rune(b), true
		}
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !used[b] {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}

// byteOrder is the order of the first 256 vocabulary entries: the printable
// bytes first, then the others, as the reference builds its vocabulary.
func byteOrder() []int {
	var order, rest []int
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			order = append(order, b)
		} else {
			rest = append(rest, b)
		}
	}
	return append(order, rest...)
}

// LoadBPEFile reads a bpe_simple_vocab_16e6.txt file, gzip-compressed (as
// CLIP ships it) or plain.
func LoadBPEFile(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("clip: %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	t, err := LoadBPE(r)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return t, nil
}

// LoadBPE reads the merges file format of CLIP (bpe_simple_vocab_16e6.txt,
// uncompressed): a header line, then one merge per line ("i n"); the first
// Merges merges are used. The vocabulary is the 256 byte symbols, their
// "</w>" forms, the merged tokens in rank order, then the two specials.
func LoadBPE(r io.Reader) (*Tokenizer, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pairs := make([][2]string, 0, Merges)
	line := 0
	for sc.Scan() && len(pairs) < Merges {
		line++
		if line == 1 {
			continue // "#version: 0.2" header
		}
		a, b, err := splitMerge(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("clip: merges line %d: %w", line, err)
		}
		pairs = append(pairs, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("clip: merges line %d: %w", line+1, err)
	}
	if len(pairs) < Merges {
		return nil, fmt.Errorf("clip: merges file has %d merges, CLIP needs %d", len(pairs), Merges)
	}
	sym := byteSymbols()
	tokens := make([]string, 0, 512+Merges+2)
	for _, b := range byteOrder() {
		tokens = append(tokens, string(sym[b]))
	}
	for _, b := range byteOrder() {
		tokens = append(tokens, string(sym[b])+wordEnd)
	}
	for _, p := range pairs {
		tokens = append(tokens, p[0]+p[1])
	}
	tokens = append(tokens, startText, endText)
	ids := make(map[string]int32, len(tokens))
	for i, s := range tokens {
		ids[s] = int32(i)
	}
	return build(tokens, ids, pairs)
}

// LoadHF reads a Hugging Face CLIP tokenizer (a diffusers folder's
// tokenizer/vocab.json and tokenizer/merges.txt). All merges in merges.txt
// are used; the ids are vocab.json's.
func LoadHF(vocabJSON, mergesTXT io.Reader) (*Tokenizer, error) {
	var vocab map[string]int32
	if err := json.NewDecoder(vocabJSON).Decode(&vocab); err != nil {
		return nil, fmt.Errorf("clip: vocab.json: %w", err)
	}
	if len(vocab) == 0 || len(vocab) > 1<<24 {
		return nil, fmt.Errorf("clip: vocab.json: %d entries", len(vocab))
	}
	tokens := make([]string, len(vocab))
	seen := make([]bool, len(vocab))
	for s, id := range vocab {
		if id < 0 || int(id) >= len(vocab) || seen[id] {
			return nil, fmt.Errorf("clip: vocab.json: token %q has id %d: ids must be 0..%d, each once", s, id, len(vocab)-1)
		}
		tokens[id], seen[id] = s, true
	}
	sc := bufio.NewScanner(mergesTXT)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var pairs [][2]string
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if (line == 1 && strings.HasPrefix(text, "#version")) || strings.TrimSpace(text) == "" {
			continue
		}
		a, b, err := splitMerge(text)
		if err != nil {
			return nil, fmt.Errorf("clip: merges.txt line %d: %w", line, err)
		}
		pairs = append(pairs, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("clip: merges.txt line %d: %w", line+1, err)
	}
	return build(tokens, vocab, pairs)
}

func splitMerge(s string) (string, string, error) {
	s = strings.TrimRight(s, "\r")
	a, b, ok := strings.Cut(s, " ")
	if !ok || a == "" || b == "" || strings.Contains(b, " ") {
		return "", "", fmt.Errorf("want two symbols separated by one space, got %q", s)
	}
	return a, b, nil
}

// build indexes a vocabulary and its merges and checks that every symbol the
// tokenizer can produce has an id.
func build(tokens []string, ids map[string]int32, pairs [][2]string) (*Tokenizer, error) {
	t := &Tokenizer{
		tokens: tokens,
		ids:    ids,
		merges: make(map[uint64]merge, len(pairs)),
		byteOf: make(map[rune]byte, 256),
		cache:  make(map[string][]int32),
	}
	sym := byteSymbols()
	for b := 0; b < 256; b++ {
		s := string(sym[b])
		id, ok := ids[s]
		idEnd, okEnd := ids[s+wordEnd]
		if !ok || !okEnd {
			return nil, fmt.Errorf("clip: vocabulary lacks the byte symbol %q or %q", s, s+wordEnd)
		}
		t.byteSym[b], t.byteEnd[b] = id, idEnd
		t.byteOf[sym[b]] = byte(b)
	}
	for rank, p := range pairs {
		a, okA := ids[p[0]]
		b, okB := ids[p[1]]
		m, okM := ids[p[0]+p[1]]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("clip: merge %d (%q %q): a symbol or the merged token is not in the vocabulary", rank, p[0], p[1])
		}
		// A pair listed twice keeps its last rank, as the reference's dict does.
		t.merges[pairKey(a, b)] = merge{int32(rank), m}
	}
	t.specials = map[string]int32{}
	for _, s := range []string{startText, endText} {
		if id, ok := ids[s]; ok {
			t.specials[s] = id
		}
	}
	if len(t.specials) != 2 {
		return nil, errors.New("clip: vocabulary lacks <|startoftext|> or <|endoftext|>")
	}
	return t, nil
}

// Vocab is the number of token ids.
func (t *Tokenizer) Vocab() int { return len(t.tokens) }

// Token returns the vocabulary entry of id (byte-level symbols, with
// "</w>"), or "" when id is out of range.
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// Encode returns the ids of text without start and end markers. Written
// "<|startoftext|>" and "<|endoftext|>" become their ids, as in the
// reference tokenizer.
func (t *Tokenizer) Encode(text string) []int32 {
	var out []int32
	for _, piece := range preTokenize(clean(text)) {
		out = append(out, t.piece(piece)...)
	}
	return out
}

// piece returns the BPE ids of one pre-token, from the cache when it can.
func (t *Tokenizer) piece(p string) []int32 {
	if id, ok := t.specials[p]; ok {
		return []int32{id}
	}
	t.mu.RLock()
	ids, ok := t.cache[p]
	t.mu.RUnlock()
	if ok {
		return ids
	}
	ids = t.bpe(p)
	t.mu.Lock()
	if len(t.cache) >= cacheMax {
		clear(t.cache)
	}
	t.cache[p] = ids
	t.mu.Unlock()
	return ids
}

// bpe merges the bytes of one pre-token: repeatedly the adjacent pair of
// lowest rank, all its non-overlapping occurrences left to right, until no
// pair has a rank.
func (t *Tokenizer) bpe(p string) []int32 {
	word := make([]int32, len(p))
	for i := 0; i < len(p); i++ {
		word[i] = t.byteSym[p[i]]
	}
	word[len(word)-1] = t.byteEnd[p[len(p)-1]]
	for len(word) > 1 {
		best := merge{rank: -1}
		var bl, br int32
		for i := 0; i+1 < len(word); i++ {
			if m, ok := t.merges[pairKey(word[i], word[i+1])]; ok && (best.rank < 0 || m.rank < best.rank) {
				best, bl, br = m, word[i], word[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		out := word[:0]
		for i := 0; i < len(word); i++ {
			if i+1 < len(word) && word[i] == bl && word[i+1] == br {
				out = append(out, best.id)
				i++
			} else {
				out = append(out, word[i])
			}
		}
		word = out
	}
	return word
}

// Decode turns ids back into text the way the reference does: the tokens'
// bytes joined, invalid UTF-8 replaced by U+FFFD (one per maximal invalid
// subsequence, as Python's errors="replace"), and each "</w>" turned into a
// space. Ids out of range are skipped.
func (t *Tokenizer) Decode(ids []int32) string {
	var sb strings.Builder
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) {
			continue
		}
		sb.WriteString(t.tokens[id])
	}
	raw := make([]byte, 0, sb.Len())
	for _, r := range sb.String() {
		if b, ok := t.byteOf[r]; ok {
			raw = append(raw, b)
		} else {
			raw = append(raw, string(r)...) // not a byte symbol (a malformed vocabulary)
		}
	}
	return strings.ReplaceAll(fromUTF8Replace(raw), wordEnd, " ")
}
