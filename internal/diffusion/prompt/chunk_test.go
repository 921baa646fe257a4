package prompt

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"mica/internal/testenv"
	"mica/internal/tokenizer/clip"
)

// words is a stand-in tokenizer: one id per space-separated word (commas
// split off as id 267, CLIP's ",</w>"), so layouts can be checked by hand.
type words struct{}

func (words) Encode(s string) []int32 {
	var ids []int32
	for _, w := range strings.Fields(strings.ReplaceAll(s, ",", " , ")) {
		switch w {
		case ",":
			ids = append(ids, 267)
		case "dog":
			ids = append(ids, 1929)
		default:
			ids = append(ids, 2368) // "cat"
		}
	}
	return ids
}

func repeat(w string, n int) string { return strings.Repeat(w+" ", n) }

// checkLayout: BOS first, EOS last, FirstEOS right, padding weight 1.
func checkLayout(t *testing.T, chunks []Chunk) {
	t.Helper()
	for k, c := range chunks {
		if c.IDs[0] != BOS || c.IDs[ChunkLen-1] != EOS || c.Weights[0] != 1 {
			t.Fatalf("chunk %d: bad ends %v", k, c.IDs)
		}
		if c.FirstEOS != slices.Index(c.IDs[:], EOS) {
			t.Fatalf("chunk %d: FirstEOS %d", k, c.FirstEOS)
		}
		for i := c.FirstEOS; i < ChunkLen; i++ {
			if c.Weights[i] != 1 {
				t.Fatalf("chunk %d: weight %g at pad %d", k, c.Weights[i], i)
			}
		}
	}
}

// count returns how many prompt tokens (not BOS/EOS) a chunk holds.
func count(c Chunk) int { return c.FirstEOS - 1 }

func TestTokenizeLayout(t *testing.T) {
	var w words
	for _, c := range []struct {
		name   string
		text   string
		counts []int
	}{
		{"empty", "", []int{0}},
		{"short", "cat dog", []int{2}},
		{"exactly 75", repeat("cat", 75), []int{75}},
		{"76 without commas", repeat("cat", 76), []int{75, 1}},
		{"160", repeat("cat", 160), []int{75, 75, 10}},
		// Comma at index 60: when the chunk fills (75) it is 15 back, within
		// 20, so the 14 tokens after it move on.
		{"comma backtrack", repeat("cat", 60) + ", " + repeat("dog", 30), []int{61, 30}},
		// Comma at index 50 is 25 back: no backtracking.
		{"comma too far", repeat("cat", 50) + ", " + repeat("dog", 40), []int{75, 16}},
		// A comma that is itself the 76th token starts the next chunk.
		{"comma at 76", repeat("cat", 75) + ", dog", []int{75, 2}},
		{"break", "cat BREAK dog", []int{1, 1}},
		{"break alone", "BREAK", []int{0}},
		{"break first", "BREAK cat", []int{0, 1}},
		{"break in parens is text", "(cat BREAK dog)", []int{3}},
	} {
		chunks := Tokenize(w, c.text)
		checkLayout(t, chunks)
		var got []int
		for _, ch := range chunks {
			got = append(got, count(ch))
		}
		if !slices.Equal(got, c.counts) {
			t.Errorf("%s: chunk sizes %v, want %v", c.name, got, c.counts)
		}
	}
	text := repeat("cat", 60) + ", " + repeat("dog", 30)
	chunks := Tokenize(w, text)
	if chunks[0].IDs[61] != 267 || chunks[0].IDs[62] != EOS || chunks[1].IDs[1] != 1929 {
		t.Errorf("backtracked layout wrong: %v / %v", chunks[0].IDs, chunks[1].IDs)
	}
	if off := (Options{}).Tokenize(w, text); len(off) != 2 || count(off[0]) != 75 {
		t.Errorf("CommaBacktrack 0 still backtracks")
	}
}

func TestTokenizeWeights(t *testing.T) {
	c := Tokenize(words{}, "(cat:1.5) dog [cat]")[0]
	want := []float32{1, 1.5, 1, float32(1 / 1.1), 1, 1}
	if !slices.Equal(c.Weights[:6], want) {
		t.Errorf("weights %v, want %v", c.Weights[:6], want)
	}
	if !c.Weighted() || Tokenize(words{}, "cat dog")[0].Weighted() {
		t.Error("Weighted wrong")
	}
	lit := Options{NoEmphasis: true}.Tokenize(words{}, "(cat:1.5) BREAK dog")
	if len(lit) != 1 || lit[0].Weighted() || count(lit[0]) != 3 {
		t.Errorf("NoEmphasis: %+v", lit)
	}
	// The moved tokens keep their weights.
	ch := Tokenize(words{}, repeat("cat", 60)+", (dog:1.3) "+repeat("dog", 30))
	if ch[1].IDs[1] != 1929 || ch[1].Weights[1] != 1.3 || ch[1].Weights[2] != 1 {
		t.Errorf("relocated weights: %v", ch[1].Weights[:4])
	}
}

func TestZeroAfterEOS(t *testing.T) {
	c := Tokenize(words{}, "cat dog")[0]
	z := c.ZeroAfterEOS()
	if z.IDs[3] != EOS || z.IDs[4] != 0 || z.IDs[ChunkLen-1] != 0 || z.IDs[2] != 1929 {
		t.Errorf("ZeroAfterEOS: %v", z.IDs)
	}
	if c.IDs[4] != EOS {
		t.Error("ZeroAfterEOS changed its receiver")
	}
	full := Tokenize(words{}, repeat("cat", 75))[0].ZeroAfterEOS()
	if full.IDs[ChunkLen-1] != EOS || full.FirstEOS != ChunkLen-1 {
		t.Errorf("full chunk: %v", full.IDs)
	}
}

var (
	tokOnce sync.Once
	tok     *clip.Tokenizer
	tokErr  error
)

func realTokenizer(t testing.TB) *clip.Tokenizer {
	path := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	tokOnce.Do(func() { tok, tokErr = clip.LoadBPEFile(path) })
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tok
}

// TestRealTokenizer lays out long prompts tokenized by CLIP's BPE.
func TestRealTokenizer(t *testing.T) {
	tk := realTokenizer(t)
	c := Tokenize(tk, "a (red:1.2) apple")[0]
	if want := []int32{BOS, 320, 736, 3055, EOS}; !slices.Equal(c.IDs[:5], want) || c.Weights[2] != 1.2 || c.Weights[3] != 1 {
		t.Errorf("ids %v weights %v", c.IDs[:5], c.Weights[:5])
	}
	// 30 × "a very long prompt" = 120 tokens, no commas: 75 + 45.
	long := strings.Repeat("a very long prompt ", 30)
	if got := Tokenize(tk, long); len(got) != 2 || count(got[0]) != 75 || count(got[1]) != 45 {
		t.Errorf("no commas: %d chunks", len(got))
	}
	// "masterpiece, best quality, …": 1 + 30×3 = 91 tokens, commas at token
	// 1, 4, …, 73; the chunk fills at 75 with "best" next, the last comma
	// (73) is 2 back, so the first chunk keeps 74 tokens, ending at it.
	tags := "masterpiece" + strings.Repeat(", best quality", 30)
	got := Tokenize(tk, tags)
	checkLayout(t, got)
	total := 0
	for _, ch := range got {
		n := count(ch)
		total += n
		if ch.IDs[n] != 267 && ch != got[len(got)-1] {
			t.Errorf("chunk does not end at a comma: %v", ch.IDs[n-2:n+2])
		}
	}
	if total != len(tk.Encode(tags)) || len(got) != 2 || count(got[0]) != 74 {
		t.Errorf("tags: %d chunks, first %d, total %d of %d", len(got), count(got[0]), total, len(tk.Encode(tags)))
	}
}

func TestRestore(t *testing.T) {
	const tokens, dim = 3, 4
	hidden := []float32{1, 2, 3, 4, -1, 0, 1, 2, 5, 5, 5, 5}
	orig := slices.Clone(hidden)
	if err := Restore(hidden, tokens, dim, []float32{1, 1, 1}); err != nil || !slices.Equal(hidden, orig) {
		t.Fatal("all-1 weights changed the output")
	}
	w := []float32{1, 2, 0.5}
	if err := Restore(hidden, tokens, dim, w); err != nil {
		t.Fatal(err)
	}
	mean := func(x []float32) float64 {
		s := 0.0
		for _, v := range x {
			s += float64(v)
		}
		return s / float64(len(x))
	}
	// Means equal to float32 rounding of a handful of values (1e-6 relative).
	if a, b := mean(orig), mean(hidden); math.Abs(a-b) > 1e-6*math.Abs(a) {
		t.Errorf("mean %g, want %g", b, a)
	}
	// Row ratios follow the weights: row 1 / row 0 element 3 = 2·2/4.
	k := hidden[0] / orig[0]
	for i := range hidden {
		want := orig[i] * w[i/dim] * k
		if math.Abs(float64(hidden[i]-want)) > 1e-5 {
			t.Errorf("value %d: %g, want %g", i, hidden[i], want)
		}
	}
	if err := Restore(hidden, 2, dim, w); err == nil {
		t.Error("bad shape accepted")
	}
}
