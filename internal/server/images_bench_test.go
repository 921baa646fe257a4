package server

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"mica/internal/imagegen"
)

// BenchmarkImageJobOverhead is what the job queue and the A1111 endpoint
// add around a generation: one blocking /sdapi/v1/txt2img (1 step, 64×64
// on the tiny checkpoint) minus the same generation run directly on the
// loaded model. Reported as overhead-µs/op.
func BenchmarkImageJobOverhead(b *testing.B) {
	url, s := startImagesB(b)
	body := `{"prompt":"x","steps":1,"width":64,"height":64,"seed":1}`
	if code, _, out := post(b, url+"/sdapi/v1/txt2img", body); code != 200 { // loads the model
		b.Fatalf("%d %s", code, out)
	}
	m, lease, err := s.img.acquire(context.Background(), "sd-test")
	if err != nil {
		b.Fatal(err)
	}
	defer s.img.release(lease)
	direct := time.Duration(0)
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := m.Generate(context.Background(), imagegen.Request{Prompt: "x", Steps: 1, Width: 64, Height: 64, Seed: 1}, s.img.lim, nil); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if code, _, out := post(b, url+"/sdapi/v1/txt2img", body); code != 200 {
			b.Fatalf("%d %s", code, out)
		}
		direct += t1.Sub(t0)
		total += time.Since(t1)
	}
	b.ReportMetric(float64((total-direct).Microseconds())/float64(b.N), "overhead-µs/op")
	b.ReportMetric(float64(direct.Microseconds())/float64(b.N), "generate-µs/op")
}

// BenchmarkProgressWhileRunning: GET /sdapi/v1/progress latency while a
// long job runs (the p50 and p99 of the requests).
func BenchmarkProgressWhileRunning(b *testing.B) {
	url, _ := startImagesB(b)
	code, _, out := post(b, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","steps":150,"width":64,"height":64}}`)
	if code != 202 {
		b.Fatalf("%d %s", code, out)
	}
	for {
		_, p := get(b, url+"/sdapi/v1/progress")
		var pr struct {
			State struct {
				SamplingStep int `json:"sampling_step"`
			}
		}
		json.Unmarshal(p, &pr)
		if pr.State.SamplingStep > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if code, p := get(b, url+"/sdapi/v1/progress"); code != 200 || !strings.Contains(string(p), `"progress"`) {
			b.Fatalf("%d %s", code, p)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	post(b, url+"/sdapi/v1/interrupt", `{}`)
}
