package imagegen

import (
	"image"
	"image/color"
	"math"
)

// maskGray converts a mask picture to grey levels (white: repaint). An
// alpha channel counts: transparent pixels are "keep".
func maskGray(src image.Image) *image.Gray {
	if g, ok := src.(*image.Gray); ok && g.Bounds().Min == (image.Point{}) {
		return g
	}
	b := src.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out.SetGray(x, y, color.GrayModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.Gray))
		}
	}
	return out
}

// maskBounds is the bounding box of the mask's repaint area grown by pad
// pixels (clipped to the mask); the whole mask when nothing is masked.
func maskBounds(m *image.Gray, pad int) image.Rectangle {
	b := m.Bounds()
	r := image.Rectangle{}
	first := true
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if m.GrayAt(x, y).Y > 0 {
				p := image.Rect(x, y, x+1, y+1)
				if first {
					r, first = p, false
				} else {
					r = r.Union(p)
				}
			}
		}
	}
	if first {
		return b
	}
	return image.Rect(r.Min.X-pad, r.Min.Y-pad, r.Max.X+pad, r.Max.Y+pad).Intersect(b)
}

// expandToAspect grows r to the aspect ratio W:H (as A1111's
// expand_crop_region does), staying inside bounds where it can.
func expandToAspect(r, bounds image.Rectangle, W, H int) image.Rectangle {
	want := float64(W) / float64(H)
	rw, rh := r.Dx(), r.Dy()
	if float64(rw)/float64(rh) < want {
		nw := int(math.Round(float64(rh) * want))
		d := nw - rw
		r.Min.X -= d / 2
		r.Max.X += d - d/2
	} else {
		nh := int(math.Round(float64(rw) / want))
		d := nh - rh
		r.Min.Y -= d / 2
		r.Max.Y += d - d/2
	}
	// Shift back inside the picture, then clip.
	if r.Min.X < bounds.Min.X {
		r = r.Add(image.Pt(bounds.Min.X-r.Min.X, 0))
	}
	if r.Max.X > bounds.Max.X {
		r = r.Add(image.Pt(bounds.Max.X-r.Max.X, 0))
	}
	if r.Min.Y < bounds.Min.Y {
		r = r.Add(image.Pt(0, bounds.Min.Y-r.Min.Y))
	}
	if r.Max.Y > bounds.Max.Y {
		r = r.Add(image.Pt(0, bounds.Max.Y-r.Max.Y))
	}
	return r.Intersect(bounds)
}

func cropImage(src image.Image, r image.Rectangle) image.Image {
	out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			out.Set(x, y, src.At(r.Min.X+x, r.Min.Y+y))
		}
	}
	return out
}

// blurGray is a separable Gaussian blur with standard deviation radius
// (A1111 blurs the mask with GaussianBlur(mask_blur)).
func blurGray(m *image.Gray, radius int) *image.Gray {
	sigma := float64(radius)
	n := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*n+1)
	sum := 0.0
	for i := range k {
		d := float64(i - n)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	b := m.Bounds()
	W, H := b.Dx(), b.Dy()
	tmp := make([]float64, W*H)
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			s := 0.0
			for i, kv := range k {
				xx := min(max(x+i-n, 0), W-1)
				s += kv * float64(m.Pix[y*m.Stride+xx])
			}
			tmp[y*W+x] = s
		}
	}
	out := image.NewGray(image.Rect(0, 0, W, H))
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			s := 0.0
			for i, kv := range k {
				yy := min(max(y+i-n, 0), H-1)
				s += kv * tmp[yy*W+x]
			}
			out.Pix[y*out.Stride+x] = uint8(min(max(math.Round(s), 0), 255))
		}
	}
	return out
}

// fillMasked replaces the masked area with colours spread from its
// surroundings (A1111's "fill": repeated blurs of the unmasked picture).
func fillMasked(src image.Image, mask *image.Gray) image.Image {
	b := src.Bounds()
	W, H := b.Dx(), b.Dy()
	cur := image.NewRGBA(image.Rect(0, 0, W, H))
	known := make([]bool, W*H)
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			if mask.GrayAt(x, y).Y < 128 {
				cur.Set(x, y, src.At(b.Min.X+x, b.Min.Y+y))
				known[y*W+x] = true
			}
		}
	}
	// Grow the known colours into the hole, one ring per pass.
	for changed := true; changed; {
		changed = false
		next := append([]bool(nil), known...)
		for y := 0; y < H; y++ {
			for x := 0; x < W; x++ {
				if known[y*W+x] {
					continue
				}
				var r, g, bl, n int
				for _, d := range [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
					xx, yy := x+d[0], y+d[1]
					if xx >= 0 && yy >= 0 && xx < W && yy < H && known[yy*W+xx] {
						o := cur.PixOffset(xx, yy)
						r, g, bl, n = r+int(cur.Pix[o]), g+int(cur.Pix[o+1]), bl+int(cur.Pix[o+2]), n+1
					}
				}
				if n > 0 {
					o := cur.PixOffset(x, y)
					cur.Pix[o], cur.Pix[o+1], cur.Pix[o+2], cur.Pix[o+3] = uint8(r/n), uint8(g/n), uint8(bl/n), 255
					next[y*W+x] = true
					changed = true
				}
			}
		}
		known = next
	}
	return cur
}

// overlay pastes the generated picture back over the original through the
// (blurred) mask, so unmasked pixels stay exactly the original's.
func (j *imageJob) overlay(gen *image.RGBA) *image.RGBA {
	r := j.r
	orig := r.Init
	ob := orig.Bounds()
	mask := maskGray(r.Mask)
	if r.MaskBlur > 0 {
		mask = blurGray(mask, r.MaskBlur)
	}
	var out *image.RGBA
	var placed image.Image
	var at image.Rectangle
	if !j.region.Empty() {
		out = image.NewRGBA(image.Rect(0, 0, ob.Dx(), ob.Dy()))
		placed, at = resizeTo(gen, j.region.Dx(), j.region.Dy()), j.region
	} else {
		out = image.NewRGBA(image.Rect(0, 0, r.Width, r.Height))
		orig = resizeTo(orig, r.Width, r.Height)
		ob = orig.Bounds()
		mask = maskGray(resizeTo(mask, r.Width, r.Height))
		placed, at = gen, out.Bounds()
	}
	for y := 0; y < out.Bounds().Dy(); y++ {
		for x := 0; x < out.Bounds().Dx(); x++ {
			or, og, obl, _ := orig.At(ob.Min.X+x, ob.Min.Y+y).RGBA()
			c := [3]float32{float32(or >> 8), float32(og >> 8), float32(obl >> 8)}
			if (image.Point{x, y}).In(at) {
				a := float32(mask.GrayAt(x, y).Y) / 255
				gr, gg, gb, _ := placed.At(x-at.Min.X, y-at.Min.Y).RGBA()
				g := [3]float32{float32(gr >> 8), float32(gg >> 8), float32(gb >> 8)}
				for i := range c {
					c[i] = c[i]*(1-a) + g[i]*a
				}
			}
			o := out.PixOffset(x, y)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2], out.Pix[o+3] = uint8(c[0]+0.5), uint8(c[1]+0.5), uint8(c[2]+0.5), 255
		}
	}
	return out
}
