package engine

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"mica/internal/format/imagefile"
	"mica/internal/models/gemma"
	"mica/internal/models/gemma/chat"
	"mica/internal/models/vision"
	"mica/internal/tokenizer"
)

// Image is one image of a request: an image file's bytes (PNG, JPEG, GIF's
// first frame or WebP), decoded with its EXIF orientation applied.
type Image struct {
	Data []byte
	// Tokens is the most image tokens the image may take (Gemma 4's token
	// budget, 1…vision.Gemma4MaxTokensLimit; 0: Detail decides). Gemma 3
	// images always take 256 tokens and accept only 0 or 256.
	Tokens int
	// Detail is OpenAI's image_url.detail: "" or "auto" (the projector's
	// default budget), "low" or "high" (vision.Config.Budget); Gemma 3
	// ignores it.
	Detail string
	// Param names the request field that set Tokens or Detail; errors about
	// the budget name it (BudgetError).
	Param string
	// MinTokens and MaxTokens, when either is set, bound a Gemma 4 image's
	// token count directly, as llama.cpp's --image-min-tokens and
	// --image-max-tokens do (0: the projector's default for that bound);
	// they override Tokens and Detail. Gemma 3 takes neither.
	MinTokens, MaxTokens int
	// IgnoreOrientation keeps JPEG pixels as stored (llama.cpp ignores the
	// EXIF orientation).
	IgnoreOrientation bool
}

// ImagePlace marks an image's place inside a message's text body
// (chat.Text), one per image in order, the way llama.cpp's server flattens
// an OpenAI message that holds images (see flattenParts in the server's
// codecs). Its bytes are not UTF-8, so no text decoded from JSON (where
// invalid UTF-8 becomes U+FFFD) can hold it by accident.
const ImagePlace = "\xff\xfeimage\xfe\xff"

// BudgetError is an image token budget the model cannot take; it wraps
// ErrImage.
type BudgetError struct {
	Image int    // the image's index in the request (0-based)
	Param string // the request field that set the budget ("" if none)
	Err   error
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%v: image %d: %v", ErrImage, e.Image+1, e.Err)
}

// Unwrap returns ErrImage and the cause.
func (e *BudgetError) Unwrap() []error { return []error{ErrImage, e.Err} }

// ImageToken stands for an image position in the prompts ChatPrompt and
// CompletionPrompt return (it is no token id: such a prompt cannot be fed
// back as CompletionRequest.Tokens).
const ImageToken int32 = -1

// Image limits and cache defaults.
const (
	// DefaultMaxImages is Options.MaxImages when unset.
	DefaultMaxImages = 16
	// DefaultImageCacheBytes is Options.ImageCacheBytes when unset.
	DefaultImageCacheBytes = 256 << 20
)

var (
	// ErrImage is wrapped by errors about a request's images: undecodable,
	// truncated or unsupported files, too many images, images that do not
	// match the prompt's image places. It is the caller's fault (HTTP 400).
	ErrImage = errors.New("engine: bad image input")
	// ErrNoVision is wrapped by the error for images sent to a model that
	// cannot read them (no vision projector, a mismatched one, or a model
	// kind that takes no image embeddings).
	ErrNoVision = errors.New("engine: the model cannot read images")
)

// visionState is the engine's image side: the projector, its embedding
// cache and why images are refused when they are.
type visionState struct {
	mu      sync.Mutex // one Encode at a time (the projector is not reentrant)
	proj    *vision.Projector
	err     error // why the model reads no images (nil with proj set)
	cache   *vision.Cache
	encodes atomic.Int64
	begin   []int32 // the begin and end markers' tokens (Config.Markers)
	end     []int32
	// prepared keeps the last few preprocessed images: a server measures a
	// request's prompt (ChatPrompt) before running it, and both need the
	// decoded, resized pixels.
	prepMu   sync.Mutex
	prepared []preparedImage
	decodes  atomic.Int64
}

// preparedImage is one entry of visionState.prepared.
type preparedImage struct {
	sum  [sha256.Size]byte // of the file's bytes
	keep bool              // IgnoreOrientation
	opts vision.PreprocessOptions
	in   *vision.Input
	key  vision.CacheKey
}

// keptPreparedBytes bounds the pixels of the kept preprocessed images (up
// to ~8 MB each): enough for a request's images under the default limit.
const keptPreparedBytes = 64 << 20

// prepare returns the preprocessed image for (data, keep, opts) from the
// kept ones, or runs make and keeps its result; it keeps at most limit
// images (a request's limit, so that checking a prompt and running it
// prepare each image once) within keptPreparedBytes.
func (v *visionState) prepare(limit int, data []byte, keep bool, opts vision.PreprocessOptions, make func() (*vision.Input, error)) (*vision.Input, vision.CacheKey, error) {
	sum := sha256.Sum256(data)
	v.prepMu.Lock()
	for i, p := range v.prepared {
		if p.sum == sum && p.keep == keep && p.opts == opts {
			// most recent last
			v.prepared = append(append(v.prepared[:i:i], v.prepared[i+1:]...), p)
			v.prepMu.Unlock()
			return p.in, p.key, nil
		}
	}
	v.prepMu.Unlock()
	in, err := make()
	if err != nil {
		return nil, vision.CacheKey{}, err
	}
	v.decodes.Add(1)
	key := v.proj.Key(in)
	v.prepMu.Lock()
	v.prepared = append(v.prepared, preparedImage{sum: sum, keep: keep, opts: opts, in: in, key: key})
	for total := 0; ; total = 0 {
		for _, p := range v.prepared {
			total += len(p.in.RGB)
		}
		if len(v.prepared) <= 1 || len(v.prepared) <= limit && total <= keptPreparedBytes {
			break
		}
		v.prepared = append(v.prepared[:0], v.prepared[1:]...) // the least recently used
	}
	v.prepMu.Unlock()
	return in, key, nil
}

// OpenVision loads the mmproj file at path as the model's vision projector
// and checks that it fits the text model. On failure the engine keeps
// reading text and answers image requests with the reason (wrapping
// ErrNoVision). The engine closes the projector on Close.
func (e *Engine) OpenVision(path string) error {
	err := e.openVision(path)
	if err != nil {
		e.vis.err = fmt.Errorf("%w: %v", ErrNoVision, err)
	}
	return err
}

func (e *Engine) openVision(path string) error {
	if e.vis.proj != nil {
		return fmt.Errorf("engine: a vision projector is already loaded (%s)", e.vis.proj.Path)
	}
	// Models with per-layer embeddings (Gemma 4 E2B/E4B) read images too:
	// at an image position the per-layer input takes the pad token's row
	// (id 0) and the projection of the image embedding (gemma.Input).
	c := e.model.Config
	p, err := vision.Open(path, e.model.Backend())
	if err != nil {
		return err
	}
	if err := p.CheckPair(string(c.Arch), c.NEmbd); err != nil {
		p.Close()
		return err
	}
	begin, end := p.Config.Markers()
	bt, err1 := e.tok.Encode(begin, tokenizer.EncodeOptions{ParseSpecial: true})
	et, err2 := e.tok.Encode(end, tokenizer.EncodeOptions{ParseSpecial: true})
	if err := errors.Join(err1, err2); err != nil {
		p.Close()
		return fmt.Errorf("tokenizing the image markers: %w", err)
	}
	e.vis.proj, e.vis.err, e.vis.begin, e.vis.end = p, nil, bt, et
	e.vis.cache = vision.NewCache(e.opts.ImageCacheBytes)
	return nil
}

// Vision is the model's vision projector (nil when it reads no images).
func (e *Engine) Vision() *vision.Projector { return e.vis.proj }

// VisionError says why the model reads no images (nil when it does).
func (e *Engine) VisionError() error {
	if e.vis.proj != nil {
		return nil
	}
	if e.vis.err != nil {
		return e.vis.err
	}
	return fmt.Errorf("%w: it has no vision projector (put its mmproj GGUF beside the model as mmproj-NAME.gguf, or name one)", ErrNoVision)
}

// ImageStats reports the images encoded so far and the embedding cache's
// entries, bytes, hits and misses.
func (e *Engine) ImageStats() (encodes int64, entries int, bytes, hits, misses int64) {
	if e.vis.cache != nil {
		entries, bytes, hits, misses = e.vis.cache.Stats()
	}
	return e.vis.encodes.Load(), entries, bytes, hits, misses
}

func (e *Engine) closeVision() error {
	if e.vis.proj == nil {
		return nil
	}
	err := e.vis.proj.Close()
	e.vis.proj = nil
	return err
}

// plan is a prompt laid out as the model takes it: runs of tokens and
// images, with one key per position for prefix reuse.
type plan struct {
	items []item
	keys  []posKey
	text  []int32 // the text tokens in order (the sampler's history)
}

// item is a run of tokens, or one image.
type item struct {
	tokens []int32
	img    *planImage
}

// planImage is a preprocessed image; its embeddings are computed only when
// its positions are not already in the cache.
type planImage struct {
	in  *vision.Input
	key vision.CacheKey
	emb []float32
}

// posKey identifies what a position holds: a token, or row i of the image
// with content key img. Equal keys mean equal KV.
type posKey struct {
	tok int32
	i   int32
	img vision.CacheKey
}

var noImage vision.CacheKey

func (p *plan) addTokens(t []int32) {
	if len(t) == 0 {
		return
	}
	p.items = append(p.items, item{tokens: t})
	p.text = append(p.text, t...)
	for _, id := range t {
		p.keys = append(p.keys, posKey{tok: id})
	}
}

func (p *plan) addImage(im *planImage) {
	p.items = append(p.items, item{img: im})
	for i := range im.in.Tokens() {
		p.keys = append(p.keys, posKey{tok: ImageToken, i: int32(i), img: im.key})
	}
}

// tokens is the prompt as ids, ImageToken at image positions.
func (p *plan) tokens() []int32 {
	out := make([]int32, len(p.keys))
	for i, k := range p.keys {
		out[i] = k.tok
	}
	return out
}

func tokenPlan(t []int32) *plan {
	p := &plan{}
	p.addTokens(t)
	return p
}

// imageStart backs n off to the first position of the image it falls
// inside, so that an image is always fed whole (its rows see each other).
func (p *plan) imageStart(n int) int {
	if n < len(p.keys) && p.keys[n].img != noImage {
		n -= int(p.keys[n].i)
	}
	return n
}

// inputs returns the model's input runs from position from on (which must
// not fall inside an image), encoding the images they hold.
func (e *Engine) inputs(p *plan, from int) ([]gemma.Input, error) {
	var runs []gemma.Input
	pos := 0
	for _, it := range p.items {
		if it.img == nil {
			n := len(it.tokens)
			if pos+n > from {
				runs = append(runs, gemma.Input{Tokens: it.tokens[max(0, from-pos):]})
			}
			pos += n
			continue
		}
		n := it.img.in.Tokens()
		if pos >= from {
			emb, err := e.encode(it.img)
			if err != nil {
				return nil, err
			}
			runs = append(runs, gemma.Input{Embd: emb, NonCausal: true})
		}
		pos += n
	}
	return runs, nil
}

// encode computes an image's embeddings through the cache.
func (e *Engine) encode(im *planImage) ([]float32, error) {
	if im.emb != nil {
		return im.emb, nil
	}
	e.vis.mu.Lock()
	defer e.vis.mu.Unlock()
	emb, ok := e.vis.cache.Get(im.key)
	if !ok {
		var err error
		if emb, err = e.vis.proj.Encode(im.in); err != nil {
			return nil, err
		}
		e.vis.encodes.Add(1)
		e.vis.cache.Put(im.key, emb)
	}
	im.emb = emb
	return emb, nil
}

// preprocess decodes and preprocesses a request's images.
func (e *Engine) preprocess(images []Image) ([]*planImage, error) {
	if err := e.VisionError(); err != nil {
		return nil, err
	}
	if len(images) > e.opts.MaxImages {
		return nil, fmt.Errorf("%w: %d images is over the limit of %d per request", ErrImage, len(images), e.opts.MaxImages)
	}
	p := e.vis.proj
	out := make([]*planImage, len(images))
	for i, im := range images {
		if len(im.Data) == 0 {
			return nil, fmt.Errorf("%w: image %d is empty", ErrImage, i+1)
		}
		opts, err := p.Config.Budget(im.Detail, im.Tokens)
		if err != nil {
			return nil, &BudgetError{Image: i, Param: im.Param, Err: err}
		}
		if im.MinTokens != 0 || im.MaxTokens != 0 {
			opts = vision.PreprocessOptions{MinTokens: im.MinTokens, MaxTokens: im.MaxTokens}
		}
		in, key, err := e.vis.prepare(max(e.opts.MaxImages, 4), im.Data, im.IgnoreOrientation, opts, func() (*vision.Input, error) {
			img, err := imagefile.Decode(im.Data, imagefile.Options{IgnoreOrientation: im.IgnoreOrientation})
			if err != nil {
				return nil, fmt.Errorf("%w: image %d: %v", ErrImage, i+1, err)
			}
			in, err := p.Preprocess(img, opts)
			if err != nil {
				if opts != (vision.PreprocessOptions{}) {
					// e.g. a budget too large for the position table
					return nil, &BudgetError{Image: i, Param: im.Param, Err: err}
				}
				return nil, fmt.Errorf("%w: image %d: %v", ErrImage, i+1, err)
			}
			return in, nil
		})
		if err != nil {
			return nil, err
		}
		out[i] = &planImage{in: in, key: key}
	}
	return out, nil
}

// imagePlaceholders are the markup the chat formats render for an image.
var imagePlaceholders = map[string]string{"gemma3": chat.Gemma3Image, "gemma4": chat.ImagePlaceholder}

// segmentPlan lays out rendered chat segments that show one image place per
// image, in order: the chat format's image placeholder in markup (a
// chat.Part of type "image") or ImagePlace in text (a flattened message).
// Each becomes the projector's begin marker, the image and the end marker,
// as mtmd lays out an image (ggml-org/llama.cpp tools/mtmd/mtmd.cpp:
// "<start_of_image>" / "<end_of_image>" for gemma3, "<|image>" /
// "<image|>" for gemma4v, no newlines added); the text between images is
// tokenized as TokenizeSegments does, each piece on its own as mtmd
// tokenizes the text around a media marker.
func (e *Engine) segmentPlan(segs []chat.Segment, images []Image) (*plan, error) {
	imgs, err := e.preprocess(images)
	if err != nil {
		return nil, err
	}
	ph := imagePlaceholders[e.family]
	p := &plan{}
	var group []chat.Segment
	lead := []int32(nil) // the end marker of the previous image
	n := 0
	flush := func(tail []int32) error {
		ids, err := e.TokenizeSegments(group)
		if err != nil {
			return err
		}
		group = nil
		run := append(append(append([]int32(nil), lead...), ids...), tail...)
		p.addTokens(run)
		lead = nil
		return nil
	}
	for _, seg := range segs {
		sep := ImagePlace // an image in a flattened message's text
		if seg.Markup {
			sep = ph // an image part the chat format rendered
		}
		if sep == "" || !strings.Contains(seg.Text, sep) {
			group = append(group, seg)
			continue
		}
		parts := strings.Split(seg.Text, sep)
		for i, part := range parts {
			if i > 0 {
				if n >= len(imgs) {
					return nil, fmt.Errorf("%w: the conversation has more image parts than the %d image(s) given", ErrImage, len(imgs))
				}
				if err := flush(e.vis.begin); err != nil {
					return nil, err
				}
				p.addImage(imgs[n])
				lead = e.vis.end
				n++
			}
			if part != "" {
				group = append(group, chat.Segment{Markup: seg.Markup, Text: part})
			}
		}
	}
	if err := flush(nil); err != nil {
		return nil, err
	}
	if n != len(imgs) {
		return nil, fmt.Errorf("%w: %d image(s) given but the conversation has %d image part(s) the chat format shows", ErrImage, len(imgs), n)
	}
	return p, nil
}

// completionPlan lays out a raw prompt with images: MediaMarker
// (<__media__>) marks each image's place, as llama.cpp's mtmd reads it
// (all images go first when the prompt has no marker).
func (e *Engine) completionPlan(r CompletionRequest) (*plan, error) {
	if r.Tokens != nil {
		return nil, fmt.Errorf("%w: a prompt given as tokens cannot hold images", ErrImage)
	}
	imgs, err := e.preprocess(r.Images)
	if err != nil {
		return nil, err
	}
	prompt := r.Prompt
	if !strings.Contains(prompt, vision.MediaMarker) {
		prompt = strings.Repeat(vision.MediaMarker, len(imgs)) + prompt
	}
	chunks, n, err := e.vis.proj.Config.PromptChunks(e.tok, prompt, !r.NoBOS && e.tok.AddBOSByDefault())
	if err != nil {
		return nil, err
	}
	if n != len(imgs) {
		return nil, fmt.Errorf("%w: the prompt marks %d image place(s) with %s but %d image(s) were given", ErrImage, n, vision.MediaMarker, len(imgs))
	}
	p := &plan{}
	for _, c := range chunks {
		if c.Image < 0 {
			p.addTokens(c.Tokens)
		} else {
			p.addImage(imgs[c.Image])
		}
	}
	return p, nil
}
