package imagegen

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/diffusion/prompt"
	"mica/internal/models/sd"
	"mica/internal/models/sd/clip"
)

// cond is the conditioning of one side of classifier-free guidance: the
// cross-attention context [tokens, dim] and, for SDXL, the vector y.
type cond struct {
	ctx []float32
	n   int // tokens (77 per chunk)
	dim int
	y   []float32
}

// conditioning encodes prompt and negative into the two sides of CFG, with
// the same number of 77-token chunks on both (the shorter side is padded
// with chunks of the empty prompt, as A1111 does).
func (m *Model) conditioning(r *Request, w, h int) (c, u cond, err error) {
	pc := prompt.Tokenize(m.tok, r.Prompt)
	nc := prompt.Tokenize(m.tok, r.Negative)
	empty := prompt.Tokenize(m.tok, "")
	for len(pc) < len(nc) {
		pc = append(pc, empty[0])
	}
	for len(nc) < len(pc) {
		nc = append(nc, empty[0])
	}
	skip := r.ClipSkip
	if c, err = m.encodeText(pc, skip, w, h, zeroNone, r.aesthetic(false)); err != nil {
		return c, u, err
	}
	// An empty negative prompt on SDXL (base or refiner) gives an all-zero
	// uncond context; A1111 (SGM's force_zero_embeddings on the text
	// embedders) zeroes the pooled part of y too, stable-diffusion.cpp
	// keeps the pooled output of encoding "". SD 1.x encodes "" as text.
	zero := zeroNone
	if m.bigG != nil && r.Negative == "" {
		zero = zeroText
		if r.EmptyNegative == "sdcpp" {
			zero = zeroContext
		}
	}
	u, err = m.encodeText(nc, skip, w, h, zero, r.aesthetic(true))
	return c, u, err
}

// zeroMode is what encodeText replaces by zeros.
type zeroMode int

const (
	zeroNone    zeroMode = iota
	zeroContext          // the cross-attention context only
	zeroText             // the context and the pooled vector (not the size/score embeddings)
)

// Aesthetic scores the SDXL refiner is conditioned on when a request
// leaves them at 0: SGM's sampling defaults and A1111's settings
// sdxl_refiner_high_aesthetic_score (prompt) and
// sdxl_refiner_low_aesthetic_score (negative prompt).
const (
	DefaultAestheticScore         = 6.0
	DefaultNegativeAestheticScore = 2.5
)

// aesthetic is the refiner's aesthetic score for one side of CFG.
func (r *Request) aesthetic(negative bool) float32 {
	if negative {
		if r.NegativeAestheticScore != 0 {
			return r.NegativeAestheticScore
		}
		return DefaultNegativeAestheticScore
	}
	if r.AestheticScore != 0 {
		return r.AestheticScore
	}
	return DefaultAestheticScore
}

// encodeText runs the text encoder(s) over each chunk and concatenates the
// chunks along the token axis, applying the prompt's emphasis weights.
// aesthetic goes into the refiner's vector conditioning (others ignore it).
func (m *Model) encodeText(chunks []prompt.Chunk, clipSkip, w, h int, zero zeroMode, aesthetic float32) (cond, error) {
	zeroCtx := zero != zeroNone
	var out cond
	if clipSkip == 0 {
		clipSkip = 1
		if m.bigG != nil {
			clipSkip = 2
		}
	}
	for i, ch := range chunks {
		dim := 0
		var hid []float32
		var err error
		if m.clip != nil { // not the refiner
			dim = m.clip.Config.Hidden
			if zeroCtx {
				hid = make([]float32, len(ch.IDs)*dim) // zeroed below anyway
			} else if hid, _, err = m.runCLIP(m.clip, ch.IDs[:], clipSkip, m.bigG == nil, clip.NoPool); err != nil {
				return out, err
			}
		}
		if m.bigG != nil {
			// One bigG pass gives both the clip-skipped hidden state and,
			// for the first chunk, the pooled vector of the full stack.
			g := ch.ZeroAfterEOS()
			pooledAt := clip.NoPool
			if i == 0 {
				pooledAt = g.FirstEOS
			}
			gdim := m.bigG.Config.Hidden
			var hg, pooled []float32
			if zero == zeroText {
				hg, pooled = make([]float32, len(g.IDs)*gdim), make([]float32, m.bigG.Config.ProjDim)
			} else if hg, pooled, err = m.runCLIP(m.bigG, g.IDs[:], clipSkip, false, pooledAt); err != nil {
				return out, err
			}
			if m.clip != nil {
				hid = interleaveRows(hid, dim, hg, gdim)
			} else {
				hid = hg
			}
			dim += gdim
			if i == 0 {
				if m.Kind == sd.SDXLRefiner {
					out.y = refinerVector(pooled, h, w, aesthetic)
				} else {
					out.y = sizeVector(pooled, h, w)
				}
			}
		}
		if err := prompt.Restore(hid, len(ch.IDs), dim, ch.Weights[:]); err != nil {
			return out, err
		}
		if zeroCtx {
			clear(hid)
		}
		out.ctx = append(out.ctx, hid...)
		out.n += len(ch.IDs)
		out.dim = dim
	}
	return out, nil
}

// runCLIP encodes one chunk up to the layer clip skip selects; with
// pooledAt ≥ 0 it also returns the pooled vector of the full stack.
func (m *Model) runCLIP(e *clip.Model, ids []int32, clipSkip int, finalNorm bool, pooledAt int) ([]float32, []float32, error) {
	layers := e.Config.Layers - (clipSkip - 1)
	if layers < 1 {
		return nil, nil, fmt.Errorf("clip skip %d leaves no layer of %d", clipSkip, e.Config.Layers)
	}
	t, pooled, err := e.Encode(m.b, ids, clip.EncodeOptions{Layers: layers, FinalNorm: finalNorm, PooledAt: pooledAt})
	if err != nil {
		return nil, nil, err
	}
	defer m.b.Free(t)
	hid, err := compute.ToF32(t)
	return hid, pooled, err
}

// interleaveRows concatenates two [n, da] and [n, db] matrices row by row.
func interleaveRows(a []float32, da int, b []float32, db int) []float32 {
	n := len(a) / da
	out := make([]float32, 0, n*(da+db))
	for i := 0; i < n; i++ {
		out = append(out, a[i*da:(i+1)*da]...)
		out = append(out, b[i*db:(i+1)*db]...)
	}
	return out
}

// sizeVector is SDXL's vector conditioning: the pooled text embedding, then
// sinusoidal embeddings (256 wide, cosine first) of the original size, the
// crop's top-left corner and the target size. Like stable-diffusion.cpp
// and A1111's defaults, original = target = the output size, crop (0, 0).
func sizeVector(pooled []float32, h, w int) []float32 {
	y := append([]float32(nil), pooled...)
	for _, v := range []int{h, w, 0, 0, h, w} {
		y = append(y, sinusoid(float32(v), 256)...)
	}
	return y
}

// refinerVector is the SDXL refiner's vector conditioning (ADM 2560 =
// 1280 + 5·256): the pooled bigG output, then the 256-wide sinusoidal
// embeddings of the original size (h, w), the crop's top-left corner
// (0, 0) and the aesthetic score, in the order of the embedders in SGM's
// sd_xl_refiner.yaml (original_size_as_tuple, crop_coords_top_left,
// aesthetic_score, each a ConcatTimestepEmbedderND with outdim 256). As
// in A1111, the original size is the output size.
func refinerVector(pooled []float32, h, w int, aesthetic float32) []float32 {
	y := append([]float32(nil), pooled...)
	for _, v := range []float32{float32(h), float32(w), 0, 0, aesthetic} {
		y = append(y, sinusoid(v, 256)...)
	}
	return y
}

// sinusoid embeds a scalar: cos(v·f_j) for j < dim/2, then sin, with
// f_j = exp(−ln(10000)·j/(dim/2)).
func sinusoid(v float32, dim int) []float32 {
	half := dim / 2
	out := make([]float32, dim)
	for j := 0; j < half; j++ {
		f := float32(math.Exp(-math.Log(10000) * float64(j) / float64(half)))
		a := float64(v * f)
		out[j] = float32(math.Cos(a))
		out[half+j] = float32(math.Sin(a))
	}
	return out
}
