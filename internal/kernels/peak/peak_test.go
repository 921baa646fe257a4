package peak

import (
	"testing"
	"time"
)

// The SIMD sum must equal the plain-Go one (including odd tails).
func TestSumMatchesGo(t *testing.T) {
	b := make([]byte, 1<<16+37)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	for _, n := range []int{0, 1, 127, 128, 513, 4096, 4096 + 520, len(b)} {
		if got, want := sumBytes(b[:n]), sumBytesGo(b[:n]); got != want {
			t.Errorf("sum of %d bytes: %d, plain Go %d", n, got, want)
		}
		if got, want := sumBytes4(b[:n]), sumBytesGo(b[:n]); got != want {
			t.Errorf("four-stream sum of %d bytes: %d, plain Go %d", n, got, want)
		}
	}
}

func TestMeasurementsRun(t *testing.T) {
	bw, err := ReadBandwidth(64<<20, 2, 2)
	if err != nil || !(bw > 0) {
		t.Fatalf("read bandwidth %g, %v", bw, err)
	}
	fl, err := FMAPeak(1, 20*time.Millisecond)
	if err != nil || !(fl > 0) {
		t.Fatalf("FMA peak %g, %v", fl, err)
	}
	if _, err := ReadBandwidth(10, 1, 1); err == nil {
		t.Error("tiny buffer: no error")
	}
	t.Logf("%s: 64 MiB read %.1f GB/s (2 threads), FMA %.1f GFLOP/s (1 thread)", ISA(), bw, fl)
}
