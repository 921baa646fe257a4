// Package imagefile decodes image files (PNG, JPEG, GIF's first frame, WebP)
// into 8-bit RGB the way llama.cpp's stb_image decode with three channels
// sees them: alpha is dropped (not composited), grey is replicated, 16-bit
// channels keep their high byte. JPEG EXIF orientation is applied unless
// disabled. Sizes are checked from the header before any pixel is decoded.
package imagefile

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/webp"
)

// DefaultMaxPixels bounds width × height when Options.MaxPixels is 0.
const DefaultMaxPixels = 50_000_000

// Options control decoding.
type Options struct {
	// MaxPixels is the largest width × height accepted (0: DefaultMaxPixels).
	MaxPixels int64
	// IgnoreOrientation leaves JPEG pixels as stored, ignoring the EXIF
	// orientation tag (llama.cpp's behaviour; by default it is applied so
	// that photos come out upright).
	IgnoreOrientation bool
}

// ErrUnsupported is wrapped by errors for formats that are not decoded.
var ErrUnsupported = errors.New("unsupported image format")

// ErrTooLarge is wrapped by errors for images over the pixel limit.
var ErrTooLarge = errors.New("image too large")

// Image is a decoded picture: packed 8-bit RGB, row-major.
type Image struct {
	Format string // "png", "jpeg", "gif" or "webp"
	Width  int
	Height int
	RGB    []uint8 // 3·Width·Height bytes
}

// ColorModel, Bounds and At make Image an image.Image.
func (m *Image) ColorModel() color.Model { return color.RGBAModel }

// Bounds is (0,0)-(Width,Height).
func (m *Image) Bounds() image.Rectangle { return image.Rect(0, 0, m.Width, m.Height) }

// At returns the opaque pixel at (x, y).
func (m *Image) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.Width || y >= m.Height {
		return color.RGBA{}
	}
	i := 3 * (y*m.Width + x)
	return color.RGBA{m.RGB[i], m.RGB[i+1], m.RGB[i+2], 255}
}

// NRGBA returns the pixels as an opaque *image.NRGBA.
func (m *Image) NRGBA() *image.NRGBA {
	out := image.NewNRGBA(m.Bounds())
	for i := 0; i < m.Width*m.Height; i++ {
		copy(out.Pix[4*i:4*i+3], m.RGB[3*i:3*i+3])
		out.Pix[4*i+3] = 255
	}
	return out
}

// Sniff names the format of data from its first bytes ("" if unknown).
func Sniff(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		return "jpeg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// otherFormat names common formats that are recognised but not decoded.
func otherFormat(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("BM")):
		return "BMP"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "TIFF"
	case len(data) >= 12 && string(data[4:8]) == "ftyp":
		return "HEIF/AVIF"
	case bytes.HasPrefix(data, []byte("\xff\x0a")), bytes.HasPrefix(data, []byte("\x00\x00\x00\x0cJXL ")):
		return "JPEG XL"
	case bytes.HasPrefix(data, []byte("<svg")), bytes.HasPrefix(data, []byte("<?xml")):
		return "SVG"
	}
	return ""
}

// Decode decodes one image file held in memory.
func Decode(data []byte, o Options) (img *Image, err error) {
	format := Sniff(data)
	if format == "" {
		if name := otherFormat(data); name != "" {
			return nil, fmt.Errorf("imagefile: %w: %s (want PNG, JPEG, GIF or WebP)", ErrUnsupported, name)
		}
		return nil, fmt.Errorf("imagefile: %w: not a PNG, JPEG, GIF or WebP file", ErrUnsupported)
	}
	// The decoders are meant to return errors on any input; this guard
	// turns a decoder bug into an error rather than a crash.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("imagefile: %s: corrupt image (decoder failed: %v)", format, r)
		}
	}()
	cfg, err := decodeConfig(format, data)
	if err != nil {
		return nil, fmt.Errorf("imagefile: %s: %w", format, describe(err))
	}
	limit := o.MaxPixels
	if limit <= 0 {
		limit = DefaultMaxPixels
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("imagefile: %s: empty image (%d×%d)", format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > limit {
		return nil, fmt.Errorf("imagefile: %s: %w: %d×%d pixels is over the limit of %d", format, ErrTooLarge, cfg.Width, cfg.Height, limit)
	}
	m, err := decodeImage(format, data)
	if err != nil {
		return nil, fmt.Errorf("imagefile: %s: %w", format, describe(err))
	}
	out := &Image{Format: format, Width: m.Bounds().Dx(), Height: m.Bounds().Dy(), RGB: rgbOf(m)}
	if format == "gif" && m.Bounds() != image.Rect(0, 0, cfg.Width, cfg.Height) {
		out = onScreen(out, m.Bounds(), cfg.Width, cfg.Height)
	}
	if format == "jpeg" && !o.IgnoreOrientation {
		if or := exifOrientation(data); or > 1 {
			out = orient(out, or)
		}
	}
	return out, nil
}

func decodeConfig(format string, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch format {
	case "png":
		return png.DecodeConfig(r)
	case "jpeg":
		return jpeg.DecodeConfig(r)
	case "gif":
		return gif.DecodeConfig(r)
	default:
		return webp.DecodeConfig(r)
	}
}

func decodeImage(format string, data []byte) (image.Image, error) {
	r := bytes.NewReader(data)
	switch format {
	case "png":
		return png.Decode(r)
	case "jpeg":
		return jpeg.Decode(r)
	case "gif":
		return gif.Decode(r) // the first frame
	default:
		return webp.Decode(r)
	}
}

// describe makes a decoder's error say what kind of problem it is.
func describe(err error) error {
	msg := err.Error()
	if errors.Is(err, errUnexpectedEOF) || bytes.Contains([]byte(msg), []byte("unexpected EOF")) {
		return fmt.Errorf("truncated or corrupt image (%v)", err)
	}
	var fe png.FormatError
	if errors.As(err, &fe) {
		return fmt.Errorf("corrupt image (%v)", err)
	}
	var ue png.UnsupportedError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	var je jpeg.UnsupportedError
	if errors.As(err, &je) {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return fmt.Errorf("corrupt image (%v)", err)
}

// rgbOf drops alpha: the colour channels as stored for non-premultiplied
// pixels (premultiplied ones are un-premultiplied first); grey replicated.
func rgbOf(m image.Image) []uint8 {
	b := m.Bounds()
	W, H := b.Dx(), b.Dy()
	out := make([]uint8, 0, 3*W*H)
	switch p := m.(type) {
	case *image.NRGBA:
		for y := 0; y < H; y++ {
			row := p.Pix[y*p.Stride:]
			for x := 0; x < W; x++ {
				out = append(out, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
		return out
	case *image.Gray:
		for y := 0; y < H; y++ {
			for _, g := range p.Pix[y*p.Stride : y*p.Stride+W] {
				out = append(out, g, g, g)
			}
		}
		return out
	case *image.NYCbCrA: // WebP with alpha: the colour planes alone
		m = &p.YCbCr
	case *image.Paletted:
		pal := make([][3]uint8, len(p.Palette))
		for i, c := range p.Palette {
			pal[i] = rgb8(c)
		}
		for y := 0; y < H; y++ {
			for _, ix := range p.Pix[y*p.Stride : y*p.Stride+W] {
				var c [3]uint8
				if int(ix) < len(pal) {
					c = pal[ix]
				}
				out = append(out, c[0], c[1], c[2])
			}
		}
		return out
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgb8(m.At(x, y))
			out = append(out, c[0], c[1], c[2])
		}
	}
	return out
}

// rgb8 is a colour's non-premultiplied 8-bit RGB (16-bit: the high byte).
func rgb8(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.NRGBA64:
		return [3]uint8{uint8(v.R >> 8), uint8(v.G >> 8), uint8(v.B >> 8)}
	case color.Gray16:
		return [3]uint8{uint8(v.Y >> 8), uint8(v.Y >> 8), uint8(v.Y >> 8)}
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return [3]uint8{uint8(n.R >> 8), uint8(n.G >> 8), uint8(n.B >> 8)}
}

// onScreen places a GIF's first frame, which may cover only part of the
// logical screen, on a black screen-sized canvas (stb_image's GIF loader
// also starts from a zeroed canvas).
func onScreen(frame *Image, at image.Rectangle, w, h int) *Image {
	out := &Image{Format: frame.Format, Width: w, Height: h, RGB: make([]uint8, 3*w*h)}
	vis := at.Intersect(image.Rect(0, 0, w, h))
	for y := vis.Min.Y; y < vis.Max.Y; y++ {
		src := frame.RGB[3*((y-at.Min.Y)*frame.Width+(vis.Min.X-at.Min.X)):]
		copy(out.RGB[3*(y*w+vis.Min.X):3*(y*w+vis.Max.X)], src)
	}
	return out
}
