package ops

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU is this OS thread's user+system CPU time. The benchmarks report
// it per op as "cpu-ns/op" because the shared development machine is often
// oversubscribed, which inflates wall time but not CPU time as much.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs f b.N times on a locked thread and reports CPU time per op.
func loop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
}

func benchBoth(b *testing.B, name string, f func()) {
	for _, fast := range []bool{true, false} {
		if fast && !hasAVX2 {
			continue
		}
		b.Run(fmt.Sprintf("%s/%s", name, map[bool]string{true: "fast", false: "go"}[fast]), func(b *testing.B) {
			prev := useFast
			useFast = fast
			defer func() { useFast = prev }()
			loop(b, f)
		})
	}
}

// Gemma 3 270m: 4 query heads, 1 kv head, head_dim 256; 512 cached keys.
func BenchmarkAttentionGemma270m(b *testing.B) {
	for _, f16 := range []bool{true, false} {
		for _, nQ := range []int{1, 16} {
			c := attnCase{nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: nQ, nKV: 512, causal: true, kf16: f16, vf16: f16}
			p, a := makeAttn(c, 1)
			name := fmt.Sprintf("q%d/f16=%v", nQ, f16)
			benchBoth(b, name, func() {
				if err := Attention(p, a, nQ, 0, nQ*4); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

func BenchmarkRowOps(b *testing.B) {
	r := newRand(1)
	const n = 640 // Gemma 3 270m hidden size
	x := randVec(r, 8*n, 1)
	w := randVec(r, n, 1)
	out := make([]float32, len(x))
	benchBoth(b, "rmsnorm8x640", func() { RMSNorm(x, w, out, n, 1e-6, 0, 8) })
	benchBoth(b, "softmax8x640", func() { Softmax(x, out, n, 0, 8) })
	benchBoth(b, "silu5120", func() { SiLU(x, out, 0, len(x)) })
	benchBoth(b, "softcap5120", func() { Softcap(x, out, 30, 0, len(x)) })
	b.Run("gelu5120/table", func(b *testing.B) {
		loop(b, func() { GELU(x, out, 0, len(x)) })
	})
	b.Run("add5120/go", func(b *testing.B) {
		loop(b, func() { Add(x, x, out, 0, len(x)) })
	})
	pos := []int32{100, 101, 102, 103, 104, 105, 106, 107}
	q := randVec(r, 8*4*256, 1)
	b.Run("rope8tok4x256/go", func(b *testing.B) {
		loop(b, func() { RoPE(q, pos, 4, 256, RoPEParams{NRot: 256, Base: 10000, FreqScale: 1, NeoX: true}, 0, 32) })
	})
}
