package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"mica/internal/testenv"
)

// TestBenchVision: `mica bench vision --json` on the tiny Gemma 3 reference
// mmproj runs the synthetic picture and a file, and its JSON has every
// field, with figures consistent with each other.
func TestBenchVision(t *testing.T) {
	mmproj := testenv.Shared(t, "reference", "vision", "mmproj-gemma3-tiny-f32.gguf")
	img := filepath.Join(filepath.Dir(mmproj), "dev-512x384.png")
	for _, extra := range [][]string{nil, {"--image", img}} {
		args := append([]string{"bench", "vision", mmproj, "--threads", "2", "--reps", "2", "--json"}, extra...)
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(out), &fields); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, k := range []string{"mmproj", "projector", "image", "canvas_width", "canvas_height", "patches", "tokens",
			"n_embd", "threads", "backend", "reps", "load_seconds", "preprocess_seconds", "encode_seconds",
			"encode_seconds_stddev", "encode_samples", "gflop", "gflops", "peak_rss_bytes", "rss_bytes"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("JSON lacks %q:\n%s", k, out)
			}
		}
		var r visionBench
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Projector != "gemma3" || r.Threads != 2 || r.Reps != 2 || len(r.EncodeSamples) != 2 {
			t.Errorf("projector %q, %d threads, %d reps, %d samples", r.Projector, r.Threads, r.Reps, len(r.EncodeSamples))
		}
		// The tiny file's canvas is square; 256 tokens is Gemma 3's fixed
		// count only at the real size, so check tokens against the geometry.
		if r.CanvasWidth != r.CanvasHeight || r.Tokens <= 0 || r.Patches < r.Tokens || r.Patches%r.Tokens != 0 {
			t.Errorf("canvas %dx%d, %d patches, %d tokens", r.CanvasWidth, r.CanvasHeight, r.Patches, r.Tokens)
		}
		if !(r.EncodeSeconds > 0) || !(r.GFLOP > 0) || math.Abs(r.GFLOPs-r.GFLOP/r.EncodeSeconds) > 1e-6*r.GFLOPs ||
			r.PeakRSSBytes <= 0 || r.LoadSeconds <= 0 {
			t.Errorf("encode %g s, %g GFLOP, %g GFLOP/s, peak RSS %d, load %g s", r.EncodeSeconds, r.GFLOP, r.GFLOPs, r.PeakRSSBytes, r.LoadSeconds)
		}
	}
	if _, err := runCLI(t, "bench", "vision", mmproj, "--reps", "0"); err == nil {
		t.Error("--reps 0 accepted")
	}
	if _, err := runCLI(t, "bench", "vision", mmproj, "--image", filepath.Join(t.TempDir(), "none.png")); err == nil {
		t.Error("a missing --image accepted")
	}
}
