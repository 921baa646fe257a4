package tokenizer

import (
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncode checks, for the Hugging Face tokenizer:
//   - valid UTF-8 round-trips exactly, except that U+2581 (the vocabulary's
//     space symbol) comes back as ' ': the normalizer writes spaces as U+2581
//     and the decoder reads every U+2581 as a space, so a literal U+2581 in
//     the text is the one thing the encoding loses;
//   - with ParseSpecial off no control token appears, and with it on the
//     text still round-trips (control tokens decode to their text);
//   - invalid UTF-8 never panics: every byte comes back (as byte tokens),
//     and Decode's output is valid UTF-8;
//   - the GGUF copy of the same vocabulary (llama.cpp's gemma4 algorithm)
//     gives the same ids (except for "</s>" without ParseSpecial: see
//     TestSlashS).
func FuzzEncode(f *testing.F) {
	f.Add("Hello, world!")
	f.Add("<start_of_turn>user\nhi<end_of_turn>\n")
	f.Add("  two\n\n\tspaces ▁▁ \u2581x")
	f.Add("emoji 😀🎉👍🏽 𝔘𝔫𝔦 ancient 𓀀")
	f.Add("\xe2\x82 broken \xff\xfe utf8 \xe2\xe2\x96\x81")
	f.Add(strings.Repeat("\n", 40) + "<b>bold</b>")
	if p, ok := findShared(); ok {
		if data, err := os.ReadFile(p + "/testdata/gemma3-tokenizer/cases.jsonl"); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if len(line) > 2 {
					f.Add(line)
				}
			}
		}
	}
	hf := hfTokenizer(f)
	gg := ggufBPETokenizer(f)
	f.Fuzz(func(t *testing.T, text string) {
		want := strings.ReplaceAll(text, escapedSpace, " ")
		for _, special := range []bool{false, true} {
			ids, err := hf.Encode(text, EncodeOptions{ParseSpecial: special})
			if err != nil {
				t.Fatal(err)
			}
			if err := hf.CheckIDs(ids); err != nil {
				t.Fatal(err)
			}
			if !special {
				for _, id := range ids {
					if hf.IsSpecial(id) {
						t.Fatalf("%q: control token %d without ParseSpecial", text, id)
					}
				}
			}
			got := hf.Decode(ids)
			if utf8.ValidString(text) {
				if got != want {
					t.Fatalf("%q (special %v): decoded %q, want %q", text, special, got, want)
				}
			} else {
				if !utf8.ValidString(got) {
					t.Fatalf("%q: Decode gave invalid UTF-8 %q", text, got)
				}
				var raw []byte
				for _, id := range ids {
					raw = hf.appendPiece(raw, id)
				}
				if r := strings.ReplaceAll(string(raw), escapedSpace, " "); r != want {
					t.Fatalf("%q: bytes %q, want %q", text, r, want)
				}
			}
			if utf8.ValidString(text) && (special || !strings.Contains(text, "</s>")) {
				ids2, _ := gg.Encode(text, EncodeOptions{ParseSpecial: special})
				if !slices.Equal(ids, ids2) {
					t.Fatalf("%q (special %v): hf %v gguf %v", text, special, ids, ids2)
				}
			}
		}
	})
}
