// Package peak measures the machine's limits that kernel speeds are judged
// against: read memory bandwidth (a streaming SIMD sum) and the F32 FMA peak
// (independent FMA chains in registers). `mica bench kernels` prints them.
package peak

import (
	"fmt"
	"sync"
	"time"
)

// ReadBandwidth allocates size bytes (use ≥ 1 GiB so caches do not count),
// touches them, then sums them `passes` times with `threads` goroutines each
// streaming its own contiguous share, alternately as one sequential stream
// and as four side by side (as the matrix-vector kernels read; on some
// machines several streams read faster). It returns the best pass in GB/s
// (10⁹ bytes per second).
func ReadBandwidth(size int, threads, passes int) (float64, error) {
	if size < 1<<20 {
		return 0, fmt.Errorf("peak: read bandwidth buffer of %d bytes is too small (want ≥ 1 MiB, ideally ≥ 1 GiB)", size)
	}
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i >> 12)
	}
	return ReadBandwidthBuf(buf, threads, passes)
}

// ReadBandwidthBuf is ReadBandwidth over a caller's buffer.
func ReadBandwidthBuf(buf []byte, threads, passes int) (float64, error) {
	if threads < 1 || passes < 1 {
		return 0, fmt.Errorf("peak: read bandwidth needs threads ≥ 1 and passes ≥ 1, got %d and %d", threads, passes)
	}
	// shares are multiples of 4 KiB so the SIMD loop has no tail to speak of
	share := len(buf) / threads &^ 4095
	if share == 0 {
		return 0, fmt.Errorf("peak: buffer of %d bytes is too small for %d threads", len(buf), threads)
	}
	best := 0.0
	sink := make([]uint64, threads)
	for pass := 0; pass < passes; pass++ {
		var wg sync.WaitGroup
		start := time.Now()
		for t := 0; t < threads; t++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if pass%2 == 0 {
					sink[t] += sumBytes(buf[t*share : (t+1)*share])
				} else {
					sink[t] += sumBytes4(buf[t*share : (t+1)*share])
				}
			}()
		}
		wg.Wait()
		if gbps := float64(share*threads) / time.Since(start).Seconds() / 1e9; gbps > best {
			best = gbps
		}
	}
	return best, nil
}

// FMAPeak runs independent F32 fused multiply-add chains on `threads`
// goroutines for about dur and returns GFLOP/s (an FMA counts as 2).
func FMAPeak(threads int, dur time.Duration) (float64, error) {
	if threads < 1 {
		return 0, fmt.Errorf("peak: FMA peak needs threads ≥ 1, got %d", threads)
	}
	const chunk = 1 << 20 // iterations per call, a millisecond or so
	flops := make([]float64, threads)
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < dur {
				flops[t] += fmaChains(chunk)
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, f := range flops {
		total += f
	}
	return total / time.Since(start).Seconds() / 1e9, nil
}

// ISA names the instruction set the measurements use.
func ISA() string { return isaName }
