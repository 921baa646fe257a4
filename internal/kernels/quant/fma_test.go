package quant_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestNoFusedMultiplyAdd compiles this package for targets where the Go
// compiler fuses x*y+z into one FMA instruction (amd64 with GOAMD64=v3,
// arm64 always) and fails if any FMA appears. ggml's reference quantizers and
// dequantizers round every product to float32 before adding, and a single
// fused operation changes the last bit of a dequantized value or flips a
// rounding decision in a scale search; the zoo comparisons catch that only
// when the data happens to hit such a case, so the code is checked here.
// The fix is an explicit float32(...) conversion around the product.
func TestNoFusedMultiplyAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the package (slow the first time); skipped in -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	fma := regexp.MustCompile(`\s(V?F(N)?M(ADD|SUB)\w*)\s`)
	for _, target := range []struct{ goarch, goamd64 string }{{"amd64", "v3"}, {"arm64", ""}} {
		cmd := exec.Command(gobin, "build", "-gcflags=mica/internal/kernels/quant=-S", "-o", os.DevNull, ".")
		cmd.Env = append(os.Environ(), "GOARCH="+target.goarch, "GOAMD64="+target.goamd64, "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("GOARCH=%s build: %v\n%s", target.goarch, err, out)
		}
		n := 0
		for _, line := range strings.Split(string(out), "\n") {
			if fma.MatchString(line) {
				n++
				if n <= 10 {
					t.Errorf("GOARCH=%s GOAMD64=%s: fused multiply-add: %s", target.goarch, target.goamd64, strings.TrimSpace(line))
				}
			}
		}
		if !strings.Contains(string(out), "TEXT") {
			t.Fatalf("GOARCH=%s: no assembly listing in the compiler output", target.goarch)
		}
	}
}
