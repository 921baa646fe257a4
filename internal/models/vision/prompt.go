package vision

import (
	"fmt"
	"strings"

	"mica/internal/models/gemma"
	"mica/internal/tokenizer"
)

// MediaMarker marks an image's place in a prompt (llama.cpp mtmd's default).
const MediaMarker = "<__media__>"

// Markers are the texts mtmd puts before and after an image's embeddings.
// The real Gemma vocabularies have each as one special token.
func (c *Config) Markers() (begin, end string) {
	if c.Projector == Gemma4V {
		return "<|image>", "<image|>"
	}
	return "<start_of_image>", "<end_of_image>"
}

// Chunk is one piece of a prompt laid out for the text model: tokens, or
// the place of image Image (an index into the images, in prompt order).
type Chunk struct {
	Tokens []int32
	Image  int // -1 for a text chunk
}

// PromptChunks lays out a prompt whose images are marked with MediaMarker
// as llama.cpp's mtmd_tokenize does: each marker becomes BEGIN + image +
// END; each text piece and each marker string is tokenized on its own
// (special tokens recognised) and consecutive text pieces are joined into
// one chunk, so a text chunk runs from one image's END to the next image's
// BEGIN. The first text piece carries the BOS when addBOS is set. It returns
// the chunks and the number of images.
func (c *Config) PromptChunks(tok *tokenizer.Tokenizer, prompt string, addBOS bool) ([]Chunk, int, error) {
	begin, end := c.Markers()
	parts := strings.Split(prompt, MediaMarker)
	var chunks []Chunk
	var text []int32
	add := func(s string, bos bool) error {
		ids, err := tok.Encode(s, tokenizer.EncodeOptions{ParseSpecial: true, AddBOS: bos})
		if err != nil {
			return fmt.Errorf("vision: tokenizing the prompt: %w", err)
		}
		text = append(text, ids...)
		return nil
	}
	for i, part := range parts {
		if i > 0 {
			if err := add(end, false); err != nil {
				return nil, 0, err
			}
		}
		if err := add(part, addBOS && i == 0); err != nil {
			return nil, 0, err
		}
		if i == len(parts)-1 {
			break
		}
		if err := add(begin, false); err != nil {
			return nil, 0, err
		}
		if len(text) > 0 {
			chunks = append(chunks, Chunk{Tokens: text, Image: -1})
			text = nil
		}
		chunks = append(chunks, Chunk{Image: i})
	}
	if len(text) > 0 {
		chunks = append(chunks, Chunk{Tokens: text, Image: -1})
	}
	return chunks, len(parts) - 1, nil
}

// Runs turns a tokenized prompt holding one placeholder token per image
// into the text model's input runs: each placeholder becomes the tokens of
// the begin marker, the image's embeddings (decoded non-causally) and the
// tokens of the end marker, as mtmd lays out an image; the text between
// images stays one token run. images[i] is the i-th placeholder's
// embeddings (Encode's output). Prompts built from chat segments use this
// so that user text is never parsed for special tokens.
func (c *Config) Runs(tok *tokenizer.Tokenizer, tokens []int32, placeholder int32, images [][]float32) ([]gemma.Input, error) {
	begin, end := c.Markers()
	bt, err := tok.Encode(begin, tokenizer.EncodeOptions{ParseSpecial: true})
	if err != nil {
		return nil, fmt.Errorf("vision: tokenizing %q: %w", begin, err)
	}
	et, err := tok.Encode(end, tokenizer.EncodeOptions{ParseSpecial: true})
	if err != nil {
		return nil, fmt.Errorf("vision: tokenizing %q: %w", end, err)
	}
	var runs []gemma.Input
	var text []int32
	n := 0
	for _, id := range tokens {
		if id != placeholder {
			text = append(text, id)
			continue
		}
		if n >= len(images) {
			return nil, fmt.Errorf("vision: the prompt has more image placeholders than the %d image(s) given", len(images))
		}
		if len(images[n]) == 0 || len(images[n])%c.ProjDim != 0 {
			return nil, fmt.Errorf("vision: image %d: %d values are not rows of %d", n, len(images[n]), c.ProjDim)
		}
		text = append(text, bt...)
		runs = append(runs, gemma.Input{Tokens: text}, gemma.Input{Embd: images[n], NonCausal: true})
		text = append([]int32(nil), et...)
		n++
	}
	if n != len(images) {
		return nil, fmt.Errorf("vision: %d image(s) given but the prompt has %d placeholder(s)", len(images), n)
	}
	if len(text) > 0 {
		runs = append(runs, gemma.Input{Tokens: text})
	}
	return runs, nil
}
