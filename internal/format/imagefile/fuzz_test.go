package imagefile

import (
	"image"
	"testing"
)

// FuzzDecode: no input crashes the decoder or escapes the pixel limit.
func FuzzDecode(f *testing.F) {
	f.Add(encodePNG(f, image.NewNRGBA(image.Rect(0, 0, 3, 2))))
	f.Add(encodePNG(f, image.NewGray(image.Rect(0, 0, 5, 1))))
	f.Add(jpegWithOrientation(f, 16, 8, 6))
	f.Add([]byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"))
	f.Add([]byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, Options{MaxPixels: 1 << 16})
		if err != nil {
			return
		}
		if img.Width*img.Height > 1<<16 || len(img.RGB) != 3*img.Width*img.Height {
			t.Fatalf("%d×%d with %d bytes", img.Width, img.Height, len(img.RGB))
		}
	})
}
