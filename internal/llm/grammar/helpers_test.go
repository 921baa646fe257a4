package grammar

import (
	"mica/internal/testenv"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"mica/internal/tokenizer"
)

func sharedDir(t testing.TB) string { return testenv.Shared(t) }

var (
	gemmaOnce  sync.Once
	gemmaVocab *Vocab
	gemmaTok   *tokenizer.Tokenizer
	gemmaErr   error
)

// gemma loads the 262k Gemma vocabulary once per test binary.
func gemma(t testing.TB) (*tokenizer.Tokenizer, *Vocab) {
	t.Helper()
	dir := sharedDir(t)
	gemmaOnce.Do(func() {
		gemmaTok, gemmaErr = tokenizer.LoadHFJSON(filepath.Join(dir, "testdata", "gemma3-tokenizer", "tokenizer.json.gz"))
		if gemmaErr == nil {
			gemmaVocab = NewVocab(gemmaTok)
		}
	})
	if gemmaErr != nil {
		t.Fatalf("loading Gemma tokenizer: %v", gemmaErr)
	}
	return gemmaTok, gemmaVocab
}

func readGBNF(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), "testdata", "gbnf", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustCompile(t testing.TB, text string) *Grammar {
	t.Helper()
	g, err := Compile(text)
	if err != nil {
		t.Fatalf("compile: %v\n%s", err, text)
	}
	return g
}
