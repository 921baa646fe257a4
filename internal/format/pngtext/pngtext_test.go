package pngtext

import (
	"bytes"
	"compress/zlib"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mica/internal/testenv"
)

func testImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 7, 5))
	for y := range 5 {
		for x := range 7 {
			img.Set(x, y, color.NRGBA{uint8(x * 30), uint8(y * 50), uint8(x + y), uint8(255 - x)})
		}
	}
	return img
}

func encode(t *testing.T, text []KV) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, testImage(), text); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	text := []KV{
		{"parameters", "a photo of a cat\nNegative prompt: blurry\nSteps: 20, Seed: 42"},
		{"Comment", "café – 日本の風景 🐱"}, // needs iTXt
		{"latin", "naïve ÿ"}, // Latin-1: tEXt
		{"empty", ""},
	}
	b := encode(t, text)
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("image/png cannot decode the file: %v", err)
	}
	want := testImage()
	for y := range 5 {
		for x := range 7 {
			if color.NRGBAModel.Convert(img.At(x, y)) != want.At(x, y) {
				t.Fatalf("pixel %d,%d differs", x, y)
			}
		}
	}
	got, err := ReadTextList(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, text) {
		t.Errorf("read %q, want %q", got, text)
	}
	// Chunk types: tEXt for Latin-1, iTXt otherwise; text right after IHDR.
	types := chunkTypes(t, b)
	if want := []string{"IHDR", "tEXt", "iTXt", "tEXt", "tEXt", "IDAT", "IEND"}; !slices.Equal(types[:5], want[:5]) {
		t.Errorf("chunk order %v", types)
	}
	if !bytes.Equal(encode(t, text), b) {
		t.Error("Encode is not deterministic")
	}
	m, err := ReadText(bytes.NewReader(b))
	if err != nil || m["Comment"] != text[1].Value || len(m) != 4 {
		t.Errorf("ReadText: %v %v", m, err)
	}
}

func chunkTypes(t *testing.T, b []byte) []string {
	var types []string
	for i := 8; i+8 <= len(b); {
		n := int(b[i])<<24 | int(b[i+1])<<16 | int(b[i+2])<<8 | int(b[i+3])
		types = append(types, string(b[i+4:i+8]))
		i += 12 + n
	}
	return types
}

func TestEncodeErrors(t *testing.T) {
	for _, kv := range []KV{
		{"", "x"}, {strings.Repeat("k", 80), "x"}, {" lead", "x"}, {"a  b", "x"},
		{"日本", "x"}, {"k", "nul\x00"}, {"k", "bad\xff"},
	} {
		if err := Encode(io.Discard, testImage(), []KV{kv}); err == nil {
			t.Errorf("Encode accepted %q", kv)
		}
	}
}

func zlibBytes(s string) []byte {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// withChunks builds a PNG with the given raw text chunks after IHDR.
func withChunks(t *testing.T, chunks ...[]byte) []byte {
	b := encode(t, nil)
	const ihdrEnd = 8 + 8 + 13 + 4
	out := slices.Clone(b[:ihdrEnd])
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, b[ihdrEnd:]...)
}

func TestCompressed(t *testing.T) {
	z := chunk("zTXt", append([]byte("zkey\x00\x00"), zlibBytes("caf\xe9 z")...))
	iz := chunk("iTXt", append([]byte("ikey\x00\x01\x00en\x00Schlüssel\x00"), zlibBytes("日本 compressed")...))
	iu := chunk("iTXt", []byte("ukey\x00\x00\x00de\x00\x00plain ü"))
	got, err := ReadTextList(bytes.NewReader(withChunks(t, z, iz, iu)))
	want := []KV{{"zkey", "café z"}, {"ikey", "日本 compressed"}, {"ukey", "plain ü"}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
	// Later keyword wins in the map.
	m, _ := ReadText(bytes.NewReader(withChunks(t, chunk("tEXt", []byte("k\x00one")), chunk("tEXt", []byte("k\x00two")))))
	if m["k"] != "two" {
		t.Errorf("duplicate keyword: %q", m["k"])
	}
}

func TestBadFiles(t *testing.T) {
	good := encode(t, []KV{{"parameters", "hello"}})
	// Every truncation is an error, never a panic; the text survives once
	// its chunk is complete.
	for n := range len(good) {
		m, err := ReadText(bytes.NewReader(good[:n]))
		if err == nil {
			t.Fatalf("truncated at %d: no error", n)
		}
		if n > 8+25+12+16 && m["parameters"] != "hello" {
			t.Fatalf("truncated at %d: lost the text read before", n)
		}
	}
	bad := slices.Clone(good)
	bad[8+25+8+3] ^= 1 // a byte of the text chunk's data
	if _, err := ReadText(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Errorf("corrupt text: %v", err)
	}
	if _, err := ReadText(strings.NewReader("GIF89a......")); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("not a PNG: %v", err)
	}
	for _, c := range [][]byte{
		chunk("zTXt", []byte("k\x00\x00not zlib")),
		chunk("zTXt", []byte("k\x00\x07")),
		chunk("iTXt", []byte("k\x00\x01\x00\x00\x00not zlib")),
		chunk("iTXt", []byte("k\x00\x00\x00en")),
		chunk("iTXt", []byte("k\x00\x00\x00\x00\x00\xff")),
		chunk("tEXt", []byte("no keyword terminator")),
	} {
		if _, err := ReadText(bytes.NewReader(withChunks(t, c))); err == nil {
			t.Errorf("accepted bad chunk %q", c)
		}
	}
}

// TestReference reads the "parameters" chunk sd-cli wrote into the
// reference images.
func TestReference(t *testing.T) {
	files, _ := filepath.Glob(testenv.Shared(t, "reference", "sd", "case-*.png"))
	if len(files) == 0 {
		t.Skip("no reference PNGs")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ReadText(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		p := m["parameters"]
		if !strings.Contains(p, "\nSteps: ") || !strings.Contains(p, "Version: stable-diffusion.cpp") {
			t.Errorf("%s: parameters %q", filepath.Base(f), p)
		}
	}
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(files[0]), "case-b-txt2img-euler_a-f32.png"))
	if m, _ := ReadText(bytes.NewReader(b)); !strings.HasPrefix(m["parameters"], "a red apple on a wooden table\nNegative prompt: blurry\n") {
		t.Errorf("case b: %q", m["parameters"])
	}
}
