package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// LoadHFJSON reads a Hugging Face tokenizer.json (gzip-compressed or not).
func LoadHFJSON(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	t, err := fromHFJSON(f, path)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// FromHFJSON reads a Hugging Face tokenizer.json (gzip-compressed or not)
// from r. Supported: the BPE model with byte fallback, normalizers Replace
// (" " -> "▁") and Prepend, added tokens; what Gemma's files use.
func FromHFJSON(r io.Reader) (*Tokenizer, error) { return fromHFJSON(r, "tokenizer.json") }

func fromHFJSON(r io.Reader, name string) (*Tokenizer, error) {
	data, err := readMaybeGzip(r)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	t, err := parseHF(data, name)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	return t, nil
}

func readMaybeGzip(r io.Reader) ([]byte, error) {
	var head [2]byte
	n, err := io.ReadFull(r, head[:])
	if err != nil && n == 0 {
		return nil, fmt.Errorf("empty input: %w", err)
	}
	r = io.MultiReader(bytes.NewReader(head[:n]), r)
	if n == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		var buf bytes.Buffer
		buf.Grow(40 << 20)
		if _, err := buf.ReadFrom(zr); err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		return buf.Bytes(), nil
	}
	return io.ReadAll(r)
}

type hfAdded struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// hfStep is a normalizer, pre-tokenizer or decoder; Sequence nests.
type hfStep struct {
	Type          string    `json:"type"`
	Pattern       hfPattern `json:"pattern"`
	Content       string    `json:"content"`
	Prepend       string    `json:"prepend"`
	Behavior      string    `json:"behavior"`
	Invert        bool      `json:"invert"`
	Start         int       `json:"start"`
	Stop          int       `json:"stop"`
	Normalizers   []hfStep  `json:"normalizers"`
	Pretokenizers []hfStep  `json:"pretokenizers"`
	Decoders      []hfStep  `json:"decoders"`
}

type hfPost struct {
	Type   string `json:"type"`
	Single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	} `json:"single"`
}

type hfModel struct {
	Type                    string   `json:"type"`
	UnkToken                *string  `json:"unk_token"`
	ByteFallback            bool     `json:"byte_fallback"`
	IgnoreMerges            bool     `json:"ignore_merges"`
	Dropout                 *float64 `json:"dropout"`
	ContinuingSubwordPrefix *string  `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string  `json:"end_of_word_suffix"`
}

func parseHF(data []byte, name string) (*Tokenizer, error) {
	l := &lexer{b: data}
	var (
		added           []hfAdded
		norm, pre, dec  *hfStep
		post            *hfPost
		model           hfModel
		vocabRaw, mhead []byte
		mergeStarts     []int // offsets of the merges' elements in data
		haveMerges      bool
		haveModel       bool
	)
	small := func(dst any, what string) error {
		raw, err := l.skip()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	err := l.object(func(key []byte) error {
		switch string(key) {
		case "added_tokens":
			return small(&added, "added_tokens")
		case "normalizer":
			return small(&norm, "normalizer")
		case "pre_tokenizer":
			return small(&pre, "pre_tokenizer")
		case "decoder":
			return small(&dec, "decoder")
		case "post_processor":
			return small(&post, "post_processor")
		case "model":
			haveModel = true
			var fields bytes.Buffer
			fields.WriteByte('{')
			err := l.object(func(k []byte) error {
				switch string(k) {
				case "vocab":
					raw, err := l.skip()
					vocabRaw = raw
					return err
				case "merges":
					haveMerges = true
					return l.array(func(int) error {
						l.ws()
						mergeStarts = append(mergeStarts, l.i)
						_, err := l.skip()
						return err
					})
				}
				kq, _ := json.Marshal(string(k))
				raw, err := l.skip()
				if err != nil {
					return err
				}
				if fields.Len() > 1 {
					fields.WriteByte(',')
				}
				fields.Write(kq)
				fields.WriteByte(':')
				fields.Write(raw)
				return nil
			})
			fields.WriteByte('}')
			mhead = fields.Bytes()
			return err
		}
		_, err := l.skip()
		return err
	})
	if err != nil {
		return nil, err
	}
	if !haveModel {
		return nil, fmt.Errorf("no \"model\"")
	}
	if err := json.Unmarshal(mhead, &model); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if model.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", model.Type)
	}
	if model.Dropout != nil && *model.Dropout != 0 {
		return nil, fmt.Errorf("BPE dropout %g is not supported", *model.Dropout)
	}
	if p := model.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, fmt.Errorf("continuing_subword_prefix %q is not supported", *p)
	}
	if p := model.EndOfWordSuffix; p != nil && *p != "" {
		return nil, fmt.Errorf("end_of_word_suffix %q is not supported", *p)
	}
	if vocabRaw == nil || !haveMerges {
		return nil, fmt.Errorf("model has no vocab or no merges")
	}

	t := &Tokenizer{model: BPE, source: name, bos: -1, eos: -1, unk: -1, pad: -1, eot: -1}
	t.hfBytes = model.ByteFallback
	t.ignoreMerges = model.IgnoreMerges

	// vocabulary
	vl := &lexer{b: vocabRaw}
	maxID := int64(-1)
	t.toID = make(map[string]int32, 1<<18)
	type entry struct {
		s  string
		id int32
	}
	entries := make([]entry, 0, 1<<18)
	err = vl.object(func(k []byte) error {
		s := string(k)
		id, err := vl.integer()
		if err != nil {
			return fmt.Errorf("vocab %q: %w", s, err)
		}
		if id < 0 || id >= 1<<31-1 {
			return fmt.Errorf("vocab %q: id %d out of range", s, id)
		}
		entries = append(entries, entry{s, int32(id)})
		maxID = max(maxID, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}
	for _, a := range added {
		if a.ID < 0 || a.ID >= 1<<31-1 {
			return nil, fmt.Errorf("added token %q: id %d out of range", a.Content, a.ID)
		}
		maxID = max(maxID, a.ID)
	}
	if maxID < 0 {
		return nil, fmt.Errorf("empty vocabulary")
	}
	if maxID >= 1<<24 {
		return nil, fmt.Errorf("vocabulary id %d is implausibly large", maxID)
	}
	n := int(maxID) + 1
	t.tokens = make([]string, n)
	t.types = make([]TokenType, n)
	t.scores = make([]float32, n)
	have := make([]bool, n)
	for _, e := range entries {
		if have[e.id] {
			return nil, fmt.Errorf("model.vocab: id %d appears twice (%q and %q)", e.id, t.tokens[e.id], e.s)
		}
		have[e.id] = true
		t.tokens[e.id] = e.s
		t.types[e.id] = TypeNormal
		if _, ok := isByteText(e.s); ok {
			t.types[e.id] = TypeByte
		}
		t.toID[e.s] = e.id
	}
	for _, a := range added {
		if a.Lstrip || a.Rstrip || a.SingleWord || (a.Normalized && !a.Special) {
			return nil, fmt.Errorf("added token %q (id %d): lstrip/rstrip/single_word/normalized are not supported", a.Content, a.ID)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added token id %d has empty content", a.ID)
		}
		if have[a.ID] && t.tokens[a.ID] != a.Content {
			delete(t.toID, t.tokens[a.ID])
		}
		have[a.ID] = true
		t.tokens[a.ID] = a.Content
		t.toID[a.Content] = int32(a.ID)
		if a.Special {
			t.types[a.ID] = TypeControl
		} else {
			t.types[a.ID] = TypeUserDefined
		}
	}
	for id := range have {
		if !have[id] {
			t.tokens[id] = fmt.Sprintf("[EMPTY_%d]", id)
			t.types[id] = TypeUnused
		}
	}

	triples, err := t.hfMerges(data, mergeStarts)
	if err != nil {
		return nil, fmt.Errorf("model.merges: %w", err)
	}
	t.setMergeIDs(triples)
	t.buildRuneSyms()

	if model.UnkToken != nil {
		id, ok := t.toID[*model.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *model.UnkToken)
		}
		t.unk = id
	}
	if err := t.hfNormalizer(norm); err != nil {
		return nil, err
	}
	if err := t.hfPreTokenizer(pre); err != nil {
		return nil, err
	}
	if err := t.hfDecoder(dec); err != nil {
		return nil, err
	}
	if post != nil && post.Type == "TemplateProcessing" && len(post.Single) > 0 && post.Single[0].SpecialToken != nil {
		if id, ok := t.toID[post.Single[0].SpecialToken.ID]; ok {
			t.bos = id
			t.addBOS = true
		}
	}
	for _, x := range []struct {
		name string
		dst  *int32
	}{{"<bos>", &t.bos}, {"<eos>", &t.eos}, {"<pad>", &t.pad}} {
		if *x.dst < 0 {
			if id, ok := t.toID[x.name]; ok {
				*x.dst = id
			}
		}
	}
	if err := t.finish(); err != nil {
		return nil, err
	}
	return t, nil
}

func flatten(s *hfStep, kids func(*hfStep) []hfStep) []hfStep {
	if s == nil {
		return nil
	}
	if s.Type != "Sequence" {
		return []hfStep{*s}
	}
	var out []hfStep
	for i := range kids(s) {
		out = append(out, flatten(&kids(s)[i], kids)...)
	}
	return out
}

func (t *Tokenizer) hfNormalizer(n *hfStep) error {
	for _, s := range flatten(n, func(s *hfStep) []hfStep { return s.Normalizers }) {
		switch {
		case s.Type == "Replace" && s.Pattern.String != nil && *s.Pattern.String == " " && s.Content == escapedSpace:
			t.escapeSpaces = true
		case s.Type == "Prepend" && s.Prepend == escapedSpace:
			t.prependSpace = true
		default:
			return fmt.Errorf("normalizer %q (%+v) is not supported", s.Type, s.Pattern)
		}
	}
	return nil
}

func (t *Tokenizer) hfPreTokenizer(p *hfStep) error {
	for _, s := range flatten(p, func(s *hfStep) []hfStep { return s.Pretokenizers }) {
		// Splitting at " " after the normalizer turned every space into
		// U+2581 never splits anything.
		if s.Type == "Split" && s.Pattern.String != nil && *s.Pattern.String == " " && t.escapeSpaces && !s.Invert {
			continue
		}
		return fmt.Errorf("pre_tokenizer %q is not supported", s.Type)
	}
	return nil
}

// hfDecoder accepts the decoders that amount to Decode's fixed rules:
// U+2581 -> ' ', byte tokens -> bytes, joined, and optionally one leading
// space stripped from the joined text.
func (t *Tokenizer) hfDecoder(d *hfStep) error {
	fused := false
	for _, s := range flatten(d, func(s *hfStep) []hfStep { return s.Decoders }) {
		switch {
		case s.Type == "Replace" && s.Pattern.String != nil && *s.Pattern.String == escapedSpace && s.Content == " ":
		case s.Type == "ByteFallback":
		case s.Type == "Fuse":
			fused = true
		case s.Type == "Strip" && fused && s.Content == " " && s.Start <= 1 && s.Stop == 0:
			t.stripLeadingSpace = s.Start == 1
		default:
			return fmt.Errorf("decoder %q is not supported", s.Type)
		}
	}
	return nil
}

// hfMerges resolves the merges, ["a b", ...] (old format) or
// [["a", "b"], ...], that start at the given offsets of raw to (left,
// right, result) ids; every part and every result must be a token. The
// (map-lookup bound) work runs on several goroutines.
func (t *Tokenizer) hfMerges(raw []byte, starts []int) ([][3]int32, error) {
	triples := make([][3]int32, len(starts))
	workers := min(runtime.GOMAXPROCS(0), 4, 1+len(starts)/50000)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := len(starts)*w/workers, len(starts)*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			ml := &lexer{b: raw}
			var buf []byte
			for i := lo; i < hi; i++ {
				ml.i = starts[i]
				tr, err := t.hfMerge(ml, i, &buf)
				if err != nil {
					errs[w] = err
					return
				}
				triples[i] = tr
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return triples, nil
}

// hfMerge reads merge i at ml's position.
func (t *Tokenizer) hfMerge(ml *lexer, i int, bufp *[]byte) ([3]int32, error) {
	var tr [3]int32
	sym := func(s []byte, what string) (int32, error) {
		if id, ok := t.toID[string(s)]; ok {
			return id, nil
		}
		return 0, fmt.Errorf("merge %d: %s %q is not in the vocabulary", i, what, s)
	}
	buf := (*bufp)[:0]
	defer func() { *bufp = buf }()
	var err error
	switch ml.peek() {
	case '"':
		s, err := ml.strBytes()
		if err != nil {
			return tr, err
		}
		k := -1
		for j := 1; j < len(s); j++ {
			if s[j] == ' ' {
				k = j
				break
			}
		}
		if k < 0 || k == len(s)-1 {
			return tr, fmt.Errorf("merge %d %q is not two parts separated by a space", i, s)
		}
		if tr[0], err = sym(s[:k], "left part"); err != nil {
			return tr, err
		}
		if tr[1], err = sym(s[k+1:], "right part"); err != nil {
			return tr, err
		}
		buf = append(append(buf, s[:k]...), s[k+1:]...)
	case '[':
		parts := 0
		err = ml.array(func(j int) error {
			if j > 1 {
				return fmt.Errorf("merge %d has more than two parts", i)
			}
			parts++
			s, err := ml.strBytes()
			if err != nil {
				return err
			}
			if len(s) == 0 {
				return fmt.Errorf("merge %d has an empty part", i)
			}
			buf = append(buf, s...)
			tr[j], err = sym(s, []string{"left part", "right part"}[j])
			return err
		})
		if err == nil && parts != 2 {
			err = fmt.Errorf("merge %d does not have two parts", i)
		}
		if err != nil {
			return tr, err
		}
	default:
		return tr, fmt.Errorf("merge %d: want a string or a pair", i)
	}
	tr[2], err = sym(buf, "result")
	return tr, err
}
