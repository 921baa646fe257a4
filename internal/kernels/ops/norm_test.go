package ops

import (
	"math"
	"testing"
)

// RMSNorm fast vs reference: both round squares to float and sum them in
// double; only the order of the double additions differs, so mean (rounded
// to float) almost always agrees exactly. Tolerance 2 float ulps (2.4e-7
// relative).
func TestRMSNormFastVsRef(t *testing.T) {
	needFast(t)
	r := newRand(3)
	for _, n := range awkward {
		rows := 5
		x := randVec(r, rows*n, 3)
		w := randVec(r, n, 1)
		for _, wt := range [][]float32{nil, w} {
			got, want := make([]float32, rows*n), make([]float32, rows*n)
			RMSNorm(x, wt, got, n, 1e-6, 0, rows)
			withRef(func() { RMSNorm(x, wt, want, n, 1e-6, 0, rows) })
			closeEnough(t, "rmsnorm", got, want, 0, 2.4e-7)
			// reference vs float64 maths: a few float roundings (scale, two products)
			for row := 0; row < rows; row++ {
				var ss float64
				for _, v := range x[row*n : row*n+n] {
					ss += float64(v) * float64(v)
				}
				sc := 1 / math.Sqrt(ss/float64(n)+1e-6)
				for i := 0; i < n; i++ {
					e := float64(x[row*n+i]) * sc
					if wt != nil {
						e *= float64(wt[i])
					}
					if math.Abs(float64(want[row*n+i])-e) > 6e-7*math.Abs(e)+1e-30 {
						t.Fatalf("rmsnorm n=%d [%d,%d] = %g, want %g", n, row, i, want[row*n+i], e)
					}
				}
			}
			// in place, and any range split gives the same bits
			for _, parts := range splits(rows) {
				y := append([]float32(nil), x...)
				for _, p := range parts {
					RMSNorm(y, wt, y, n, 1e-6, p[0], p[1])
				}
				sameBits(t, "rmsnorm split/in place", y, got)
			}
		}
	}
}

// LayerNorm and GroupNorm against float64 maths. Tolerance 2e-6 relative
// to the output scale (1) + element: the float mean and the float (x-mean)
// each add an ulp-sized error relative to the row's spread.
func TestLayerNorm(t *testing.T) {
	r := newRand(4)
	for _, n := range awkward {
		if n == 1 {
			continue // variance 0: output 0 whatever, checked below
		}
		rows := 3
		x := randVec(r, rows*n, 2)
		for i := range x {
			x[i] += 5 // a non-zero mean
		}
		w, b := randVec(r, n, 1), randVec(r, n, 1)
		out := make([]float32, rows*n)
		LayerNorm(x, w, b, out, n, 1e-5, 0, rows)
		for row := 0; row < rows; row++ {
			xr := x[row*n : row*n+n]
			var m, v float64
			for _, e := range xr {
				m += float64(e)
			}
			m /= float64(n)
			for _, e := range xr {
				v += (float64(e) - m) * (float64(e) - m)
			}
			v /= float64(n)
			for i, e := range xr {
				want := (float64(e)-m)/math.Sqrt(v+1e-5)*float64(w[i]) + float64(b[i])
				if d := math.Abs(float64(out[row*n+i]) - want); d > 2e-5*(1+math.Abs(want)) {
					t.Fatalf("layernorm n=%d [%d,%d] = %g, want %g", n, row, i, out[row*n+i], want)
				}
			}
		}
	}
	one := []float32{3}
	LayerNorm(one, nil, nil, one, 1, 1e-5, 0, 1)
	if one[0] != 0 {
		t.Fatalf("layernorm of one element = %g, want 0", one[0])
	}
}

func TestGroupNorm(t *testing.T) {
	r := newRand(5)
	// 10 channels in 4 groups: ggml's ceil split gives groups of 3,3,3,1
	const channels, hw, groups = 10, 7, 4
	x := randVec(r, channels*hw, 2)
	w, b := randVec(r, channels, 1), randVec(r, channels, 1)
	out := make([]float32, len(x))
	GroupNorm(x, w, b, out, channels, hw, groups, 1e-5, 0, groups)
	per := 3
	for g := 0; g < groups; g++ {
		c0, c1 := g*per, min(g*per+per, channels)
		xs := x[c0*hw : c1*hw]
		var m, v float64
		for _, e := range xs {
			m += float64(e)
		}
		m /= float64(len(xs))
		for _, e := range xs {
			v += (float64(e) - m) * (float64(e) - m)
		}
		v /= float64(len(xs))
		for i, e := range xs {
			c := c0 + i/hw
			want := (float64(e)-m)/math.Sqrt(v+1e-5)*float64(w[c]) + float64(b[c])
			if d := math.Abs(float64(out[c0*hw+i]) - want); d > 2e-5*(1+math.Abs(want)) {
				t.Fatalf("groupnorm group %d [%d] = %g, want %g", g, i, out[c0*hw+i], want)
			}
		}
	}
	for _, parts := range splits(groups) {
		y := make([]float32, len(x))
		for _, p := range parts {
			GroupNorm(x, w, b, y, channels, hw, groups, 1e-5, p[0], p[1])
		}
		sameBits(t, "groupnorm split", y, out)
	}
}
