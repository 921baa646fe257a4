package server

// GET /metrics: Prometheus metrics of one Server, on a registry of its own
// (never the process-wide default registry, so that several servers in one
// process, as in tests, do not collide).
//
// Decode speed is exported as two counters, mica_decode_tokens_total and
// mica_decode_seconds_total (the engine's decode steps and the time they
// took), so that
//
//	rate(mica_decode_tokens_total[1m]) / rate(mica_decode_seconds_total[1m])
//
// is the decode tokens/s while generating, and rate(mica_generated_tokens_total[1m])
// the throughput over wall time. Counters, unlike a histogram of per-request
// rates, weigh long answers by their length and aggregate across servers.
//
// Time to first token runs from the request's arrival (before the queue and
// a model load) to the first sampled token.
//
// KV cache: the engine exposes the capacity of its one cached sequence
// (Runner.Context) but not how many positions it holds, so only the
// capacity is exported for now.

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mica/internal/llm/engine"
)

// metrics holds a Server's collectors.
type metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec   // endpoint, dialect, code
	duration *prometheus.HistogramVec // endpoint, dialect

	inFlight prometheus.Gauge
	batch    prometheus.Gauge
	// batched: the engine's batcher reports each step's batch size
	// (onBatch); running counts the generations in flight for it.
	batched bool
	running atomic.Int64

	promptTokens    *prometheus.CounterVec // model
	cachedTokens    *prometheus.CounterVec // model
	generatedTokens *prometheus.CounterVec // model
	prefillSeconds  *prometheus.CounterVec // model
	decodeTokens    *prometheus.CounterVec // model
	decodeSeconds   *prometheus.CounterVec // model
	ttft            *prometheus.HistogramVec
}

// Descriptions of the values read at scrape time.
var (
	descBudget = prometheus.NewDesc("mica_memory_budget_bytes",
		"The memory all loaded models together may use (absent: no limit).", nil, nil)
	descBudgetUsed = prometheus.NewDesc("mica_memory_used_bytes",
		"The memory the loaded and loading models take from the budget.", nil, nil)
	descModelMemory = prometheus.NewDesc("mica_model_memory_bytes",
		"What a loaded model takes from the budget: the larger of its estimate and its backend's measured use.",
		[]string{"model", "kind"}, nil)
	descLoaded = prometheus.NewDesc("mica_model_loaded",
		"A loaded LLM: 1, labelled with its name and family; absent when none is loaded.",
		[]string{"model", "family"}, nil)
	descKVCap = prometheus.NewDesc("mica_kv_cache_capacity_positions",
		"Positions a loaded LLM's KV cache holds per sequence (the context of one request).",
		[]string{"model"}, nil)
	descKVUsed = prometheus.NewDesc("mica_kv_cache_used_positions",
		"KV cache positions filled by the live sequences: with batching, the running requests' and the finished ones kept for prefix reuse (--prefix-cache); without, the one cached sequence kept for prefix reuse.",
		[]string{"model"}, nil)
	descKVReserved = prometheus.NewDesc("mica_kv_cache_reserved_positions",
		"KV cache positions reserved by the live sequences (their capacities): with batching, the running requests' and the finished ones kept for prefix reuse (--prefix-cache), which are dropped, oldest first, when a request needs their room.",
		[]string{"model"}, nil)
	descReused = prometheus.NewDesc("mica_prompt_reused_tokens_total",
		"Prompt positions the loaded model took from a KV cache (its cached sequence, another request's, a finished one kept for reuse, or the first of n choices) instead of computing them; since the model was loaded.",
		[]string{"model"}, nil)
	descKVBudget = prometheus.NewDesc("mica_kv_cache_budget_positions",
		"The batcher's KV budget in positions (absent: no budget).",
		[]string{"model"}, nil)
)

// kvReporter is a runner that reports its KV cache use (the engine does).
type kvReporter interface {
	KVUse() (filled, reserved, budget int)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mica_http_requests_total",
		Help: "HTTP requests answered, by endpoint (the route pattern), dialect and status code."},
		[]string{"endpoint", "dialect", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mica_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request in full (for streams, until the stream ends).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, // 1ms .. ~262s
		[]string{"endpoint", "dialect"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mica_generations_in_flight",
		Help: "Generations running on the engine now."})
	m.batch = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mica_batch_size",
		Help: "Sequences in the engine's current step (with continuous batching, the last step's)."})
	model := []string{"model"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, model)
	}
	m.promptTokens = counter("mica_prompt_tokens_total", "Prompt tokens of finished generations (cached ones included).")
	m.cachedTokens = counter("mica_prompt_cached_tokens_total", "Prompt tokens taken from the KV cache instead of being computed.")
	m.generatedTokens = counter("mica_generated_tokens_total", "Tokens generated (stop tokens excluded).")
	m.prefillSeconds = counter("mica_prefill_seconds_total", "Time spent computing prompts.")
	m.decodeTokens = counter("mica_decode_tokens_total", "Decode steps: forward passes on one generated token.")
	m.decodeSeconds = counter("mica_decode_seconds_total", "Time the decode steps took; decode tokens/s = rate(mica_decode_tokens_total) / rate(mica_decode_seconds_total).")
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mica_time_to_first_token_seconds",
		Help:    "From a request's arrival (queue and model load included) to its first sampled token.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10)}, // 5ms .. ~19s
		model)
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mica_queue_depth",
		Help: "Requests waiting for the engine."},
		func() float64 { return float64(s.q.waiting.Load()) })
	queueCap := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mica_queue_capacity",
		Help: "Requests that may wait before new ones get 429."},
		func() float64 { return float64(s.q.limit) })
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.batch, m.promptTokens,
		m.cachedTokens, m.generatedTokens, m.prefillSeconds, m.decodeTokens, m.decodeSeconds, m.ttft,
		queue, queueCap, residentCollector{s.res},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// handler serves the exposition.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// dialect names the API family of a request path.
func dialect(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/"):
		return "ollama"
	case strings.HasPrefix(path, "/v1/"):
		return "openai"
	}
	return "mica"
}

// request records one answered request. pattern is the mux's matched route
// (bounded: unknown paths match "/").
func (m *metrics) request(pattern, path string, code int, d time.Duration) {
	if pattern == "" {
		pattern = "none"
	}
	dl := dialect(path)
	m.requests.WithLabelValues(pattern, dl, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(pattern, dl).Observe(d.Seconds())
}

// generationStarted marks a generation running; the returned func ends it.
func (m *metrics) generationStarted() func() {
	m.inFlight.Inc()
	if !m.batched {
		m.batch.Set(1) // one request at a time: one sequence per step
	}
	m.running.Add(1)
	return func() {
		m.inFlight.Dec()
		if m.running.Add(-1) == 0 || !m.batched {
			m.batch.Set(0)
		}
	}
}

// onBatch records a batched step (engine.Options.OnBatch).
func (m *metrics) onBatch(b engine.BatchStats) {
	m.batch.Set(float64(b.Sequences))
}

// generation records a finished (or cancelled) generation's usage; wait is
// the time from the request's arrival to the runner's call.
func (m *metrics) generation(model string, u engine.Usage, wait time.Duration) {
	m.promptTokens.WithLabelValues(model).Add(float64(u.PromptTokens))
	m.cachedTokens.WithLabelValues(model).Add(float64(u.CachedTokens))
	m.generatedTokens.WithLabelValues(model).Add(float64(u.GeneratedTokens))
	m.prefillSeconds.WithLabelValues(model).Add(u.Prefill.Seconds())
	m.decodeTokens.WithLabelValues(model).Add(float64(u.DecodeSteps))
	m.decodeSeconds.WithLabelValues(model).Add(u.Decode.Seconds())
	if u.TimeToFirstToken > 0 {
		m.ttft.WithLabelValues(model).Observe((wait + u.TimeToFirstToken).Seconds())
	}
}

// residentCollector reports the loaded models at scrape time.
type residentCollector struct{ r *residency }

func (c residentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBudget
	ch <- descBudgetUsed
	ch <- descModelMemory
	ch <- descLoaded
	ch <- descKVCap
	ch <- descKVUsed
	ch <- descKVReserved
	ch <- descKVBudget
	ch <- descReused
}

// Collect reports every loaded LLM, and the memory budget with what each
// loaded model (LLM or image) takes of it.
func (c residentCollector) Collect(ch chan<- prometheus.Metric) {
	if c.r.budget > 0 {
		ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, float64(c.r.budget))
	}
	var used int64
	for _, m := range c.r.list() {
		used += m.need
		if m.loading {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descModelMemory, prometheus.GaugeValue, float64(m.need), m.name, m.kind)
	}
	ch <- prometheus.MustNewConstMetric(descBudgetUsed, prometheus.GaugeValue, float64(used))
	for _, run := range c.r.runners() {
		c.collectLLM(ch, run)
	}
}

func (c residentCollector) collectLLM(ch chan<- prometheus.Metric, run Runner) {
	name := c.r.nameOf(run)
	ch <- prometheus.MustNewConstMetric(descLoaded, prometheus.GaugeValue, 1, name, run.Family())
	ch <- prometheus.MustNewConstMetric(descKVCap, prometheus.GaugeValue, float64(run.Context()), name)
	if k, ok := run.(kvReporter); ok {
		filled, reserved, budget := k.KVUse()
		ch <- prometheus.MustNewConstMetric(descKVUsed, prometheus.GaugeValue, float64(filled), name)
		ch <- prometheus.MustNewConstMetric(descKVReserved, prometheus.GaugeValue, float64(reserved), name)
		if budget > 0 {
			ch <- prometheus.MustNewConstMetric(descKVBudget, prometheus.GaugeValue, float64(budget), name)
		}
	}
	if r, ok := run.(interface{ ReusedTokens() int64 }); ok {
		ch <- prometheus.MustNewConstMetric(descReused, prometheus.CounterValue, float64(r.ReusedTokens()), name)
	}
}
