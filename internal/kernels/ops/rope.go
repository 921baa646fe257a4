package ops

import (
	"fmt"
	"math"
)

// RoPEParams configures RoPE.
type RoPEParams struct {
	NRot      int       // rotated dimensions per head (even, <= head dim); the rest are left as they are
	Base      float32   // frequency base theta (e.g. 10000)
	FreqScale float32   // position interpolation factor (1 = none)
	Factors   []float32 // optional per-pair frequency factors (len >= NRot/2): pair i's angle is divided by Factors[i]
	NeoX      bool      // NeoX layout: pairs (i, i+NRot/2); otherwise interleaved pairs (2i, 2i+1)
	// AttnFactor multiplies cos and sin (ggml's attn_factor / mscale);
	// 0 means 1.
	AttnFactor float32
}

// Validate reports whether p fits heads of headDim dimensions.
func (p RoPEParams) Validate(headDim int) error {
	switch {
	case p.NRot <= 0 || p.NRot%2 != 0:
		return fmt.Errorf("rope: rotated dimensions %d must be positive and even", p.NRot)
	case p.NRot > headDim:
		return fmt.Errorf("rope: rotated dimensions %d exceed the head dimension %d", p.NRot, headDim)
	case p.Base <= 0:
		return fmt.Errorf("rope: frequency base %g must be positive", p.Base)
	case p.Factors != nil && len(p.Factors) < p.NRot/2:
		return fmt.Errorf("rope: %d frequency factors, need %d", len(p.Factors), p.NRot/2)
	}
	return nil
}

// RoPE rotates, in place, rows [rowStart, rowEnd) of x laid out
// [tokens][nHeads][headDim]; row r is token r/nHeads, head r%nHeads, and
// token t has position pos[t]. Rows of the same token share one table of
// angles, computed with ggml's float arithmetic (see the package doc).
// YaRN's ext_factor is not supported (taken as 0). It is RoPEAngles
// followed by RoPEApply, without the caller-held table.
func RoPE(x []float32, pos []int32, nHeads, headDim int, p RoPEParams, rowStart, rowEnd int) {
	if rowEnd <= rowStart {
		return
	}
	var buf [1024]float32
	var cache []float32
	if p.NRot <= len(buf) {
		cache = buf[:p.NRot]
	} else {
		cache = make([]float32, p.NRot)
	}
	lastTok := -1
	for r := rowStart; r < rowEnd; r++ {
		tok := r / nHeads
		if tok != lastTok {
			ropeAngles(cache, pos[tok], p)
			lastTok = tok
		}
		rotate(x[r*headDim:r*headDim+headDim], cache, p)
	}
}

// RoPEAngles fills the table cs, laid out [tokens][NRot] as (cos, sin)
// pairs, for tokens [tokStart, tokEnd) at positions pos. One table serves
// every layer and both q and k that share p, so a model computes it once
// per batch instead of once per RoPE call; RoPEApply uses it.
func RoPEAngles(cs []float32, pos []int32, p RoPEParams, tokStart, tokEnd int) {
	for t := tokStart; t < tokEnd; t++ {
		ropeAngles(cs[t*p.NRot:(t+1)*p.NRot], pos[t], p)
	}
}

// RoPEApply is RoPE with the angles taken from a RoPEAngles table (only
// p.NRot and p.NeoX are read). The results are the same bits as RoPE's.
func RoPEApply(x, cs []float32, nHeads, headDim int, p RoPEParams, rowStart, rowEnd int) {
	if useFast && p.NeoX && rowEnd > rowStart {
		ropeNeoXFast(x, cs, nHeads, headDim, p.NRot, rowStart, rowEnd)
		return
	}
	for r := rowStart; r < rowEnd; r++ {
		tok := r / nHeads
		rotate(x[r*headDim:r*headDim+headDim], cs[tok*p.NRot:(tok+1)*p.NRot], p)
	}
}

// ropeAngles computes one position's (cos, sin) pairs as ggml's
// rope_cache_init does with ext_factor 0: theta starts at float(pos) and is
// multiplied in float by theta_scale = powf(base, -2/NRot) once per pair.
func ropeAngles(cache []float32, pos int32, p RoPEParams) {
	half := p.NRot / 2
	thetaScale := float32(math.Pow(float64(p.Base), float64(float32(-2)/float32(p.NRot))))
	freqScale := p.FreqScale
	if freqScale == 0 {
		freqScale = 1
	}
	mscale := p.AttnFactor
	if mscale == 0 {
		mscale = 1
	}
	theta := float32(pos)
	for i := 0; i < half; i++ {
		ext := theta
		if p.Factors != nil {
			ext = theta / p.Factors[i]
		}
		t := float64(freqScale * ext)
		cache[2*i] = float32(math.Cos(t)) * mscale
		cache[2*i+1] = float32(math.Sin(t)) * mscale
		theta *= thetaScale
	}
}

// rotate applies one row's rotation; products are rounded before the
// add/sub (no fused multiply-add), as ggml's rotate_pairs.
func rotate(row, cache []float32, p RoPEParams) {
	half := p.NRot / 2
	if p.NeoX {
		a, b := row[:half], row[half:p.NRot]
		for i := range a {
			c, s := cache[2*i], cache[2*i+1]
			x0, x1 := a[i], b[i]
			a[i] = float32(x0*c) - float32(x1*s)
			b[i] = float32(x0*s) + float32(x1*c)
		}
		return
	}
	for i := 0; i < half; i++ {
		c, s := cache[2*i], cache[2*i+1]
		x0, x1 := row[2*i], row[2*i+1]
		row[2*i] = float32(x0*c) - float32(x1*s)
		row[2*i+1] = float32(x0*s) + float32(x1*c)
	}
}
