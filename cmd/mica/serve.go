package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/server"
)

// serveFlags are `mica serve`'s options; each has a MICA_* variable.
type serveFlags struct {
	addr, models string
	threads, ctx int
	maxQueue     int
	batch        int
	maxBody      int64
	keepAlive    time.Duration
}

// serveEnv names the environment variable of each flag.
var serveEnv = map[string]string{
	"addr": "MICA_ADDR", "models": "MICA_MODELS", "threads": "MICA_THREADS", "ctx": "MICA_CTX",
	"max-queue": "MICA_MAX_QUEUE", "max-body": "MICA_MAX_BODY", "keep-alive": "MICA_KEEP_ALIVE",
	"batch": "MICA_BATCH",
}

// newServeCmd is `mica serve`: the OpenAI- and Ollama-compatible HTTP API.
func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the models of a folder over OpenAI- and Ollama-compatible HTTP APIs",
		Long: `Serve the GGUF models in --models DIR over HTTP. A model's name is its file's
name without .gguf. Models load on first use and unload after --keep-alive of
idleness; one model is loaded at a time and requests run one after another
(--max-queue wait, then 429).

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models
(OpenAI); POST /api/chat, POST /api/generate, GET /api/tags, POST /api/show,
GET /api/ps, GET /api/version (Ollama); GET /health; GET /metrics (Prometheus).

Structured output: OpenAI response_format (json_object, json_schema), a GBNF
"grammar" field, Ollama "format"; tool_choice required or named.

The default address is loopback only. There are no API keys yet: expose the
server beyond this machine only behind a proxy that authenticates.

Every flag can also be set by an environment variable (a flag wins):
MICA_ADDR, MICA_MODELS, MICA_THREADS, MICA_CTX, MICA_MAX_QUEUE, MICA_MAX_BODY,
MICA_KEEP_ALIVE, MICA_BATCH.`,
		Example: `  mica serve --models ~/models
  MICA_MODELS=~/models mica serve --addr 127.0.0.1:8080 --ctx 4096`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := serveFromEnv(cmd, &f); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			s, err := server.New(server.Config{ModelsDir: f.models, Threads: f.threads, Context: f.ctx,
				MaxBodyBytes: f.maxBody, MaxQueue: f.maxQueue, Batch: f.batch, KeepAlive: f.keepAlive, Version: version, Logger: log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", f.addr)
			if err != nil {
				s.Close()
				return fmt.Errorf("listen on %s: %w", f.addr, err)
			}
			log.Info("mica serve listening", "addr", ln.Addr().String(), "models", f.models)
			if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
				log.Warn("listening beyond this machine without API keys: anyone who can reach this address can use the models", "addr", ta.String())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "listening on http://%s\n", ln.Addr())
			return s.Serve(cmd.Context(), ln)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", server.DefaultAddr, "address to listen on (host:port)")
	fl.StringVar(&f.models, "models", "", "folder of GGUF models (required)")
	fl.IntVarP(&f.threads, "threads", "t", 0, "CPU threads (0: all cores)")
	fl.IntVar(&f.ctx, "ctx", 0, "context size per request in tokens (0: the model's, at most 8192)")
	fl.IntVar(&f.maxQueue, "max-queue", server.DefaultMaxQueue, "requests that may wait for the engine before 429")
	fl.IntVar(&f.batch, "batch", server.DefaultBatch, "requests a model runs together by continuous batching (1: one at a time, reusing the previous prompt's prefix)")
	fl.Int64Var(&f.maxBody, "max-body", server.DefaultMaxBody, "largest request body in bytes (then 413)")
	fl.DurationVar(&f.keepAlive, "keep-alive", server.DefaultKeepAlive, "unload a model after this long idle (negative: never)")
	return cmd
}

// serveFromEnv applies MICA_* variables to the flags not given on the
// command line.
func serveFromEnv(cmd *cobra.Command, f *serveFlags) error {
	for name, env := range serveEnv {
		v, ok := os.LookupEnv(env)
		if !ok || cmd.Flags().Changed(name) {
			continue
		}
		if err := cmd.Flags().Set(name, v); err != nil {
			return fmt.Errorf("%s=%q: %w", env, v, err)
		}
	}
	if f.threads < 0 || f.ctx < 0 || f.maxQueue < 1 || f.maxBody < 1 || f.batch < 1 {
		return fmt.Errorf("--threads %d and --ctx %d must not be negative; --max-queue %d, --max-body %d and --batch %d must be positive",
			f.threads, f.ctx, f.maxQueue, f.maxBody, f.batch)
	}
	if f.models == "" {
		return fmt.Errorf("no models folder: pass --models DIR or set MICA_MODELS")
	}
	if _, _, err := net.SplitHostPort(f.addr); err != nil {
		return fmt.Errorf("--addr %q: %w", f.addr, err)
	}
	return nil
}
