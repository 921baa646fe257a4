package clip

import (
	"testing"
	"unicode/utf8"
)

// FuzzEncode: any text encodes without panicking, to ids in range, and
// decoding those ids gives valid UTF-8.
func FuzzEncode(f *testing.F) {
	tok := reference(f)
	for _, s := range []string{"a photo of a cat", "it's 3:45pm", "<|endoftext|>x", "\xff\xfe&amp;", "日本の風景 🐱", "'ſ ΟΔΟΣ İ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || int(id) >= tok.Vocab() {
				t.Fatalf("id %d out of range for %q", id, s)
			}
		}
		if d := tok.Decode(ids); !utf8.ValidString(d) {
			t.Fatalf("decode of %q is not UTF-8: %q", s, d)
		}
	})
}
