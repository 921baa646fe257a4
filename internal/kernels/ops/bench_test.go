//go:build linux

package ops

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// (Linux only: CPU time per thread comes from CLOCK_THREAD_CPUTIME_ID.)

// threadCPU is this OS thread's user+system CPU time. The benchmarks report
// it per op as "cpu-ns/op" because the shared development machine is often
// oversubscribed, which inflates wall time but not CPU time as much.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
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

// The ggml small-batch emulation (plain Go) at the same shapes, one query.
func BenchmarkAttentionGGMLSmallBatch(b *testing.B) {
	c := attnCase{nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: 1, nKV: 512, causal: true, kf16: true, vf16: true}
	p, a := makeAttn(c, 1)
	p.GGMLSmallBatch = true
	b.Run("q1/f16=true", func(b *testing.B) {
		loop(b, func() {
			if err := Attention(p, a, 1, 0, 4); err != nil {
				b.Fatal(err)
			}
		})
	})
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
	benchBoth(b, "gelu5120", func() { GELU(x, out, 0, len(x)) })
	b.Run("add5120/go", func(b *testing.B) {
		loop(b, func() { Add(x, x, out, 0, len(x)) })
	})
	pos := []int32{100, 101, 102, 103, 104, 105, 106, 107}
	q := randVec(r, 8*4*256, 1)
	b.Run("rope8tok4x256/go", func(b *testing.B) {
		loop(b, func() { RoPE(q, pos, 4, 256, RoPEParams{NRot: 256, Base: 10000, FreqScale: 1, NeoX: true}, 0, 32) })
	})
}

// NumericsGGMLNoFlash (the F16-cache prefill path) at Gemma 3 270m shapes:
// 64 queries against 512 cached cells.
func BenchmarkAttentionNoFlash(b *testing.B) {
	c := attnCase{nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: 64, nKV: 512, causal: true, kf16: true, vf16: true}
	p, a := makeAttn(c, 1)
	p.Numerics = NumericsGGMLNoFlash
	benchBoth(b, "q64/f16=true", func() {
		if err := Attention(p, a, c.nQ, 0, c.nQ*4); err != nil {
			b.Fatal(err)
		}
	})
	// one query (decode) against the same 512 cells
	c1 := c
	c1.nQ = 1
	p1, a1 := makeAttn(c1, 1)
	p1.Numerics = NumericsGGMLNoFlash
	benchBoth(b, "q1/f16=true", func() {
		if err := Attention(p1, a1, 1, 0, 4); err != nil {
			b.Fatal(err)
		}
	})
	// a sliding-window layer (Gemma 3's 512) deep in a 1024-cell cache:
	// each query sees its own 512 cells
	cw := c
	cw.nKV, cw.window = 1024, 512
	pw, aw := makeAttn(cw, 1)
	pw.Numerics = NumericsGGMLNoFlash
	benchBoth(b, "q64win512/f16=true", func() {
		if err := Attention(pw, aw, cw.nQ, 0, cw.nQ*4); err != nil {
			b.Fatal(err)
		}
	})
}
