//go:build !cgo || !amd64

package ops

// Without cgo the plain-Go band kernels run (useFast is false); these are
// never reached, and fall back to the plain-Go code all the same.

func convFillFast(x, band []float32, h, w, plane, hb, sw, wq, iy0, padw, c0, c1 int) {}

func convPanelFast(w []byte, oc, k, kmain int, panel []float32, b0, b1 int) error { return nil }

func convRunFast(c *ConvF16, band, panel, bias, y []float32, b ConvBand, oc0, oc1, u0, u1 int) error {
	return nil
}
