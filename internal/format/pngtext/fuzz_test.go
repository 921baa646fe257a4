package pngtext

import (
	"bytes"
	"image"
	"testing"
)

// FuzzReadText: any bytes give text or an error, never a panic.
func FuzzReadText(f *testing.F) {
	var good bytes.Buffer
	Encode(&good, image.NewGray(image.Rect(0, 0, 2, 2)), []KV{{"parameters", "a cat"}, {"u", "日本"}})
	f.Add(good.Bytes())
	f.Add(append(signature[:8:8], 0, 0, 0, 13))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadText(bytes.NewReader(b))
		if err == nil && m == nil {
			t.Fatal("nil map without error")
		}
	})
}

// FuzzEncode: any keyword and text either encode to a file that reads back
// the same, or are refused.
func FuzzEncode(f *testing.F) {
	f.Add("parameters", "a cat\nSteps: 20")
	f.Add("k", "日本")
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	f.Fuzz(func(t *testing.T, k, v string) {
		var b bytes.Buffer
		if err := Encode(&b, img, []KV{{k, v}}); err != nil {
			return
		}
		got, err := ReadTextList(bytes.NewReader(b.Bytes()))
		if err != nil || len(got) != 1 || got[0] != (KV{k, v}) {
			t.Fatalf("%q=%q read back as %q, %v", k, v, got, err)
		}
	})
}
