package unet

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/internal/oracle"
)

// The float64 oracle of the whole UNet, built from the same bound weights
// (read back from the backend), layer by layer as the LDM code defines it.

func oracleResBlock(b compute.Backend, r *ResBlock, x *oracle.Map, emb []float64) *oracle.Map {
	e := oracle.Linear(b, &r.Emb, [][]float64{emb})[0]
	h := oracle.GroupNorm(b, &r.Norm1, x, true)
	h = oracle.Conv(b, &r.Conv1, h)
	hw := h.H * h.W
	for c := 0; c < h.C; c++ {
		for p := 0; p < hw; p++ {
			h.V[c*hw+p] += e[c]
		}
	}
	h = oracle.GroupNorm(b, &r.Norm2, h, true)
	h = oracle.Conv(b, &r.Conv2, h)
	skip := x
	if r.Shortcut != nil {
		skip = oracle.Conv(b, r.Shortcut, x)
	}
	return oracle.Add(h, skip)
}

func oracleAttention(b compute.Backend, a *Attention, x, ctx [][]float64) [][]float64 {
	q := oracle.Linear(b, &a.Q, x)
	k := oracle.Linear(b, &a.K, ctx)
	v := oracle.Linear(b, &a.V, ctx)
	return oracle.Linear(b, &a.Out, oracle.Attention(q, k, v, a.Heads))
}

func addRows(x, y [][]float64) {
	for i := range x {
		for j := range x[i] {
			x[i][j] += y[i][j]
		}
	}
}

func oracleTransformerBlock(b compute.Backend, t *TransformerBlock, x, ctx [][]float64) {
	h := oracle.LayerNorm(b, &t.Norm1, x)
	addRows(x, oracleAttention(b, &t.Attn1, h, h))
	h = oracle.LayerNorm(b, &t.Norm2, x)
	addRows(x, oracleAttention(b, &t.Attn2, h, ctx))
	h = oracle.LayerNorm(b, &t.Norm3, x)
	p := oracle.Linear(b, &t.FFIn, h)
	inner := len(p[0]) / 2
	g := make([][]float64, len(p))
	for i, row := range p {
		g[i] = make([]float64, inner)
		for j := 0; j < inner; j++ {
			g[i][j] = row[j] * oracle.GELU64(row[inner+j])
		}
	}
	addRows(x, oracle.Linear(b, &t.FFOut, g))
}

func oracleSpatialTransformer(b compute.Backend, s *SpatialTransformer, x *oracle.Map, ctx [][]float64) *oracle.Map {
	h := oracle.GroupNorm(b, &s.Norm, x, false)
	var tok [][]float64
	if s.Linear {
		tok = oracle.Linear(b, &s.ProjIn, h.Tokens())
	} else {
		tok = oracle.Conv(b, &s.ProjInConv, h).Tokens()
	}
	for _, blk := range s.Blocks {
		oracleTransformerBlock(b, blk, tok, ctx)
	}
	var out *oracle.Map
	if s.Linear {
		out = oracle.FromTokens(oracle.Linear(b, &s.ProjOut, tok), x.H, x.W)
	} else {
		out = oracle.Conv(b, &s.ProjOutConv, oracle.FromTokens(tok, x.H, x.W))
	}
	return oracle.Add(out, x)
}

func oracleLayer(b compute.Backend, l layer, h *oracle.Map, emb []float64, ctx [][]float64) *oracle.Map {
	switch l := l.(type) {
	case *convLayer:
		return oracle.Conv(b, &l.c, h)
	case *ResBlock:
		return oracleResBlock(b, l, h, emb)
	case *SpatialTransformer:
		return oracleSpatialTransformer(b, l, h, ctx)
	case *Downsample:
		return oracle.Conv(b, &l.Conv, h)
	case *Upsample:
		return oracle.Conv(b, &l.Conv, oracle.Upsample2(h))
	}
	panic(fmt.Sprintf("oracle: layer %T", l))
}

func oracleMLP(b compute.Backend, l1, l2 *nn.Linear, x []float64) []float64 {
	h := oracle.Linear(b, l1, [][]float64{x})[0]
	for i := range h {
		h[i] = oracle.SiLU64(h[i])
	}
	return oracle.Linear(b, l2, [][]float64{h})[0]
}

func oracleUNet(b compute.Backend, m *Model, x *oracle.Map, t float32, ctx [][]float64, y []float64) *oracle.Map {
	ts := TimestepEmbedding(t, m.Config.ModelChannels)
	t64 := make([]float64, len(ts))
	for i, v := range ts {
		t64[i] = float64(v)
	}
	emb := oracleMLP(b, &m.TimeEmbed1, &m.TimeEmbed2, t64)
	if y != nil {
		l := oracleMLP(b, &m.LabelEmb1, &m.LabelEmb2, y)
		for i := range emb {
			emb[i] += l[i]
		}
	}
	for i := range emb {
		emb[i] = oracle.SiLU64(emb[i])
	}
	var skips []*oracle.Map
	h := x
	for _, blk := range m.Input {
		for _, l := range blk {
			h = oracleLayer(b, l, h, emb, ctx)
		}
		skips = append(skips, h)
	}
	for _, l := range m.Middle {
		h = oracleLayer(b, l, h, emb, ctx)
	}
	for _, blk := range m.Output {
		s := skips[len(skips)-1]
		skips = skips[:len(skips)-1]
		if h.H != s.H || h.W != s.W { // A1111: nearest resize to the skip's size
			c := &oracle.Map{C: h.C, H: s.H, W: s.W, V: make([]float64, h.C*s.H*s.W)}
			for ch := 0; ch < h.C; ch++ {
				for y := 0; y < s.H; y++ {
					for x := 0; x < s.W; x++ {
						c.V[(ch*s.H+y)*s.W+x] = h.At(ch, y*h.H/s.H, x*h.W/s.W)
					}
				}
			}
			h = c
		}
		cat := &oracle.Map{C: h.C + s.C, H: h.H, W: h.W, V: append(append([]float64(nil), h.V...), s.V...)}
		h = cat
		for _, l := range blk {
			h = oracleLayer(b, l, h, emb, ctx)
		}
	}
	h = oracle.GroupNorm(b, &m.OutNorm, h, true)
	return oracle.Conv(b, &m.OutConv, h)
}

// relErr is max|a−b| / rms(b).
func relErr(a []float32, b []float64) (float64, float64) {
	var mx, ss float64
	for i := range b {
		mx = math.Max(mx, math.Abs(float64(a[i])-b[i]))
		ss += b[i] * b[i]
	}
	rms := math.Sqrt(ss / float64(len(b)))
	return mx / rms, rms
}
