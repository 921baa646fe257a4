package cpu

import (
	"sync/atomic"
	"testing"
)

func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := NewPool(threads)
		for _, n := range []int{0, 1, 2, 7, 64, 1000, 1001} {
			for _, grain := range []int{1, 4, 16} {
				hits := make([]int32, n)
				var calls atomic.Int32
				p.Parallel(n, grain, func(s, e int) {
					calls.Add(1)
					if s != 0 && s%grain != 0 {
						t.Errorf("range start %d not a multiple of grain %d", s, grain)
					}
					for i := s; i < e; i++ {
						atomic.AddInt32(&hits[i], 1)
					}
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads=%d n=%d grain=%d: index %d hit %d times", threads, n, grain, i, h)
					}
				}
				if int(calls.Load()) > threads {
					t.Fatalf("%d calls for %d threads", calls.Load(), threads)
				}
			}
		}
		p.Close()
	}
}
