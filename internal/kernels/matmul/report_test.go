package matmul

import (
	"os"
	"strings"
	"testing"
	"time"

	"mica/internal/kernels/peak"
	"mica/internal/tensor"
)

// TestBenchReport prints the `mica bench kernels` table: the machine's read
// bandwidth and FMA peak, then each kernel as a fraction of them, all from
// one run (shared machines are noisy: compare within a run). It takes about
// a minute, so it runs only with MICA_BENCH_REPORT=1. MICA_BENCH_TYPES=all
// (or a comma-separated list such as Q8_0,Q4_K) chooses the weight types of
// the matrix-vector table; MICA_BENCH_GEMM=0 skips the GEMM table.
func TestBenchReport(t *testing.T) {
	if os.Getenv("MICA_BENCH_REPORT") == "" {
		t.Skip("set MICA_BENCH_REPORT=1 to print the kernel benchmark table")
	}
	const threads = 2
	dur := 300 * time.Millisecond
	bwBuf := make([]byte, 1<<30)
	for i := 0; i < len(bwBuf); i += 4096 {
		bwBuf[i] = 1
	}
	// bandwidth now: the machine is shared, so each matrix-vector figure is
	// compared with a bandwidth measured just before it
	bwNow := func() float64 {
		bw, err := peak.ReadBandwidthBuf(bwBuf, threads, 3)
		if err != nil {
			t.Fatal(err)
		}
		return bw
	}
	bw := bwNow()
	fl1, _ := peak.FMAPeak(1, time.Second)
	fl, _ := peak.FMAPeak(threads, time.Second)
	t.Logf("ISA %s; read bandwidth %.1f GB/s (%d threads); F32 FMA peak %.1f GFLOP/s (%d threads), %.1f (1 thread)", ISA(), bw, threads, fl, threads, fl1)
	types := []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.Q6_K}
	switch v := os.Getenv("MICA_BENCH_TYPES"); v {
	case "":
	case "all":
		types = allTypes
	default:
		types = nil
		for _, name := range strings.Split(v, ",") {
			wt, err := tensor.ParseDType(name)
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, wt)
		}
	}
	for _, wt := range types {
		for _, sh := range [][2]int{{4096, 4096}, {262144, 640}} {
			if sh[1]%wt.BlockSize() != 0 {
				continue
			}
			b0 := bwNow()
			g, err := BenchMatVec(wt, sh[0], sh[1], threads, dur)
			if err != nil {
				t.Fatal(err)
			}
			b1 := bwNow()
			t.Logf("matvec %-6v %6d×%-4d %6.1f GB/s  %3.0f%% of read bandwidth (%.1f before, %.1f after)", wt, sh[0], sh[1], g, 200*g/(b0+b1), b0, b1)
		}
	}
	if os.Getenv("MICA_BENCH_GEMM") == "0" {
		return
	}
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0} {
		for _, sh := range [][3]int{{512, 640, 2048}, {4096, 2880, 320}} {
			f0, _ := peak.FMAPeak(threads, dur)
			g, err := BenchGEMM(wt, sh[0], sh[1], sh[2], threads, dur)
			if err != nil {
				t.Fatal(err)
			}
			f1, _ := peak.FMAPeak(threads, dur)
			pk := (f0 + f1) / 2
			t.Logf("gemm   %-6v M%d K%d N%d %6.1f GFLOP/s  %3.0f%% of FMA peak (%.1f before, %.1f after)", wt, sh[0], sh[1], sh[2], g, 100*g/pk, f0, f1)
		}
	}
}
