package cpu

import (
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// TestPoolSplits: ParallelMin gives every range at least minItems items
// (small work runs on the caller alone), ParallelBalanced covers every
// index once in whole grains, and its ranges are the same whichever
// thread is slow (only their assignment to threads changes).
func TestPoolSplits(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	var calls atomic.Int32
	p.ParallelMin(100, 4, 40, func(s, e int) {
		calls.Add(1)
		if e-s < 40 {
			t.Errorf("range [%d,%d) under 40 items", s, e)
		}
	})
	if c := calls.Load(); c != 2 {
		t.Errorf("%d ranges of 100 items with at least 40 each, want 2", c)
	}
	calls.Store(0)
	p.ParallelMin(100, 4, 101, func(s, e int) { calls.Add(1) })
	if c := calls.Load(); c != 1 {
		t.Errorf("%d ranges for work under the minimum, want 1", c)
	}
	ranges := func(slow int) map[[2]int]bool {
		var mu sync.Mutex
		got := map[[2]int]bool{}
		hits := make([]int32, 1003)
		var first atomic.Bool
		p.ParallelBalanced(len(hits), 16, 1, func(s, e int) {
			if slow >= 0 && s == slow && !first.Swap(true) {
				time.Sleep(2 * time.Millisecond)
			}
			if s%16 != 0 {
				t.Errorf("range start %d not a multiple of the grain", s)
			}
			for i := s; i < e; i++ {
				atomic.AddInt32(&hits[i], 1)
			}
			mu.Lock()
			got[[2]int{s, e}] = true
			mu.Unlock()
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("index %d hit %d times", i, h)
			}
		}
		return got
	}
	want := ranges(-1)
	if len(want) != 3*balanceChunks {
		t.Errorf("%d ranges, want %d", len(want), 3*balanceChunks)
	}
	for r := range want {
		if r[0]%3 != 0 {
			continue // a few of them suffice
		}
		if got := ranges(r[0]); !maps.Equal(got, want) {
			t.Errorf("with the range at %d slow the ranges were %v, want %v", r[0], got, want)
		}
	}
}

// TestPoolSleepsAndWakes: sections far apart (the workers have gone to
// sleep in between) and back to back both complete, and Close returns.
func TestPoolSleepsAndWakes(t *testing.T) {
	p := NewPool(2)
	for i := range 20 {
		if i%5 == 0 {
			time.Sleep(3 * spinFor)
		}
		var sum atomic.Int64
		p.Parallel(64, 1, func(s, e int) {
			for j := s; j < e; j++ {
				sum.Add(int64(j))
			}
		})
		if sum.Load() != 64*63/2 {
			t.Fatalf("round %d: sum %d", i, sum.Load())
		}
	}
	p.Close()
	p.Close() // twice is harmless
}

// BenchmarkPoolHandOff is the cost of a section too small to matter: the
// hand-off to the workers and the wait for them (a decode step runs a few
// hundred sections).
func BenchmarkPoolHandOff(b *testing.B) {
	p := NewPool(2)
	defer p.Close()
	var sink [2]int64
	for b.Loop() {
		p.Parallel(2, 1, func(s, e int) { sink[s]++ })
	}
}

// TestPoolCallerPanic: when fn panics on the caller's own range and the
// panic is recovered, the workers still finish that section before the
// next one starts, so the next section runs every index exactly once.
func TestPoolCallerPanic(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	for round := 0; round < 50; round++ {
		func() {
			defer func() { _ = recover() }()
			p.Parallel(2, 1, func(s, e int) {
				if s == 0 {
					panic("caller's range")
				}
				time.Sleep(200 * time.Microsecond) // the worker is still busy when the caller panics
			})
		}()
		var hits [4]atomic.Int32
		p.Parallel(4, 1, func(s, e int) {
			for i := s; i < e; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			if n := hits[i].Load(); n != 1 {
				t.Fatalf("round %d: index %d ran %d times after a recovered panic", round, i, n)
			}
		}
	}
}

// TestPoolAfterClose: a section after Close runs on the caller instead of
// waiting for workers that are gone.
func TestPoolAfterClose(t *testing.T) {
	p := NewPool(2)
	p.Close()
	sum := 0
	p.Parallel(1000, 1, func(s, e int) { sum += e - s })
	if sum != 1000 {
		t.Fatalf("covered %d of 1000 indices", sum)
	}
}
