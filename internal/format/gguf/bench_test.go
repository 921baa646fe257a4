package gguf

import (
	"path/filepath"
	"testing"
)

// BenchmarkOpenVocab opens the 262k-token Gemma tokenizer GGUF (header only:
// tokens, scores, token types and merges).
func BenchmarkOpenVocab(b *testing.B) {
	path := filepath.Join(sharedDir(b), "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf")
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
