package matmul

import (
	"os"
	"testing"
	"time"

	"mica/internal/kernels/peak"
	"mica/internal/tensor"
)

// TestBenchReport prints the `mica bench kernels` table: the machine's read
// bandwidth and FMA peak, then each kernel as a fraction of them, all from
// one run (shared machines are noisy: compare within a run). It takes about
// a minute, so it runs only with MICA_BENCH_REPORT=1; MICA_BENCH_TYPES=all
// adds every weight type to the matrix-vector table.
func TestBenchReport(t *testing.T) {
	if os.Getenv("MICA_BENCH_REPORT") == "" {
		t.Skip("set MICA_BENCH_REPORT=1 to print the kernel benchmark table")
	}
	const threads = 2
	dur := 300 * time.Millisecond
	bw, err := peak.ReadBandwidth(1<<30, threads, 4)
	if err != nil {
		t.Fatal(err)
	}
	fl1, _ := peak.FMAPeak(1, time.Second)
	fl, _ := peak.FMAPeak(threads, time.Second)
	t.Logf("ISA %s; read bandwidth %.1f GB/s (%d threads); F32 FMA peak %.1f GFLOP/s (%d threads), %.1f (1 thread)", ISA(), bw, threads, fl, threads, fl1)
	types := []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.Q6_K}
	if os.Getenv("MICA_BENCH_TYPES") == "all" {
		types = allTypes
	}
	for _, wt := range types {
		for _, sh := range [][2]int{{4096, 4096}, {262144, 640}} {
			if sh[1]%wt.BlockSize() != 0 {
				continue
			}
			g, err := BenchMatVec(wt, sh[0], sh[1], threads, dur)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("matvec %-6v %6d×%-4d %6.1f GB/s  %3.0f%% of read bandwidth", wt, sh[0], sh[1], g, 100*g/bw)
		}
	}
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0} {
		for _, sh := range [][3]int{{512, 640, 2048}, {4096, 2880, 320}} {
			g, err := BenchGEMM(wt, sh[0], sh[1], sh[2], threads, dur)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("gemm   %-6v M%d K%d N%d %6.1f GFLOP/s  %3.0f%% of FMA peak", wt, sh[0], sh[1], sh[2], g, 100*g/fl)
		}
	}
}
