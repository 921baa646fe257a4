package prompt

import (
	"fmt"
	"math"

	"mica/internal/tokenizer/clip"
)

// Token layout of one chunk.
const (
	ChunkTokens = 75              // prompt tokens per chunk
	ChunkLen    = ChunkTokens + 2 // with BOS and EOS
	// CommaBacktrack is A1111's default comma_padding_backtrack: when a
	// chunk fills and its last comma is at most this many tokens back,
	// the tokens after the comma move to the next chunk.
	CommaBacktrack = 20
)

// CLIP's start and end ids.
const (
	BOS = clip.BOS
	EOS = clip.EOS
)

// Encoder is a CLIP tokenizer: text to ids without start and end markers.
type Encoder interface {
	Encode(text string) []int32
}

// Chunk is one 77-token input of a CLIP text encoder: BOS, up to 75 prompt
// tokens, then EOS padding (SD1's CLIP pads with EOS). Weights are the
// emphasis of each position; BOS, EOS and padding have weight 1. FirstEOS
// is the index of the first EOS id (where OpenCLIP's pooled output is read).
type Chunk struct {
	IDs      [ChunkLen]int32
	Weights  [ChunkLen]float32
	FirstEOS int
}

// ZeroAfterEOS returns the chunk with every id after the first EOS set to 0,
// the padding SDXL's OpenCLIP ViT-bigG encoder expects (A1111 pads that
// encoder with id 0 after the end token).
func (c Chunk) ZeroAfterEOS() Chunk {
	for i := c.FirstEOS + 1; i < ChunkLen; i++ {
		c.IDs[i] = 0
	}
	return c
}

// Weighted reports whether any position has a weight other than 1.
func (c Chunk) Weighted() bool {
	for _, w := range c.Weights {
		if w != 1 {
			return true
		}
	}
	return false
}

// Options are A1111's tokenization settings.
type Options struct {
	// CommaBacktrack is comma_padding_backtrack (0 disables it).
	CommaBacktrack int
	// NoEmphasis takes the prompt literally (A1111's emphasis "None"):
	// brackets and BREAK are plain text, every weight is 1.
	NoEmphasis bool
}

// DefaultOptions are A1111's defaults.
func DefaultOptions() Options { return Options{CommaBacktrack: CommaBacktrack} }

// Tokenize parses text with A1111's emphasis rules and lays its tokens out
// in chunks, with the default options. An empty prompt gives one chunk.
func Tokenize(tok Encoder, text string) []Chunk {
	return DefaultOptions().Tokenize(tok, text)
}

// Tokenize lays the prompt's tokens out in chunks as A1111 does: 75 tokens
// a chunk; BREAK ends the current chunk (an empty chunk included); when a
// chunk is full and the next token is not a comma, the tokens after the
// chunk's last comma move to the next chunk if that comma is within
// CommaBacktrack tokens of the end.
func (o Options) Tokenize(tok Encoder, text string) []Chunk {
	var spans []span
	if o.NoEmphasis {
		spans = []span{{text, 1}}
	} else {
		spans = parse(text)
	}
	comma := int32(-1)
	if ids := tok.Encode(","); len(ids) == 1 {
		comma = ids[0]
	}
	var chunks []Chunk
	var ids []int32
	var ws []float32
	lastComma := -1
	flush := func() {
		var c Chunk
		c.IDs[0], c.Weights[0] = BOS, 1
		for i := 1; i < ChunkLen; i++ {
			c.IDs[i], c.Weights[i] = EOS, 1
		}
		copy(c.IDs[1:], ids)
		copy(c.Weights[1:], ws)
		c.FirstEOS = firstEOS(c.IDs[:])
		chunks = append(chunks, c)
		ids, ws, lastComma = nil, nil, -1
	}
	for _, s := range spans {
		if s.isBreak() {
			flush()
			continue
		}
		w := float32(s.w)
		for _, id := range tok.Encode(s.text) {
			if id == comma {
				lastComma = len(ids)
			} else if o.CommaBacktrack != 0 && len(ids) == ChunkTokens && lastComma != -1 &&
				len(ids)-lastComma <= o.CommaBacktrack {
				cut := lastComma + 1
				restIDs := append([]int32(nil), ids[cut:]...)
				restWs := append([]float32(nil), ws[cut:]...)
				ids, ws = ids[:cut], ws[:cut]
				flush()
				ids, ws = restIDs, restWs
			}
			if len(ids) == ChunkTokens {
				flush()
			}
			ids = append(ids, id)
			ws = append(ws, w)
		}
	}
	if len(ids) > 0 || len(chunks) == 0 {
		flush()
	}
	return chunks
}

func firstEOS(ids []int32) int {
	for i, id := range ids {
		if id == EOS {
			return i
		}
	}
	return len(ids) - 1
}

// Restore applies emphasis to an encoder's output for one chunk as A1111's
// "Original" emphasis does: each token's row of hidden ([tokens, dim],
// row-major) is multiplied by its weight, then the whole chunk is rescaled
// so its mean equals the mean before weighting. When every weight is 1 it
// does nothing (as stable-diffusion.cpp; A1111 computes the identity up to
// rounding). Means are accumulated in float64. If the weighted mean is 0 the
// rescale is skipped (A1111 would divide by zero).
func Restore(hidden []float32, tokens, dim int, weights []float32) error {
	if tokens < 0 || dim < 0 || len(hidden) != tokens*dim || len(weights) != tokens {
		return fmt.Errorf("prompt: restore: hidden has %d values and weights %d, want %d×%d and %d",
			len(hidden), len(weights), tokens, dim, tokens)
	}
	all1 := true
	for _, w := range weights {
		if w != 1 {
			all1 = false
			break
		}
	}
	if all1 || len(hidden) == 0 {
		return nil
	}
	var before, after float64
	for t := range tokens {
		row := hidden[t*dim : (t+1)*dim]
		var s float64
		for i, v := range row {
			s += float64(v)
			row[i] = v * weights[t]
		}
		before += s
		for _, v := range row {
			after += float64(v)
		}
	}
	if after == 0 || math.IsNaN(after) || math.IsInf(after, 0) {
		return nil
	}
	scale := float32(before / after)
	for i := range hidden {
		hidden[i] *= scale
	}
	return nil
}
