// Package pngtext writes and reads the text chunks of PNG files (tEXt,
// zTXt, iTXt): the "parameters" infotext that AUTOMATIC1111, sd.cpp and
// mica store in generated images. Reading walks the chunks without
// decoding pixels; writing encodes with image/png and inserts the text
// chunks right after IHDR.
package pngtext

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strings"
	"unicode/utf8"
)

// KV is one text chunk: its keyword and its text.
type KV struct {
	Key, Value string
}

// Limits on what the reader accepts.
const (
	// MaxChunk is the largest chunk the reader accepts (the PNG limit).
	MaxChunk = 1<<31 - 1
	// MaxText is the largest text chunk, compressed or not, and the most
	// a compressed text may inflate to.
	MaxText = 64 << 20
)

var signature = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}

// Encode writes img as a PNG with the given text chunks, in the order given,
// right after IHDR. A value that Latin-1 can hold is written as tEXt (as
// PIL does, so A1111's PNG-info reads it), any other as uncompressed UTF-8
// iTXt. Keywords must be 1–79 Latin-1 characters without NUL or leading,
// trailing or double spaces; values may not contain NUL.
func Encode(w io.Writer, img image.Image, text []KV) error {
	chunks := make([][]byte, 0, len(text))
	for _, kv := range text {
		c, err := textChunk(kv)
		if err != nil {
			return err
		}
		chunks = append(chunks, c)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("pngtext: %w", err)
	}
	b := buf.Bytes()
	// image/png writes the signature then IHDR (13 bytes of data).
	const ihdrEnd = 8 + 8 + 13 + 4
	if len(b) < ihdrEnd || !bytes.Equal(b[:8], signature) || string(b[12:16]) != "IHDR" {
		return errors.New("pngtext: image/png output does not start with IHDR")
	}
	if _, err := w.Write(b[:ihdrEnd]); err != nil {
		return fmt.Errorf("pngtext: %w", err)
	}
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			return fmt.Errorf("pngtext: %w", err)
		}
	}
	if _, err := w.Write(b[ihdrEnd:]); err != nil {
		return fmt.Errorf("pngtext: %w", err)
	}
	return nil
}

// textChunk builds a complete tEXt or iTXt chunk (length, type, data, CRC).
func textChunk(kv KV) ([]byte, error) {
	key, ok := latin1(kv.Key)
	if !ok || len(key) == 0 || len(key) > 79 || bytes.IndexByte(key, 0) >= 0 ||
		key[0] == ' ' || key[len(key)-1] == ' ' || bytes.Contains(key, []byte("  ")) {
		return nil, fmt.Errorf("pngtext: keyword %q: must be 1-79 Latin-1 characters, no NUL, no leading, trailing or double spaces", kv.Key)
	}
	if strings.IndexByte(kv.Value, 0) >= 0 {
		return nil, fmt.Errorf("pngtext: text of %q contains NUL", kv.Key)
	}
	if !utf8.ValidString(kv.Value) {
		return nil, fmt.Errorf("pngtext: text of %q is not valid UTF-8", kv.Key)
	}
	var typ string
	var data []byte
	if v, ok := latin1(kv.Value); ok {
		typ = "tEXt"
		data = append(append(key, 0), v...)
	} else {
		// keyword NUL, compression flag 0, method 0, empty language NUL,
		// empty translated keyword NUL, UTF-8 text.
		typ = "iTXt"
		data = append(append(key, 0, 0, 0, 0, 0), kv.Value...)
	}
	if len(data) > MaxChunk {
		return nil, fmt.Errorf("pngtext: text of %q is too long (%d bytes)", kv.Key, len(data))
	}
	return chunk(typ, data), nil
}

func chunk(typ string, data []byte) []byte {
	out := make([]byte, 0, 12+len(data))
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	return binary.BigEndian.AppendUint32(out, crc.Sum32())
}

// latin1 converts a UTF-8 string to Latin-1 bytes, if every rune fits.
func latin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

func fromLatin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// ReadText returns the text chunks of a PNG as a map; when a keyword
// appears twice the later chunk wins (as PIL's info does). On an error it
// also returns what it read before.
func ReadText(r io.Reader) (map[string]string, error) {
	list, err := ReadTextList(r)
	m := make(map[string]string, len(list))
	for _, kv := range list {
		m[kv.Key] = kv.Value
	}
	return m, err
}

// ReadTextList returns the text chunks of a PNG in file order: tEXt and
// zTXt (Latin-1) and iTXt (UTF-8, compressed or not), as UTF-8 strings.
// Pixels are not decoded, but every chunk's CRC is checked, and the file
// must end with IEND. On an error it also returns the chunks read before.
func ReadTextList(r io.Reader) ([]KV, error) {
	var sig [8]byte
	if _, err := io.ReadFull(r, sig[:]); err != nil {
		return nil, fmt.Errorf("pngtext: reading the signature: %w", noEOF(err))
	}
	if !bytes.Equal(sig[:], signature) {
		return nil, errors.New("pngtext: not a PNG file (bad signature)")
	}
	var out []KV
	crc := crc32.NewIEEE()
	for n := 0; ; n++ {
		var hdr [8]byte
		var data []byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out, fmt.Errorf("pngtext: chunk %d header: truncated file: %w", n, noEOF(err))
		}
		length := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:])
		if !validType(hdr[4:]) {
			return out, fmt.Errorf("pngtext: chunk %d: invalid chunk type %q", n, typ)
		}
		if length > MaxChunk {
			return out, fmt.Errorf("pngtext: chunk %d (%s): length %d over the PNG limit", n, typ, length)
		}
		if n == 0 && typ != "IHDR" {
			return out, fmt.Errorf("pngtext: first chunk is %s, not IHDR", typ)
		}
		crc.Reset()
		crc.Write(hdr[4:])
		text := typ == "tEXt" || typ == "zTXt" || typ == "iTXt"
		if text {
			if length > MaxText {
				return out, fmt.Errorf("pngtext: %s chunk of %d bytes is over the %d-byte limit", typ, length, MaxText)
			}
			// Read without trusting the length for an allocation up front.
			var err error
			data, err = io.ReadAll(io.LimitReader(r, int64(length)))
			if err == nil && len(data) < int(length) {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return out, fmt.Errorf("pngtext: %s chunk: truncated file: %w", typ, err)
			}
			crc.Write(data)
		} else if _, err := io.CopyN(crc, r, int64(length)); err != nil {
			return out, fmt.Errorf("pngtext: %s chunk: truncated file: %w", typ, noEOF(err))
		}
		var sum [4]byte
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return out, fmt.Errorf("pngtext: %s chunk CRC: truncated file: %w", typ, noEOF(err))
		}
		if binary.BigEndian.Uint32(sum[:]) != crc.Sum32() {
			return out, fmt.Errorf("pngtext: chunk %d (%s): CRC mismatch (corrupt file)", n, typ)
		}
		if text {
			kv, err := parseText(typ, data)
			if err != nil {
				return out, err
			}
			out = append(out, kv)
		}
		if typ == "IEND" {
			return out, nil
		}
	}
}

func validType(t []byte) bool {
	for _, c := range t {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseText decodes the data of a tEXt, zTXt or iTXt chunk.
func parseText(typ string, data []byte) (KV, error) {
	k := bytes.IndexByte(data, 0)
	if k < 1 || k > 79 {
		return KV{}, fmt.Errorf("pngtext: %s chunk: keyword missing, unterminated or longer than 79 bytes", typ)
	}
	key, rest := fromLatin1(data[:k]), data[k+1:]
	switch typ {
	case "tEXt":
		return KV{key, fromLatin1(rest)}, nil
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return KV{}, fmt.Errorf("pngtext: zTXt %q: unknown compression method", key)
		}
		text, err := inflate(rest[1:])
		if err != nil {
			return KV{}, fmt.Errorf("pngtext: zTXt %q: %w", key, err)
		}
		return KV{key, fromLatin1(text)}, nil
	}
	// iTXt: compression flag, method, language NUL, translated keyword NUL, text.
	if len(rest) < 2 {
		return KV{}, fmt.Errorf("pngtext: iTXt %q: truncated header", key)
	}
	flag, method := rest[0], rest[1]
	rest = rest[2:]
	for range 2 { // language tag, translated keyword
		z := bytes.IndexByte(rest, 0)
		if z < 0 {
			return KV{}, fmt.Errorf("pngtext: iTXt %q: unterminated language tag or translated keyword", key)
		}
		rest = rest[z+1:]
	}
	switch {
	case flag == 0:
	case flag == 1 && method == 0:
		var err error
		if rest, err = inflate(rest); err != nil {
			return KV{}, fmt.Errorf("pngtext: iTXt %q: %w", key, err)
		}
	default:
		return KV{}, fmt.Errorf("pngtext: iTXt %q: unknown compression flag %d / method %d", key, flag, method)
	}
	if !utf8.Valid(rest) {
		return KV{}, fmt.Errorf("pngtext: iTXt %q: text is not valid UTF-8", key)
	}
	return KV{key, string(rest)}, nil
}

// inflate decompresses zlib data, refusing more than MaxText bytes.
func inflate(b []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("bad compressed text: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, MaxText+1))
	if err != nil {
		return nil, fmt.Errorf("bad compressed text: %w", err)
	}
	if len(out) > MaxText {
		return nil, fmt.Errorf("compressed text inflates to over %d bytes", MaxText)
	}
	return out, nil
}
