package ops

import (
	"math"
	"testing"
)

// RoPE against float64 maths with the ideal angle pos*freqScale*base^(-2i/nRot)/factor.
// ggml's float recurrence for the angle drifts by up to ~i float ulps
// (relative) at pair i, so the absolute angle error grows with position:
// with positions <= 39 and <= 10 pairs it stays below 39*10*1.2e-7 ≈ 5e-5
// rad; with |x| = O(1) (normal samples, |x| < 5) the tolerance 2e-4 covers
// that plus the float rounding of cos, sin and the products.
func TestRoPE(t *testing.T) {
	r := newRand(7)
	const nHeads, headDim, nTok = 3, 20, 4
	pos := []int32{0, 1, 17, 39}
	factors := []float32{1, 1.5, 2, 4, 8, 1, 1, 1}
	for _, tc := range []struct {
		name string
		p    RoPEParams
	}{
		{"neox", RoPEParams{NRot: headDim, Base: 10000, FreqScale: 1, NeoX: true}},
		{"normal", RoPEParams{NRot: headDim, Base: 10000, FreqScale: 1}},
		{"neox partial", RoPEParams{NRot: 8, Base: 10000, FreqScale: 1, NeoX: true}},
		{"normal partial+factors+scale", RoPEParams{NRot: 16, Base: 1e6, FreqScale: 0.25, Factors: factors}},
		{"neox factors+attn", RoPEParams{NRot: 16, Base: 500, FreqScale: 1, Factors: factors, NeoX: true, AttnFactor: 1.5}},
	} {
		if err := tc.p.Validate(headDim); err != nil {
			t.Fatal(err)
		}
		x := randVec(r, nTok*nHeads*headDim, 1)
		got := append([]float32(nil), x...)
		RoPE(got, pos, nHeads, headDim, tc.p, 0, nTok*nHeads)
		half := tc.p.NRot / 2
		for row := 0; row < nTok*nHeads; row++ {
			tok := row / nHeads
			xr, gr := x[row*headDim:row*headDim+headDim], got[row*headDim:row*headDim+headDim]
			want := append([]float64(nil), make([]float64, headDim)...)
			for i := range want {
				want[i] = float64(xr[i])
			}
			ms := 1.0
			if tc.p.AttnFactor != 0 {
				ms = float64(tc.p.AttnFactor)
			}
			for i := 0; i < half; i++ {
				ang := float64(pos[tok]) * math.Pow(float64(tc.p.Base), -2*float64(i)/float64(tc.p.NRot)) * float64(tc.p.FreqScale)
				if tc.p.Factors != nil {
					ang /= float64(tc.p.Factors[i])
				}
				c, s := math.Cos(ang)*ms, math.Sin(ang)*ms
				a, b := 2*i, 2*i+1
				if tc.p.NeoX {
					a, b = i, i+half
				}
				x0, x1 := float64(xr[a]), float64(xr[b])
				want[a], want[b] = x0*c-x1*s, x0*s+x1*c
			}
			for i := range want {
				if i >= tc.p.NRot && gr[i] != xr[i] {
					t.Fatalf("%s: unrotated dim %d changed", tc.name, i)
				}
				if math.Abs(float64(gr[i])-want[i]) > 2e-4 {
					t.Fatalf("%s: row %d dim %d = %g, want %g", tc.name, row, i, gr[i], want[i])
				}
			}
		}
		cs := make([]float32, nTok*tc.p.NRot)
		RoPEAngles(cs, pos, tc.p, 0, 2)
		RoPEAngles(cs, pos, tc.p, 2, nTok)
		for _, parts := range splits(nTok * nHeads) {
			y := append([]float32(nil), x...)
			z := append([]float32(nil), x...)
			for _, p := range parts {
				RoPE(y, pos, nHeads, headDim, tc.p, p[0], p[1])
				RoPEApply(z, cs, nHeads, headDim, tc.p, p[0], p[1])
			}
			sameBits(t, tc.name+" split", y, got)
			sameBits(t, tc.name+" with table", z, got)
		}
	}
	if (RoPEParams{NRot: 7, Base: 1}).Validate(8) == nil || (RoPEParams{NRot: 10, Base: 1}).Validate(8) == nil {
		t.Fatal("Validate accepted a bad NRot")
	}
}

// The angle table follows ggml's float recurrence exactly: theta starts at
// float(pos) and is multiplied by powf(base, -2/nRot) in float per pair.
func TestRoPEAngleRecurrence(t *testing.T) {
	const headDim = 64
	x := make([]float32, headDim)
	for i := 0; i < headDim/2; i++ {
		x[2*i] = 1 // rotating (1, 0) gives (cos, sin)
	}
	pos := []int32{12345}
	RoPE(x, pos, 1, headDim, RoPEParams{NRot: headDim, Base: 10000, FreqScale: 1}, 0, 1)
	ts := float32(math.Pow(10000, float64(float32(-2)/float32(headDim))))
	theta := float32(12345)
	for i := 0; i < headDim/2; i++ {
		if want := float32(math.Cos(float64(theta))); x[2*i] != want {
			t.Fatalf("pair %d: cos = %g, want %g (angle %g)", i, x[2*i], want, theta)
		}
		theta *= ts
	}
}

// TestRoPEApplyFastMatchesGo: the AVX2 NeoX rotation gives the Go loop's
// bits (products rounded, then one add or sub: no fused multiply-add) for
// full and partial rotations whose half is below, at and past the vector
// width, and for row ranges that start and end inside a token's heads.
func TestRoPEApplyFastMatchesGo(t *testing.T) {
	needFast(t)
	for _, c := range []struct{ nHeads, headDim, nRot, tokens int }{
		{4, 256, 256, 5}, {3, 64, 40, 4}, {2, 34, 34, 3}, {5, 24, 6, 2}, {1, 128, 64, 7},
	} {
		p := RoPEParams{NRot: c.nRot, Base: 10000, NeoX: true}
		pos := make([]int32, c.tokens)
		for i := range pos {
			pos[i] = int32(3*i + 1)
		}
		cs := make([]float32, c.tokens*c.nRot)
		RoPEAngles(cs, pos, p, 0, c.tokens)
		rows := c.tokens * c.nHeads
		x := make([]float32, rows*c.headDim)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*1.3)) * 3
		}
		for _, r := range [][2]int{{0, rows}, {1, rows - 1}, {c.nHeads + 1, rows}} {
			if r[0] >= r[1] {
				continue
			}
			want, got := append([]float32(nil), x...), append([]float32(nil), x...)
			func() {
				prev := useFast
				defer func() { useFast = prev }()
				useFast = false
				RoPEApply(want, cs, c.nHeads, c.headDim, p, r[0], r[1])
				useFast = true
				RoPEApply(got, cs, c.nHeads, c.headDim, p, r[0], r[1])
			}()
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%+v rows %v: value %d fast %v Go %v", c, r, i, got[i], want[i])
				}
			}
		}
	}
}
