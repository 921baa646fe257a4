package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

// startXL starts a server whose models folder holds only the tiny SDXL
// base (xl) and refiner (xl-refiner) checkpoints.
func startXL(t *testing.T) (string, *Server, *logBuffer) {
	t.Helper()
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	dir := t.TempDir()
	for name, preset := range map[string]string{"xl": "sdxl-test", "xl-refiner": "sdxl-refiner-test"} {
		if _, err := synth.WriteSD(filepath.Join(dir, name+".safetensors"), synth.SDOptions{Preset: preset, Type: tensor.F16, Threads: 2}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logBuffer{}
	s, err := New(Config{ModelsDir: dir, DataDir: t.TempDir(), CLIPTokenizer: tok, Threads: 2, Context: 512,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts.URL, s, logs
}

// xlPicture runs a blocking txt2img on xl with extra fields and returns
// its picture and infotext.
func xlPicture(t *testing.T, url, extra string) (image.Image, string) {
	t.Helper()
	code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"a red apple","steps":4,"width":64,"height":64,"seed":9,
		"sampler_name":"Euler","override_settings":{"sd_model_checkpoint":"xl"}`+extra+`}`)
	if code != 200 {
		t.Fatalf("txt2img %s: %d %s", extra, code, b)
	}
	var out struct{ Images []string }
	if err := json.Unmarshal(b, &out); err != nil || len(out.Images) != 1 {
		t.Fatalf("txt2img %s: %v %s", extra, err, b)
	}
	img, text := decodeB64PNG(t, out.Images[0])
	return img, text["parameters"]
}

// TestRefinerOverAPI: refiner_checkpoint (a name or an A1111 title) hands
// the sampling over to the refiner: the infotext says so and the picture
// differs from the base model's alone; an unknown refiner is a 404 naming
// it; a pair that cannot fit the budget together is a 503 at submission.
func TestRefinerOverAPI(t *testing.T) {
	url, s, logs := startXL(t)
	plain, plainText := xlPicture(t, url, "")
	refined, text := xlPicture(t, url, `,"refiner_checkpoint":"xl-refiner.safetensors [0123456789]","refiner_switch_at":0.5`)
	if strings.Contains(plainText, "Refiner") {
		t.Errorf("without a refiner: %q", plainText)
	}
	if !strings.Contains(text, "Refiner: xl-refiner [") || !strings.Contains(text, "Refiner switch at: 0.5") {
		t.Errorf("with the refiner: %q", text)
	}
	if bytes.Equal(plain.(*image.RGBA).Pix, refined.(*image.RGBA).Pix) {
		t.Error("the refiner did not change the picture")
	}
	// "None" is no refiner: the same picture as without.
	if none, _ := xlPicture(t, url, `,"refiner_checkpoint":"None"`); !bytes.Equal(plain.(*image.RGBA).Pix, none.(*image.RGBA).Pix) {
		t.Error(`refiner_checkpoint "None" changed the picture`)
	}

	code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64,"refiner_checkpoint":"no-such-refiner"}`)
	if code != http.StatusNotFound || !strings.Contains(string(b), "no-such-refiner") || !strings.Contains(string(b), "refiner_checkpoint") {
		t.Errorf("unknown refiner: %d %s", code, b)
	}
	code, _, b = post(t, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","refiner_checkpoint":"no-such-refiner"}}`)
	if code != http.StatusNotFound || !strings.Contains(string(b), "no-such-refiner") {
		t.Errorf("job API, unknown refiner: %d %s", code, b)
	}

	// txt2img on the refiner alone: imagegen's notice is logged.
	if code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64,"override_settings":{"sd_model_checkpoint":"xl-refiner"}}`); code != 200 {
		t.Fatalf("refiner alone: %d %s", code, b)
	}
	if !strings.Contains(logs.String(), "image job notice") || !strings.Contains(logs.String(), "is an SDXL refiner") {
		t.Errorf("the refiner-alone notice was not logged:\n%s", logs.String())
	}

	// A budget that holds either model but not both.
	base, _ := s.img.lookup("xl")
	ref, _ := s.img.lookup("xl-refiner")
	s.res.budget = max(imageNeed(base.Size), imageNeed(ref.Size)) * 11 / 10
	code, _, b = post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64,"override_settings":{"sd_model_checkpoint":"xl"},"refiner_checkpoint":"xl-refiner"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "xl-refiner") || !strings.Contains(string(b), "together") {
		t.Errorf("pair over the budget: %d %s", code, b)
	}
}

// TestRefinerResidency: during a job with a refiner, base and refiner are
// both loaded and in use (neither evictable), progress names the refiner
// once it has taken over, and both stay within the budget; afterwards the
// refiner is an idle model like any other.
func TestRefinerResidency(t *testing.T) {
	url, s, _ := startXL(t)
	base, _ := s.img.lookup("xl")
	ref, _ := s.img.lookup("xl-refiner")
	// Room for the two models (as estimated) and little more.
	s.res.budget = (imageNeed(base.Size) + imageNeed(ref.Size)) * 11 / 10
	code, _, b := post(t, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","steps":150,"n_iter":4,"width":64,"height":64,
		"override_settings":{"sd_model_checkpoint":"xl"},"refiner_checkpoint":"xl-refiner","refiner_switch_at":0.1}}`)
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", code, b)
	}
	var job struct{ ID string }
	json.Unmarshal(b, &job)
	deadline := time.Now().Add(60 * time.Second)
	for {
		inUse := map[string]int{}
		for _, m := range s.res.list() {
			if m.kind == kindImage && !m.loading {
				inUse[m.name] = m.inUse
			}
		}
		_, pb := get(t, url+"/sdapi/v1/progress")
		var p struct{ TextInfo string }
		json.Unmarshal(pb, &p)
		if inUse["xl"] > 0 && inUse["xl-refiner"] > 0 && p.TextInfo == "refiner: xl-refiner" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("both models in use and the refiner named in progress: not seen (in use %v, progress %s)", inUse, pb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if used := s.res.used(); used > s.res.budget {
		t.Errorf("used %d of a budget of %d", used, s.res.budget)
	}
	// Asking to unload the refiner while the job runs: it stays until the end.
	if found, err := s.res.unload(kindImage, ref.Path); !found || err == nil {
		t.Errorf("unloading the refiner in use: found %v, %v", found, err)
	}
	if code, _, b := post(t, url+"/mica/v1/jobs/"+job.ID+"/cancel", ""); code != 200 {
		t.Fatalf("cancel: %d %s", code, b)
	}
	for {
		_, jb := get(t, url+"/mica/v1/jobs/"+job.ID)
		if !bytes.Contains(jb, []byte(`"state":"running"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job did not stop: %s", jb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The refiner was asked to go: gone once idle; the base stays (keep-alive).
	for _, m := range s.res.list() {
		if m.name == "xl-refiner" {
			t.Errorf("the refiner is still loaded after its job: %+v", m)
		}
	}
}

// TestQueuePositionsAndReorderEvents: the job listing gives every queued
// job its position (0 included, as GET /mica/v1/jobs/{id}), and a reorder
// or priority change is an event on the all-jobs stream with the new
// positions of the jobs that moved.
func TestQueuePositionsAndReorderEvents(t *testing.T) {
	url, _ := startImages(t)
	resp, err := http.Get(url + "/mica/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type event struct {
		Type      string         `json:"type"`
		Model     string         `json:"model"`
		Positions map[string]int `json:"positions"`
	}
	events := make(chan event, 1000)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e event
				if json.Unmarshal([]byte(l), &e) == nil {
					events <- e
				}
			}
		}
		close(events)
	}()
	submit := func(steps int) string {
		t.Helper()
		code, _, b := post(t, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","steps":`+strconv.Itoa(steps)+`,"n_iter":4,"width":64,"height":64}}`)
		if code != http.StatusAccepted {
			t.Fatalf("submit: %d %s", code, b)
		}
		var j struct{ ID string }
		json.Unmarshal(b, &j)
		return j.ID
	}
	running := submit(150) // with n_iter 4: runs long enough to reorder the others behind it
	ids := []string{submit(1), submit(1), submit(1)}
	type listed struct {
		Jobs []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Position *int   `json:"position"`
		} `json:"jobs"`
	}
	positions := func() map[string]int {
		t.Helper()
		_, b := get(t, url+"/mica/v1/jobs?state=queued,running")
		var l listed
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, j := range l.Jobs {
			switch {
			case j.State == "queued" && j.Position == nil:
				t.Errorf("queued job %s listed without a position: %s", j.ID, b)
			case j.State == "queued":
				out[j.ID] = *j.Position
			case j.Position != nil:
				t.Errorf("%s job %s listed with a position", j.State, j.ID)
			}
		}
		return out
	}
	// The first job may still be waiting for its model: wait until it runs.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, b := get(t, url+"/mica/v1/jobs/"+running)
		if bytes.Contains(b, []byte(`"state":"running"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first job did not start: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]int{ids[0]: 0, ids[1]: 1, ids[2]: 2}
	if got := positions(); !maps.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	// The single job's answer agrees (0 included).
	_, b := get(t, url+"/mica/v1/jobs/"+ids[0])
	if !bytes.Contains(b, []byte(`"position":0`)) {
		t.Errorf("GET job: %s", b)
	}
	nextReorder := func() event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Type == "reordered" {
					return e
				}
			case <-timeout:
				t.Fatal("no reordered event")
			}
		}
	}
	if code, _, b := post(t, url+"/mica/v1/jobs/reorder", `{"ids":["`+ids[2]+`","`+ids[0]+`"]}`); code != 200 {
		t.Fatalf("reorder: %d %s", code, b)
	}
	// The event names the jobs that moved (ids[1] stays in the middle).
	if e, moved := nextReorder(), map[string]int{ids[2]: 0, ids[0]: 2}; e.Model != "sd-test" || !maps.Equal(e.Positions, moved) {
		t.Errorf("reordered event %+v, want positions %v", e, moved)
	}
	want = map[string]int{ids[2]: 0, ids[1]: 1, ids[0]: 2}
	if got := positions(); !maps.Equal(got, want) {
		t.Errorf("listed after reorder %v, want %v", got, want)
	}
	if code, _, b := post(t, url+"/mica/v1/jobs/"+ids[0]+"/priority", `{"priority":5}`); code != 200 {
		t.Fatalf("priority: %d %s", code, b)
	}
	want = map[string]int{ids[0]: 0, ids[2]: 1, ids[1]: 2}
	if e := nextReorder(); !maps.Equal(e.Positions, want) {
		t.Errorf("priority event %+v, want positions %v", e, want)
	}
	for _, id := range append(ids, running) {
		post(t, url+"/mica/v1/jobs/"+id+"/cancel", "")
	}
}
