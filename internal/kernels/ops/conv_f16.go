package ops

import (
	"fmt"
	"math"

	"mica/internal/kernels/quant"
)

// ConvF16 is a direct 2-D convolution with F16 weights, the numerics of
// ggml (stable-diffusion.cpp) and of the im2col + matmul path it replaces:
// the input is rounded to F16 once, each output is an F16×F16 dot product
// over the taps k = (ic, ky, kx) with float32 accumulation in matmul's F16
// order — 16 lane sums, lane j taking the taps k ≡ j (mod 16) below
// kmain = ColLen rounded down to 16 by fused multiply-adds in increasing
// k, the reduction ((l0+l8)+(l4+l12)) … as in matmul.reduce16, then the
// remaining taps by fmas in order — plus the bias (0 when there is none).
// So the results equal im2col → matmul.MulRows(F16) → + bias bit for bit.
//
// Layout. No im2col matrix is built. The input rows a band of output rows
// needs are copied into a band buffer (FillBand): F16-rounded, zero-padded,
// and for stride s > 1 split into s column phases, so that for every tap k
// the input values of consecutive output pixels ox, ox+1, … of one output
// row are consecutive floats at band + (oy−oy0)·StrideH·rowStride + ox +
// off[k]. The F16 weights of a group of output channels are widened once
// into a panel (FillPanel), tap by tap in lane order. The fast kernel takes
// 16 consecutive output pixels (a tile, which may wrap to the next row),
// copies their values for every tap into a small buffer in the same lane
// order, and multiplies it by the panel 6 channels at a time, 16 lanes one
// after the other; outputs are written in place ([OC][OH][OW]).
//
// A 1×1 convolution with stride 1 and no padding is a plain matrix product
// over the pixels; it is planned as rows of a multiple of 16 pixels where
// the pixel count allows, so that tiles never wrap.
type ConvF16 struct {
	p          Conv2DParams // normalised (and reshaped for 1×1)
	oh, ow     int          // output size
	wq         int          // columns per band row and phase
	rowStride  int          // floats per band row: StrideW·wq
	plane      int          // floats per channel of a band
	bandRows   int          // output rows per band (the last may be shorter)
	ocPerGroup int          // output channels per panel (a multiple of 6)
	k, kmain   int          // taps, taps in full lane steps
	chunk      int          // fast kernel: lane steps per tap chunk (of all tiles of a group)
	tileGroup  int          // fast kernel: tiles sharing each weight chunk
	off        []int32      // tap offsets in lane order, then the tail taps
}

// ConvBand is one band of output rows [Oy0, Oy1). Its Units of work are its
// tiles of 16 output pixels (the last may be shorter) times slices of a
// group's output channels: unit u is tile u % tiles of slice u / tiles.
type ConvBand struct {
	Oy0, Oy1      int
	Units         int
	tiles, slices int
}

// convMR is the fast kernel's tile height in output channels.
const convMR = 6

// The fast kernel's blocking (see mica_conv_f16): tiles go in groups of
// convTileGroup, which share each chunk of weights; the taps in chunks of
// convChunk lane steps for the whole group (16 lanes × 384 steps × 16
// pixels: 384 KiB of packed activations, which stay in L2 while every
// channel block passes over them; 96 steps per tile), in equal chunks, the
// 16 lane sums of every output kept in between. Measured on the 2-core
// AVX2 machine (512-channel 64², 320-channel 64², 128-channel 256² and
// 1280-channel 16² convolutions): 4 tiles × 384 steps beat 8 × 256 by
// 10–20 %; 2–8 tiles × 256–512 steps were within the noise of it. Short
// chunks cost: the kernel runs at ~70 % of its speed on 16 steps per lane
// and call, ~85 % on 32, ~97 % on 128.
const (
	convChunk     = 384
	convTileGroup = 4
)

// NewConvF16 plans the convolution p with bands of at most about
// bandFloats floats (at least one output row) and weight panels of at most
// about panelFloats floats (at least 6 channels).
func NewConvF16(p Conv2DParams, bandFloats, panelFloats int) (*ConvF16, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.norm()
	if p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0 {
		p = reshape1x1(p)
	}
	c := &ConvF16{p: p, oh: p.OutH(), ow: p.OutW(), k: p.ColLen(), chunk: convChunk, tileGroup: convTileGroup}
	c.kmain = c.k / 16 * 16
	// Rows of whole cache lines (16 floats).
	c.wq = (c.ow + (p.KW-1)*p.DilW/p.StrideW + 15) / 16 * 16
	c.rowStride = p.StrideW * c.wq
	perChan := func(rows int) int { return ((rows-1)*p.StrideH + (p.KH-1)*p.DilH + 1) * c.rowStride }
	c.bandRows = 1
	for c.bandRows < c.oh && p.IC*perChan(c.bandRows+1) <= bandFloats {
		c.bandRows++
	}
	c.plane = perChan(c.bandRows)
	if float64(p.IC)*float64(c.plane) >= math.MaxInt32-64 {
		return nil, fmt.Errorf("conv2d: a band of %d channels × %d floats is too large", p.IC, c.plane)
	}
	// groups of equal size (in 6-channel blocks), each panel ≤ panelFloats
	nocb := (p.OC + convMR - 1) / convMR
	groups := (nocb + max(1, panelFloats/(convMR*c.k)) - 1) / max(1, panelFloats/(convMR*c.k))
	c.ocPerGroup = (nocb + groups - 1) / groups * convMR
	c.off = make([]int32, c.k)
	n := 0
	tap := func(k int) int32 {
		ic, r := k/(p.KH*p.KW), k%(p.KH*p.KW)
		ky, kx := r/p.KW, r%p.KW
		dx := kx * p.DilW
		return int32(ic*c.plane + ky*p.DilH*c.rowStride + dx%p.StrideW*c.wq + dx/p.StrideW)
	}
	for j := 0; j < 16; j++ {
		for k := j; k < c.kmain; k += 16 {
			c.off[n] = tap(k)
			n++
		}
	}
	for k := c.kmain; k < c.k; k++ {
		c.off[n] = tap(k)
		n++
	}
	return c, nil
}

// reshape1x1 views a pointwise convolution's H×W pixels as rows of a
// multiple of 16 pixels (at most 1024) when the count allows it.
func reshape1x1(p Conv2DParams) Conv2DParams {
	npix := p.H * p.W
	if npix%16 != 0 {
		return p
	}
	w := 16
	for c := 32; c <= 1024; c += 16 {
		if npix%c == 0 {
			w = c
		}
	}
	p.H, p.W = npix/w, w
	return p
}

// BandFloats is the length of the band buffer FillBand and Run use.
func (c *ConvF16) BandFloats() int { return c.p.IC * c.plane }

// Bands is the number of bands.
func (c *ConvF16) Bands() int { return (c.oh + c.bandRows - 1) / c.bandRows }

// Band is band i for threads workers: its tiles, split into channel slices
// when there are fewer tiles than threads. (Slicing big bands too, so that
// the workers would read disjoint parts of the weight panel, made no
// measurable difference on the 2-core machine; each slice packs the
// activations of its tiles itself.)
func (c *ConvF16) Band(i, threads int) ConvBand {
	b := ConvBand{Oy0: i * c.bandRows}
	b.Oy1 = min(c.oh, b.Oy0+c.bandRows)
	b.tiles = ((b.Oy1-b.Oy0)*c.ow + 15) / 16
	b.slices = min(c.ocPerGroup/convMR, max(1, (threads+b.tiles-1)/b.tiles))
	b.Units = b.tiles * b.slices
	return b
}

// Groups is the number of output channel groups (one panel each).
func (c *ConvF16) Groups() int { return (c.p.OC + c.ocPerGroup - 1) / c.ocPerGroup }

// group is group g's output channels [oc0, oc1).
func (c *ConvF16) group(g int) (int, int) {
	return g * c.ocPerGroup, min(c.p.OC, (g+1)*c.ocPerGroup)
}

// PanelFloats is the length of the panel buffer FillPanel and Run use.
func (c *ConvF16) PanelFloats() int { return min(c.p.OC, c.ocPerGroup) * c.k }

// PanelBlocks is the number of 6-channel blocks of group g's panel.
func (c *ConvF16) PanelBlocks(g int) int {
	oc0, oc1 := c.group(g)
	return (oc1 - oc0 + convMR - 1) / convMR
}

// FillPanel widens blocks [b0, b1) of group g's F16 weights (w: [OC][IC·KH·KW]
// as bytes) into panel (PanelFloats long), for the fast kernel. The plain-Go
// path reads the weights directly and needs no panel.
func (c *ConvF16) FillPanel(w []byte, panel []float32, g, b0, b1 int) error {
	if len(w) < 2*c.p.OC*c.k || len(panel) < c.PanelFloats() {
		return fmt.Errorf("conv2d: F16 weights %d bytes, panel %d floats: too short for %+v", len(w), len(panel), c.p)
	}
	if useFast && b1 > b0 {
		oc0, oc1 := c.group(g)
		return convPanelFast(w[2*oc0*c.k:], oc1-oc0, c.k, c.kmain, panel, b0, b1)
	}
	return nil
}

// FillBand writes channels [icStart, icEnd) of band b's input rows to band
// (BandFloats long), from one image x ([IC][H][W]).
func (c *ConvF16) FillBand(x, band []float32, b ConvBand, icStart, icEnd int) error {
	if len(x) < c.p.IC*c.p.H*c.p.W || len(band) < c.BandFloats() || icStart < 0 || icEnd > c.p.IC ||
		b.Oy0 < 0 || b.Oy1 > c.oh || b.Oy0 >= b.Oy1 || b.Oy1-b.Oy0 > c.bandRows {
		return fmt.Errorf("conv2d: input %d floats, band %d, channels [%d, %d), rows [%d, %d): do not fit %+v",
			len(x), len(band), icStart, icEnd, b.Oy0, b.Oy1, c.p)
	}
	p := c.p
	hb := (b.Oy1-b.Oy0-1)*p.StrideH + (p.KH-1)*p.DilH + 1
	iy0 := b.Oy0*p.StrideH - p.PadH
	if useFast {
		convFillFast(x, band, p.H, p.W, c.plane, hb, p.StrideW, c.wq, iy0, p.PadW, icStart, icEnd)
		return nil
	}
	for ic := icStart; ic < icEnd; ic++ {
		for r := 0; r < hb; r++ {
			iy := iy0 + r
			for ph := 0; ph < p.StrideW; ph++ {
				d := band[ic*c.plane+r*c.rowStride+ph*c.wq:][:c.wq]
				for col := range d {
					ix := col*p.StrideW + ph - p.PadW
					if iy < 0 || iy >= p.H || ix < 0 || ix >= p.W {
						d[col] = 0
					} else {
						d[col] = quant.FP16ToFP32(quant.FP32ToFP16(x[(ic*p.H+iy)*p.W+ix]))
					}
				}
			}
		}
	}
	return nil
}

// Run computes group g's output channels of tiles [u0, u1) of band b: band
// and panel filled (FillBand, FillPanel), y the image's output
// [OC][OH][OW], w the F16 weights [OC][IC·KH·KW] as bytes, bias nil or OC
// values.
func (c *ConvF16) Run(band []float32, w []byte, panel, bias, y []float32, b ConvBand, g, u0, u1 int) error {
	if len(w) < 2*c.p.OC*c.k || len(y) < c.p.OC*c.oh*c.ow || len(band) < c.BandFloats() ||
		len(panel) < c.PanelFloats() || bias != nil && len(bias) < c.p.OC {
		return fmt.Errorf("conv2d: F16 weights %d bytes, output %d, band %d, panel %d, bias %d: too short for %+v",
			len(w), len(y), len(band), len(panel), len(bias), c.p)
	}
	if g < 0 || g >= c.Groups() || u0 < 0 || u1 > b.Units || b.Oy0 < 0 || b.Oy1 > c.oh ||
		b.tiles != ((b.Oy1-b.Oy0)*c.ow+15)/16 || b.slices < 1 || b.Units != b.tiles*b.slices {
		return fmt.Errorf("conv2d: group %d, units [%d, %d) of band %+v: not a band of this convolution (%+v)", g, u0, u1, b, c.p)
	}
	if u1 <= u0 {
		return nil
	}
	g0, g1 := c.group(g)
	nb := (g1 - g0 + convMR - 1) / convMR
	for u := u0; u < u1; {
		// the tiles of one slice in [u, u1): one call
		sl, t0 := u/b.tiles, u%b.tiles
		t1 := min(b.tiles, t0+u1-u)
		u += t1 - t0
		oc0, oc1 := g0+sl*nb/b.slices*convMR, min(g1, g0+(sl+1)*nb/b.slices*convMR)
		if oc0 >= oc1 {
			continue
		}
		if !useFast {
			for tile := t0; tile < t1; tile++ {
				c.runRef(band, w, bias, y, b, oc0, oc1, tile)
			}
			continue
		}
		if err := convRunFast(c, band, panel[(oc0-g0)*c.k:], bias, y, b, oc0, oc1, t0, t1); err != nil {
			return err
		}
	}
	return nil
}

// runRef is Run in plain Go for channels [oc0, oc1) of one tile, output by
// output: the oracle of the fast kernel and the path of CGO_ENABLED=0
// builds. Products of two F16 values
// are exact in float32, so acc + w·x rounds once, like the kernel's fma.
func (c *ConvF16) runRef(band []float32, w []byte, bias, y []float32, b ConvBand, oc0, oc1, tile int) {
	wf := make([]float32, c.k)
	p0, p1 := b.Oy0*c.ow+16*tile, min(b.Oy1*c.ow, b.Oy0*c.ow+16*(tile+1))
	for oc := oc0; oc < oc1; oc++ {
		for k := range wf {
			wf[k] = quant.FP16ToFP32(uint16(w[2*(oc*c.k+k)]) | uint16(w[2*(oc*c.k+k)+1])<<8)
		}
		bc := float32(0)
		if bias != nil {
			bc = bias[oc]
		}
		for pix := p0; pix < p1; pix++ {
			oy, ox := pix/c.ow, pix%c.ow
			at := band[(oy-b.Oy0)*c.p.StrideH*c.rowStride+ox:]
			y[oc*c.oh*c.ow+pix] = c.dotRef(wf, at) + bc
		}
	}
}

// dotRef is one output's sum in matmul's F16 lane order; at is the band
// at the output pixel.
func (c *ConvF16) dotRef(wf, at []float32) float32 {
	var acc [16]float32
	n := 0
	for j := 0; j < 16; j++ {
		for k := j; k < c.kmain; k += 16 {
			acc[j] += float32(wf[k] * at[c.off[n]])
			n++
		}
	}
	for j := 0; j < 8; j++ {
		acc[j] += acc[j+8]
	}
	for j := 0; j < 4; j++ {
		acc[j] += acc[j+4]
	}
	s := (acc[0] + acc[2]) + (acc[1] + acc[3])
	for k := c.kmain; k < c.k; k++ {
		s += float32(wf[k] * at[c.off[n]])
		n++
	}
	return s
}
