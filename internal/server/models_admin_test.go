package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mica/internal/testenv"
)

type adminList struct {
	Models []modelJSON `json:"models"`
	Memory memoryJSON  `json:"memory"`
}

func adminModelsOf(t *testing.T, url string) adminList {
	t.Helper()
	code, body := get(t, url+"/mica/v1/models")
	if code != 200 {
		t.Fatalf("GET /mica/v1/models: %d %s", code, body)
	}
	var l adminList
	decodeJSON(t, body, &l)
	return l
}

func (l adminList) find(name, kind string) (modelJSON, bool) {
	for _, m := range l.Models {
		if m.Name == name && m.Kind == kind {
			return m, true
		}
	}
	return modelJSON{}, false
}

// TestAdminModels: the list, load and unload, and their errors.
func TestAdminModels(t *testing.T) {
	dir := twoModels(t, "a", "b")
	// "b" is also an image model's name: kind must be given.
	if err := os.WriteFile(filepath.Join(dir, "b.safetensors"), []byte("not read by the listing"), 0o644); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	ts, s, loads := startBudget(t, dir, 0, &fake{script: scripted[2:3], block: block})

	l := adminModelsOf(t, ts.URL)
	a, ok := l.find("a", "llm")
	if !ok || a.Loaded || a.SizeBytes <= 0 || a.MemoryBytes <= a.SizeBytes || a.ExpiresAt != "" || a.Vision {
		t.Fatalf("a before loading: %+v (%+v)", a, l)
	}
	if _, ok := l.find("b", "image"); !ok || len(l.Models) != 3 {
		t.Fatalf("list %+v", l)
	}
	if (l.Memory.BudgetBytes <= 0) != (MachineMemory() <= 0) || l.Memory.UsedBytes != 0 {
		t.Fatalf("memory %+v", l.Memory)
	}

	code, _, body := post(t, ts.URL+"/mica/v1/models/a/load?keep_alive=1h", "")
	var m modelJSON
	decodeJSON(t, body, &m)
	exp, err := time.Parse(time.RFC3339, m.ExpiresAt)
	if code != 200 || !m.Loaded || m.Kind != "llm" || err != nil || time.Until(exp) < 59*time.Minute || loads.Load() != 1 {
		t.Fatalf("load: %d %s", code, body)
	}
	if l := adminModelsOf(t, ts.URL); l.Memory.UsedBytes != m.MemoryBytes {
		t.Fatalf("used %d, model %d", l.Memory.UsedBytes, m.MemoryBytes)
	}
	// Kept until its memory is needed: no expiry.
	code, _, body = post(t, ts.URL+"/mica/v1/models/a/load?keep_alive=-1", "")
	m = modelJSON{}
	if decodeJSON(t, body, &m); code != 200 || !m.Loaded || m.ExpiresAt != "" || loads.Load() != 1 {
		t.Fatalf("load -1: %d %s", code, body)
	}

	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/mica/v1/models/nope/load", 404, "not found"},
		{"/mica/v1/models/b/load", 409, "?kind=llm"},
		{"/mica/v1/models/a/load?kind=video", 400, "use llm or image"},
		{"/mica/v1/models/a/load?keep_alive=soon", 400, "keep_alive"},
		{"/mica/v1/models/a/load?kind=image", 404, "image model"},
	} {
		code, _, body := post(t, ts.URL+c.path, "")
		if code != c.status || !strings.Contains(string(body), c.want) || !strings.Contains(string(body), `"error":{"message":`) {
			t.Errorf("%s: %d %s", c.path, code, body)
		}
	}

	// A model in use is not unloaded: 409, then unloaded when its request ends.
	done := make(chan int)
	go func() { c, _, _ := post(t, ts.URL+"/v1/chat/completions", `{"model":"a",`+okMsgs+`}`); done <- c }()
	deadline := time.Now().Add(5 * time.Second)
	for m, _ := adminModelsOf(t, ts.URL).find("a", "llm"); m.InUse == 0; m, _ = adminModelsOf(t, ts.URL).find("a", "llm") {
		if time.Now().After(deadline) {
			t.Fatal("the request did not start")
		}
		time.Sleep(2 * time.Millisecond)
	}
	code, _, body = post(t, ts.URL+"/mica/v1/models/a/unload", "")
	if code != http.StatusConflict || !strings.Contains(string(body), "as soon as they end") {
		t.Fatalf("unload in use: %d %s", code, body)
	}
	if m, _ := adminModelsOf(t, ts.URL).find("a", "llm"); !m.Loaded {
		t.Fatal("a model in use was unloaded")
	}
	close(block)
	if c := <-done; c != 200 {
		t.Fatalf("the running request got %d", c)
	}
	if m, _ := adminModelsOf(t, ts.URL).find("a", "llm"); m.Loaded {
		t.Fatalf("not unloaded after its request: %+v", m)
	}

	// Unload of an idle model, and of one not loaded (idempotent).
	post(t, ts.URL+"/mica/v1/models/a/load", "")
	for range 2 {
		code, _, body = post(t, ts.URL+"/mica/v1/models/a/unload?kind=llm", "")
		if decodeJSON(t, body, &m); code != 200 || m.Loaded {
			t.Fatalf("unload: %d %s", code, body)
		}
	}
	if len(s.res.list()) != 0 {
		t.Fatalf("still loaded: %+v", s.res.list())
	}

	// Too big for the budget: 503 with Retry-After.
	s.res.budget = 1 << 20
	code, h, body := post(t, ts.URL+"/mica/v1/models/a/load", "")
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(body), "memory budget is 1 MiB") {
		t.Fatalf("too big: %d %v %s", code, h, body)
	}
}

// TestAdminModelsAuth: the management API needs the key like the rest.
func TestAdminModelsAuth(t *testing.T) {
	ts, _, _ := start(t, Config{APIKeys: []string{"sekrit-key-1"}})
	for _, p := range []string{"/mica/v1/models"} {
		if code, _ := get(t, ts.URL+p); code != 401 {
			t.Errorf("GET %s without a key: %d", p, code)
		}
	}
	if code, _, _ := post(t, ts.URL+"/mica/v1/models/tiny/load", ""); code != 401 {
		t.Errorf("load without a key: %d", code)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/mica/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sekrit-key-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("with the key: %d", resp.StatusCode)
	}
}

// TestCheckpointUnloadReload: A1111's unload-checkpoint and
// reload-checkpoint on the tiny SD checkpoint, which then shares the
// budget with the LLMs (/mica/v1/models and /sdapi/v1/memory show it).
func TestCheckpointUnloadReload(t *testing.T) {
	startImagesB(t) // writes the sd-test checkpoint
	ts, s, _ := start(t, Config{DataDir: t.TempDir(), CLIPTokenizer: testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")})
	if code, _, b := post(t, ts.URL+"/sdapi/v1/options", `{"sd_model_checkpoint":"sd-test"}`); code != 200 {
		t.Fatalf("options: %d %s", code, b)
	}
	if code, _, b := post(t, ts.URL+"/sdapi/v1/reload-checkpoint", ""); code != 200 || string(b) != "{}\n" {
		t.Fatalf("reload: %d %s", code, b)
	}
	if l := s.img.loaded(); len(l) != 1 || l[0] != "sd-test" {
		t.Fatalf("loaded %v", l)
	}
	l := adminModelsOf(t, ts.URL)
	m, ok := l.find("sd-test", "image")
	if !ok || !m.Loaded || m.MemoryBytes < m.SizeBytes || l.Memory.UsedBytes != m.MemoryBytes {
		t.Fatalf("%+v", l)
	}
	_, body := get(t, ts.URL+"/sdapi/v1/memory")
	if !strings.Contains(string(body), `"budget":{"budget_bytes":`) || !strings.Contains(string(body), `"used_bytes":`) {
		t.Fatalf("memory: %s", body)
	}
	if code, _, b := post(t, ts.URL+"/sdapi/v1/unload-checkpoint", ""); code != 200 || string(b) != "{}\n" {
		t.Fatalf("unload: %d %s", code, b)
	}
	if l := s.img.loaded(); len(l) != 0 {
		t.Fatalf("still loaded %v", l)
	}
	// A budget too small for the checkpoint: its jobs are refused at once.
	s.res.budget = 1 << 20
	code, h, b := post(t, ts.URL+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64}`)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(b), "memory budget") {
		t.Fatalf("too big: %d %v %s", code, h, b)
	}
}
