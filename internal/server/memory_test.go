package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mica/internal/server/canon"
)

func TestParseMemorySize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "auto": 0, "none": NoBudget, "unlimited": NoBudget, "-1": NoBudget,
		"1024": 1024, "16GiB": 16 << 30, "16G": 16 << 30, "16gb": 16 << 30, "1.5T": 3 << 39, "800M": 800 << 20, "64 KiB": 64 << 10} {
		got, err := ParseMemorySize(in)
		if err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "12Q", "-5G", "0", "150%", "G"} {
		if _, err := ParseMemorySize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if MachineMemory() > 0 {
		half, err := ParseMemorySize("50%")
		if err != nil || half <= 0 || half > MachineMemory() {
			t.Errorf("50%%: %d %v", half, err)
		}
	}
}

// TestLLMNeed: the estimate is the file plus KV caches that grow with the
// context and the batch.
func TestLLMNeed(t *testing.T) {
	m, err := (&catalog{dir: models(t), cache: map[string]ModelInfo{}}).lookup(testModel)
	if err != nil {
		t.Fatal(err)
	}
	if m.geometry == nil {
		t.Fatal("no geometry read from the header")
	}
	a, b, c := llmNeed(m, 512, 1), llmNeed(m, 4096, 1), llmNeed(m, 4096, 4)
	if !(m.Size < a && a < b && b < c) {
		t.Fatalf("size %d, need at 512×1 %d, 4096×1 %d, 4096×4 %d", m.Size, a, b, c)
	}
	// Four sequences hold four times one sequence's KV cache (the rest is
	// shared or per batch in the logits only).
	kv1 := b - llmNeed(m, 512, 1)
	kv4 := c - llmNeed(m, 512, 4)
	if kv4 != 4*kv1 {
		t.Fatalf("KV growth 512→4096: one sequence %d, four %d", kv1, kv4)
	}
}

// testSpec is a model of need bytes whose load counts itself and whose
// close reports whether it was in use.
func testSpec(t *testing.T, name string, need int64, loads *atomic.Int32, closed *[]string) loadSpec {
	return loadSpec{kind: kindLLM, name: name, path: "/m/" + name, need: need,
		load: func() (any, func() error, func() int64, error) {
			loads.Add(1)
			return name, func() error { *closed = append(*closed, name); return nil }, nil, nil
		}}
}

// TestResidencyEvictsIdleLeastRecentlyUsed: a budget for two models; the
// third evicts the idle one used longest ago.
func TestResidencyEvictsIdleLeastRecentlyUsed(t *testing.T) {
	var loads atomic.Int32
	var closed []string
	r := newResidency(nil, LoadOptions{}, 250, func(string, ...any) {})
	ctx := context.Background()
	use := func(name string) {
		t.Helper()
		m, _, err := r.acquire(ctx, testSpec(t, name, 100, &loads, &closed))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // distinct last-use times
		r.release(m, time.Hour)
	}
	use("a")
	use("b")
	use("a") // b is now the least recently used
	if loads.Load() != 2 || len(closed) != 0 || r.used() != 200 {
		t.Fatalf("%d loads, closed %v, used %d", loads.Load(), closed, r.used())
	}
	use("c")
	if loads.Load() != 3 || strings.Join(closed, ",") != "b" || r.used() != 200 {
		t.Fatalf("%d loads, closed %v, used %d", loads.Load(), closed, r.used())
	}
	// A model kept with keep-alive -1 goes after the others, even if used
	// longer ago.
	m, _, _ := r.acquire(ctx, testSpec(t, "a", 100, &loads, &closed))
	r.release(m, -1)
	time.Sleep(time.Millisecond)
	use("c")
	use("d")
	if strings.Join(closed, ",") != "b,c" {
		t.Fatalf("closed %v: the kept model went before the timed one", closed)
	}
	// A model bigger than the whole budget is refused at once, with 503 and
	// Retry-After, saying both numbers.
	_, _, err := r.acquire(ctx, testSpec(t, "huge", 300, &loads, &closed))
	var ce *canon.Error
	if !errors.As(err, &ce) || ce.Kind != canon.Unavailable || ce.RetryAfter <= 0 ||
		!strings.Contains(ce.Msg, "needs about 0 MiB") || !strings.Contains(ce.Msg, "budget is 0 MiB") {
		t.Fatalf("too big: %v", err)
	}
	if len(closed) != 2 {
		t.Fatalf("a refused model unloaded others: %v", closed)
	}
}

// TestResidencyNeverEvictsInUse: a model in use stays; a load that needs
// its memory waits until it is released (or its caller gives up).
func TestResidencyNeverEvictsInUse(t *testing.T) {
	var loads atomic.Int32
	var closed []string
	r := newResidency(nil, LoadOptions{}, 150, func(string, ...any) {})
	a, _, err := r.acquire(context.Background(), testSpec(t, "a", 100, &loads, &closed))
	if err != nil {
		t.Fatal(err)
	}
	// A caller that gives up while waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, _, err = r.acquire(ctx, testSpec(t, "b", 100, &loads, &closed))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || loads.Load() != 1 || len(closed) != 0 {
		t.Fatalf("waiting for memory: %v, %d loads, closed %v", err, loads.Load(), closed)
	}
	got := make(chan error, 1)
	go func() {
		b, _, err := r.acquire(context.Background(), testSpec(t, "b", 100, &loads, &closed))
		if err == nil {
			r.release(b, time.Hour)
		}
		got <- err
	}()
	time.Sleep(30 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("b loaded while a was in use: %v", err)
	default:
	}
	r.release(a, time.Hour) // idle now: b may evict it
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if strings.Join(closed, ",") != "a" || loads.Load() != 2 {
		t.Fatalf("closed %v, %d loads", closed, loads.Load())
	}
}

// TestResidencyKeepAlive: keep-alive 0 unloads when the last use ends, not
// before; a negative one keeps the model; a positive one expires.
func TestResidencyKeepAlive(t *testing.T) {
	var loads atomic.Int32
	var closed []string
	r := newResidency(nil, LoadOptions{}, 0, func(string, ...any) {})
	ctx := context.Background()
	sp := testSpec(t, "a", 100, &loads, &closed)
	m1, _, _ := r.acquire(ctx, sp)
	m2, _, _ := r.acquire(ctx, sp)
	if m1 != m2 || loads.Load() != 1 {
		t.Fatal("two uses loaded the model twice")
	}
	r.release(m1, 0)
	if len(closed) != 0 {
		t.Fatal("keep-alive 0 unloaded a model still in use")
	}
	r.release(m2, 0)
	if len(closed) != 1 {
		t.Fatal("keep-alive 0 did not unload at the end of the last use")
	}
	m, _, _ := r.acquire(ctx, sp)
	r.release(m, -1)
	if l := r.list(); len(l) != 1 || !l[0].expires.IsZero() {
		t.Fatalf("keep-alive -1: %+v", l)
	}
	m, _, _ = r.acquire(ctx, sp)
	r.release(m, 20*time.Millisecond)
	if l := r.list(); len(l) != 1 || l[0].expires.IsZero() {
		t.Fatalf("keep-alive 20ms: %+v", l)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(r.list()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("not unloaded after its keep-alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// twoModels is a models folder with a.gguf and b.gguf (the tiny model).
func twoModels(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(models(t), testModel+".gguf")
	for _, name := range names {
		if err := os.Symlink(src, filepath.Join(dir, name+".gguf")); err != nil {
			t.Skip("no symlinks here:", err)
		}
	}
	return dir
}

// startBudget serves dir with fake runners and a budget of budget times
// one model's need (0: the default budget).
func startBudget(t *testing.T, dir string, budget float64, f *fake) (*httptest.Server, *Server, *atomic.Int32) {
	t.Helper()
	var loads atomic.Int32
	load := func(path string, o LoadOptions) (Runner, error) {
		loads.Add(1)
		if strings.HasSuffix(path, "a.gguf") {
			return f, nil
		}
		return &fake{script: scripted[2:3]}, nil
	}
	s, err := New(Config{ModelsDir: dir, DataDir: t.TempDir(), Loader: load, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if budget > 0 {
		info, err := s.cat.lookup("a")
		if err != nil {
			t.Fatal(err)
		}
		s.res.budget = int64(budget * float64(llmNeed(info, 0, 0)))
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts, s, &loads
}

func psNames(t *testing.T, url string) []string {
	t.Helper()
	_, body := get(t, url+"/api/ps")
	var ps struct {
		Models []struct {
			Name      string `json:"name"`
			Size      int64  `json:"size"`
			ExpiresAt string `json:"expires_at"`
		} `json:"models"`
	}
	decodeJSON(t, body, &ps)
	var out []string
	for _, m := range ps.Models {
		if m.Size <= 0 || m.ExpiresAt == "" {
			t.Fatalf("/api/ps entry without size or expiry: %s", body)
		}
		out = append(out, m.Name)
	}
	return out
}

// TestBudgetKeepsSeveralLLMs: models that fit stay loaded together and
// /api/ps lists them all; a small budget makes the second evict the first.
func TestBudgetKeepsSeveralLLMs(t *testing.T) {
	dir := twoModels(t, "a", "b")
	chat := func(url, model string) {
		t.Helper()
		if code, _, b := post(t, url+"/v1/chat/completions", fmt.Sprintf(`{"model":%q,%s}`, model, okMsgs)); code != 200 {
			t.Fatalf("%s: %d %s", model, code, b)
		}
	}
	ts, _, loads := startBudget(t, dir, 0, &fake{script: scripted[2:3]})
	chat(ts.URL, "a")
	chat(ts.URL, "b")
	chat(ts.URL, "a")
	if got := strings.Join(psNames(t, ts.URL), ","); got != "a,b" || loads.Load() != 2 {
		t.Fatalf("ps %q after %d loads", got, loads.Load())
	}
	_, metrics := get(t, ts.URL+"/metrics")
	for _, want := range []string{`mica_model_memory_bytes{kind="llm",model="a"}`, `mica_model_memory_bytes{kind="llm",model="b"}`,
		"mica_memory_budget_bytes ", "mica_memory_used_bytes ", `mica_model_loaded{family="gemma4",model="b"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, h := get(t, ts.URL+"/health"); !strings.Contains(string(h), `"loaded_models":["a","b"]`) {
		t.Errorf("/health: %s", h)
	}

	ts, _, loads = startBudget(t, dir, 1.5, &fake{script: scripted[2:3]})
	chat(ts.URL, "a")
	chat(ts.URL, "b")
	if got := strings.Join(psNames(t, ts.URL), ","); got != "b" {
		t.Fatalf("ps %q: a should have been unloaded for b", got)
	}
	chat(ts.URL, "a")
	if got := strings.Join(psNames(t, ts.URL), ","); got != "a" || loads.Load() != 3 {
		t.Fatalf("ps %q after %d loads", got, loads.Load())
	}
}

// TestBudgetTooSmall: a model that can never fit gets 503 with
// Retry-After and a message with the budget and the need.
func TestBudgetTooSmall(t *testing.T) {
	ts, _, loads := startBudget(t, twoModels(t, "a"), 0.5, &fake{script: scripted[2:3]})
	code, h, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"a",`+okMsgs+`}`)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(body), "memory budget is") ||
		!strings.Contains(string(body), "needs about") || loads.Load() != 0 {
		t.Fatalf("%d %v %s (%d loads)", code, h, body, loads.Load())
	}
	code, _, body = post(t, ts.URL+"/api/chat", `{"model":"a","messages":[{"role":"user","content":"hi"}]}`)
	if code != 503 || !strings.Contains(string(body), "--memory-budget") {
		t.Fatalf("ollama: %d %s", code, body)
	}
}

// FuzzParseMemorySize: any flag, variable or config value gives a size, the
// default (0), NoBudget, or an error; never a panic or a negative size.
func FuzzParseMemorySize(f *testing.F) {
	for _, s := range []string{"16GiB", "1.5t", "75%", "none", "", "1e3M", "NaN", "+Inf G", "-0", "99999999999999T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMemorySize(s)
		if err == nil && n < 0 && n != NoBudget {
			t.Fatalf("%q gave %d", s, n)
		}
	})
}

// TestResidencyNoStarvation: while a load waits for a busy model's memory,
// new uses of that model queue behind it, so a steady stream of requests
// cannot keep the waiting load out forever.
func TestResidencyNoStarvation(t *testing.T) {
	var loads atomic.Int32
	var closed []string
	r := newResidency(nil, LoadOptions{}, 150, func(string, ...any) {})
	ctx := context.Background()
	a, _, err := r.acquire(ctx, testSpec(t, "a", 100, &loads, &closed))
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 2)
	bDone := make(chan *resident)
	go func() {
		b, _, err := r.acquire(ctx, testSpec(t, "b", 100, &loads, &closed))
		if err != nil {
			t.Error(err)
		}
		order <- "b"
		bDone <- b
	}()
	// Wait until b's load has marked a.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		d := a.drain
		r.mu.Unlock()
		if d > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting load did not mark the busy model")
		}
		time.Sleep(time.Millisecond)
	}
	aAgain := make(chan *resident)
	go func() {
		m, _, err := r.acquire(ctx, testSpec(t, "a", 100, &loads, &closed))
		if err != nil {
			t.Error(err)
		}
		order <- "a"
		aAgain <- m
	}()
	time.Sleep(20 * time.Millisecond)
	select {
	case who := <-order:
		t.Fatalf("%s got in while a load waited for a's memory", who)
	default:
	}
	r.release(a, time.Hour) // a idle: b evicts it and loads
	if who := <-order; who != "b" {
		t.Fatalf("%s went first", who)
	}
	r.release(<-bDone, time.Hour) // then a comes back
	if who := <-order; who != "a" {
		t.Fatal(who)
	}
	r.release(<-aAgain, time.Hour)
	if strings.Join(closed, ",") != "a,b" || loads.Load() != 3 {
		t.Fatalf("closed %v, %d loads", closed, loads.Load())
	}
}
