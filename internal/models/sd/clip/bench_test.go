package clip

import (
	"syscall"
	"testing"
	"time"

	"mica/internal/compute/cpu"
)

// The benchmarks run the reference recipe checkpoints' text encoders (real
// shapes, F16 weights as sd.cpp holds them) on 2 threads, doing what one
// image's conditioning needs: prompt and negative prompt.
//
//	go test -run XXX -bench Encode -benchtime 3x ./internal/models/sd/clip

func benchModels(b *testing.B, model string, prefixes ...string) (*cpu.Backend, []*Model) {
	be := cpu.New(2)
	b.Cleanup(func() { be.Close() })
	src := &recipeSource{b: be, entries: map[string]ckptTensor{}}
	for _, e := range readCheckpointList(b, model) {
		src.entries[e.Name] = e
	}
	var ms []*Model
	for _, p := range prefixes {
		c, err := DetectConfig(src, p)
		if err != nil {
			b.Fatal(err)
		}
		m, err := Load(src, p, c)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(m.Close)
		ms = append(ms, m)
	}
	return be, ms
}

// cpuTime is the process's user+system time: with other work on the
// machine, cpu-s/op (reported next to ns/op) shows the cost an unloaded
// machine's wall time would approach (÷ 2 threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
}

func padded(first []int32, n int, pad int32) []int32 {
	ids := append([]int32(nil), first...)
	for len(ids) < n {
		ids = append(ids, pad)
	}
	return ids
}

// BenchmarkEncodeSD15: ViT-L, all 12 layers and the final norm, twice.
func BenchmarkEncodeSD15(b *testing.B) {
	be, ms := benchModels(b, "sd", "cond_stage_model.transformer.text_model.")
	prompt := padded([]int32{49406, 320, 1125, 539, 320, 2368, 49407}, 77, 49407)
	neg := padded([]int32{49406, 49407}, 77, 49407)
	start := cpuTime()
	for b.Loop() {
		for _, ids := range [][]int32{prompt, neg} {
			h, _, err := ms[0].Encode(be, ids, EncodeOptions{Layers: 12, FinalNorm: true, PooledAt: NoPool})
			if err != nil {
				b.Fatal(err)
			}
			be.Free(h)
		}
	}
	reportCPU(b, start)
}

// BenchmarkEncodeSDXL: ViT-L to its penultimate layer and bigG to its
// penultimate layer with the pooled output (all 32 layers), twice.
func BenchmarkEncodeSDXL(b *testing.B) {
	be, ms := benchModels(b, "sdxl", "conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model.")
	first := []int32{49406, 320, 1125, 539, 320, 2368, 49407}
	type in struct {
		l, g []int32
		eos  int
	}
	ins := []in{
		{padded(first, 77, 49407), padded(first, 77, 0), 6},
		{padded([]int32{49406, 49407}, 77, 49407), padded([]int32{49406, 49407}, 77, 0), 1},
	}
	start := cpuTime()
	for b.Loop() {
		for _, x := range ins {
			h, _, err := ms[0].Encode(be, x.l, EncodeOptions{Layers: 11, PooledAt: NoPool})
			if err != nil {
				b.Fatal(err)
			}
			be.Free(h)
			g, _, err := ms[1].Encode(be, x.g, EncodeOptions{Layers: 31, PooledAt: x.eos})
			if err != nil {
				b.Fatal(err)
			}
			be.Free(g)
		}
	}
	reportCPU(b, start)
}
