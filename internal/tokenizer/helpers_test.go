package tokenizer

import (
	"bufio"
	"encoding/json"
	"mica/internal/testenv"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"mica/internal/format/gguf"
)

// *gguf.File is what FromGGUF is meant to be given.
var _ Metadata = (*gguf.File)(nil)

func findShared() (string, bool) { return testenv.Find() }

// sharedPath joins parts under the shared folder, skipping the test when the
// folder or the file is missing.
func sharedPath(t testing.TB, parts ...string) string {
	t.Helper()
	dir, ok := findShared()
	if !ok {
		t.Skip("shared reference folder (../shared next to the repository root) is missing")
	}
	p := filepath.Join(append([]string{dir}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference file missing: %v", err)
	}
	return p
}

type tokCase struct {
	Text    string  `json:"text"`
	IDs     []int32 `json:"ids"`
	Decoded *string `json:"decoded"`
}

func readCases(t testing.TB, path string) []tokCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tokCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var c tokCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if c.IDs == nil {
			c.IDs = []int32{}
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return out
}

// The 262k vocabulary is loaded once per test binary from each source.
var (
	hfOnce, ggufOnce sync.Once
	hfTok, ggufTok   *Tokenizer
	hfErr, ggufErr   error
	hfLoad, ggufLoad time.Duration
)

func hfTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	p := sharedPath(t, "testdata", "gemma3-tokenizer", "tokenizer.json.gz")
	hfOnce.Do(func() {
		start := time.Now()
		hfTok, hfErr = LoadHFJSON(p)
		hfLoad = time.Since(start)
	})
	if hfErr != nil {
		t.Fatal(hfErr)
	}
	return hfTok
}

func ggufBPETokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	p := sharedPath(t, "testdata", "gemma3-tokenizer", "gemma3-vocab-gemma4bpe.gguf")
	ggufOnce.Do(func() {
		start := time.Now()
		ggufTok, ggufErr = loadGGUF(p)
		ggufLoad = time.Since(start)
	})
	if ggufErr != nil {
		t.Fatal(ggufErr)
	}
	return ggufTok
}

func loadGGUF(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return FromGGUF(f)
}
