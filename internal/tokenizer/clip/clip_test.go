package clip

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mica/internal/testenv"
)

var (
	loadOnce sync.Once
	loaded   *Tokenizer
	loadErr  error
)

// reference loads the shared CLIP merges (skipping without the shared folder).
func reference(t testing.TB) *Tokenizer {
	t.Helper()
	path := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	loadOnce.Do(func() { loaded, loadErr = LoadBPEFile(path) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

type refCase struct {
	Text         string  `json:"text"`
	IDs          []int32 `json:"ids"`
	WithSpecials []int32 `json:"with_specials"`
	Decoded      string  `json:"decoded"`
}

func referenceCases(t *testing.T) []refCase {
	t.Helper()
	f, err := os.Open(testenv.Shared(t, "testdata", "clip", "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []refCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c refCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	return cases
}

// TestReferenceCases reproduces every case of OpenAI's reference tokenizer.
func TestReferenceCases(t *testing.T) {
	tok := reference(t)
	if tok.Vocab() != 49408 {
		t.Fatalf("vocab %d, want 49408", tok.Vocab())
	}
	if tok.Token(BOS) != "<|startoftext|>" || tok.Token(EOS) != "<|endoftext|>" {
		t.Fatalf("specials %q %q", tok.Token(BOS), tok.Token(EOS))
	}
	for _, c := range referenceCases(t) {
		got := tok.Encode(c.Text)
		if !slices.Equal(got, c.IDs) {
			t.Errorf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
		}
		with := append(append([]int32{BOS}, got...), EOS)
		if !slices.Equal(with, c.WithSpecials) {
			t.Errorf("with specials %q = %v, want %v", c.Text, with, c.WithSpecials)
		}
		if d := tok.Decode(c.IDs); d != c.Decoded {
			t.Errorf("Decode(%q) = %q, want %q", c.Text, d, c.Decoded)
		}
	}
}

// TestHF checks that the Hugging Face files (vocab.json + merges.txt, made
// here from the same merges) give the same ids.
func TestHF(t *testing.T) {
	tok := reference(t)
	vocab := make(map[string]int32, tok.Vocab())
	for id := range tok.Vocab() {
		vocab[tok.Token(int32(id))] = int32(id)
	}
	vj, err := json.Marshal(vocab)
	if err != nil {
		t.Fatal(err)
	}
	// A full merges.txt: rebuild from ranks in one pass.
	byRank := make([]string, Merges)
	for k, m := range tok.merges {
		byRank[m.rank] = tok.Token(int32(k>>32)) + " " + tok.Token(int32(uint32(k)))
	}
	full := "#version: 0.2\n" + strings.Join(byRank, "\n") + "\n"
	hf, err := LoadHF(bytes.NewReader(vj), strings.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range referenceCases(t) {
		if got := hf.Encode(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("HF Encode(%q) = %v, want %v", c.Text, got, c.IDs)
		}
	}
	if _, err := LoadHF(strings.NewReader(`{"a": 0}`), strings.NewReader("#version: 0.2\ni n\n")); err == nil {
		t.Error("LoadHF accepted a vocabulary without byte symbols")
	}
	if _, err := LoadHF(strings.NewReader(`{"a": 5}`), strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "vocab.json") {
		t.Errorf("bad id: err = %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := LoadBPE(strings.NewReader("#version: 0.2\ni n\nt h\n")); err == nil || !strings.Contains(err.Error(), "merges") {
		t.Errorf("short file: err = %v", err)
	}
	if _, err := LoadBPE(strings.NewReader("#version: 0.2\nin\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: err = %v", err)
	}
	if _, err := LoadBPEFile("/nonexistent/bpe.txt.gz"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestPlainFile loads the merges uncompressed through LoadBPEFile.
func TestPlainFile(t *testing.T) {
	tok := reference(t)
	var sb strings.Builder
	sb.WriteString("#version: 0.2\n")
	byRank := make([]string, Merges)
	for k, m := range tok.merges {
		byRank[m.rank] = tok.Token(int32(k>>32)) + " " + tok.Token(int32(uint32(k)))
	}
	sb.WriteString(strings.Join(byRank, "\n"))
	path := t.TempDir() + "/bpe.txt"
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := LoadBPEFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plain.Encode("a photo of a cat"), []int32{320, 1125, 539, 320, 2368}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestCleaning covers the normalisation rules the reference cases do not.
func TestCleaning(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\x1f A\t\nB\u3000c\x1c ", "a b c"}, // ends: str.isspace; inside: White_Space
		{"a\x1cb", "a\x1cb"},
		{"fish &amp;amp; chips", "fish & chips"}, // unescaped twice
		{"ΟΔΟΣ Σ", "οδος σ"},                     // final sigma; a lone Σ is not final
		{"İ", "i\u0307"},
	} {
		if got := clean(c.in); got != c.want {
			t.Errorf("clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"it's we'll you'd i'm x'ſ", []string{"it", "'s", "we", "'ll", "you", "'d", "i", "'m", "x", "'ſ"}},
		{"!'s <|endoftext|>a<|startoftext|>", []string{"!'", "s", "<|endoftext|>", "a", "<|startoftext|>"}},
		{"x²3,4", []string{"x", "²", "3", ",", "4"}},
	} {
		if got := preTokenize(c.in); !slices.Equal(got, c.want) {
			t.Errorf("preTokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDecodeInvalid(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte{0xE2, 0x82, 'A'}, "\uFFFDA"}, // one replacement for a truncated sequence
		{[]byte{0xFF, 0xFE}, "\uFFFD\uFFFD"},
		{[]byte{0xED, 0xA0, 0x80}, "\uFFFD\uFFFD\uFFFD"}, // surrogates: each byte
		{[]byte{0xF0, 0x9F, 0x90}, "\uFFFD"},
	} {
		if got := fromUTF8Replace(c.in); got != c.want {
			t.Errorf("%x: %q, want %q", c.in, got, c.want)
		}
	}
	tok := reference(t)
	if got := tok.Decode([]int32{-1, 320, 1 << 20}); got != "a " {
		t.Errorf("out-of-range ids: %q", got)
	}
}

// TestSpeed: loading well under 200 ms and a 75-token prompt well under 1 ms
// (generous bounds: the machine is shared; the benchmarks give the numbers).
func TestSpeed(t *testing.T) {
	path := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	start := time.Now()
	tok, err := LoadBPEFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("load took %v", d)
	}
	prompt := longPrompt()
	tok.Encode(prompt)
	start = time.Now()
	ids := tok.Encode(prompt + " unseen words zyxwv")
	if d := time.Since(start); d > 20*time.Millisecond {
		t.Errorf("encode of %d tokens took %v", len(ids), d)
	}
}

func longPrompt() string {
	return "masterpiece, best quality, ultra-detailed, 8k wallpaper, a portrait of an old sailor " +
		"with a grey beard and a blue knitted cap, standing on the deck of a wooden ship, " +
		"stormy sea, dramatic lighting, rim light, volumetric fog, by greg rutkowski and alphonse mucha, " +
		"trending on artstation, sharp focus, intricate details, oil painting, cinematic composition"
}

func BenchmarkLoad(b *testing.B) {
	path := testenv.Shared(b, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	for b.Loop() {
		if _, err := LoadBPEFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode75(b *testing.B) {
	tok := reference(b)
	p := longPrompt()
	b.ReportMetric(float64(len(tok.Encode(p))), "tokens")
	for b.Loop() {
		tok.Encode(p)
	}
}

func BenchmarkEncode75Uncached(b *testing.B) {
	tok := reference(b)
	p := longPrompt()
	for b.Loop() {
		clear(tok.cache)
		tok.Encode(p)
	}
}

// TestConcurrent: Encode is safe from several goroutines (run with -race),
// also while the cache is being emptied.
func TestConcurrent(t *testing.T) {
	tok := reference(t)
	texts := []string{longPrompt(), "a photo of a cat", "日本の風景 🐱", "it's 3:45pm"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				i := (g + k) % len(texts)
				if got := tok.Encode(texts[i]); !slices.Equal(got, want[i]) {
					t.Errorf("goroutine %d: %q = %v", g, texts[i], got)
					return
				}
				tok.Encode(strings.Repeat("x", k%50+1)) // new pieces fill the cache
			}
		}()
	}
	wg.Wait()
}
