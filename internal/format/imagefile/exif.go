package imagefile

import (
	"encoding/binary"
	"io"
)

var errUnexpectedEOF = io.ErrUnexpectedEOF

// exifOrientation returns the EXIF orientation tag (1…8) of a JPEG, or 0
// when there is none or it cannot be read.
func exifOrientation(data []byte) int {
	i := 2 // after SOI
	for i+4 <= len(data) {
		if data[i] != 0xff {
			return 0
		}
		marker := data[i+1]
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return 0
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return 0
		}
		seg := data[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 0
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF header.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 0
	}
	n := int(bo.Uint16(t[off:]))
	for k := 0; k < n; k++ {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 { // SHORT
			v := int(bo.Uint16(t[e+8:]))
			if v >= 1 && v <= 8 {
				return v
			}
			return 0
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
