package jpegexif

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(3, 3, color.RGBA{255, 0, 0, 255})
	text := "a photo of a cat, (red:1.2) — ünïcödé 猫\nNegative prompt: blurry\nSteps: 20, Seed: 42"
	var buf bytes.Buffer
	if err := Encode(&buf, img, 92, text); err != nil {
		t.Fatal(err)
	}
	got, err := ReadUserComment(bytes.NewReader(buf.Bytes()))
	if err != nil || got != text {
		t.Fatalf("read %q, %v", got, err)
	}
	dec, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil || dec.Bounds() != img.Bounds() {
		t.Fatalf("the JPEG does not decode: %v", err)
	}
	// A JPEG without EXIF has no comment; broken files are errors.
	var plain bytes.Buffer
	jpeg.Encode(&plain, img, nil)
	if c, err := ReadUserComment(bytes.NewReader(plain.Bytes())); err != nil || c != "" {
		t.Fatalf("plain JPEG: %q %v", c, err)
	}
	for _, bad := range [][]byte{nil, []byte("GIF89a"), buf.Bytes()[:40]} {
		if _, err := ReadUserComment(bytes.NewReader(bad)); err == nil {
			t.Errorf("%d bytes: no error", len(bad))
		}
	}
}

func FuzzReadUserComment(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), 80, "Steps: 20")
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadUserComment(bytes.NewReader(b))
	})
}
