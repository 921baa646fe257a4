package imagegen

import (
	"fmt"
	"image"
	"image/color"
)

// Outpaint extends the init picture by these many pixels on each side and
// paints the new border (A1111's "poor man's outpainting": the picture is
// padded, the border is masked, then inpainted).
type Outpaint struct {
	Left, Right, Top, Bottom int
}

// applyOutpaint turns an outpainting request into an inpainting one: the
// padded picture (the border repeats the edge pixels) and a mask of the
// border, overlapping the picture by the mask blur so the seam is
// repainted too.
func (r *Request) applyOutpaint() error {
	o := r.Outpaint
	if o == nil {
		return nil
	}
	if r.Init == nil {
		return fmt.Errorf("outpainting needs an init picture")
	}
	if r.Mask != nil {
		return fmt.Errorf("outpainting makes its own mask: give no mask")
	}
	if o.Left < 0 || o.Right < 0 || o.Top < 0 || o.Bottom < 0 || o.Left+o.Right+o.Top+o.Bottom == 0 {
		return fmt.Errorf("outpaint %+v: give non-negative borders, at least one positive", *o)
	}
	b := r.Init.Bounds()
	W, H := b.Dx()+o.Left+o.Right, b.Dy()+o.Top+o.Bottom
	if W > 16384 || H > 16384 {
		return fmt.Errorf("outpainting to %dx%d: too large", W, H)
	}
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	mask := image.NewGray(image.Rect(0, 0, W, H))
	overlap := r.MaskBlur
	for y := 0; y < H; y++ {
		sy := min(max(y-o.Top, 0), b.Dy()-1)
		for x := 0; x < W; x++ {
			sx := min(max(x-o.Left, 0), b.Dx()-1)
			img.Set(x, y, r.Init.At(b.Min.X+sx, b.Min.Y+sy))
			inside := x >= o.Left+ifPos(o.Left, overlap) && x < W-o.Right-ifPos(o.Right, overlap) &&
				y >= o.Top+ifPos(o.Top, overlap) && y < H-o.Bottom-ifPos(o.Bottom, overlap)
			if !inside {
				mask.SetGray(x, y, color.Gray{Y: 255})
			}
		}
	}
	r.Init, r.Mask, r.Outpaint = img, mask, nil
	if r.InpaintFill == "" {
		r.InpaintFill = "fill"
	}
	if r.Strength == 0 {
		r.Strength = 0.8
	}
	return nil
}

// ifPos is v where the border is padded, else 0 (no seam on that side).
func ifPos(border, v int) int {
	if border > 0 {
		return v
	}
	return 0
}
