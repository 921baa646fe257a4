package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/bench"
	"mica/internal/tensor"
)

func newBenchCmd() *cobra.Command {
	var profile string
	var profFile *os.File
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure mica's speed on this machine",
		Long: `Benchmarks that print figures comparable with other engines and with the
machine's own limits. Record figures in docs/BENCHMARKS.md with the command
that produced them.

--cpuprofile FILE writes a Go CPU profile of the whole run, for
"go tool pprof -top FILE" (the C kernels show as cgo calls).`,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if profile == "" {
				return nil
			}
			f, err := os.Create(profile)
			if err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			profFile = f
			// also when the benchmark fails (no post-run hook then)
			cobra.OnFinalize(func() {
				if profFile != nil {
					pprof.StopCPUProfile()
					profFile.Close()
					profFile = nil
				}
			})
			return nil
		},
	}
	cmd.PersistentFlags().StringVar(&profile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.AddCommand(newBenchKernelsCmd(), newBenchLLMCmd(), newBenchSDCmd(), newBenchVisionCmd())
	return cmd
}

func newBenchKernelsCmd() *cobra.Command {
	var asJSON bool
	var threads int
	var minTime time.Duration
	var types []string
	var rounds int
	cmd := &cobra.Command{
		Use:   "kernels",
		Short: "Read bandwidth, FMA peak, matrix-vector and GEMM speed per weight type",
		Long: `Measure the machine's read memory bandwidth (a 1 GiB streaming sum) and F32
FMA peak, then mica's matrix products through the CPU backend:

  matrix-vector  one activation row (LLM decode) on 4096×4096 and 262144×640
                 (Gemma's tied output projection) weights, in GB/s of weights
                 read and as % of the read bandwidth;
  GEMM           512×640×2048 (a 512-token prefill) and 4096×2880×320 (an SD
                 3×3 convolution as a GEMM), in GFLOP/s and % of the FMA peak.

"(local)" is against the limit measured again right after each kernel. On a
shared machine single measurements swing by tens of percent: --rounds N
measures each kernel N times, each with its own local limit, and prints the
medians.

Takes about a minute (per round) and needs about 2 GB of memory.`,
		Example: `  mica bench kernels
  mica bench kernels --threads 1 --types q4_0,q8_0
  mica bench kernels --rounds 5 --types q5_0,iq4_nl
  mica bench kernels --json > kernels.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rounds < 1 {
				return fmt.Errorf("--rounds %d: must be at least 1", rounds)
			}
			o := bench.KernelOptions{Threads: threads, MinTime: minTime, Rounds: rounds}
			for _, name := range types {
				t, err := tensor.ParseDType(name)
				if err != nil {
					return fmt.Errorf("--types: %w", err)
				}
				o.Types = append(o.Types, t)
			}
			status := newStatus(cmd.ErrOrStderr())
			o.Progress = status.Say
			r, err := bench.Kernels(cmd.Context(), o)
			status.Clear()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printKernelReport(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVarP(&threads, "threads", "t", 0, "threads (0: all cores)")
	cmd.Flags().DurationVar(&minTime, "min-time", 300*time.Millisecond, "minimum time per measurement")
	cmd.Flags().StringSliceVar(&types, "types", nil, "only these weight types (e.g. q4_0,q8_0)")
	cmd.Flags().IntVar(&rounds, "rounds", 1, "measure each kernel this many times and print the medians")
	return cmd
}

func printKernelReport(w io.Writer, r *bench.KernelReport) {
	fmt.Fprintf(w, "mica bench kernels: %s, %d threads, %s\n", r.Backend, r.Threads, r.CPU)
	if r.Rounds > 1 {
		fmt.Fprintf(w, "medians of %d rounds per kernel\n", r.Rounds)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "read bandwidth  %6.1f GB/s\nF32 FMA peak    %6.1f GFLOP/s\n\n", r.ReadGBps, r.FMAGFlops)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "matrix-vector\t4096×4096 GB/s\t%\t(local)\t262144×640 GB/s\t%\t(local)\t")
	byType := map[string][]bench.KernelResult{}
	var order []string
	for _, m := range r.MatVec {
		if _, ok := byType[m.Type]; !ok {
			order = append(order, m.Type)
		}
		byType[m.Type] = append(byType[m.Type], m)
	}
	for _, t := range order {
		var cells []string
		for _, m := range byType[t] {
			if m.NA {
				cells = append(cells, "n/a\t\t")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.1f\t%.0f%%\t%.0f%%", m.GBps, m.Pct, m.LocalPct))
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", t, strings.Join(cells, "\t"))
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
	fmt.Fprintln(tw, "GEMM\t512×640×2048 GFLOP/s\t%\t(local)\t4096×2880×320 GFLOP/s\t%\t(local)\t")
	byType, order = map[string][]bench.KernelResult{}, nil
	for _, m := range r.GEMM {
		if _, ok := byType[m.Type]; !ok {
			order = append(order, m.Type)
		}
		byType[m.Type] = append(byType[m.Type], m)
	}
	for _, t := range order {
		var cells []string
		for _, m := range byType[t] {
			if m.NA {
				cells = append(cells, "n/a\t\t")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.1f\t%.0f%%\t%.0f%%", m.Flops, m.Pct, m.LocalPct))
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", t, strings.Join(cells, "\t"))
	}
	tw.Flush()
}
