//go:build !cgo || !amd64

package sample

// Without cgo or off amd64 only the plain-Go scan exists.

var useFast = false

func collectAboveFast(x []float32, thr float32, out []int32) ([]int32, int) {
	return collectAboveGo(x, thr, out)
}

func expShiftFast(x []float32, m, scale float32, out []float32) { expShiftGo(x, m, scale, out) }

func sumExpBlocksFast(x []float32, m, scale float32, sums []float64) float64 {
	return sumExpBlocksGo(x, m, scale, sums)
}
