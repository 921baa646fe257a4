package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mica/internal/testenv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/synth"
	"mica/internal/tensor"
)

func sharedDir(t testing.TB) string { return testenv.Shared(t) }

var (
	synthOnce sync.Once
	modelsDir string
	synthErr  error
)

// testModel is the synthetic model's name in modelsDir.
const testModel = "tiny"

// models returns a models folder holding tiny.gguf, a random-weight Gemma 4
// test model with the real 262k vocabulary and Gemma 4's chat template,
// written once per test binary.
func models(t testing.TB) string {
	t.Helper()
	sh := sharedDir(t)
	synthOnce.Do(func() {
		modelsDir, synthErr = os.MkdirTemp("", "mica-server-test")
		if synthErr != nil {
			return
		}
		var v *synth.Vocab
		v, synthErr = synth.LoadVocab(filepath.Join(sh, "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf"))
		if synthErr != nil {
			return
		}
		var tmpl string
		tmpl, synthErr = synth.ReadChatTemplate(filepath.Join(sh, "testdata/chat-templates/google-gemma-4-31B-it.jinja"))
		if synthErr != nil {
			return
		}
		_, synthErr = synth.Write(filepath.Join(modelsDir, testModel+".gguf"),
			synth.Options{Preset: "gemma4-test", Type: tensor.F16, Seed: 11, Vocab: v, ChatTemplate: tmpl, Threads: 2})
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return modelsDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if modelsDir != "" {
		os.RemoveAll(modelsDir)
	}
	os.Exit(code)
}

// logBuffer collects the server's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs a server on the test models folder.
func start(t testing.TB, cfg Config) (*httptest.Server, *Server, *logBuffer) {
	t.Helper()
	cfg.ModelsDir = models(t)
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	if cfg.Context == 0 {
		cfg.Context = 512
	}
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts, s, logs
}

// post sends a JSON body and returns the status, headers and body.
func post(t testing.TB, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("SSE line %q has no data: prefix", line)
		}
		out = append(out, d)
	}
	return out
}

// ndjson splits an NDJSON body into objects.
func ndjson(t testing.TB, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		var m map[string]any
		decodeJSON(t, []byte(line), &m)
		out = append(out, m)
	}
	return out
}

// fake is a scripted Runner: Chat streams script (with a pause between
// events) and records how each call ended.
type fake struct {
	script []engine.Event
	pause  time.Duration
	// block, when set, makes calls wait for it to close (or ctx).
	block  chan struct{}
	panic  bool
	ctx    int
	family string
	ended  chan engine.Finish
}

func (f *fake) Chat(ctx context.Context, r engine.ChatRequest, on func(engine.Event)) (engine.Result, error) {
	if f.panic {
		panic("scripted panic")
	}
	var res engine.Result
	finish := func(fin engine.Finish, err error) (engine.Result, error) {
		res.Finish = fin
		if f.ended != nil {
			f.ended <- fin
		}
		return res, err
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return finish(engine.FinishCancelled, ctx.Err())
		}
	}
	for _, ev := range f.script {
		select {
		case <-ctx.Done():
			return finish(engine.FinishCancelled, ctx.Err())
		case <-time.After(f.pause):
		}
		switch ev.Kind {
		case engine.ContentEvent:
			res.Text += ev.Text
		case engine.ThinkingEvent:
			res.Thinking += ev.Text
		case engine.ToolCallEvent:
			res.ToolCalls = append(res.ToolCalls, ev.Call)
		}
		res.Usage.GeneratedTokens++
		if on != nil {
			on(ev)
		}
	}
	res.Usage.PromptTokens = 5
	return finish(engine.FinishStop, nil)
}

func (f *fake) Complete(ctx context.Context, r engine.CompletionRequest, on func(engine.Event)) (engine.Result, error) {
	return f.Chat(ctx, engine.ChatRequest{}, on)
}
func (f *fake) ChatPrompt(engine.ChatRequest) ([]int32, error)             { return []int32{2, 3, 4, 5, 6}, nil }
func (f *fake) CompletionPrompt(engine.CompletionRequest) ([]int32, error) { return []int32{2, 3}, nil }
func (f *fake) Context() int {
	if f.ctx > 0 {
		return f.ctx
	}
	return 512
}
func (f *fake) VocabSize() int { return 1000 }
func (f *fake) Family() string {
	if f.family != "" {
		return f.family
	}
	return "gemma4"
}
func (f *fake) Close() error { return nil }

func fakeLoader(f *fake) Loader {
	return func(string, LoadOptions) (Runner, error) { return f, nil }
}
