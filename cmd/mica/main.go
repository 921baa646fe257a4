// Command mica runs Gemma-family LLMs and Stable-Diffusion-family image
// models on your own machine, with its own inference engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "mica: %v\n", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "mica",
		Short: "Run Gemma LLMs and Stable Diffusion locally, with mica's own engine",
		Long: `mica runs Gemma-family LLMs and Stable-Diffusion-family image models on
your own machine, with its own inference engine (CPU now; GPU backends behind
the same interface later).

Start with:
  mica run MODEL.gguf "Hi"  chat with a Gemma 3 / Gemma 4 GGUF model (interactive without a prompt)
  mica gen -m SD.safetensors "a cat" -o cat.png
                            make a picture with a Stable Diffusion 1.x / SDXL checkpoint
  mica serve --models DIR   serve the models in DIR over OpenAI-, Ollama- and A1111-compatible APIs
  mica demo                 quantize a matrix to every weight type and run the engine on it
  mica bench kernels        measure this machine and mica's kernels on it
  mica dev tensors FILE     list the tensors of a GGUF or safetensors file`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddGroup(&cobra.Group{ID: "main", Title: "Commands:"},
		&cobra.Group{ID: "tools", Title: "Tools for developers and benchmarks:"})
	for _, c := range []*cobra.Command{newRunCmd(), newGenCmd(), newServeCmd(), newDemoCmd()} {
		c.GroupID = "main"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newDevCmd(), newBenchCmd()} {
		c.GroupID = "tools"
		root.AddCommand(c)
	}
	return root
}
