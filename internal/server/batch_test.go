package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"mica/internal/llm/engine"
)

// TestConcurrentClientsBatched: 20 clients at once on a server with
// continuous batching (4 sequences per step) get exactly the answers they
// get one at a time from a server without it (greedy decoding, seeded
// sampling; the synthetic model's weights are F16, whose kernels compute a
// row the same way whatever the batch), and steps did run several requests
// together.
func TestConcurrentClientsBatched(t *testing.T) {
	body := func(i int) string {
		sampling := `"temperature":0`
		if i%3 == 1 {
			sampling = fmt.Sprintf(`"temperature":0.8,"seed":%d`, i)
		}
		return fmt.Sprintf(`{"model":"tiny","max_tokens":%d,%s,"logit_bias":{"1":-100,"106":-100},"messages":[{"role":"user","content":"client %d says hello"}]}`, 4+i%5, sampling, i)
	}
	answer := func(url string, i int) (string, error) {
		code, _, b := post(t, url+"/v1/chat/completions", body(i))
		var c chatCompletion
		if code != 200 || json.Unmarshal(b, &c) != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content == nil {
			return "", fmt.Errorf("client %d: %d %s", i, code, b)
		}
		return *c.Choices[0].Message.Content, nil
	}
	const n = 20
	serial, _, _ := start(t, Config{})
	want := make([]string, n)
	for i := range n {
		var err error
		if want[i], err = answer(serial.URL, i); err != nil {
			t.Fatal(err)
		}
	}

	var most atomic.Int64
	load := func(path string, o LoadOptions) (Runner, error) {
		next := o.OnBatch
		o.OnBatch = func(b engine.BatchStats) {
			if int64(b.Sequences) > most.Load() {
				most.Store(int64(b.Sequences))
			}
			next(b)
		}
		return EngineLoader(path, o)
	}
	ts, _, _ := start(t, Config{Batch: 4, Loader: load})
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = answer(ts.URL, i) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Error(errs[i])
		} else if got[i] != want[i] {
			t.Errorf("client %d: batched %q, alone %q", i, got[i], want[i])
		}
	}
	t.Logf("client 0: %q, client 1: %q", got[0], got[1])
	if m := most.Load(); m < 2 || m > 4 {
		t.Errorf("largest step ran %d requests; want 2..4", m)
	}
	fams := scrape(t, ts.URL)
	if v := value(t, fams, "mica_batch_size"); v != 0 {
		t.Errorf("idle mica_batch_size = %v", v)
	}
}

// switchRunner is a fake that fails the test if it is closed while a call
// runs on it.
type switchRunner struct {
	*fake
	t       *testing.T
	running atomic.Int32
	closed  atomic.Bool
}

func (r *switchRunner) Chat(ctx context.Context, q engine.ChatRequest, on func(engine.Event)) (engine.Result, error) {
	r.running.Add(1)
	defer r.running.Add(-1)
	if r.closed.Load() {
		r.t.Error("a closed model ran a request")
	}
	return r.fake.Chat(ctx, q, on)
}

func (r *switchRunner) Close() error {
	if r.running.Load() != 0 {
		r.t.Error("model closed while a request ran on it")
	}
	r.closed.Store(true)
	return nil
}

// TestBatchedModelSwitch: with several requests running at once and a
// memory budget that holds one model, a request for another model waits
// until the running ones end before the first model is unloaded.
func TestBatchedModelSwitch(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(models(t), testModel+".gguf")
	for _, name := range []string{"a", "b"} {
		if err := os.Symlink(src, filepath.Join(dir, name+".gguf")); err != nil {
			t.Skip("no symlinks here:", err)
		}
	}
	block := make(chan struct{})
	var loads atomic.Int32
	load := func(path string, o LoadOptions) (Runner, error) {
		loads.Add(1)
		f := &fake{script: scripted[2:3], block: block}
		if strings.HasSuffix(path, "b.gguf") {
			f = &fake{script: scripted[2:3]}
		}
		return &switchRunner{fake: f, t: t}, nil
	}
	s, err := New(Config{ModelsDir: dir, Batch: 3, Loader: load, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// A memory budget with room for one of the two models only.
	info, err := s.cat.lookup("a")
	if err != nil {
		t.Fatal(err)
	}
	s.res.budget = llmNeed(info, 0, 3) * 3 / 2
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range 2 {
		wg.Go(func() { codes[i], _, _ = post(t, ts.URL+"/v1/chat/completions", `{"model":"a",`+okMsgs+`}`) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(s.met.inFlight) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two requests did not run together")
		}
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() { codes[2], _, _ = post(t, ts.URL+"/v1/chat/completions", `{"model":"b",`+okMsgs+`}`) })
	time.Sleep(50 * time.Millisecond)
	if loads.Load() != 1 {
		t.Error("model b was loaded while model a ran requests")
	}
	close(block)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 200 || loads.Load() != 2 {
		t.Errorf("codes %v, %d loads", codes, loads.Load())
	}
}
