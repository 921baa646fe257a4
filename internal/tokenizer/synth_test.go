package tokenizer

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeMeta is GGUF metadata in a map, for small hand-made vocabularies.
type fakeMeta map[string]any

var errMissing = errors.New("key not found")

func (m fakeMeta) Has(k string) bool { _, ok := m[k]; return ok }
func get[T any](m fakeMeta, k string) (T, error) {
	var zero T
	v, ok := m[k]
	if !ok {
		return zero, fmt.Errorf("fake: %s: %w", k, errMissing)
	}
	x, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("fake: %s has type %T", k, v)
	}
	return x, nil
}
func (m fakeMeta) String(k string) (string, error)      { return get[string](m, k) }
func (m fakeMeta) Strings(k string) ([]string, error)   { return get[[]string](m, k) }
func (m fakeMeta) Float32s(k string) ([]float32, error) { return get[[]float32](m, k) }
func (m fakeMeta) Ints(k string) ([]int64, error)       { return get[[]int64](m, k) }
func (m fakeMeta) Int(k string) (int64, error)          { return get[int64](m, k) }
func (m fakeMeta) Bool(k string) (bool, error)          { return get[bool](m, k) }

func spmMeta() fakeMeta {
	toks := []string{"<unk>", "<s>", "</s>", "<0xC3>", "<0xA9>", "▁", "h", "e", "l", "o", "▁h", "he", "ll", "▁he", "llo", "▁hello", "<ctl>"}
	types := []int64{2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3}
	scores := make([]float32, len(toks))
	for i, s := range toks {
		if types[i] == 1 {
			scores[i] = float32(len(s)) // longer pieces score higher
		}
	}
	return fakeMeta{
		keyModel: "llama", keyTokens: toks, keyTypes: types, keyScores: scores,
		keyBOS: int64(1), keyEOS: int64(2), keyUNK: int64(0), keySpacePrefix: true,
	}
}

// TestSPMSpacePrefix: add_space_prefix puts "▁" before the first fragment
// and after each special token, and decoding removes the first one.
func TestSPMSpacePrefix(t *testing.T) {
	tok, err := FromGGUF(spmMeta())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text    string
		special bool
		want    []int32
		decoded string
	}{
		{"hello", false, []int32{15}, "hello"},
		{"hello é", false, []int32{15, 5, 3, 4}, "hello é"},
		// llama.cpp adds the prefix after a special token too, and decoding
		// strips only the first one: this text does not round-trip.
		{"<ctl>hello", true, []int32{16, 15}, "<ctl> hello"},
		{"hello<ctl>", true, []int32{15, 16}, "hello<ctl>"},
	} {
		got, _ := tok.Encode(c.text, EncodeOptions{ParseSpecial: c.special})
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v want %v (%q)", c.text, got, c.want, pieces(tok, got))
		}
		if d := tok.Decode(got); d != c.decoded {
			t.Errorf("%q: decoded %q, want %q", c.text, d, c.decoded)
		}
		checkStream(t, tok, got)
	}
	got, _ := tok.Encode("<ctl>", EncodeOptions{})
	if slices.Contains(got, 16) {
		t.Errorf("control token parsed without ParseSpecial: %v", got)
	}
	got, _ = tok.Encode("hi", EncodeOptions{AddBOS: true})
	if got[0] != 1 {
		t.Errorf("BOS: %v", got)
	}
}

func bpeMeta() fakeMeta {
	toks := []string{"<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "c", "ab", "<0x61>", "<0x62>", "<0x63>", "\n", "\n\n", "▁", "▁a", "<start_of_turn>", "<u>", "\n\n\n\n"}
	types := []int64{3, 3, 3, 3, 1, 1, 1, 1, 6, 6, 6, 1, 1, 1, 1, 3, 4, 1}
	return fakeMeta{
		keyModel: "gemma4", keyTokens: toks, keyTypes: types,
		keyMerges: []string{"a b", "ab c", "▁ a", "\n \n"},
		keyBOS:    int64(2), keyEOS: int64(1),
		keyPre: "llama3", // ignored for model gemma4, as in llama.cpp
	}
}

// TestGGUFBPEByText: llama.cpp merges by text, so a merge whose result is
// not a token still happens and the result falls back to bytes; newline
// runs that are tokens stay whole.
func TestGGUFBPEByText(t *testing.T) {
	tok, err := FromGGUF(bpeMeta())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text    string
		special bool
		want    []int32
	}{
		{"ab", false, []int32{7}},
		{"abc", false, []int32{8, 9, 10}}, // "abc" is no token: its bytes
		{"ab\n\nab", false, []int32{7, 12, 7}},
		{"a\n\n\na", false, []int32{4, 12, 11, 4}}, // "\n\n\n" is no token: merged by rank
		{"a\n\n\n\na", false, []int32{4, 17, 4}},   // a newline run that is a token stays whole (no merge makes it)
		{" a", false, []int32{14}},
		{"x", false, nil}, // no token, no byte token: dropped, as llama.cpp does
		{"<start_of_turn>ab<u>", true, []int32{15, 7, 16}},
	} {
		got, _ := tok.Encode(c.text, EncodeOptions{ParseSpecial: c.special})
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v want %v (%q)", c.text, got, c.want, pieces(tok, got))
		}
	}
	got, _ := tok.Encode("<start_of_turn>ab<u>", EncodeOptions{})
	if slices.Contains(got, 15) || !slices.Contains(got, 16) {
		t.Errorf("without ParseSpecial: %v", got)
	}
}

// TestMergesNeverMakeControl: even when merges spell a control token out
// of user text, ParseSpecial off gives its bytes instead.
func TestMergesNeverMakeControl(t *testing.T) {
	m := bpeMeta()
	toks := append([]string{}, m[keyTokens].([]string)...)
	types := append([]int64{}, m[keyTypes].([]int64)...)
	toks[7], types[7] = "ab", 3 // "ab" is now a control token that "a b" merges into
	m[keyTokens], m[keyTypes] = toks, types
	tok, err := FromGGUF(m)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tok.Encode("ab", EncodeOptions{}); !slices.Equal(got, []int32{8, 9}) {
		t.Errorf("ParseSpecial off: %v, want the bytes [8 9]", got)
	}
	if got, _ := tok.Encode("ab", EncodeOptions{ParseSpecial: true}); !slices.Equal(got, []int32{7}) {
		t.Errorf("ParseSpecial on: %v, want [7]", got)
	}
}

func TestGGUFErrors(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(m fakeMeta)
		want string
	}{
		"no model":     {func(m fakeMeta) { delete(m, keyModel) }, keyModel},
		"bad model":    {func(m fakeMeta) { m[keyModel] = "bert" }, `"bert"`},
		"no tokens":    {func(m fakeMeta) { delete(m, keyTokens) }, keyTokens},
		"short types":  {func(m fakeMeta) { m[keyTypes] = []int64{1} }, keyTypes},
		"bad bos":      {func(m fakeMeta) { m[keyBOS] = int64(1000) }, keyBOS},
		"no merges":    {func(m fakeMeta) { delete(m, keyMerges) }, keyMerges},
		"merge no sp":  {func(m fakeMeta) { m[keyMerges] = []string{"ab"} }, keyMerges + "[0]"},
		"scores types": {func(m fakeMeta) { m[keyScores] = []int64{1} }, keyScores},
	} {
		m := bpeMeta()
		c.edit(m)
		_, err := FromGGUF(m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", name, err, c.want)
		}
	}
}

const miniJSON = `{
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "<bos>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 9, "content": "<b>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
    {"id": 10, "content": "<turn>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
  "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true, "ignore_merges": false,
    "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6, "\u2581": 7, "\u2581ab": 8, "<b>": 9, "<turn>": 10,
              "<0xF0>": 11, "<0x9F>": 12, "<0x98>": 13, "<0x80>": 14, "\ud83d\ude00x": 15},
    MERGES}
}`

func TestHFJSONSmall(t *testing.T) {
	old := strings.Replace(miniJSON, "MERGES", `"merges": ["a b", "\u2581 ab"]`, 1)
	pairs := strings.Replace(miniJSON, "MERGES", `"merges": [["a", "b"], ["\u2581", "ab"]]`, 1)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(pairs))
	zw.Close()
	for name, src := range map[string][]byte{"old": []byte(old), "pairs": []byte(pairs), "gzip": gz.Bytes()} {
		tok, err := FromHFJSON(bytes.NewReader(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tok.VocabSize() != 16 || tok.BOS() != 2 || !tok.AddBOSByDefault() || tok.UNK() != 3 {
			t.Errorf("%s: size %d bos %d unk %d", name, tok.VocabSize(), tok.BOS(), tok.UNK())
		}
		if id, _ := tok.ID("\U0001F600x"); id != 15 {
			t.Errorf("%s: surrogate-pair escape: %d", name, id)
		}
		for _, c := range []struct {
			text    string
			special bool
			want    []int32
		}{
			{"ab ab", false, []int32{6, 8}},
			{"😀", false, []int32{11, 12, 13, 14}},
			{"<turn><b>", true, []int32{10, 9}},
			{"<b>", false, []int32{9}},
		} {
			got, _ := tok.Encode(c.text, EncodeOptions{ParseSpecial: c.special})
			if !slices.Equal(got, c.want) {
				t.Errorf("%s %q: got %v want %v", name, c.text, got, c.want)
			}
			if d := tok.Decode(got); d != c.text {
				t.Errorf("%s %q: decoded %q", name, c.text, d)
			}
		}
		got, _ := tok.Encode("<turn>", EncodeOptions{})
		if slices.Contains(got, 10) {
			t.Errorf("%s: control token without ParseSpecial: %v", name, got)
		}
	}
}

func TestHFJSONErrors(t *testing.T) {
	good := strings.Replace(miniJSON, "MERGES", `"merges": ["a b"]`, 1)
	for name, c := range map[string]struct{ json, want string }{
		"unigram":     {strings.Replace(good, `"type": "BPE"`, `"type": "Unigram"`, 1), "Unigram"},
		"bad merge":   {strings.Replace(good, `"a b"`, `"a zz"`, 1), `"zz"`},
		"no space":    {strings.Replace(good, `"a b"`, `"ab"`, 1), "merge 0"},
		"truncated":   {good[:len(good)/2], "JSON offset"},
		"normalizer":  {strings.Replace(good, `"type": "Replace", "pattern": {"String": " "}`, `"type": "NFKC", "pattern": {"String": " "}`, 1), "NFKC"},
		"lstrip":      {strings.Replace(good, `"content": "<b>", "single_word": false, "lstrip": false`, `"content": "<b>", "single_word": false, "lstrip": true`, 1), "<b>"},
		"no model":    {`{"added_tokens": []}`, "model"},
		"empty input": {``, "empty"},
	} {
		_, err := FromHFJSON(strings.NewReader(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %s", name, err, c.want)
		}
	}
}

// TestPartitionModes: the two special-token partitions differ only when a
// shorter token overlaps a longer one that starts later.
func TestPartitionModes(t *testing.T) {
	tr := newTrie()
	tr.insert("ab", 1, false)
	tr.insert("bcd", 2, false)
	tr.insert("<c>", 3, true)
	for _, c := range []struct {
		text            string
		longest, leftLg []span
	}{
		{"abcd", []span{{0, 1, -1}, {1, 4, 2}}, []span{{0, 2, 1}, {2, 4, -1}}},
		{"xabx<c>", []span{{0, 1, -1}, {1, 3, 1}, {3, 4, -1}, {4, 7, 3}}, []span{{0, 1, -1}, {1, 3, 1}, {3, 4, -1}, {4, 7, 3}}},
		{"", nil, nil},
	} {
		if got := tr.spans(c.text, true, true, nil); !slices.Equal(got, c.longest) {
			t.Errorf("longest-first %q: %v want %v", c.text, got, c.longest)
		}
		if got := tr.spans(c.text, true, false, nil); !slices.Equal(got, c.leftLg) {
			t.Errorf("leftmost-longest %q: %v want %v", c.text, got, c.leftLg)
		}
	}
	if got := tr.spans("<c>", false, true, nil); !slices.Equal(got, []span{{0, 3, -1}}) {
		t.Errorf("control without ParseSpecial: %v", got)
	}
}
