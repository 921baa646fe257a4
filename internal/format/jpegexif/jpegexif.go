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
	br := &byteReader{r: r}
	if m, err := br.n(2); err != nil || m[0] != 0xFF || m[1] != 0xD8 {
		return "", errors.New("jpegexif: not a JPEG file")
	}
	for {
		hdr, err := br.n(4)
		if err != nil {
			return "", fmt.Errorf("jpegexif: truncated before the image data: %w", err)
		}
		if hdr[0] != 0xFF {
			return "", errors.New("jpegexif: corrupt marker")
		}
		marker, size := hdr[1], int(hdr[2])<<8|int(hdr[3])
		if marker == 0xDA || marker == 0xD9 { // start of scan / end: no EXIF before the pixels
			return "", nil
		}
		if size < 2 {
			return "", errors.New("jpegexif: corrupt segment length")
		}
		body, err := br.n(size - 2)
		if err != nil {
			return "", fmt.Errorf("jpegexif: truncated segment: %w", err)
		}
		if marker == 0xE1 && bytes.HasPrefix(body, []byte("Exif\x00\x00")) {
			return userComment(body[6:])
		}
	}
}

func userComment(t []byte) (string, error) {
	if len(t) < 8 {
		return "", errors.New("jpegexif: short TIFF header")
	}
	var bo binary.ByteOrder
	little := false
	switch string(t[:2]) {
	case "II":
		bo, little = binary.LittleEndian, true
	case "MM":
		bo = binary.BigEndian
	default:
		return "", errors.New("jpegexif: bad TIFF byte order")
	}
	find := func(ifd uint32, tag uint16) (typ uint16, count, value uint32, ok bool) {
		if uint64(ifd)+2 > uint64(len(t)) {
			return 0, 0, 0, false
		}
		n := int(bo.Uint16(t[ifd:]))
		for i := 0; i < n; i++ {
			off := uint64(ifd) + 2 + 12*uint64(i)
			if off+12 > uint64(len(t)) {
				return 0, 0, 0, false
			}
			e := t[off:]
			if bo.Uint16(e) == tag {
				return bo.Uint16(e[2:]), bo.Uint32(e[4:]), bo.Uint32(e[8:]), true
			}
		}
		return 0, 0, 0, false
	}
	_, _, exif, ok := find(bo.Uint32(t[4:]), 0x8769)
	if !ok {
		return "", nil
	}
	_, count, at, ok := find(exif, 0x9286)
	if !ok {
		return "", nil
	}
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
			u[i] = bo.Uint16(text[2*i:])
		}
		// piexif writes big-endian whatever the TIFF order: trust a BOM-less
		// guess when the other order decodes to plainer text.
		if little && looksSwapped(u) {
			for i := range u {
				u[i] = u[i]>>8 | u[i]<<8
			}
		}
		return string(utf16.Decode(u)), nil
	}
	return string(bytes.TrimRight(text, "\x00")), nil
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
