package cpu

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"mica/internal/compute"
	"mica/internal/kernels/ops"
	"mica/internal/kernels/peak"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// convSetup allocates a batch of inputs, F16 weights, a bias (or none) and
// two outputs for p.
func convSetup(t testing.TB, b *Backend, rng *rand.Rand, p ops.Conv2DParams, batch int, withBias bool) (o1, o2 compute.Conv2DOp) {
	t.Helper()
	for _, v := range []*int{&p.StrideH, &p.StrideW, &p.DilH, &p.DilW} {
		if *v == 0 {
			*v = 1
		}
	}
	alloc := func(dt tensor.DType, shape ...int) *compute.Tensor {
		x, err := b.Alloc(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	xt := alloc(tensor.F32, batch, p.IC, p.H, p.W)
	if err := b.Write(xt, f32Bytes(randVals(rng, xt.Elems()))); err != nil {
		t.Fatal(err)
	}
	wt := alloc(tensor.F16, p.OC, p.IC, p.KH, p.KW)
	wb := make([]byte, 2*wt.Elems())
	for i := 0; i < wt.Elems(); i++ {
		h := quant.FP32ToFP16(rng.Float32()*0.2 - 0.1)
		wb[2*i], wb[2*i+1] = byte(h), byte(h>>8)
	}
	if err := b.Write(wt, wb); err != nil {
		t.Fatal(err)
	}
	var bt *compute.Tensor
	if withBias {
		bt = alloc(tensor.F32, p.OC)
		if err := b.Write(bt, f32Bytes(randVals(rng, p.OC))); err != nil {
			t.Fatal(err)
		}
	}
	o := compute.Conv2DOp{X: xt, W: wt, B: bt, StrideH: p.StrideH, StrideW: p.StrideW,
		PadH: p.PadH, PadW: p.PadW, DilationH: p.DilH, DilationW: p.DilW}
	o1, o2 = o, o
	o1.Y = alloc(tensor.F32, batch, p.OC, p.OutH(), p.OutW())
	o2.Y = alloc(tensor.F32, batch, p.OC, p.OutH(), p.OutW())
	return o1, o2
}

// The direct F16 convolution gives exactly the bits of the im2col + F16
// matmul lowering it replaced (same rounding of the inputs, same
// summation order), at any thread count, with and without bias. (Images
// below convDirectMinPixels take the im2col path anyway; the small cases
// here check the dispatch, the larger ones the direct kernels.)
func TestConv2DF16SameAsIm2Col(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cases := []ops.Conv2DParams{
		{IC: 3, H: 9, W: 7, OC: 5, KH: 3, KW: 3, PadH: 1, PadW: 1},
		{IC: 20, H: 10, W: 11, OC: 17, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{IC: 37, H: 5, W: 6, OC: 13, KH: 1, KW: 1},
		{IC: 24, H: 8, W: 16, OC: 8, KH: 1, KW: 1},
		{IC: 3, H: 8, W: 8, OC: 4, KH: 2, KW: 3, StrideW: 2, PadW: 2, DilH: 2},
		{IC: 33, H: 21, W: 37, OC: 7, KH: 3, KW: 3, PadH: 1, PadW: 1},
		{IC: 4, H: 16, W: 16, OC: 3, KH: 3, KW: 3},
		{IC: 19, H: 13, W: 11, OC: 20, KH: 3, KW: 3, PadH: 1, PadW: 1}, // ≥ convDirectMinPixels
		{IC: 300, H: 12, W: 12, OC: 9, KH: 3, KW: 3, PadH: 1, PadW: 1}, // 2700 taps
		{IC: 40, H: 16, W: 24, OC: 14, KH: 1, KW: 1},
		{IC: 5, H: 33, W: 31, OC: 7, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	}
	for _, threads := range []int{1, 2, 3} {
		b := New(threads)
		for ci, p := range cases {
			fast, old := convSetup(t, b, rng, p, 2, ci%2 == 0)
			if err := compute.Conv2D(fast); err != nil {
				t.Fatal(err)
			}
			if err := b.conv2dIm2Col(old); err != nil {
				t.Fatal(err)
			}
			if got, want := readF32(t, b, fast.Y), readF32(t, b, old.Y); !sameBits(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("case %d %+v threads %d: [%d] = %g, im2col path %g", ci, p, threads, i, got[i], want[i])
					}
				}
				t.Fatalf("case %d %+v threads %d: bits differ (signed zeros or NaNs)", ci, p, threads)
			}
		}
		b.Close()
	}
}

// BenchmarkConv2DF16: the 3×3 convolutions of Stable Diffusion 1.5's VAE
// decoder and UNet (and one 1×1), by conv2d ("direct": the direct kernel,
// or im2col below convDirectMinPixels) and by the im2col + matmul lowering
// ("im2col"), on 2 threads. GFLOP/s counts 2·OC·IC·KH·KW·OH·OW per
// convolution; GFLOP/cpu-s the same per CPU second (the shared machine is
// often oversubscribed). "fma-peak" is the machine's 2-thread FMA peak,
// measured alongside (as in `mica bench kernels`).
func BenchmarkConv2DF16(b *testing.B) {
	b.Run("fma-peak", func(b *testing.B) {
		for range b.N {
			gf, err := peak.FMAPeak(2, 300*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(gf, "GFLOP/s")
		}
	})
	for _, s := range []struct {
		name       string
		ic, oc, hw int
	}{
		{"vae512x64", 512, 512, 64}, {"vae512x128", 512, 512, 128}, {"vae256x256", 256, 256, 256},
		{"vae128x512", 128, 128, 512}, {"unet320x64", 320, 320, 64}, {"unet1280x16", 1280, 1280, 16}, {"unet1280x8", 1280, 1280, 8},
		{"vae1x1_512to256x256", 512, 256, -256},
	} {
		p := ops.Conv2DParams{IC: s.ic, H: s.hw, W: s.hw, OC: s.oc, KH: 3, KW: 3, PadH: 1, PadW: 1}
		if s.hw < 0 {
			p = ops.Conv2DParams{IC: s.ic, H: -s.hw, W: -s.hw, OC: s.oc, KH: 1, KW: 1}
		}
		for _, path := range []string{"direct", "im2col"} {
			b.Run(fmt.Sprintf("%s/%s", s.name, path), func(b *testing.B) {
				be := New(2)
				defer be.Close()
				o, _ := convSetup(b, be, rand.New(rand.NewPCG(1, 2)), p, 1, true)
				run := func() error { return be.Run(o) }
				if path == "im2col" {
					run = func() error { return be.conv2dIm2Col(o) }
				}
				b.ResetTimer()
				c0 := processCPU()
				for range b.N {
					if err := run(); err != nil {
						b.Fatal(err)
					}
				}
				cpu := (processCPU() - c0).Seconds()
				flops := 2 * float64(p.OC*p.ColLen()*p.OutH()*p.OutW())
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if cpu > 0 {
					// per CPU-second: the shared machine is often oversubscribed
					b.ReportMetric(flops*float64(b.N)/cpu/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}

// processCPU is the process's user+system CPU time (0 where unavailable).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
