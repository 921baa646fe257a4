package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/bench"
	"mica/internal/imagegen"
)

// sdBench is what `mica bench sd` measures.
type sdBench struct {
	Model          string  `json:"model"`
	Kind           string  `json:"kind"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	Steps          int     `json:"steps"`
	CFG            float32 `json:"cfg"`
	Threads        int     `json:"threads"`
	Backend        string  `json:"backend"`
	LoadSeconds    float64 `json:"load_seconds"`
	TextSeconds    float64 `json:"text_encoder_seconds"`
	StepSeconds    float64 `json:"seconds_per_step"` // both CFG passes
	DecodeSeconds  float64 `json:"vae_decode_seconds"`
	TotalSeconds   float64 `json:"total_seconds"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	OpenRSSBytes   int64   `json:"open_rss_bytes"`
	FinalRSSBytes  int64   `json:"rss_bytes"`
	BackendPeakMiB float64 `json:"backend_peak_mib"`
}

func newBenchSDCmd() *cobra.Command {
	var g genFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sd MODEL [--width 512 --height 512 --steps 2] [--json]",
		Short: "Seconds per sampling step, text encoder and VAE decode time, peak memory",
		Long: `Generate one picture ("a photo of a cat", Euler, CFG 7, seed 42) and report
the text encoder's time, seconds per sampling step (both CFG passes), the VAE
decode time and the process's peak resident memory: the figures
stable-diffusion.cpp's sd-cli prints, for comparing on the same machine.`,
		Example: `  mica bench sd sd15-f16.safetensors --width 512 --height 512 --steps 2
  mica bench sd model.safetensors --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g.model = args[0]
			t0 := time.Now()
			m, b, err := g.load(cmd)
			if err != nil {
				return err
			}
			defer b.Close()
			defer m.Close()
			load := time.Since(t0)
			_, openRSS := bench.ProcMemory()
			r := g.req
			r.Prompt = "a photo of a cat"
			if r.Seed < 0 {
				r.Seed = 42
			}
			t1 := time.Now()
			res, err := m.Generate(cmd.Context(), r, imagegen.DefaultLimits(), nil)
			if err != nil {
				return err
			}
			total := time.Since(t1)
			rss, peak := bench.ProcMemory()
			steps := max(res.Timings.Steps, 1)
			out := sdBench{Model: g.model, Kind: m.Kind.String(), Width: res.Images[0].RGBA.Bounds().Dx(), Height: res.Images[0].RGBA.Bounds().Dy(),
				Steps: res.Timings.Steps, CFG: r.CFG, Threads: b.Threads(), Backend: b.Name(), LoadSeconds: load.Seconds(),
				TextSeconds: res.Timings.Text.Seconds(), StepSeconds: res.Timings.Sampling.Seconds() / float64(steps),
				DecodeSeconds: res.Timings.Decode.Seconds(), TotalSeconds: total.Seconds(), PeakRSSBytes: peak,
				OpenRSSBytes: openRSS, FinalRSSBytes: rss, BackendPeakMiB: float64(b.Memory().Peak) / (1 << 20)}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "model        %s (%s), %dx%d, %d steps, CFG %g, %d threads, %s\n", out.Model, out.Kind, out.Width, out.Height, out.Steps, out.CFG, out.Threads, out.Backend)
			fmt.Fprintf(w, "load         %.2f s (weights mapped; resident %.0f MiB after)\n", out.LoadSeconds, float64(openRSS)/(1<<20))
			fmt.Fprintf(w, "text encoder %.2f s (prompt and negative)\n", out.TextSeconds)
			fmt.Fprintf(w, "per step     %.2f s (both CFG passes)\n", out.StepSeconds)
			fmt.Fprintf(w, "VAE decode   %.2f s\n", out.DecodeSeconds)
			fmt.Fprintf(w, "total        %.2f s; peak RSS %.2f GiB\n", out.TotalSeconds, float64(peak)/(1<<30))
			return nil
		},
	}
	g.addModelFlags(cmd)
	g.addGenFlags(cmd)
	f := cmd.Flags()
	f.Lookup("steps").DefValue = "2"
	f.Set("steps", "2")
	f.Set("sampler", "euler")
	f.Set("width", "512")
	f.Set("height", "512")
	f.Lookup("width").DefValue = "512"
	f.Lookup("height").DefValue = "512"
	f.Lookup("sampler").DefValue = "euler"
	f.Lookup("seed").DefValue = "42"
	f.Set("seed", "42")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
