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
// YaRN's ext_factor is not supported (taken as 0).
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
	lastTok := -1
	for r := rowStart; r < rowEnd; r++ {
		tok := r / nHeads
		if tok != lastTok {
			theta := float32(pos[tok])
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
			lastTok = tok
		}
		row := x[r*headDim : r*headDim+headDim]
		if p.NeoX {
			a, b := row[:half], row[half:p.NRot]
			for i := range a {
				c, s := cache[2*i], cache[2*i+1]
				x0, x1 := a[i], b[i]
				a[i] = float32(x0*c) - float32(x1*s)
				b[i] = float32(x0*s) + float32(x1*c)
			}
		} else {
			for i := 0; i < half; i++ {
				c, s := cache[2*i], cache[2*i+1]
				x0, x1 := row[2*i], row[2*i+1]
				row[2*i] = float32(x0*c) - float32(x1*s)
				row[2*i+1] = float32(x0*s) + float32(x1*c)
			}
		}
	}
}
