package cpu

import (
	"unsafe"

	"mica/internal/compute"
	"mica/internal/kernels/ops"
	"mica/internal/tensor"
)

// Scratch bounds of the direct convolution: the F16-rounded input copy
// (one band of output rows at a time) and the widened weights (one group of
// output channels at a time): 8 MiB and 12 MiB, so that the panel of a
// 512-channel 3×3 convolution (SD's VAE) is made once.
const (
	convBandFloats  = 2 << 20
	convPanelFloats = 3 << 20
)

// convDirectMinPixels: below this many output pixels per image the direct
// kernel's one-off widening of the weights to F32 (a pass over all of them)
// costs more than it saves, and im2col + matmul (which widens weights
// in small blocks in cache) is faster: measured on SD's 1280-channel 3×3
// convolutions at 8² (64 pixels) and 4², 2 threads. Both paths give the
// same bits.
const convDirectMinPixels = 128

// conv2d runs a convolution: F16 kernels (every Stable Diffusion conv) by
// the direct kernels of ops.ConvF16, except on tiny images; other kernel
// types, and tiny images, by im2col and the matmul kernels.
func (b *Backend) conv2d(o compute.Conv2DOp) error {
	p := convParams(o)
	if err := p.Validate(); err != nil {
		return err
	}
	if o.W.DType != tensor.F16 || len(o.W.Shape) != 4 || p.OutH()*p.OutW() < convDirectMinPixels {
		return b.conv2dIm2Col(o)
	}
	c, err := ops.NewConvF16(p, convBandFloats, convPanelFloats)
	if err != nil {
		return err
	}
	wb, err := bytesOf(o.W)
	if err != nil {
		return err
	}
	x, y, bias := f32(o.X), f32(o.Y), f32(o.B)
	nb, np := c.BandFloats(), c.PanelFloats()
	sb := b.scratchBuf(4 * (nb + np))
	all := unsafe.Slice((*float32)(unsafe.Pointer(&sb[0])), nb+np)
	band, panel := all[:nb], all[nb:]
	inPer, outPer := p.IC*p.H*p.W, p.OC*p.OutH()*p.OutW()
	var firstErr firstError
	failed := func() bool { return firstErr.get() != nil }
	for g := 0; g < c.Groups() && !failed(); g++ {
		b.pool.Parallel(c.PanelBlocks(g), 1, func(s, e int) { firstErr.set(c.FillPanel(wb, panel, g, s, e)) })
		for img := 0; img < o.X.Shape[0]; img++ {
			xi, yi := x[img*inPer:(img+1)*inPer], y[img*outPer:(img+1)*outPer]
			for i := 0; i < c.Bands() && !failed(); i++ {
				bd := c.Band(i, b.pool.Threads())
				b.pool.Parallel(p.IC, 1, func(s, e int) { firstErr.set(c.FillBand(xi, band, bd, s, e)) })
				// the band's tiles in a few ranges per thread, taken as
				// the threads go (each computes its outputs alone)
				b.pool.ParallelBalanced(bd.Units, 1, 1, func(s, e int) { firstErr.set(c.Run(band, wb, panel, bias, yi, bd, g, s, e)) })
			}
		}
	}
	return firstErr.get()
}

func convParams(o compute.Conv2DOp) ops.Conv2DParams {
	oc, kh, kw := o.Kernel()
	return ops.Conv2DParams{IC: o.X.Shape[1], H: o.X.Shape[2], W: o.X.Shape[3],
		OC: oc, KH: kh, KW: kw,
		StrideH: o.StrideH, StrideW: o.StrideW, PadH: o.PadH, PadW: o.PadW, DilH: o.DilationH, DilW: o.DilationW}
}

// conv2dIm2Col lowers the convolution to im2col + the matmul kernels, a chunk of
// output pixels at a time so the patch buffer stays bounded.
func (b *Backend) conv2dIm2Col(o compute.Conv2DOp) error {
	x, y, bias := f32(o.X), f32(o.Y), f32(o.B)
	p := convParams(o)
	ic, h, w, oc := p.IC, p.H, p.W, p.OC
	if err := p.Validate(); err != nil {
		return err
	}
	wb, err := bytesOf(o.W)
	if err != nil {
		return err
	}
	k := p.ColLen()
	// The weights as a [oc, k] matrix (already one when quantized).
	wmat := o.W
	if len(o.W.Shape) == 4 {
		wmat = compute.NewTensor(b, o.W.DType, &storage{data: wb}, true, oc, k)
	}
	npix := p.OutH() * p.OutW()
	chunk := max(1, min(npix, (8<<20)/(4*k))) // ≤ 8 MiB of patches
	chunk = (chunk + matmulGrain - 1) / matmulGrain * matmulGrain
	cols := make([]float32, chunk*k)
	tmp := make([]float32, chunk*oc)
	inPer, outPer := ic*h*w, oc*npix
	for img := 0; img < o.X.Shape[0]; img++ {
		xi, yi := x[img*inPer:(img+1)*inPer], y[img*outPer:(img+1)*outPer]
		for p0 := 0; p0 < npix; p0 += chunk {
			n := min(chunk, npix-p0)
			b.pool.Parallel(n, rowGrain, func(s, e int) { ops.Im2Col(xi, cols[s*k:e*k], p, p0+s, p0+e) })
			if err := b.matmul(wmat, cols[:n*k], n, tmp[:n*oc], oc); err != nil {
				return err
			}
			// tmp is [pixel][oc]; the output is [oc][pixel].
			b.pool.Parallel(oc, 1, func(s, e int) {
				for c := s; c < e; c++ {
					bc := float32(0)
					if bias != nil {
						bc = bias[c]
					}
					dst := yi[c*npix+p0 : c*npix+p0+n]
					for i := range dst {
						dst[i] = tmp[i*oc+c] + bc
					}
				}
			})
		}
	}
	return nil
}
