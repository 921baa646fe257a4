//go:build cgo && amd64

package ops

/*
#include <stdint.h>

typedef struct {
	long oc, k, kmain;
	long oh, ow;
	long sh;
	long row_stride;
	long chunk;
	long group;
} mica_conv_cfg;

void mica_conv_fill(const float *x, long h, long w, float *band, long plane, long hb, long sw, long wq,
	long iy0, long padw, long c0, long c1);
int mica_conv_panel(const uint16_t *w, long oc, long k, long kmain, float *a, long b0, long b1);
int mica_conv_f16(const mica_conv_cfg *c, const float *band, const float *a, const float *bias, float *y,
	const int32_t *off, long oy0, long oy1, long oc0, long oc1, long u0, long u1);
*/
import "C"

import (
	"errors"
	"unsafe"
)

func convFillFast(x, band []float32, h, w, plane, hb, sw, wq, iy0, padw, c0, c1 int) {
	if c1 <= c0 {
		return
	}
	C.mica_conv_fill(fptr(x), C.long(h), C.long(w), fptr(band), C.long(plane), C.long(hb), C.long(sw), C.long(wq),
		C.long(iy0), C.long(padw), C.long(c0), C.long(c1))
}

func convPanelFast(w []byte, oc, k, kmain int, panel []float32, b0, b1 int) error {
	if C.mica_conv_panel((*C.uint16_t)(unsafe.Pointer(&w[0])), C.long(oc), C.long(k), C.long(kmain), fptr(panel),
		C.long(b0), C.long(b1)) != 0 {
		return errors.New("conv2d: out of memory widening the weights")
	}
	return nil
}

func convRunFast(c *ConvF16, band, panel, bias, y []float32, b ConvBand, oc0, oc1, u0, u1 int) error {
	cfg := C.mica_conv_cfg{
		oc: C.long(c.p.OC), k: C.long(c.k), kmain: C.long(c.kmain),
		oh: C.long(c.oh), ow: C.long(c.ow),
		sh: C.long(c.p.StrideH), row_stride: C.long(c.rowStride), chunk: C.long(c.chunk), group: C.long(c.tileGroup),
	}
	rc := C.mica_conv_f16(&cfg, fptr(band), fptr(panel), fptr(bias), fptr(y),
		(*C.int32_t)(unsafe.Pointer(&c.off[0])), C.long(b.Oy0), C.long(b.Oy1), C.long(oc0), C.long(oc1),
		C.long(u0), C.long(u1))
	if rc != 0 {
		return errors.New("conv2d: out of memory for the packed activations")
	}
	return nil
}
