// Package jpegexif writes JPEG files that carry a text in EXIF's
// UserComment, where A1111 keeps a picture's generation parameters in JPEG
// and WebP files, and reads it back without decoding pixels.
package jpegexif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"unicode/utf16"
)

// Encode writes img as a JPEG of the given quality (1–100) with comment in
// EXIF UserComment, encoded as A1111 (piexif) does: "UNICODE\0" and UTF-16BE.
func Encode(w io.Writer, img image.Image, quality int, comment string) error {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return err
	}
	b := buf.Bytes()
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		return errors.New("jpegexif: the encoder wrote no JPEG start marker")
	}
	app1, err := exifSegment(comment)
	if err != nil {
		return err
	}
	for _, part := range [][]byte{b[:2], app1, b[2:]} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return nil
}

// exifSegment builds an APP1 segment: "Exif\0\0", a big-endian TIFF
// header, IFD0 with one entry (the Exif IFD pointer), the Exif IFD with one
// entry (UserComment), then the comment's bytes.
func exifSegment(comment string) ([]byte, error) {
	units := utf16.Encode([]rune(comment))
	data := make([]byte, 8+2*len(units))
	copy(data, "UNICODE\x00")
	for i, u := range units {
		binary.BigEndian.PutUint16(data[8+2*i:], u)
	}
	const ifd0 = 8                    // after the TIFF header
	const exifIFD = ifd0 + 2 + 12 + 4 // IFD0: count, one entry, next-IFD offset
	const dataAt = exifIFD + 2 + 12 + 4
	tiff := make([]byte, dataAt, dataAt+len(data))
	be := binary.BigEndian // as piexif writes: the UTF-16 text matches the TIFF order
	copy(tiff, "MM\x00*")
	be.PutUint32(tiff[4:], ifd0)
	be.PutUint16(tiff[ifd0:], 1)
	entry(tiff[ifd0+2:], 0x8769, 4, 1, exifIFD) // ExifIFDPointer, LONG
	be.PutUint16(tiff[exifIFD:], 1)
	entry(tiff[exifIFD+2:], 0x9286, 7, uint32(len(data)), dataAt) // UserComment, UNDEFINED
	tiff = append(tiff, data...)
	n := 2 + 6 + len(tiff)
	if n > 0xFFFF {
		return nil, fmt.Errorf("jpegexif: a %d-byte comment does not fit one EXIF segment", len(comment))
	}
	seg := []byte{0xFF, 0xE1, byte(n >> 8), byte(n)}
	seg = append(seg, "Exif\x00\x00"...)
	return append(seg, tiff...), nil
}

func entry(b []byte, tag, typ uint16, count, value uint32) {
	be := binary.BigEndian
	be.PutUint16(b, tag)
	be.PutUint16(b[2:], typ)
	be.PutUint32(b[4:], count)
	be.PutUint32(b[8:], value)
}

// ReadUserComment returns the EXIF UserComment of a JPEG ("" when it has
// none), decoding the UNICODE (UTF-16, either byte order per the TIFF
// header's), ASCII and undefined-charset forms. It reads only the markers
// before the image data.
func ReadUserComment(r io.Reader) (string, error) {
	t, err := TIFF(r)
	if err != nil || t == nil {
		return "", err
	}
	d, err := ParseTIFF(t)
	if err != nil {
		return "", err
	}
	exif, ok := d.Tag(d.IFD0, 0x8769)
	if !ok {
		return "", nil
	}
	uc, ok := d.Tag(exif.Uint32(), 0x9286)
	if !ok {
		return "", nil
	}
	count, at := uc.Count, uc.Uint32()
	if count < 8 || uint64(at)+uint64(count) > uint64(len(t)) {
		return "", errors.New("jpegexif: UserComment out of bounds")
	}
	data := t[at : at+count]
	code, text := string(data[:8]), data[8:]
	if code == "UNICODE\x00" {
		if len(text)%2 == 1 {
			text = text[:len(text)-1]
		}
		u := make([]uint16, len(text)/2)
		for i := range u {
			u[i] = d.Order.Uint16(text[2*i:])
		}
		// piexif writes big-endian whatever the TIFF order: trust a BOM-less
		// guess when the other order decodes to plainer text.
		if d.Order == binary.ByteOrder(binary.LittleEndian) && looksSwapped(u) {
			for i := range u {
				u[i] = u[i]>>8 | u[i]<<8
			}
		}
		return string(utf16.Decode(u)), nil
	}
	return string(bytes.TrimRight(text, "\x00")), nil
}

// TIFF returns the TIFF block (from its byte-order mark on) of a JPEG's
// first EXIF APP1 segment, reading only the markers before the image data;
// nil without an error when there is none.
func TIFF(r io.Reader) ([]byte, error) {
	br := &byteReader{r: r}
	if m, err := br.n(2); err != nil || m[0] != 0xFF || m[1] != 0xD8 {
		return nil, errors.New("jpegexif: not a JPEG file")
	}
	for {
		hdr, err := br.n(4)
		if err != nil {
			return nil, fmt.Errorf("jpegexif: truncated before the image data: %w", err)
		}
		if hdr[0] != 0xFF {
			return nil, errors.New("jpegexif: corrupt marker")
		}
		marker, size := hdr[1], int(hdr[2])<<8|int(hdr[3])
		if marker == 0xDA || marker == 0xD9 { // start of scan / end: no EXIF before the pixels
			return nil, nil
		}
		if size < 2 {
			return nil, errors.New("jpegexif: corrupt segment length")
		}
		body, err := br.n(size - 2)
		if err != nil {
			return nil, fmt.Errorf("jpegexif: truncated segment: %w", err)
		}
		if marker == 0xE1 && bytes.HasPrefix(body, []byte("Exif\x00\x00")) {
			return body[6:], nil
		}
	}
}

// Directory is a parsed TIFF header: its byte order and the offset of its
// first image file directory (IFD0).
type Directory struct {
	t     []byte
	Order binary.ByteOrder
	IFD0  uint32
}

// ParseTIFF reads the header of TIFF block t (as TIFF returns it).
func ParseTIFF(t []byte) (Directory, error) {
	if len(t) < 8 {
		return Directory{}, errors.New("jpegexif: short TIFF header")
	}
	d := Directory{t: t}
	switch string(t[:2]) {
	case "II":
		d.Order = binary.LittleEndian
	case "MM":
		d.Order = binary.BigEndian
	default:
		return Directory{}, errors.New("jpegexif: bad TIFF byte order")
	}
	d.IFD0 = d.Order.Uint32(t[4:])
	return d, nil
}

// Entry is one IFD entry: its type, count and 4-byte value field.
type Entry struct {
	Type  uint16
	Count uint32
	value []byte
	order binary.ByteOrder
}

// Uint32 is the value field as a LONG (or an offset into the TIFF block).
func (e Entry) Uint32() uint32 { return e.order.Uint32(e.value) }

// Uint16 is the value field as one SHORT (the first two bytes).
func (e Entry) Uint16() uint16 { return e.order.Uint16(e.value) }

// Tag finds tag in the IFD at offset ifd; false when the IFD or the tag is
// missing or out of bounds.
func (d Directory) Tag(ifd uint32, tag uint16) (Entry, bool) {
	t, bo := d.t, d.Order
	if uint64(ifd)+2 > uint64(len(t)) {
		return Entry{}, false
	}
	n := int(bo.Uint16(t[ifd:]))
	for i := 0; i < n; i++ {
		off := uint64(ifd) + 2 + 12*uint64(i)
		if off+12 > uint64(len(t)) {
			return Entry{}, false
		}
		e := t[off : off+12]
		if bo.Uint16(e) == tag {
			return Entry{Type: bo.Uint16(e[2:]), Count: bo.Uint32(e[4:]), value: e[8:12], order: bo}, true
		}
	}
	return Entry{}, false
}

// looksSwapped reports whether UTF-16 units look byte-swapped: ASCII text
// read in the wrong order has its high byte set and low byte zero.
func looksSwapped(u []uint16) bool {
	swapped, plain := 0, 0
	for _, v := range u {
		switch {
		case v&0xFF == 0 && v != 0:
			swapped++
		case v < 0x100:
			plain++
		}
	}
	return swapped > plain
}

type byteReader struct{ r io.Reader }

func (b *byteReader) n(k int) ([]byte, error) {
	buf := make([]byte, k)
	_, err := io.ReadFull(b.r, buf)
	return buf, err
}
