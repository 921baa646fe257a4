package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAlphaDropped: colour channels are kept as stored whatever the alpha,
// even fully transparent pixels (stb_image with 3 channels ignores alpha).
func TestAlphaDropped(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 3, 1))
	m.SetNRGBA(0, 0, color.NRGBA{10, 20, 30, 0})
	m.SetNRGBA(1, 0, color.NRGBA{200, 100, 50, 128})
	m.SetNRGBA(2, 0, color.NRGBA{1, 2, 3, 255})
	img, err := Decode(encodePNG(t, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{10, 20, 30, 200, 100, 50, 1, 2, 3}
	if !bytes.Equal(img.RGB, want) || img.Format != "png" {
		t.Errorf("got %v (%s), want %v", img.RGB, img.Format, want)
	}
}

// TestGreyAnd16Bit: grey is replicated; 16-bit channels keep the high byte.
func TestGreyAnd16Bit(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 2, 1))
	g.Pix[0], g.Pix[1] = 7, 250
	img, err := Decode(encodePNG(t, g), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint8{7, 7, 7, 250, 250, 250}; !bytes.Equal(img.RGB, want) {
		t.Errorf("grey: got %v, want %v", img.RGB, want)
	}
	m := image.NewNRGBA64(image.Rect(0, 0, 1, 1))
	m.SetNRGBA64(0, 0, color.NRGBA64{0x12ff, 0x3400, 0xfe01, 0x8000})
	img, err = Decode(encodePNG(t, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint8{0x12, 0x34, 0xfe}; !bytes.Equal(img.RGB, want) {
		t.Errorf("16-bit: got %v, want %v", img.RGB, want)
	}
}

// TestGIFFirstFrame: an animated GIF decodes to its first frame.
func TestGIFFirstFrame(t *testing.T) {
	pal := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	f0 := image.NewPaletted(image.Rect(0, 0, 2, 2), pal)
	f1 := image.NewPaletted(image.Rect(0, 0, 2, 2), pal)
	for i := range f1.Pix {
		f1.Pix[i] = 1
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{f0, f1}, Delay: []int{1, 1}}); err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b.Bytes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if got := img.RGB[3*i : 3*i+3]; !bytes.Equal(got, []uint8{255, 0, 0}) {
			t.Fatalf("pixel %d = %v, want red (the first frame)", i, got)
		}
	}
}

// jpegWithOrientation encodes a 2×1 JPEG (left white, right black) with an
// EXIF APP1 segment carrying orientation o (0: none).
func jpegWithOrientation(t testing.TB, w, h int, o int) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(0)
			if x < w/2 {
				v = 255
			}
			if y < h/2 {
				v /= 2
			}
			m.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	if o == 0 {
		return data
	}
	// TIFF (little endian): header, IFD0 with one entry 0x0112 SHORT 1 = o.
	tiff := []byte("II*\x00\x08\x00\x00\x00")
	tiff = binary.LittleEndian.AppendUint16(tiff, 1)
	tiff = binary.LittleEndian.AppendUint16(tiff, 0x0112)
	tiff = binary.LittleEndian.AppendUint16(tiff, 3)
	tiff = binary.LittleEndian.AppendUint32(tiff, 1)
	tiff = binary.LittleEndian.AppendUint16(tiff, uint16(o))
	tiff = append(tiff, 0, 0, 0, 0, 0, 0)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xff, 0xe1}
	app1 = binary.BigEndian.AppendUint16(app1, uint16(len(seg)+2))
	app1 = append(app1, seg...)
	out := append([]byte{}, data[:2]...)
	out = append(out, app1...)
	return append(out, data[2:]...)
}

// TestEXIFOrientation: orientation 6 (rotate 90° clockwise) turns a 16×8
// image with a white left half into 8×16 with a white top half; with
// IgnoreOrientation, or without the tag, the pixels stay as stored.
func TestEXIFOrientation(t *testing.T) {
	lum := func(m *Image, x, y int) uint8 { return m.RGB[3*(y*m.Width+x)] }
	plain, err := Decode(jpegWithOrientation(t, 16, 8, 0), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Width != 16 || plain.Height != 8 || lum(plain, 2, 6) < 200 || lum(plain, 13, 6) > 50 {
		t.Fatalf("plain JPEG decoded wrong: %d×%d", plain.Width, plain.Height)
	}
	data := jpegWithOrientation(t, 16, 8, 6)
	if got := exifOrientation(data); got != 6 {
		t.Fatalf("orientation %d, want 6", got)
	}
	rot, err := Decode(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Rotating clockwise: source (x, y) goes to (H−1−y, x); the white left
	// half becomes the top, the dimmed top half becomes the right side.
	if rot.Width != 8 || rot.Height != 16 || lum(rot, 1, 2) < 200 || lum(rot, 1, 13) > 50 || lum(rot, 6, 2) > 150 {
		t.Errorf("rotated: %d×%d, top-left %d, bottom-left %d, top-right %d", rot.Width, rot.Height, lum(rot, 1, 2), lum(rot, 1, 13), lum(rot, 6, 2))
	}
	kept, err := Decode(data, Options{IgnoreOrientation: true})
	if err != nil {
		t.Fatal(err)
	}
	if kept.Width != 16 || !bytes.Equal(kept.RGB, plain.RGB) {
		t.Errorf("IgnoreOrientation changed the pixels")
	}
	// Every orientation maps back to the stored image when undone.
	for o := 1; o <= 8; o++ {
		m := orient(plain, o)
		if o >= 5 && (m.Width != 8 || m.Height != 16) {
			t.Errorf("orientation %d: %d×%d", o, m.Width, m.Height)
		}
	}
}

// TestBadInput: corrupt, truncated, unsupported and oversized inputs are
// errors that say which.
func TestBadInput(t *testing.T) {
	good := encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 64, 64)))
	big := image.NewGray(image.Rect(0, 0, 2000, 1000))
	cases := []struct {
		name string
		data []byte
		o    Options
		want string
		is   error
	}{
		{"empty", nil, Options{}, "not a PNG, JPEG, GIF or WebP", ErrUnsupported},
		{"text", []byte("hello world"), Options{}, "not a PNG", ErrUnsupported},
		{"bmp", []byte("BM\x00\x00\x00\x00\x00\x00"), Options{}, "BMP", ErrUnsupported},
		{"truncated png", good[:len(good)/2], Options{}, "png", nil},
		{"png header only", good[:20], Options{}, "truncated", nil},
		{"corrupt jpeg", []byte{0xff, 0xd8, 0xff, 0xe0, 0, 2, 0xff, 0xd9}, Options{}, "jpeg", nil},
		{"corrupt gif", []byte("GIF89a\x01\x00\x01\x00garbage"), Options{}, "gif", nil},
		{"corrupt webp", []byte("RIFF\x10\x00\x00\x00WEBPVP8 \x04\x00\x00\x00abcd"), Options{}, "webp", nil},
		{"too many pixels", encodePNG(t, big), Options{MaxPixels: 1_000_000}, "over the limit", ErrTooLarge},
	}
	for _, c := range cases {
		img, err := Decode(c.data, c.o)
		if err == nil {
			t.Errorf("%s: decoded %d×%d, want an error", c.name, img.Width, img.Height)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: error %q, want it to mention %q", c.name, err, c.want)
		}
	}
}

// TestWebP decodes x/image's own WebP test files when the module cache has
// them (they are not part of this repository).
func TestWebP(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skip("no go command")
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "golang.org", "x", "image@v0.48.0", "testdata")
	for _, name := range []string{"blue-purple-pink.lossless.webp", "blue-purple-pink.lossy.webp"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Skipf("x/image test data not in the module cache: %v", err)
		}
		img, err := Decode(data, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Format != "webp" || len(img.RGB) != 3*img.Width*img.Height || img.Width == 0 {
			t.Errorf("%s: %s %d×%d", name, img.Format, img.Width, img.Height)
		}
		// A truncated file is an error, never a crash.
		if _, err := Decode(data[:len(data)*2/3], Options{}); err == nil {
			t.Errorf("%s truncated: no error", name)
		}
	}
}

// TestGIFFrameOffset: a first frame smaller than the logical screen lands
// at its offset on a black screen-sized canvas.
func TestGIFFrameOffset(t *testing.T) {
	pal := color.Palette{color.RGBA{0, 0, 0, 255}, color.RGBA{0, 255, 0, 255}}
	fr := image.NewPaletted(image.Rect(2, 1, 4, 2), pal)
	for i := range fr.Pix {
		fr.Pix[i] = 1
	}
	var b bytes.Buffer
	g := &gif.GIF{Image: []*image.Paletted{fr}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 5, Height: 3}}
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b.Bytes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 5 || img.Height != 3 {
		t.Fatalf("%d×%d, want the 5×3 screen", img.Width, img.Height)
	}
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			want := uint8(0)
			if y == 1 && x >= 2 && x < 4 {
				want = 255
			}
			if g := img.RGB[3*(y*5+x)+1]; g != want {
				t.Errorf("(%d,%d) green %d, want %d", x, y, g, want)
			}
		}
	}
}

// TestEXIFOrientationBigEndian: a Motorola-order ("MM") TIFF block keeps
// the SHORT in the first two bytes of the value field.
func TestEXIFOrientationBigEndian(t *testing.T) {
	tiff := []byte("MM\x00*\x00\x00\x00\x08")
	tiff = binary.BigEndian.AppendUint16(tiff, 1)
	tiff = binary.BigEndian.AppendUint16(tiff, 0x0112)
	tiff = binary.BigEndian.AppendUint16(tiff, 3)
	tiff = binary.BigEndian.AppendUint32(tiff, 1)
	tiff = binary.BigEndian.AppendUint16(tiff, 8)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	data := []byte{0xff, 0xd8, 0xff, 0xe1}
	data = binary.BigEndian.AppendUint16(data, uint16(len(seg)+2))
	data = append(append(data, seg...), 0xff, 0xda, 0, 2)
	if got := exifOrientation(data); got != 8 {
		t.Fatalf("orientation %d, want 8", got)
	}
	if got := exifOrientation(data[:len(data)-10]); got != 0 {
		t.Fatalf("truncated: orientation %d, want 0", got)
	}
}
