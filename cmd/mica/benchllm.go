package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"mica/internal/bench"
)

// newBenchLLMCmd is `mica bench llm`: prefill and decode speed of a model.
func newBenchLLMCmd() *cobra.Command {
	var o bench.LLMOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "llm MODEL [--prompt 512] [--gen 128] [--threads N] [--reps 3] [--json]",
		Short: "Prefill and decode tokens/s of a Gemma GGUF model (like llama-bench)",
		Long: `Measure a Gemma GGUF model the way llama-bench does, so the figures compare
with its pp512 / tg128:

  ppN   prefill: N random tokens into an empty cache in one call (processed in
        steps of 512), tokens per second;
  tgN   decode: N single-token forward passes from an empty cache, tokens per
        second (no sampling).

Each test runs once to warm up, then --reps times: the mean ± the sample
standard deviation are printed. Also: the time to open the file (header,
mapped weights) and to the first token (open + a one-token forward pass, which
touches every weight), and resident memory (VmRSS, and its peak VmHWM).
The KV cache is F16, as llama.cpp's default.`,
		Example: `  mica bench llm gemma3-270m-q8_0.gguf --threads 2
  mica bench llm model.gguf --prompt 512 --gen 128 --reps 5 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			st := newStatus(cmd.ErrOrStderr())
			o.Progress = st.Say
			r, err := bench.LLM(cmd.Context(), o)
			st.Clear()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printLLMReport(cmd.OutOrStdout(), r)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Prompt, "prompt", "p", 512, "prefill tokens (0: skip)")
	f.IntVarP(&o.Gen, "gen", "n", 128, "decode steps (0: skip)")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads (0: all cores)")
	f.IntVarP(&o.Reps, "reps", "r", 3, "repetitions of each test")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the random token ids")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printLLMReport(w io.Writer, r *bench.LLMReport) {
	fmt.Fprintf(w, "mica bench llm: %s\n", r.Model)
	fmt.Fprintf(w, "model    %s (%s), %s, %.3g parameters, %.2f GB\n", r.Name, r.Arch, r.Type, float64(r.Params), float64(r.FileBytes)/1e9)
	fmt.Fprintf(w, "backend  %s, %d threads, %s\n", r.Backend, r.Threads, r.CPU)
	fmt.Fprintf(w, "load     %.3f s to the first token (open %.3f s)\n", r.LoadSeconds, r.OpenSeconds)
	fmt.Fprintf(w, "memory   %.1f MB resident after opening; %.1f MB after the run (peak %.1f MB; mapped weights count once touched)\n\n",
		float64(r.OpenRSSBytes)/1e6, float64(r.RSSBytes)/1e6, float64(r.PeakRSSBytes)/1e6)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "test\ttokens/s\t")
	for _, t := range []*bench.Rate{r.PP, r.TG} {
		if t != nil {
			fmt.Fprintf(tw, "%s\t%.2f ± %.2f\t\n", t.Name, t.Mean, t.Stddev)
		}
	}
	tw.Flush()
}
