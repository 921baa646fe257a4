//go:build cgo && amd64

package sample

/*
#cgo CFLAGS: -O2
#include <stdint.h>
long mica_sample_collect_above(const float *x, long n, float thr, int32_t *out, long cap, long *next);
void mica_sample_exp_shift(const float *x, long n, float m, float scale, float *out);
double mica_sample_sum_exp_blocks(const float *x, long n, float m, float scale, long block, double *sums, long nblocks);
*/
import "C"

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useFast selects the AVX2 scan; tests switch it off to reach the reference.
var useFast = cpu.X86.HasAVX2

func collectAboveFast(x []float32, thr float32, out []int32) ([]int32, int) {
	out = out[:cap(out)]
	var next C.long
	n := C.mica_sample_collect_above((*C.float)(unsafe.Pointer(&x[0])), C.long(len(x)), C.float(thr),
		(*C.int32_t)(unsafe.Pointer(&out[0])), C.long(len(out)), &next)
	return out[:n], int(next)
}

func expShiftFast(x []float32, m, scale float32, out []float32) {
	_ = out[len(x)-1]
	C.mica_sample_exp_shift((*C.float)(unsafe.Pointer(&x[0])), C.long(len(x)), C.float(m), C.float(scale),
		(*C.float)(unsafe.Pointer(&out[0])))
}

func sumExpBlocksFast(x []float32, m, scale float32, sums []float64) float64 {
	if len(sums) != (len(x)+pickBlock-1)/pickBlock {
		panic("sample: sumExpBlocks: wrong number of block sums")
	}
	return float64(C.mica_sample_sum_exp_blocks((*C.float)(unsafe.Pointer(&x[0])), C.long(len(x)), C.float(m), C.float(scale),
		C.long(pickBlock), (*C.double)(unsafe.Pointer(&sums[0])), C.long(len(sums))))
}
