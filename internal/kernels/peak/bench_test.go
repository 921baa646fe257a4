package peak

import (
	"testing"
	"time"
)

func BenchmarkReadBandwidth2T(b *testing.B) {
	for range b.N {
		bw, err := ReadBandwidth(1<<30, 2, 3)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(bw, "GB/s")
	}
}

func BenchmarkFMAPeak(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "1T", 2: "2T"}[threads], func(b *testing.B) {
			for range b.N {
				fl, err := FMAPeak(threads, 300*time.Millisecond)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(fl, "GFLOP/s")
			}
		})
	}
}
