//go:build unix

package vae

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

// TestSD15DecodeSpeed times a VAE decode at the real SD shapes on random
// weights, 2 threads, of a 64×64 latent (512×512 image; MICA_SD_LATENT=32
// for 256×256). MICA_LONG=1 only. sd.cpp: 61.4 s at 512² (incl. 0.2 s
// load), 15–23 s at 256², on the reference machine.
func TestSD15DecodeSpeed(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" {
		t.Skip("MICA_LONG=1 runs the SD-size VAE timing")
	}
	side := 64
	if os.Getenv("MICA_SD_LATENT") == "32" {
		side = 32
	}
	b := cpu.New(2)
	defer b.Close()
	src := param.NewRandom(b, 1, 0.0346)
	m, err := LoadConfig(src, "first_stage_model.", Config{Ch: 128, ChMult: []int{1, 2, 4, 4}, NumResBlocks: 2, ZChannels: 4, InChannels: 3}, Options{NoEncoder: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	zv := make([]float32, 4*side*side)
	for i := range zv {
		zv[i] = float32(rng.NormFloat64()) / 0.18215
	}
	z, _ := nn.UploadF32(b, zv, 1, 4, side, side)
	img, _ := b.Alloc(tensor.F32, 1, 3, 8*side, 8*side)
	base := b.Memory().Allocated
	t0, c0 := time.Now(), cpuSeconds()
	if err := m.Decode(b, z, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("VAE decode %d×%d: %.2f s wall, %.2f s CPU; activations peak %d MiB", 8*side, 8*side, time.Since(t0).Seconds(), cpuSeconds()-c0, (b.Memory().Peak-base)>>20)
	if os.Getenv("MICA_SD_TILED") != "" {
		t0, c0 = time.Now(), cpuSeconds()
		if err := m.DecodeTiled(b, z, img, 32, 8); err != nil {
			t.Fatal(err)
		}
		t.Logf("VAE tiled decode (32-latent tiles, overlap 8): %.2f s wall, %.2f s CPU", time.Since(t0).Seconds(), cpuSeconds()-c0)
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
