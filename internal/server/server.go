// Package server is mica's HTTP edge: the mux for the OpenAI- and
// Ollama-compatible APIs, request limits, streaming (SSE and NDJSON), the
// mapping of errors to statuses, and which models are loaded: LLMs and
// image models share one memory budget (runner.go, memory.go; managed
// through /mica/v1/models, models_admin.go). The dialects' request and
// response shapes live in the codecs server/openai and server/ollama; the
// canonical request and the error catalogue in server/canon.
//
// Requests to the engine pass one queue: Config.Batch run at once (with
// Batch > 1 the engine's continuous batcher feeds them through the model
// together), a bounded number wait, then 429.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"mica/internal/imagegen"
	"mica/internal/server/canon"
	"mica/internal/server/ollama"
	"mica/internal/server/openai"
	"mica/internal/server/web"
)

// DefaultAddr is where mica serve listens unless told otherwise.
const DefaultAddr = "127.0.0.1:11435"

// Config configures a Server. Zero fields take the defaults below.
type Config struct {
	// ModelsDir holds the GGUF files; a model's name is a file's stem.
	ModelsDir string
	// Threads for the CPU backend (0: all cores); Context caps the
	// positions of one request (0: the model's, capped at 8192).
	Threads int
	Context int
	// MaxBodyBytes limits request bodies (default 8 MiB, then 413).
	MaxBodyBytes int64
	// MaxQueue is how many requests may wait for the engine (default 64,
	// then 429).
	MaxQueue int
	// Batch is how many requests a model runs together by continuous
	// batching (engine.Options.Batch); 0 or 1: one at a time, on one
	// cached sequence that reuses the previous prompt's prefix.
	Batch int
	// PrefixCache is how many finished sequences a batching model keeps for
	// prefix reuse (0: engine.DefaultPrefixCache; negative: none).
	// StreamBuffer is how many events a batched request may fall behind its
	// client before it pauses, and StallTimeout how long it may stay paused
	// before it is cancelled (0: the engine's defaults; see engine.Options).
	PrefixCache  int
	StreamBuffer int
	StallTimeout time.Duration
	// KeepAlive is how long a model stays loaded after its last request
	// (default 5m; negative: until its memory is needed).
	KeepAlive time.Duration
	// MemoryBudget is the memory every loaded model together (LLMs and
	// image models) may use, in bytes: 0 is DefaultMemoryBudget (the
	// machine's memory less 2 GiB), NoBudget no limit. Loading a model
	// that does not fit unloads idle ones, least recently used first.
	MemoryBudget int64
	// Version is reported by /api/version.
	Version string
	Logger  *slog.Logger
	// Loader loads models (default EngineLoader).
	Loader Loader

	// DataDir holds the image job queue, outputs and history; empty turns
	// the image API off.
	DataDir string
	// ImageLimits bound image requests (default imagegen.DefaultLimits).
	ImageLimits imagegen.Limits
	// ImageBodyBytes limits image request bodies, which carry pictures
	// (default 64 MiB).
	ImageBodyBytes int64
	// ImageTimeout limits one image job (0: 1 hour).
	ImageTimeout time.Duration
	// CLIPTokenizer is the CLIP tokenizer for single-file checkpoints (a
	// bpe_simple_vocab_16e6.txt(.gz) file or a folder with vocab.json and
	// merges.txt); empty: DataDir/tokenizers/clip.
	CLIPTokenizer string

	// APIKeys, when not empty, are required on every request but /health
	// and the UI's static files: "Authorization: Bearer KEY", Basic auth
	// with any user and KEY as password, or a "user:password" entry for
	// A1111-style Basic auth.
	APIKeys []string
	// RateLimit is how many requests a minute each key may make (0: no
	// limit); over it, 429 with Retry-After.
	RateLimit int
	// MaxJobsPerKey limits the image jobs one API key may have queued or
	// running at once (0: no limit); over it, 429.
	MaxJobsPerKey int
	// Offline forbids fetching anything (the CLIP tokenizer of single-file
	// checkpoints) from the network.
	Offline bool

	// Vision configures images in chat requests (vision.go).
	Vision VisionConfig
}

// Defaults.
const (
	DefaultMaxBody   = 8 << 20
	DefaultMaxQueue  = 64
	DefaultKeepAlive = 5 * time.Minute
	// DefaultBatch is `mica serve`'s batch size (Config.Batch's zero value
	// means 1).
	DefaultBatch = 8
)

// Server serves the APIs.
type Server struct {
	cfg        Config
	log        *slog.Logger
	projectors projectorCache // vision.FindProjector's answers (vision.go)
	cat        *catalog
	q          *queue
	res        *residency
	mux        *http.ServeMux
	met        *metrics // GET /metrics (metrics.go)
	img        *images  // the image API (images.go); nil without a data folder
	auth       *auth    // API keys and rate limits (auth.go); nil: open
}

// New checks the configuration and builds a server; no model is loaded yet.
func New(cfg Config) (*Server, error) {
	if cfg.ModelsDir == "" {
		return nil, errors.New("server: no models folder: pass --models DIR or set MICA_MODELS")
	}
	st, err := os.Stat(cfg.ModelsDir)
	if err != nil {
		return nil, fmt.Errorf("server: models folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("server: models folder %s is not a folder", cfg.ModelsDir)
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = DefaultMemoryBudget()
	}
	if cfg.Threads < 0 || cfg.Context < 0 || cfg.MaxBodyBytes < 0 || cfg.MaxQueue < 0 || cfg.Batch < 0 {
		return nil, fmt.Errorf("server: threads %d, context %d, body limit %d, queue %d and batch %d must not be negative",
			cfg.Threads, cfg.Context, cfg.MaxBodyBytes, cfg.MaxQueue, cfg.Batch)
	}
	if cfg.StreamBuffer < 0 || cfg.StallTimeout < 0 {
		return nil, fmt.Errorf("server: stream buffer %d and stall timeout %s must not be negative", cfg.StreamBuffer, cfg.StallTimeout)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBody
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Loader == nil {
		cfg.Loader = EngineLoader
	}
	if cfg.ImageBodyBytes == 0 {
		cfg.ImageBodyBytes = 64 << 20
	}
	if cfg.ImageTimeout == 0 {
		cfg.ImageTimeout = time.Hour
	}
	s := &Server{cfg: cfg, log: cfg.Logger, cat: &catalog{dir: cfg.ModelsDir, cache: map[string]ModelInfo{}},
		q: newQueue(cfg.MaxQueue, cfg.Batch), mux: http.NewServeMux()}
	s.res = newResidency(cfg.Loader, LoadOptions{Threads: cfg.Threads, Context: cfg.Context, Batch: cfg.Batch,
		PrefixCache: cfg.PrefixCache, StreamBuffer: cfg.StreamBuffer, StallTimeout: cfg.StallTimeout}, cfg.MemoryBudget,
		func(msg string, args ...any) { s.log.Info(msg, args...) })
	s.met = newMetrics(s)
	if cfg.Batch > 1 {
		s.met.batched = true
		s.res.opts.OnBatch = s.met.onBatch
	}
	if s.auth, err = newAuth(cfg.APIKeys, cfg.RateLimit); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.DataDir != "" {
		if s.img, err = openImages(s); err != nil {
			return nil, fmt.Errorf("server: image job queue: %w", err)
		}
	}
	s.routes()
	return s, nil
}

// MemoryBudget is the bytes every loaded model together may use (≤ 0: no
// limit).
func (s *Server) MemoryBudget() int64 { return s.res.budget }

// Close waits for the running requests and jobs, then unloads the models
// and refuses further loads.
func (s *Server) Close() error {
	var ierr error
	if s.img != nil {
		ierr = s.img.close()
	}
	s.q.take()
	defer s.q.releaseAll(0)
	return errors.Join(s.res.close(), ierr)
}

// ServeHTTP serves a request: panics are recovered into a 500 error.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &trackingWriter{ResponseWriter: w}
	// metrics: runs last, after a panic has been answered.
	req := r // the request the mux saw (check adds the API key's name)
	defer func(t0 time.Time) { s.met.request(req.Pattern, req.URL.Path, tw.status(), time.Since(t0)) }(time.Now())
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			e := canon.New(canon.Internal, "internal error: %v (the server logged it)", v)
			if !tw.wrote {
				s.fail(tw, r, e)
				return
			}
			// A stream has begun: end it with an error frame.
			switch tw.Header().Get("Content-Type") {
			case "text/event-stream":
				fmt.Fprintf(tw, "data: %s\n\n", marshal(openai.Error(e)))
			case "application/x-ndjson":
				fmt.Fprintf(tw, "%s\n", marshal(ollama.Error(e)))
			}
		}
	}()
	if req = s.check(tw, r); req == nil {
		req = r
		return
	}
	s.mux.ServeHTTP(tw, req)
}

// Serve listens on addr until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second,
		// Requests see ctx: on shutdown, running generations stop.
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		hs.Close()
	}
	return errors.Join(err, s.Close())
}

// trackingWriter records whether the response has begun, and its status.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
	code  int
}

func (t *trackingWriter) WriteHeader(code int) {
	if !t.wrote {
		t.code = code
	}
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}
func (t *trackingWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.code = http.StatusOK
	}
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// status is the response's status code (200 when nothing was written).
func (t *trackingWriter) status() int {
	if t.code == 0 {
		return http.StatusOK
	}
	return t.code
}

func (t *trackingWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (s *Server) routes() {
	h := func(pattern, method string, f http.HandlerFunc) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
				w.Header().Set("Allow", method)
				s.fail(w, r, canon.New(canon.NotAllowed, "%s %s: use %s", r.Method, r.URL.Path, method))
				return
			}
			f(w, r)
		})
	}
	h("/health", http.MethodGet, s.health)
	h("/metrics", http.MethodGet, s.met.handler().ServeHTTP)
	h("/v1/chat/completions", http.MethodPost, s.openaiChat)
	h("/v1/completions", http.MethodPost, s.openaiCompletion)
	h("/v1/models", http.MethodGet, s.openaiModels)
	h("/v1/models/{id}", http.MethodGet, s.openaiModel)
	h("/api/chat", http.MethodPost, s.ollamaChat)
	h("/api/generate", http.MethodPost, s.ollamaGenerate)
	h("/api/tags", http.MethodGet, s.ollamaTags)
	h("/api/show", http.MethodPost, s.ollamaShow)
	h("/api/ps", http.MethodGet, s.ollamaPS)
	h("/api/version", http.MethodGet, s.ollamaVersion)
	s.imageRoutes(h)
	s.modelRoutes(h) // models_admin.go
	s.conversationRoutes(h)
	web.Register(s.mux) // the browser UI: GET / and its pages, /assets/
	s.mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "mica is running\n")
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, canon.New(canon.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ok", "busy": len(s.q.slot) > 0, "queued": s.q.waiting.Load()}
	var llms []string
	for _, m := range s.res.list() {
		switch {
		case m.loading:
		case m.kind == kindLLM:
			llms = append(llms, m.name)
		case m.kind == kindImage && body["image_model"] == nil:
			body["image_model"] = m.name
		}
	}
	if len(llms) > 0 {
		body["loaded"] = llms[0] // the first loaded, as before several could be
		body["loaded_models"] = llms
	}
	if s.img != nil {
		body["image_jobs_running"] = len(s.img.q.Running())
	}
	writeJSON(w, http.StatusOK, body)
}

// ollamaPath reports whether a request speaks the Ollama dialect.
func ollamaPath(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// fail writes err in the request's dialect; non-canonical errors are
// internal errors and are logged.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := canon.As(err)
	if e.Kind == canon.Internal {
		s.log.Error("request failed", "path", r.URL.Path, "err", err)
	}
	if e.RetryAfter > 0 {
		setRetryAfter(w, e.RetryAfter)
	}
	var body any = openai.Error(e)
	if ollamaPath(r) {
		body = ollama.Error(e)
	}
	writeJSON(w, e.Kind.Status(), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// readLimited reads a request body of at most limit bytes.
func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("request body over the %d-byte limit", limit)
	}
	return b, err
}

// readBody reads a request body within the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, canon.New(canon.TooLarge, "the request body is over the %d-byte limit", s.cfg.MaxBodyBytes)
		}
		return nil, canon.Errorf("", "reading the request body: %v", err)
	}
	return b, nil
}

// setRetryAfter sets the Retry-After header to d rounded up to whole seconds.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}
