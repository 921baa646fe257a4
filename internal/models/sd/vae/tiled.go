package vae

import (
	"fmt"

	"mica/internal/compute"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/tensor"
)

// DecodeTiled decodes z [1, z, h, w] to out [1, 3, 8h, 8w] in tiles of
// tile×tile latent pixels overlapping by overlap, so the decoder's
// activations stay those of one tile whatever the image size.
//
// Along each axis of n latent pixels there are ⌈(n−overlap)/(tile−overlap)⌉
// tiles, spread evenly from one border to the other (origins
// i·(n−tile)/(count−1)), so neighbours overlap by at least overlap.
// Each tile is decoded on its own and blended linearly ("feathering", as
// A1111's and sd.cpp's tiled VAEs do): a tile's weight rises from
// 0.5/F at an inner edge to 1 at F = 8·overlap image pixels from it (edges
// on the image border get no ramp), the weights of x and y multiply, and
// every image pixel is the weighted mean of the tiles covering it. Because
// GroupNorm statistics are per tile, a tiled image differs slightly from a
// whole decode; it equals it when one tile covers the latent.
func (m *Model) DecodeTiled(b compute.Backend, z, out *compute.Tensor, tile, overlap int) error {
	if tile <= 0 || overlap < 0 || overlap >= tile {
		return fmt.Errorf("vae: tile %d with overlap %d: need 0 <= overlap < tile", tile, overlap)
	}
	if len(z.Shape) != 4 || z.Shape[0] != 1 {
		return fmt.Errorf("vae: latent %v, want [1 c h w]", z)
	}
	zc, h, w := z.Shape[1], z.Shape[2], z.Shape[3]
	if h <= tile && w <= tile {
		return m.Decode(b, z, out)
	}
	up := 1 << (len(m.Config.ChMult) - 1)
	oc := m.Config.InChannels
	if len(out.Shape) != 4 || out.Shape[1] != oc || out.Shape[2] != up*h || out.Shape[3] != up*w {
		return fmt.Errorf("vae: image %v for latent %v", out, z)
	}
	zv, err := nn.ReadF32(b, z)
	if err != nil {
		return err
	}
	H, W := up*h, up*w
	acc := make([]float32, oc*H*W)
	wsum := make([]float32, H*W)
	feather := float32(up * overlap)
	ramp := func(p, start, end, n, size int) float32 {
		// p: pixel within the tile of n pixels starting at latent start.
		wgt := float32(1)
		if feather > 0 && start > 0 {
			wgt = min(wgt, (float32(p)+0.5)/feather)
		}
		if feather > 0 && end < size {
			wgt = min(wgt, (float32(n-p)-0.5)/feather)
		}
		return wgt
	}
	for _, y0 := range tileStarts(h, tile, overlap) {
		th := min(tile, h)
		for _, x0 := range tileStarts(w, tile, overlap) {
			tw := min(tile, w)
			sub := make([]float32, zc*th*tw)
			for c := 0; c < zc; c++ {
				for y := 0; y < th; y++ {
					copy(sub[(c*th+y)*tw:(c*th+y+1)*tw], zv[(c*h+y0+y)*w+x0:])
				}
			}
			zt, err := nn.UploadF32(b, sub, 1, zc, th, tw)
			if err != nil {
				return err
			}
			img, err := b.Alloc(tensor.F32, 1, oc, up*th, up*tw)
			if err == nil {
				err = m.Decode(b, zt, img)
			}
			nn.Free(b, zt)
			var iv []float32
			if err == nil {
				iv, err = nn.ReadF32(b, img)
			}
			nn.Free(b, img)
			if err != nil {
				return err
			}
			ph, pw := up*th, up*tw
			for y := 0; y < ph; y++ {
				wy := ramp(y, y0, y0+th, ph, h)
				for x := 0; x < pw; x++ {
					wgt := wy * ramp(x, x0, x0+tw, pw, w)
					gy, gx := up*y0+y, up*x0+x
					wsum[gy*W+gx] += wgt
					for c := 0; c < oc; c++ {
						acc[(c*H+gy)*W+gx] += wgt * iv[(c*ph+y)*pw+x]
					}
				}
			}
		}
	}
	for c := 0; c < oc; c++ {
		for p := 0; p < H*W; p++ {
			acc[c*H*W+p] /= wsum[p]
		}
	}
	res, err := nn.UploadF32(b, acc, 1, oc, H, W)
	if err != nil {
		return err
	}
	defer nn.Free(b, res)
	return compute.Copy(res, out)
}

// tileStarts lists the tile origins along an axis of n latent pixels:
// the fewest tiles that overlap by at least overlap, spread evenly.
func tileStarts(n, tile, overlap int) []int {
	if n <= tile {
		return []int{0}
	}
	count := (n - overlap + tile - overlap - 1) / (tile - overlap) // ⌈(n−overlap)/(tile−overlap)⌉
	s := make([]int, count)
	for i := range s {
		s[i] = i * (n - tile) / (count - 1)
	}
	return s
}
