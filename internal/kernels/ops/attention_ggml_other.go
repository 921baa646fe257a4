//go:build !cgo || !amd64

package ops

// Without cgo or off amd64 NumericsGGMLNoFlash runs the plain-Go kernels.

func nfScoresBlk(q []float32, R int, k KV, off int, idx []int32, s []float32, ss int) {
	nfScoresBlkRef(q, R, k, off, idx, s, ss)
}

func nfOutputBlk(w []float32, ws, R int, v KV, off int, idx []int32, acc, out []float32, ooff []int, dv int) {
	nfOutputBlkRef(w, ws, R, v, off, idx, acc, out, ooff, dv)
}

func nfSoftmaxRow(w []float32, lo, hi int, idx []int32, mr []float32, scale, softcap, capScale float32,
	f16v bool) float32 {
	return nfSoftmaxRowRef(w, lo, hi, idx, mr, scale, softcap, capScale, f16v)
}

func nfSoftmaxExp(w []float32, mx float32) float64 { return nfSoftmaxExpRef(w, mx) }

func nfNormalize(w []float32, inv float32, f16v bool) { nfNormalizeRef(w, inv, f16v) }

func nfRoundF16(src, dst []float32) { nfRoundF16Ref(src, dst) }
