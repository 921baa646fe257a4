package bench

import (
	"math"
	"runtime"
	"testing"
)

// TestMeanStd: the sample standard deviation llama-bench reports (n-1).
func TestMeanStd(t *testing.T) {
	m, s := MeanStd([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	// Σ(x-5)² = 32; 32/7 exactly, so 1e-12 only allows for rounding.
	if m != 5 || math.Abs(s-math.Sqrt(32.0/7)) > 1e-12 {
		t.Fatalf("mean %v, std %v", m, s)
	}
	if m, s := MeanStd([]float64{3}); m != 3 || s != 0 {
		t.Fatalf("one sample: %v ± %v", m, s)
	}
}

func TestProcMemory(t *testing.T) {
	rss, hwm := ProcMemory()
	if runtime.GOOS == "linux" && (rss <= 0 || hwm < rss) {
		t.Fatalf("VmRSS %d, VmHWM %d", rss, hwm)
	}
}
