package vision

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"mica/internal/format/imagefile"
)

// Input is a preprocessed image: the exact 8-bit canvas the encoder sees
// (llama.cpp's resize and letterbox) and the geometry that follows from it.
type Input struct {
	Width, Height int     // canvas size
	RGB           []uint8 // canvas pixels, row-major, 3 bytes (R, G, B) per pixel
	Content       image.Rectangle
	NX, NY        int // patch grid: columns, rows
	GridW, GridH  int // image token grid after pooling: columns, rows
	// MinTokens and MaxTokens are the token budget the canvas was sized
	// for (Gemma 4; zero for Gemma 3). They are part of the cache key.
	MinTokens, MaxTokens int
}

// Tokens is the number of image embeddings the encoder produces.
func (in *Input) Tokens() int { return in.GridW * in.GridH }

// PreprocessOptions are per-request settings.
type PreprocessOptions struct {
	// MinTokens and MaxTokens override Gemma 4's image token budget (0: the
	// projector's default, 40 and 280). Gemma 3 always produces 256 tokens
	// and rejects a budget.
	MinTokens, MaxTokens int
}

// MaxSourcePixels bounds the decoded images Preprocess accepts.
const MaxSourcePixels = 64 << 20

// Preprocess resizes img into the encoder's canvas exactly as llama.cpp's
// mtmd does: bilinear resize preserving the aspect ratio (rounding down to
// 8 bits), letterboxed with black onto the model's canvas: 896×896 for
// Gemma 3; for Gemma 4 a size picked from the token budget, aligned to
// patch × pooling. Alpha is ignored (the colour channels are taken as they
// are), as llama.cpp's stb_image decode with 3 channels does.
func (p *Projector) Preprocess(img image.Image, o PreprocessOptions) (*Input, error) {
	return p.Config.Preprocess(img, o)
}

// Preprocess is Projector.Preprocess for a configuration.
func (c *Config) Preprocess(img image.Image, o PreprocessOptions) (*Input, error) {
	if img == nil {
		return nil, fmt.Errorf("vision: no image")
	}
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	if W <= 0 || H <= 0 {
		return nil, fmt.Errorf("vision: image is empty (%d×%d)", W, H)
	}
	if int64(W)*int64(H) > MaxSourcePixels {
		return nil, fmt.Errorf("vision: image of %d×%d pixels exceeds the limit of %d pixels", W, H, MaxSourcePixels)
	}
	tw, th, lo, hi, err := c.targetSize(W, H, o)
	if err != nil {
		return nil, err
	}
	src := rgbOf(img)
	canvas, content := letterbox(src, W, H, tw, th)
	in := &Input{Width: tw, Height: th, RGB: canvas, Content: content,
		NX: tw / c.PatchSize, NY: th / c.PatchSize, MinTokens: lo, MaxTokens: hi}
	in.GridW, in.GridH = in.NX/c.Merge, in.NY/c.Merge
	if c.Projector == Gemma4V && max(in.NX, in.NY) > c.PosSize {
		return nil, fmt.Errorf("vision: a %d×%d image needs %d×%d patches; the position table has %d (lower the token budget)",
			W, H, in.NX, in.NY, c.PosSize)
	}
	return in, nil
}

// targetSize is the canvas for a W×H source and the token budget it was
// sized for.
func (c *Config) targetSize(W, H int, o PreprocessOptions) (w, h, lo, hi int, err error) {
	if c.Projector == Gemma3 {
		if o.MinTokens != 0 || o.MaxTokens != 0 {
			return 0, 0, 0, 0, fmt.Errorf("vision: gemma3 images always take %d tokens; a token budget cannot be set", c.gemma3Tokens())
		}
		return c.ImageSize, c.ImageSize, 0, 0, nil
	}
	lo, hi = c.MinTokens, c.MaxTokens
	if o.MinTokens != 0 {
		lo = o.MinTokens
	}
	if o.MaxTokens != 0 {
		hi = o.MaxTokens
	}
	if lo < 1 || hi < 1 || lo > hi || hi > Gemma4MaxTokensLimit || lo > Gemma4MaxTokensLimit {
		return 0, 0, 0, 0, fmt.Errorf("vision: image token budget %d…%d is invalid: want 1 ≤ min ≤ max ≤ %d", lo, hi, Gemma4MaxTokensLimit)
	}
	a := c.PatchSize * c.Merge
	w, h = sizeForBudget(W, H, a, lo*a*a, hi*a*a)
	return w, h, lo, hi, nil
}

// Image detail levels: OpenAI's image_url.detail.
const (
	DetailAuto = "auto"
	DetailLow  = "low"
	DetailHigh = "high"
)

// The Gemma 4 budgets the detail levels map to. Gemma 4's published
// budgets are 70, 140, 280, 560 and 1120 soft tokens per image, 280 by
// default (HF transformers, src/transformers/models/gemma4/
// image_processing_gemma4.py, max_soft_tokens). llama.cpp bounds an image
// by a minimum and a maximum token count instead (ggml-org/llama.cpp,
// tools/mtmd/clip.cpp, the GEMMA4V hparams: 40…280 in the builds the
// reference data comes from, 70…1120 in later ones; --image-min-tokens
// and --image-max-tokens replace them). So "auto" keeps the projector's
// default, "low" caps an image at the smallest published budget and "high"
// at the largest; the minimum stays the projector's (never above the cap).
const (
	DetailLowTokens  = 70
	DetailHighTokens = Gemma4MaxTokensLimit
)

// Budget resolves a request's image token budget: tokens, when not zero,
// is the most image tokens an image may take (the request's explicit
// field); otherwise detail ("", "auto", "low", "high") picks one. Gemma 3
// images always take 256 tokens on a fixed 896×896 canvas: detail is a
// hint it ignores (clients send it routinely), and tokens must be 256 or
// zero. The error says what is allowed.
func (c *Config) Budget(detail string, tokens int) (PreprocessOptions, error) {
	switch detail {
	case "", DetailAuto, DetailLow, DetailHigh:
	default:
		return PreprocessOptions{}, fmt.Errorf("detail %q is not one of auto, low, high", detail)
	}
	if c.Projector == Gemma3 {
		if tokens != 0 && tokens != c.gemma3Tokens() {
			return PreprocessOptions{}, fmt.Errorf("%s images always take %d tokens: the budget cannot be %d (omit it or give %d)",
				c.Projector, c.gemma3Tokens(), tokens, c.gemma3Tokens())
		}
		return PreprocessOptions{}, nil
	}
	if tokens == 0 {
		switch detail {
		case DetailLow:
			tokens = DetailLowTokens
		case DetailHigh:
			tokens = DetailHighTokens
		default:
			return PreprocessOptions{}, nil
		}
	}
	if tokens < 1 || tokens > Gemma4MaxTokensLimit {
		return PreprocessOptions{}, fmt.Errorf("an image token budget of %d is outside 1…%d (Gemma 4's budgets: 70, 140, 280, 560, 1120; default %d)",
			tokens, Gemma4MaxTokensLimit, c.MaxTokens)
	}
	return PreprocessOptions{MinTokens: min(c.MinTokens, tokens), MaxTokens: tokens}, nil
}

// sizeForBudget is llama.cpp's calc_size_preserved_ratio: both sides
// multiples of a, the area between minPixels and maxPixels, in float32.
func sizeForBudget(W, H, a, minPixels, maxPixels int) (int, int) {
	af := float32(a)
	roundf := func(x float32) int { return int(math.Round(float64(x))) } // half away from zero
	w := max(a, roundf(float32(W)/af)*a)
	h := max(a, roundf(float32(H)/af)*a)
	switch {
	case w*h > maxPixels:
		beta := float32(math.Sqrt(float64(float32(H) * float32(W) / float32(maxPixels))))
		h = max(a, int(math.Floor(float64(float32(float32(H)/beta)/af)))*a)
		w = max(a, int(math.Floor(float64(float32(float32(W)/beta)/af)))*a)
	case w*h < minPixels:
		beta := float32(math.Sqrt(float64(float32(minPixels) / (float32(H) * float32(W)))))
		h = int(math.Ceil(float64(float32(float32(H)*beta)/af))) * a
		w = int(math.Ceil(float64(float32(float32(W)*beta)/af))) * a
	}
	return w, h
}

// rgbOf returns img's pixels as packed RGB bytes. Colour channels are taken
// without compositing alpha (non-premultiplied images as stored; 16-bit
// channels keep their high byte, as stb_image's 16→8 conversion does).
func rgbOf(img image.Image) []uint8 {
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	out := make([]uint8, 0, 3*W*H)
	switch m := img.(type) {
	case *imagefile.Image:
		return m.RGB
	case *image.NRGBA:
		for y := 0; y < H; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*W]
			for x := 0; x < W; x++ {
				out = append(out, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
		return out
	case *image.RGBA:
		if opaque(m) {
			for y := 0; y < H; y++ {
				row := m.Pix[y*m.Stride : y*m.Stride+4*W]
				for x := 0; x < W; x++ {
					out = append(out, row[4*x], row[4*x+1], row[4*x+2])
				}
			}
			return out
		}
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64)
			out = append(out, uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8))
		}
	}
	return out
}

func opaque(m *image.RGBA) bool {
	b := m.Bounds()
	for y := 0; y < b.Dy(); y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+4*b.Dx()]
		for x := 3; x < len(row); x += 4 {
			if row[x] != 255 {
				return false
			}
		}
	}
	return true
}

// letterbox resizes the W×H RGB source into a tw×th black canvas, keeping
// its aspect ratio (llama.cpp's img_tool::resize, bilinear, PAD_CEIL).
func letterbox(src []uint8, W, H, tw, th int) ([]uint8, image.Rectangle) {
	if W == tw && H == th {
		return src, image.Rect(0, 0, tw, th)
	}
	scale := min(float32(tw)/float32(W), float32(th)/float32(H))
	nw := min(int(math.Ceil(float64(float32(float32(W)*scale)))), tw)
	nh := min(int(math.Ceil(float64(float32(float32(H)*scale)))), th)
	resized := resizeBilinear(src, W, H, nw, nh)
	canvas := make([]uint8, 3*tw*th)
	x0, y0 := (tw-nw)/2, (th-nh)/2
	for y := 0; y < nh; y++ {
		copy(canvas[3*((y0+y)*tw+x0):], resized[3*y*nw:3*(y+1)*nw])
	}
	return canvas, image.Rect(x0, y0, x0+nw, y0+nh)
}

// resizeBilinear is llama.cpp's four-tap bilinear resize: corner-aligned
// sample positions, float32 interpolation, results truncated to uint8, no
// antialiasing.
func resizeBilinear(src []uint8, W, H, nw, nh int) []uint8 {
	ratio := func(from, to int) float32 {
		if to <= 1 {
			return 0
		}
		return float32(from-1) / float32(to-1)
	}
	xr, yr := ratio(W, nw), ratio(H, nh)
	out := make([]uint8, 3*nw*nh)
	for y := 0; y < nh; y++ {
		py := float32(y) * yr
		y0 := min(int(py), H-1)
		y1 := min(y0+1, H-1)
		yf := py - float32(y0)
		for x := 0; x < nw; x++ {
			px := float32(x) * xr
			x0 := min(int(px), W-1)
			x1 := min(x0+1, W-1)
			xf := px - float32(x0)
			for c := 0; c < 3; c++ {
				p00 := float32(src[3*(y0*W+x0)+c])
				p10 := float32(src[3*(y0*W+x1)+c])
				p01 := float32(src[3*(y1*W+x0)+c])
				p11 := float32(src[3*(y1*W+x1)+c])
				top := p00 + float32((p10-p00)*xf)
				bottom := p01 + float32((p11-p01)*xf)
				out[3*(y*nw+x)+c] = uint8(top + float32((bottom-top)*yf))
			}
		}
	}
	return out
}

// patches lays the canvas out as the patch-embedding matrix: row p = py·nx
// + px is patch p flattened as (channel, ky, kx), the conv kernel's order,
// with each value normalised as the encoder sees it: (u8/255 − mean)/std,
// then a·v + b (Gemma 4's graph maps its input to 2v − 1).
func (c *Config) patches(in *Input, a, b float32) []float32 {
	P := c.PatchSize
	cols := 3 * P * P
	out := make([]float32, in.NX*in.NY*cols)
	var lut [3][256]float32
	for ch := range 3 {
		for u := range 256 {
			v := (float32(u)/255 - c.Mean[ch]) / c.Std[ch]
			lut[ch][u] = float32(a*v) + b
		}
	}
	for py := 0; py < in.NY; py++ {
		for px := 0; px < in.NX; px++ {
			row := out[(py*in.NX+px)*cols:]
			for ch := range 3 {
				for ky := 0; ky < P; ky++ {
					src := in.RGB[3*((py*P+ky)*in.Width+px*P):]
					dst := row[(ch*P+ky)*P:]
					for kx := 0; kx < P; kx++ {
						dst[kx] = lut[ch][src[3*kx+ch]]
					}
				}
			}
		}
	}
	return out
}
