//go:build !cgo || !amd64

package ops

// Without cgo or off amd64 NumericsGGMLNoFlash runs the plain-Go kernels.

func nfScoresGroup(q []float32, G int, k KV, off int, idx []int32, s []float32, ss int) {
	nfScoresGroupRef(q, G, k, off, idx, s, ss)
}

func nfOutputGroup(w []float32, G, ws int, v KV, off int, idx []int32, acc, out []float32, dv, os int) {
	nfOutputGroupRef(w, G, ws, v, off, idx, acc, out, dv, os)
}

func nfSoftmaxExp(w []float32, mx float32) float64 { return nfSoftmaxExpRef(w, mx) }

func nfNormalize(w []float32, inv float32, f16v bool) { nfNormalizeRef(w, inv, f16v) }

func nfRoundF16(src, dst []float32) { nfRoundF16Ref(src, dst) }
