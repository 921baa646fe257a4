package tokenizer

import (
	"strings"
	"testing"
)

func BenchmarkLoadHFJSON(b *testing.B) {
	p := sharedPath(b, "testdata", "gemma3-tokenizer", "tokenizer.json.gz")
	for b.Loop() {
		if _, err := LoadHFJSON(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadGGUF(b *testing.B) {
	p := sharedPath(b, "testdata", "gemma3-tokenizer", "gemma3-vocab-gemma4bpe.gguf")
	for b.Loop() {
		if _, err := loadGGUF(p); err != nil {
			b.Fatal(err)
		}
	}
}

// benchText is ~100k characters of mixed prose, code and CJK.
func benchText() string {
	var sb strings.Builder
	parts := []string{
		"The quick brown fox jumps over the lazy dog. ",
		"def f(a, b):\n    return a + b\n\n",
		"日本語のテキストと中文测试句子。",
		"Привет, как дела? ",
		"{\"key\": \"value\", \"n\": [1, 2, 3]}\n",
		"emoji 😀🎉👍🏽 ",
		"supercalifragilisticexpialidocious antidisestablishmentarianism ",
	}
	for i := 0; sb.Len() < 120_000; i++ {
		sb.WriteString(parts[i%len(parts)])
	}
	return sb.String()
}

func BenchmarkEncodeHF(b *testing.B) {
	tok := hfTokenizer(b)
	text := benchText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text, EncodeOptions{})
	}
}

func BenchmarkEncodeGGUF(b *testing.B) {
	tok := ggufBPETokenizer(b)
	text := benchText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text, EncodeOptions{})
	}
}

// BenchmarkEncodeOneLine is the worst shape for Gemma's BPE: 100k
// characters without a newline are a single word.
func BenchmarkEncodeOneLine(b *testing.B) {
	tok := hfTokenizer(b)
	text := strings.ReplaceAll(benchText(), "\n", " ")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text, EncodeOptions{})
	}
}

// BenchmarkEncodePathological: inputs that stress the special-token
// partition and the merge queue (100k newlines, '<', one repeated letter).
func BenchmarkEncodePathological(b *testing.B) {
	texts := map[string]string{
		"newlines": strings.Repeat("\n", 100_000),
		"angles":   strings.Repeat("<unused1", 12_500),
		"letters":  strings.Repeat("a", 100_000),
		"spaces":   strings.Repeat(" ", 100_000),
	}
	for name, tok := range map[string]func(testing.TB) *Tokenizer{"hf": hfTokenizer, "gguf": ggufBPETokenizer} {
		for tn, text := range texts {
			b.Run(name+"/"+tn, func(b *testing.B) {
				tk := tok(b)
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					tk.Encode(text, EncodeOptions{ParseSpecial: true})
				}
			})
		}
	}
}
