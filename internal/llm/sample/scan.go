package sample

// collectAbove puts in out (reusing its array, at most cap(out) entries)
// the indices i of x with !(x[i] <= thr) — x[i] > thr, or x[i] NaN — in
// increasing order, and returns them with the index where the scan
// stopped: len(x) when it finished, else an index such that every
// qualifying index below it was returned (it may stop before out is full). The hot loops (greedy, top-k, min-p)
// call it with a threshold that only rises, so few indices come back and
// the scan itself is the cost: the AVX2 version (scan_amd64.c) compares 32
// logits per step. cap(out) must be at least 32.
func collectAbove(x []float32, thr float32, out []int32) ([]int32, int) {
	if useFast && len(x) >= 32 {
		return collectAboveFast(x, thr, out)
	}
	return collectAboveGo(x, thr, out)
}

// collectAboveGo is the plain-Go reference of collectAbove.
func collectAboveGo(x []float32, thr float32, out []int32) ([]int32, int) {
	out = out[:0]
	for i, v := range x {
		if !(v <= thr) {
			if len(out) == cap(out) {
				return out, i
			}
			out = append(out, int32(i))
		}
	}
	return out, len(x)
}
