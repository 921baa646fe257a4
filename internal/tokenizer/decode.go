package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// AppendPiece appends the bytes a token contributes to decoded text: byte
// tokens their byte, every other token its text with U+2581 read as a space
// (Hugging Face's Replace + ByteFallback + Fuse decoder). Ids outside the
// vocabulary give U+FFFD. A piece may be part of a UTF-8 character (byte
// tokens); constrained decoding can match on these bytes.
func (t *Tokenizer) AppendPiece(dst []byte, id int32) []byte { return t.appendPiece(dst, id) }

func (t *Tokenizer) appendPiece(dst []byte, id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return append(dst, "\uFFFD"...)
	}
	s := t.tokens[id]
	if t.types[id] == TypeByte {
		if b, ok := isByteText(s); ok {
			return append(dst, b)
		}
	}
	for {
		i := strings.Index(s, escapedSpace)
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(append(dst, s[:i]...), ' ')
		s = s[i+len(escapedSpace):]
	}
}

// Decode turns ids back into text. Control tokens are written as their
// text ("<start_of_turn>"); use a Decoder with SkipSpecial to leave them
// out. Byte tokens are joined into characters; bytes that do not form valid
// UTF-8 become one U+FFFD each (Go's rule; Hugging Face replaces every byte
// of a run of byte tokens that holds an invalid sequence). Ids outside the
// vocabulary give U+FFFD (see CheckIDs).
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		b = t.appendPiece(b, id)
	}
	if t.stripLeadingSpace && len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for _, r := range string(b) { // invalid bytes come out as U+FFFD, one each
		sb.WriteRune(r)
	}
	return sb.String()
}

// Decoder detokenizes a stream of ids: Add returns only complete UTF-8
// characters and holds back the start of a character whose remaining bytes
// may still come in later byte tokens. The texts returned by Add, followed
// by Flush, add up to Decode of all the ids.
type Decoder struct {
	// SkipSpecial leaves control and unknown tokens out of the text.
	SkipSpecial bool

	t       *Tokenizer
	pend    []byte
	started bool
}

// NewDecoder starts a stream.
func (t *Tokenizer) NewDecoder() *Decoder { return &Decoder{t: t} }

// Add feeds one id and returns the text it completes (often "").
func (d *Decoder) Add(id int32) string {
	if d.SkipSpecial && d.t.IsSpecial(id) {
		return ""
	}
	n := len(d.pend)
	d.pend = d.t.appendPiece(d.pend, id)
	if !d.started && len(d.pend) > n {
		d.started = true
		if d.t.stripLeadingSpace && d.pend[0] == ' ' {
			d.pend = d.pend[1:]
		}
	}
	return d.emit(false)
}

// Flush returns what is held back (an incomplete character becomes one
// U+FFFD per byte) and leaves the decoder ready for more.
func (d *Decoder) Flush() string { return d.emit(true) }

// Pending reports whether bytes of an incomplete character are held back.
func (d *Decoder) Pending() bool { return len(d.pend) > 0 }

// Reset forgets held-back bytes and starts a new text.
func (d *Decoder) Reset() {
	d.pend = d.pend[:0]
	d.started = false
}

func (d *Decoder) emit(all bool) string {
	p := d.pend
	i := 0
	var sb strings.Builder
	for i < len(p) {
		if !all && !utf8.FullRune(p[i:]) {
			break
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			sb.WriteString("\uFFFD")
		} else {
			sb.Write(p[i : i+size])
		}
		i += size
	}
	d.pend = append(d.pend[:0], p[i:]...)
	return sb.String()
}
