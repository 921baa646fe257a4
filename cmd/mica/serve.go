package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/imagegen"
	"mica/internal/jobs"
	"mica/internal/llm/engine"
	"mica/internal/server"
)

// serveFlags are `mica serve`'s options; each has a MICA_* variable.
type serveFlags struct {
	addr, models string
	threads, ctx int
	maxQueue     int
	batch        int
	prefixCache  int
	streamBuffer int
	stallTimeout time.Duration
	maxBody      int64
	keepAlive    time.Duration
	memBudget    string
	data         string
	clipTok      string
	maxSteps     int
	maxPixels    int
	maxImages    int
	apiKeys      []string
	apiKeysFile  string
	rateLimit    int
	jobsPerKey   int
	mmproj       []string
	remoteImages bool
	fetchTimeout time.Duration
	maxImgBytes  int64
	chatImages   int
	noAuth       bool
	config       string
}

// serveEnv names the environment variable of each flag.
var serveEnv = map[string]string{
	"addr": "MICA_ADDR", "models": "MICA_MODELS", "threads": "MICA_THREADS", "ctx": "MICA_CTX",
	"max-queue": "MICA_MAX_QUEUE", "max-body": "MICA_MAX_BODY", "keep-alive": "MICA_KEEP_ALIVE",
	"batch": "MICA_BATCH", "memory-budget": "MICA_MEMORY_BUDGET", "data": "MICA_DATA", "clip-tokenizer": "MICA_CLIP_TOKENIZER",
	"max-steps": "MICA_MAX_STEPS", "max-pixels": "MICA_MAX_PIXELS", "max-images": "MICA_MAX_IMAGES",
	"api-key": "MICA_API_KEYS", "api-keys-file": "MICA_API_KEYS_FILE", "rate-limit": "MICA_RATE_LIMIT",
	"max-jobs-per-key": "MICA_MAX_JOBS_PER_KEY",
	"mmproj":           "MICA_MMPROJ", "remote-images": "MICA_REMOTE_IMAGES", "image-fetch-timeout": "MICA_IMAGE_FETCH_TIMEOUT",
	"max-image-bytes": "MICA_MAX_IMAGE_BYTES", "max-chat-images": "MICA_MAX_CHAT_IMAGES",
	"prefix-cache": "MICA_PREFIX_CACHE", "stream-buffer": "MICA_STREAM_BUFFER", "stall-timeout": "MICA_STALL_TIMEOUT",
}

// newServeCmd is `mica serve`: the OpenAI- and Ollama-compatible HTTP API.
func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the models of a folder over OpenAI-, Ollama- and A1111-compatible HTTP APIs",
		Long: `Serve the models in --models DIR over HTTP: GGUF files (Gemma LLMs; a model's
name is its file's name without .gguf) and Stable Diffusion checkpoints
(.safetensors files and diffusers folders). Models load on first use and
unload after --keep-alive of idleness. Every loaded model, LLMs and image
models alike, shares one --memory-budget (default: the machine's memory less
2 GiB): several stay loaded when they fit; loading one that does not fit
first unloads idle ones, least recently used first; a model in use is never
unloaded (the load waits), and one that can never fit is refused with 503.
A model's need is estimated from its file (weights, KV cache for --ctx and
--batch, buffers). Up to --batch requests run at once (--max-queue wait,
then 429). With --batch > 1 a model keeps up to --prefix-cache finished
requests' KV caches so that a request repeating their prompt's start skips
it; a client that reads its stream slowly falls --stream-buffer events behind
at most, then its request pauses, and after --stall-timeout paused it is
cancelled (the others run on).

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models
(OpenAI); POST /api/chat, POST /api/generate, GET /api/tags, POST /api/show,
GET /api/ps, GET /api/version (Ollama); GET /health; GET /metrics (Prometheus).
Models: GET /mica/v1/models (every model and the memory budget), POST
/mica/v1/models/NAME/load and /unload (?kind=llm|image, ?keep_alive=).

Images: every generation is a job in a persistent queue under --data (jobs
survive a restart; outputs are saved under DATA/outputs/DATE/). A1111 /
SD.Next: POST /sdapi/v1/txt2img and img2img, GET /sdapi/v1/progress, POST
/sdapi/v1/interrupt and skip, GET|POST /sdapi/v1/options, GET
/sdapi/v1/sd-models, samplers, schedulers, upscalers, memory, POST
/sdapi/v1/png-info, unload-checkpoint, reload-checkpoint. OpenAI: POST /v1/images/generations and
/v1/images/edits. Jobs: POST /mica/v1/jobs, GET /mica/v1/jobs[/ID],
POST /mica/v1/jobs/ID/cancel|interrupt|skip|priority, POST
/mica/v1/jobs/reorder, GET /mica/v1/jobs/ID/events and /mica/v1/events
(Server-Sent Events) or /mica/v1/jobs/ID/ws and /mica/v1/ws (WebSocket), GET /mica/v1/history, GET /mica/v1/outputs/DATE/NAME.

Structured output: OpenAI response_format (json_object, json_schema), a GBNF
"grammar" field, Ollama "format"; tool_choice required or named.

The default address is loopback only. With --api-key (or a keys file) every
request but /health needs "Authorization: Bearer KEY" (or Basic auth with the
key as password, or a user:password pair as A1111's --api-auth); listening
beyond loopback without keys is refused unless --no-auth says so.

Configuration comes from flags, then environment variables, then a config
file (--config, default ~/.config/mica/serve.conf when it exists): one
"name = value" per line with the flag names (models = /srv/models), # for
comments. The variables: MICA_ADDR, MICA_MODELS, MICA_THREADS, MICA_CTX,
MICA_MAX_QUEUE, MICA_MAX_BODY, MICA_KEEP_ALIVE, MICA_BATCH, MICA_MEMORY_BUDGET, MICA_DATA,
MICA_CLIP_TOKENIZER, MICA_MAX_STEPS, MICA_MAX_PIXELS, MICA_MAX_IMAGES,
MICA_API_KEYS (comma-separated), MICA_API_KEYS_FILE, MICA_RATE_LIMIT,
MICA_MAX_JOBS_PER_KEY, MICA_MMPROJ, MICA_REMOTE_IMAGES, MICA_IMAGE_FETCH_TIMEOUT,
MICA_MAX_IMAGE_BYTES, MICA_MAX_CHAT_IMAGES, MICA_PREFIX_CACHE, MICA_STREAM_BUFFER,
MICA_STALL_TIMEOUT.

Chat requests may carry images (OpenAI image_url parts with data: URLs,
Ollama "images") for Gemma models with a vision file (mmproj).`,
		Example: `  mica serve --models ~/models
  MICA_MODELS=~/models mica serve --addr 127.0.0.1:8080 --ctx 4096`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := serveFromEnv(cmd, &f); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			keys, err := f.keys()
			if err != nil {
				return err
			}
			if len(keys) == 0 && !f.noAuth && !loopback(f.addr) {
				return fmt.Errorf("--addr %s reaches beyond this machine but no API key is set: give --api-key (or --api-keys-file), or --no-auth to serve openly", f.addr)
			}
			budget, err := server.ParseMemorySize(f.memBudget)
			if err != nil {
				return fmt.Errorf("--memory-budget: %w", err)
			}
			proj, err := server.ParseProjectors(f.mmproj)
			if err != nil {
				return err
			}
			s, err := server.New(server.Config{Vision: server.VisionConfig{Projectors: proj, RemoteImages: f.remoteImages,
				RemoteTimeout: f.fetchTimeout, MaxImageBytes: f.maxImgBytes, MaxImages: f.chatImages},
				APIKeys: keys, RateLimit: f.rateLimit, MaxJobsPerKey: f.jobsPerKey, ModelsDir: f.models, Threads: f.threads, Context: f.ctx,
				MaxBodyBytes: f.maxBody, MaxQueue: f.maxQueue, Batch: f.batch, PrefixCache: f.prefixCacheConfig(),
				StreamBuffer: f.streamBuffer, StallTimeout: f.stallTimeout, KeepAlive: f.keepAlive, MemoryBudget: budget, Version: version, Logger: log,
				DataDir: f.data, CLIPTokenizer: f.clipTok, Offline: os.Getenv("MICA_OFFLINE") != "",
				ImageLimits: imagegen.Limits{MaxSteps: f.maxSteps, MaxPixels: f.maxPixels, MaxBatch: f.maxImages}})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", f.addr)
			if err != nil {
				s.Close()
				return fmt.Errorf("listen on %s: %w", f.addr, err)
			}
			log.Info("mica serve listening", "addr", ln.Addr().String(), "models", f.models, "memory_budget", s.MemoryBudget())
			if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() && len(keys) == 0 {
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
	fl.IntVar(&f.prefixCache, "prefix-cache", engine.DefaultPrefixCache, "finished requests whose KV cache a batching model keeps for prefix reuse (0: none; they share --batch's caches)")
	fl.IntVar(&f.streamBuffer, "stream-buffer", engine.DefaultStreamBuffer, "events a batched request may fall behind a slow client before it pauses")
	fl.DurationVar(&f.stallTimeout, "stall-timeout", engine.DefaultStallTimeout, "how long a batched request may stay paused for a slow client before it is cancelled")
	fl.Int64Var(&f.maxBody, "max-body", server.DefaultMaxBody, "largest request body in bytes (then 413)")
	fl.DurationVar(&f.keepAlive, "keep-alive", server.DefaultKeepAlive, "unload a model after this long idle (negative: only when its memory is needed)")
	fl.StringVar(&f.memBudget, "memory-budget", "auto", "memory all loaded models share: bytes with a unit (16GiB, 12G), a share of RAM (75%), auto (RAM less 2 GiB) or none")
	dataDir, _ := jobs.DefaultDataDir()
	lim := imagegen.DefaultLimits()
	fl.StringVar(&f.data, "data", dataDir, "folder for the image job queue, outputs and history")
	fl.StringVar(&f.clipTok, "clip-tokenizer", "", "CLIP tokenizer for single-file SD checkpoints (bpe_simple_vocab_16e6.txt(.gz) or a folder with vocab.json and merges.txt; default DATA/tokenizers/clip)")
	fl.IntVar(&f.maxSteps, "max-steps", lim.MaxSteps, "most sampling steps an image request may ask for")
	fl.IntVar(&f.maxPixels, "max-pixels", lim.MaxPixels, "largest image (width·height, hires included) a request may ask for")
	fl.IntVar(&f.maxImages, "max-images", lim.MaxBatch, "most images one request may ask for (batch size × count)")
	fl.StringSliceVar(&f.apiKeys, "api-key", nil, "API key clients must send (repeat or comma-separate for several; \"user:password\" for A1111-style Basic auth)")
	fl.StringVar(&f.apiKeysFile, "api-keys-file", "", "file with one API key per line (# comments)")
	fl.IntVar(&f.rateLimit, "rate-limit", 0, "requests a minute each API key may make (0: no limit)")
	fl.StringSliceVar(&f.mmproj, "mmproj", nil, "a Gemma model's vision file, MODEL=FILE (repeatable); default: a sibling mmproj file named like the model")
	fl.BoolVar(&f.remoteImages, "remote-images", false, "let chat requests name images by http(s) URL, fetched by the server (default: data: URLs and base64 only)")
	fl.DurationVar(&f.fetchTimeout, "image-fetch-timeout", server.DefaultRemoteTimeout, "time limit of one remote image fetch")
	fl.Int64Var(&f.maxImgBytes, "max-image-bytes", server.DefaultMaxImageBytes, "largest remote image in bytes")
	fl.IntVar(&f.chatImages, "max-chat-images", engine.DefaultMaxImages, "most images one chat request may carry")
	fl.IntVar(&f.jobsPerKey, "max-jobs-per-key", 0, "image jobs one API key may have queued or running at once (0: no limit)")
	fl.BoolVar(&f.noAuth, "no-auth", false, "allow serving beyond loopback without API keys")
	fl.StringVar(&f.config, "config", "", "config file of \"flag = value\" lines (default ~/.config/mica/serve.conf if it exists)")
	return cmd
}

// serveFromEnv applies MICA_* variables, then the config file, to the
// flags not given on the command line.
func serveFromEnv(cmd *cobra.Command, f *serveFlags) error {
	fromEnv := map[string]bool{}
	for name, env := range serveEnv {
		if _, ok := os.LookupEnv(env); ok && !cmd.Flags().Changed(name) {
			fromEnv[name] = true
		}
	}
	if err := applyConfigFile(cmd, f.config, fromEnv); err != nil {
		return err
	}
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
	if f.prefixCache < 0 || f.streamBuffer < 1 || f.stallTimeout <= 0 {
		return fmt.Errorf("--prefix-cache %d must not be negative; --stream-buffer %d and --stall-timeout %s must be positive", f.prefixCache, f.streamBuffer, f.stallTimeout)
	}
	if f.maxSteps < 1 || f.maxPixels < 64*64 || f.maxImages < 1 {
		return fmt.Errorf("--max-steps %d, --max-pixels %d and --max-images %d must be positive (pixels at least 4096)", f.maxSteps, f.maxPixels, f.maxImages)
	}
	if f.models == "" {
		return fmt.Errorf("no models folder: pass --models DIR or set MICA_MODELS")
	}
	if _, _, err := net.SplitHostPort(f.addr); err != nil {
		return fmt.Errorf("--addr %q: %w", f.addr, err)
	}
	return nil
}

// applyConfigFile reads "name = value" lines (flag names) and sets the flags
// that neither the command line nor the environment set.
func applyConfigFile(cmd *cobra.Command, path string, fromEnv map[string]bool) error {
	explicit := path != ""
	if !explicit {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil
		}
		path = filepath.Join(dir, "mica", "serve.conf")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config file: %w", err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		name, val = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(val), `"`)
		if !ok || name == "" {
			return fmt.Errorf("%s:%d: want \"name = value\", got %q", path, i+1, line)
		}
		fl := cmd.Flags().Lookup(name)
		if fl == nil || name == "config" {
			return fmt.Errorf("%s:%d: unknown setting %q (use the flag names of mica serve --help)", path, i+1, name)
		}
		if cmd.Flags().Changed(name) || fromEnv[name] {
			continue
		}
		if err := cmd.Flags().Set(name, val); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, i+1, name, err)
		}
	}
	return nil
}

// prefixCacheConfig is --prefix-cache as server.Config takes it: there 0
// means the engine's default and a negative number none.
func (f *serveFlags) prefixCacheConfig() int {
	if f.prefixCache == 0 {
		return -1
	}
	return f.prefixCache
}

// keys gathers the API keys from the flag (and MICA_API_KEYS) and the file.
func (f *serveFlags) keys() ([]string, error) {
	var keys []string
	for _, k := range f.apiKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	if f.apiKeysFile != "" {
		b, err := os.ReadFile(f.apiKeysFile)
		if err != nil {
			return nil, fmt.Errorf("API keys file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
	}
	return keys, nil
}

// loopback reports whether addr only listens on this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
