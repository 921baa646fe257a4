//go:build unix

package unet

import (
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// TestSD15Speed times one UNet evaluation at SD 1.5's real shapes on random
// F16 weights, 2 threads, at a 32×32 latent (256×256 image) or
// MICA_SD_LATENT. It needs ~2 GiB and tens of seconds: MICA_LONG=1 only.
// sd.cpp takes about 3.5 s per evaluation at 256² on the reference machine
// (7 s per step of two evaluations).
func TestSD15Speed(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" {
		t.Skip("MICA_LONG=1 runs the SD 1.5-size UNet timing")
	}
	side := 32
	if s := os.Getenv("MICA_SD_LATENT"); s == "64" {
		side = 64
	}
	b := cpu.New(2)
	defer b.Close()
	src := param.NewRandom(b, 1, 0.0346)
	src.DType = tensor.F16
	cfg := Config{Family: SD1, InChannels: 4, OutChannels: 4, ModelChannels: 320, ChannelMult: []int{1, 2, 4, 4},
		NumResBlocks: 2, Depth: []int{1, 1, 1, 0}, MiddleDepth: 1, ContextDim: 768}
	t0 := time.Now()
	m, err := Load(src, "model.diffusion_model.", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("random weights: %.1f s, %d MiB", time.Since(t0).Seconds(), b.Memory().Allocated>>20)
	rng := rand.New(rand.NewPCG(1, 2))
	xv := make([]float32, 4*side*side)
	for i := range xv {
		xv[i] = float32(rng.NormFloat64())
	}
	cv := make([]float32, 77*768)
	for i := range cv {
		cv[i] = float32(rng.NormFloat64())
	}
	x, _ := nn.UploadF32(b, xv, 1, 4, side, side)
	ctx, _ := nn.UploadF32(b, cv, 77, 768)
	out, _ := b.Alloc(tensor.F32, 1, 4, side, side)
	base := b.Memory().Allocated
	for i := 0; i < 2; i++ {
		t0 = time.Now()
		c0 := cpuSeconds()
		if err := m.Forward(b, x, 999, ctx, nil, out); err != nil {
			t.Fatal(err)
		}
		t.Logf("UNet evaluation at %d×%d latent: %.2f s wall, %.2f s CPU; activations peak %d MiB", side, side, time.Since(t0).Seconds(), cpuSeconds()-c0, (b.Memory().Peak-base)>>20)
	}
}

// cpuSeconds is the process's user+system CPU time: with other work on the
// machine, wall time overstates what the forward pass needs.
func cpuSeconds() float64 {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		return 0
	}
	return float64(r.Utime.Sec+r.Stime.Sec) + float64(r.Utime.Usec+r.Stime.Usec)/1e6
}
