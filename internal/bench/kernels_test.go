package bench

import "testing"

// TestMedian: odd and even counts, unsorted input left as it was.
func TestMedian(t *testing.T) {
	v := []float64{5, 1, 4}
	if got := median(v); got != 4 {
		t.Errorf("median(5, 1, 4) = %v, want 4", got)
	}
	if v[0] != 5 || v[1] != 1 || v[2] != 4 {
		t.Errorf("median changed its input: %v", v)
	}
	if got := median([]float64{3, 1, 4, 2}); got != 2.5 {
		t.Errorf("median(3, 1, 4, 2) = %v, want 2.5", got)
	}
	if got := median(nil); got != 0 {
		t.Errorf("median() = %v, want 0", got)
	}
}

// TestRoundsPct: each round's rate is set against that round's own limit,
// and the reported ratio is the median of those, not the ratio of the
// medians.
func TestRoundsPct(t *testing.T) {
	var m rounds
	m.add(1, 10, 20) // 50%
	m.add(1, 30, 30) // 100%
	m.add(1, 20, 25) // 80%
	if got := median(m.pct); got != 80 {
		t.Errorf("median of the per-round ratios = %v, want 80", got)
	}
	if got := median(m.rate); got != 20 {
		t.Errorf("median rate = %v, want 20", got)
	}
}
