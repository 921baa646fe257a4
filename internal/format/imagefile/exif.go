package imagefile

import (
	"bytes"
	"io"
	"mica/internal/format/jpegexif"
)

var errUnexpectedEOF = io.ErrUnexpectedEOF

// exifOrientation returns the EXIF orientation tag (1…8) of a JPEG, or 0
// when there is none or it cannot be read.
func exifOrientation(data []byte) int {
	t, err := jpegexif.TIFF(bytes.NewReader(data))
	if err != nil || t == nil {
		return 0
	}
	d, err := jpegexif.ParseTIFF(t)
	if err != nil || d.Order.Uint16(t[2:]) != 42 || d.IFD0 < 8 {
		return 0
	}
	if e, ok := d.Tag(d.IFD0, 0x0112); ok && e.Type == 3 { // SHORT
		if v := int(e.Uint16()); v >= 1 && v <= 8 {
			return v
		}
	}
	return 0
}

// orient applies EXIF orientation o (2…8) so the image displays upright:
// 2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise,
// 7 transverse, 8 rotate 90° counter-clockwise.
func orient(m *Image, o int) *Image {
	W, H := m.Width, m.Height
	ow, oh := W, H
	if o >= 5 {
		ow, oh = H, W
	}
	out := &Image{Format: m.Format, Width: ow, Height: oh, RGB: make([]uint8, len(m.RGB))}
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = W-1-x, y
			case 3:
				dx, dy = W-1-x, H-1-y
			case 4:
				dx, dy = x, H-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = H-1-y, x
			case 7:
				dx, dy = H-1-y, W-1-x
			case 8:
				dx, dy = y, W-1-x
			default:
				dx, dy = x, y
			}
			copy(out.RGB[3*(dy*ow+dx):3*(dy*ow+dx)+3], m.RGB[3*(y*W+x):3*(y*W+x)+3])
		}
	}
	return out
}
