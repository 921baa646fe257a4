package ops

import "math"

// Softmax replaces rows [rowStart, rowEnd) of x (length n) by their softmax,
// written to out (which may alias x).
func Softmax(x, out []float32, n, rowStart, rowEnd int) {
	SoftmaxExt(x, out, SoftmaxParams{N: n, Scale: 1}, rowStart, rowEnd)
}

// SoftmaxParams configures SoftmaxExt.
type SoftmaxParams struct {
	N     int       // row length
	Scale float32   // inputs are multiplied by Scale first
	Mask  []float32 // optional additive mask, MaskRows rows of length N
	// MaskRows: row r uses mask row r % MaskRows (broadcast, like ggml's
	// soft_max_ext). 0 means 1 when Mask is set.
	MaskRows int
}

// SoftmaxExt is ggml's soft_max_ext without ALiBi: w = x*Scale + mask, then
// softmax of w. A row whose entries are all -Inf becomes zeros.
func SoftmaxExt(x, out []float32, p SoftmaxParams, rowStart, rowEnd int) {
	if rowEnd <= rowStart {
		return
	}
	n := p.N
	_ = x[rowEnd*n-1]
	_ = out[rowEnd*n-1]
	mrows := p.MaskRows
	if p.Mask == nil {
		mrows = 0
	} else {
		if mrows <= 0 {
			mrows = 1
		}
		_ = p.Mask[mrows*n-1]
	}
	if useFast {
		softmaxFast(x, out, n, p.Scale, p.Mask, mrows, rowStart, rowEnd)
		return
	}
	softmaxRef(x, out, n, p.Scale, p.Mask, mrows, rowStart, rowEnd)
}

func softmaxRef(x, out []float32, n int, scale float32, mask []float32, maskRows, r0, r1 int) {
	for r := r0; r < r1; r++ {
		xr, or := x[r*n:r*n+n], out[r*n:r*n+n]
		var mr []float32
		if mask != nil {
			m := r % maskRows
			mr = mask[m*n : m*n+n]
		}
		mx := float32(math.Inf(-1))
		for i, v := range xr {
			w := float32(v * scale) // rounded before the mask add, as ggml
			if mr != nil {
				w += mr[i]
			}
			or[i] = w
			mx = max(mx, w)
		}
		if math.IsInf(float64(mx), -1) {
			clear(or)
			continue
		}
		var sum float64
		for i, w := range or {
			e := float32(math.Exp(float64(w - mx)))
			or[i] = e
			sum += float64(e)
		}
		inv := float32(1 / sum)
		for i := range or {
			or[i] *= inv
		}
	}
}
