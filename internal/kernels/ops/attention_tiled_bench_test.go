//go:build linux

package ops

import (
	"fmt"
	"runtime"
	"testing"
)

// Stable Diffusion's attention shapes, one head, on one thread: the UNet's
// self-attention at 512² (4096 tokens, head dim 40; 1024 tokens, 80; 256
// tokens, 160), its cross-attention against 77 text tokens, and the VAE's
// mid-block (4096 tokens, one head of 512). Only the first 384 queries run
// (four tiles; every query row costs the same), and GFLOP/s counts
// 4·queries·keys·d per head, over this thread's CPU time (the shared
// machine's wall time is noisy). "rows" is the row kernel
// (Attention), "tiled" AttentionTiled.
func BenchmarkAttentionSD(b *testing.B) {
	for _, s := range []struct {
		name      string
		nQ, nKV   int
		d         int
		f16       bool
		rowKernel bool
	}{
		{"self4096d40", 4096, 4096, 40, false, true},
		{"self4096d40f16", 4096, 4096, 40, true, false},
		{"cross4096x77d40", 4096, 77, 40, false, true},
		{"self1024d80", 1024, 1024, 80, false, true},
		{"cross1024x77d80", 1024, 77, 80, false, false},
		{"self256d160", 256, 256, 160, false, true},
		{"cross256x77d160", 256, 77, 160, false, false},
		{"vae4096d512", 4096, 4096, 512, false, true},
	} {
		c := attnCase{nHead: 1, nKVHead: 1, d: s.d, dv: s.d, nQ: s.nQ, nKV: s.nKV, kf16: s.f16, vf16: s.f16}
		p, a := makeAttn(c, 1)
		// KPos as the compute backend passes it (all keys valid)
		a.QPos, a.KPos = make([]int32, s.nQ), make([]int32, s.nKV)
		rows := min(s.nQ, 4*attnTileRows)
		flops := 4 * float64(rows) * float64(s.nKV) * float64(s.d)
		run := func(name string, f func()) {
			b.Run(fmt.Sprintf("%s/%s", s.name, name), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				c0 := threadCPU()
				for b.Loop() {
					f()
				}
				ns := float64(threadCPU()-c0) / float64(b.N)
				b.ReportMetric(ns, "cpu-ns/op")
				b.ReportMetric(flops/ns, "GFLOP/s")
			})
		}
		if s.rowKernel && hasAVX2 {
			run("rows", func() {
				if err := Attention(p, a, s.nQ, 0, rows); err != nil {
					b.Fatal(err)
				}
			})
		}
		run("tiled", func() {
			if err := AttentionTiled(p, a, s.nQ, 0, (rows+attnTileRows-1)/attnTileRows); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// The whole 512² UNet self-attention call (4096 tokens, 8 heads of 40:
// 21.5 GFLOP) on two goroutines splitting the tiles as the CPU backend's
// pool does; wall-clock GFLOP/s.
func BenchmarkAttentionSDCall2T(b *testing.B) {
	c := attnCase{nHead: 8, nKVHead: 8, d: 40, dv: 40, nQ: 4096, nKV: 4096}
	p, a := makeAttn(c, 1)
	a.QPos, a.KPos = make([]int32, c.nQ), make([]int32, c.nKV)
	n, _ := AttentionTiles(p, c.nQ)
	for b.Loop() {
		done := make(chan error)
		for _, r := range [][2]int{{0, n / 2}, {n / 2, n}} {
			go func() { done <- AttentionTiled(p, a, c.nQ, r[0], r[1]) }()
		}
		for range 2 {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(4*float64(c.nQ)*float64(c.nKV)*float64(c.d)*float64(c.nHead)/(b.Elapsed().Seconds()/float64(b.N))/1e9, "GFLOP/s")
}

// Gemma 3 270m prefill (flash arithmetic): 4 query heads on 1 kv head of
// 256, causal, the last nQ of 512 cached positions; row kernel vs tiled.
func BenchmarkAttentionPrefill(b *testing.B) {
	for _, nQ := range []int{8, 64, 512} {
		for _, f16 := range []bool{false, true} {
			c := attnCase{nHead: 4, nKVHead: 1, d: 256, dv: 256, nQ: nQ, nKV: 512, causal: true, kf16: f16, vf16: f16}
			p, a := makeAttn(c, 1)
			n, _ := AttentionTiles(p, nQ)
			name := fmt.Sprintf("q%d/f16=%v", nQ, f16)
			b.Run(name+"/rows", func(b *testing.B) {
				loop(b, func() {
					if err := Attention(p, a, nQ, 0, nQ*4); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run(name+"/tiled", func(b *testing.B) {
				loop(b, func() {
					if err := AttentionTiled(p, a, nQ, 0, n); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}
