package server

import (
	"bytes"
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"mica/internal/llm/engine"
)

// timedFake is the scripted fake with the engine's usage timings filled in:
// each generated token after the first is a 2ms decode step, the prompt
// took 1ms and the first token came 3ms after the call.
type timedFake struct{ *fake }

func (t timedFake) Chat(ctx context.Context, r engine.ChatRequest, on func(engine.Event)) (engine.Result, error) {
	res, err := t.fake.Chat(ctx, r, on)
	u := &res.Usage
	u.CachedTokens = 2
	u.Prefill = time.Millisecond
	u.TimeToFirstToken = 3 * time.Millisecond
	u.DecodeSteps = max(u.GeneratedTokens-1, 0)
	u.Decode = time.Duration(u.DecodeSteps) * 2 * time.Millisecond
	return res, err
}

func (t timedFake) Complete(ctx context.Context, r engine.CompletionRequest, on func(engine.Event)) (engine.Result, error) {
	return t.Chat(ctx, engine.ChatRequest{}, on)
}

// scrape fetches /metrics and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, url+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	return fams
}

// sample finds the metric of family name whose labels include want
// ("k=v" pairs); ok is false when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) (*dto.Metric, bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.Metric {
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value is a counter's, gauge's or untyped sample's value, or a histogram's
// count; a missing sample fails the test.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	m, ok := sample(fams, name, want...)
	if !ok {
		t.Fatalf("no %s%v in the exposition", name, want)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.Untyped.GetValue()
}

// TestMetricsAfterRequests: a scrape after requests in both dialects shows
// the requests by endpoint, dialect and code, the tokens and timings of
// each generation, and the loaded model; the exposition parses and passes
// the Prometheus linter.
func TestMetricsAfterRequests(t *testing.T) {
	f := &fake{script: scripted[2:3]} // one content event: one token per answer
	load := func(string, LoadOptions) (Runner, error) { return timedFake{f}, nil }
	ts, s, _ := start(t, Config{Loader: load})

	fams := scrape(t, ts.URL)
	if _, ok := sample(fams, "mica_model_loaded"); ok {
		t.Fatal("mica_model_loaded present before any model was loaded")
	}
	if v := value(t, fams, "mica_queue_depth"); v != 0 {
		t.Fatalf("idle queue depth %v", v)
	}

	for _, req := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"tiny",` + okMsgs + `}`},
		{"/v1/chat/completions", `{"model":"tiny","stream":true,` + okMsgs + `}`},
		{"/v1/completions", `{"model":"tiny","prompt":"hi"}`},
		{"/api/chat", `{"model":"tiny","stream":false,` + okMsgs + `}`},
	} {
		if code, _, body := post(t, ts.URL+req.path, req.body); code != 200 {
			t.Fatalf("%s: %d %s", req.path, code, body)
		}
	}
	if code, _, _ := post(t, ts.URL+"/v1/chat/completions", `{"model":`); code != 400 {
		t.Fatalf("bad JSON: %d", code)
	}
	if code, _, _ := post(t, ts.URL+"/api/chat", `{"model":"nope",`+okMsgs+`}`); code != 404 {
		t.Fatalf("unknown model: %d", code)
	}
	if code, _ := get(t, ts.URL+"/no/such/path"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}

	fams = scrape(t, ts.URL)
	const reqs = "mica_http_requests_total"
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"endpoint=/v1/chat/completions", "dialect=openai", "code=200"}, 2},
		{[]string{"endpoint=/v1/chat/completions", "dialect=openai", "code=400"}, 1},
		{[]string{"endpoint=/v1/completions", "dialect=openai", "code=200"}, 1},
		{[]string{"endpoint=/api/chat", "dialect=ollama", "code=200"}, 1},
		{[]string{"endpoint=/api/chat", "dialect=ollama", "code=404"}, 1},
		{[]string{"endpoint=/", "dialect=mica", "code=404"}, 1},
		{[]string{"endpoint=/metrics", "dialect=mica", "code=200"}, 1}, // the first scrape
	} {
		if v := value(t, fams, reqs, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", reqs, c.labels, v, c.want)
		}
	}
	if v := value(t, fams, "mica_http_request_duration_seconds", "endpoint=/v1/chat/completions", "dialect=openai"); v != 3 {
		t.Errorf("chat duration observations %v, want 3", v)
	}

	// Four generations: the fake's prompt is 5 tokens (2 cached), one token
	// generated, no decode step (the first token comes from the prefill).
	tiny := "model=tiny"
	for name, want := range map[string]float64{
		"mica_prompt_tokens_total":         20,
		"mica_prompt_cached_tokens_total":  8,
		"mica_generated_tokens_total":      4,
		"mica_decode_tokens_total":         0,
		"mica_time_to_first_token_seconds": 4,
	} {
		if v := value(t, fams, name, tiny); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	// Durations are sums of the fake's exact millisecond timings; 1e-9
	// allows for float64 rounding of the sums.
	if v := value(t, fams, "mica_prefill_seconds_total", tiny); math.Abs(v-0.004) > 1e-9 {
		t.Errorf("prefill seconds %v, want 0.004", v)
	}
	// Time to first token includes the wait before the runner: at least the
	// engine's 3ms each.
	if m, _ := sample(fams, "mica_time_to_first_token_seconds", tiny); m.Histogram.GetSampleSum() < 0.012 {
		t.Errorf("time to first token sum %v < 4 x 3ms", m.Histogram.GetSampleSum())
	}
	if v := value(t, fams, "mica_model_loaded", tiny, "family=gemma4"); v != 1 {
		t.Errorf("mica_model_loaded = %v", v)
	}
	if v := value(t, fams, "mica_kv_cache_capacity_positions", tiny); v != 512 {
		t.Errorf("KV capacity %v, want the fake's 512", v)
	}
	for _, name := range []string{"mica_queue_depth", "mica_generations_in_flight", "mica_batch_size"} {
		if v := value(t, fams, name); v != 0 {
			t.Errorf("idle %s = %v", name, v)
		}
	}
	if v := value(t, fams, "mica_queue_capacity"); v != DefaultMaxQueue {
		t.Errorf("queue capacity %v", v)
	}

	var ours []string
	for name := range fams {
		if strings.HasPrefix(name, "mica_") {
			ours = append(ours, name)
		}
	}
	problems, err := testutil.GatherAndLint(s.met.reg, ours...)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// TestMetricsDecodeRate: decode steps and seconds add up so that their
// ratio is the decode speed (500 tokens/s for the fake's 2ms steps).
func TestMetricsDecodeRate(t *testing.T) {
	f := &fake{script: scripted[:3]} // three tokens: two decode steps
	load := func(string, LoadOptions) (Runner, error) { return timedFake{f}, nil }
	ts, _, _ := start(t, Config{Loader: load})
	for range 2 {
		if code, _, body := post(t, ts.URL+"/api/chat", `{"model":"tiny","stream":false,`+okMsgs+`}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	fams := scrape(t, ts.URL)
	steps := value(t, fams, "mica_decode_tokens_total", "model=tiny")
	secs := value(t, fams, "mica_decode_seconds_total", "model=tiny")
	// 4 steps of exactly 2ms; 1e-9 allows for rounding the sum.
	if steps != 4 || math.Abs(secs-0.008) > 1e-9 {
		t.Fatalf("decode steps %v in %vs, want 4 in 0.008s", steps, secs)
	}
}

// TestMetricsWhileBusy: with one generation running and one waiting, the
// gauges say so; afterwards they return to zero. A panicking runner leaves
// no generation counted as running and is counted as a 500.
func TestMetricsWhileBusy(t *testing.T) {
	f := &fake{block: make(chan struct{}), script: scripted[2:3]}
	ts, s, _ := start(t, Config{Loader: fakeLoader(f)})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`}`)
		}()
		deadline := time.Now().Add(5 * time.Second)
		for (i == 0 && testutil.ToFloat64(s.met.inFlight) == 0) || (i == 1 && s.q.waiting.Load() == 0) {
			if time.Now().After(deadline) {
				t.Fatal("request did not reach the engine or the queue")
			}
			time.Sleep(time.Millisecond)
		}
	}
	fams := scrape(t, ts.URL)
	for name, want := range map[string]float64{"mica_generations_in_flight": 1, "mica_batch_size": 1, "mica_queue_depth": 1} {
		if v := value(t, fams, name); v != want {
			t.Errorf("busy %s = %v, want %v", name, v, want)
		}
	}
	close(f.block)
	wg.Wait()

	f.panic = true
	if code, _, _ := post(t, ts.URL+"/v1/chat/completions", `{"model":"tiny",`+okMsgs+`}`); code != 500 {
		t.Fatalf("panicking runner: %d", code)
	}
	fams = scrape(t, ts.URL)
	for name, want := range map[string]float64{"mica_generations_in_flight": 0, "mica_batch_size": 0, "mica_queue_depth": 0} {
		if v := value(t, fams, name); v != want {
			t.Errorf("idle %s = %v, want %v", name, v, want)
		}
	}
	if v := value(t, fams, "mica_http_requests_total", "endpoint=/v1/chat/completions", "code=500"); v != 1 {
		t.Errorf("500s counted: %v", v)
	}
	if v := value(t, fams, "mica_http_requests_total", "endpoint=/v1/chat/completions", "code=200"); v != 2 {
		t.Errorf("200s counted: %v", v)
	}
}

// TestMetricsPerServer: two servers in one process keep separate counts.
func TestMetricsPerServer(t *testing.T) {
	a, _, _ := start(t, Config{Loader: fakeLoader(&fake{script: scripted[2:3]})})
	b, _, _ := start(t, Config{Loader: fakeLoader(&fake{script: scripted[2:3]})})
	if code, _, _ := post(t, a.URL+"/api/chat", `{"model":"tiny","stream":false,`+okMsgs+`}`); code != 200 {
		t.Fatal(code)
	}
	if v := value(t, scrape(t, a.URL), "mica_generated_tokens_total", "model=tiny"); v != 1 {
		t.Errorf("server a generated %v tokens, want 1", v)
	}
	if _, ok := sample(scrape(t, b.URL), "mica_generated_tokens_total"); ok {
		t.Error("server b counts server a's tokens")
	}
}

// TestMetricsRealEngine: with the synthetic model the engine's own usage
// reaches the counters.
func TestMetricsRealEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the synthetic model")
	}
	ts, _, _ := start(t, Config{})
	code, _, body := post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"Hello there","max_tokens":4,"temperature":0}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	fams := scrape(t, ts.URL)
	gen := value(t, fams, "mica_generated_tokens_total", "model=tiny")
	steps := value(t, fams, "mica_decode_tokens_total", "model=tiny")
	secs := value(t, fams, "mica_decode_seconds_total", "model=tiny")
	if gen < 1 || gen > 4 || value(t, fams, "mica_prompt_tokens_total", "model=tiny") < 2 ||
		value(t, fams, "mica_time_to_first_token_seconds", "model=tiny") != 1 || (steps > 0) != (secs > 0) {
		t.Fatalf("generated %v, decode steps %v in %vs", gen, steps, secs)
	}
	// Without batching the one cached sequence keeps the prompt and the
	// answer for prefix reuse: filled positions are those, within its
	// reservation.
	used := value(t, fams, "mica_kv_cache_used_positions", "model=tiny")
	reserved := value(t, fams, "mica_kv_cache_reserved_positions", "model=tiny")
	if used < 3 || used > reserved || reserved != value(t, fams, "mica_kv_cache_capacity_positions", "model=tiny") {
		t.Fatalf("KV used %v, reserved %v", used, reserved)
	}
}

// TestMetricsKVBatched: with the continuous batcher the KV use is that of
// the live sequences and of the finished ones kept for prefix reuse: after
// a request, its kept sequence (prompt and answer, within its
// reservation); a second request with the same prompt reuses it, which
// mica_prompt_reused_tokens_total counts.
func TestMetricsKVBatched(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the synthetic model")
	}
	ts, _, _ := start(t, Config{Batch: 4})
	code, _, body := post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"Hello there","max_tokens":4,"temperature":0}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	fams := scrape(t, ts.URL)
	used := value(t, fams, "mica_kv_cache_used_positions", "model=tiny")
	reserved := value(t, fams, "mica_kv_cache_reserved_positions", "model=tiny")
	if used < 3 || used > reserved || reserved > 512 {
		t.Fatalf("after the request: KV used %v, reserved %v", used, reserved)
	}
	if r := value(t, fams, "mica_prompt_reused_tokens_total", "model=tiny"); r != 0 {
		t.Fatalf("reused %v positions before any request could", r)
	}
	if code, _, body := post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"Hello there","max_tokens":4,"temperature":0}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if r := value(t, scrape(t, ts.URL), "mica_prompt_reused_tokens_total", "model=tiny"); r < 2 {
		t.Fatalf("the same prompt again reused %v positions", r)
	}
}
