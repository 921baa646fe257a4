package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mica/internal/jobs"
)

// filesUnder counts the regular files under dir.
func filesUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func historyLen(t *testing.T, url string) int {
	t.Helper()
	_, b := get(t, url+"/mica/v1/history")
	var h struct {
		Images []any `json:"images"`
	}
	decodeJSON(t, b, &h)
	return len(h.Images)
}

// TestSaveImages: A1111's save_images. On /sdapi/v1/txt2img it defaults to
// false, as in A1111: the picture is answered but never written to the
// outputs or the history, and its temporary copy is gone once answered.
// The job API defaults to saving; with save_images false its pictures are
// temporary, served until the job is deleted.
func TestSaveImages(t *testing.T) {
	url, s := startImages(t)
	out, tmp := jobs.OutputsDir(s.img.data), jobs.TempDir(s.img.data)
	code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64}`)
	var resp struct {
		Images []string `json:"images"`
	}
	decodeJSON(t, b, &resp)
	if code != 200 || len(resp.Images) != 1 {
		t.Fatalf("%d %s", code, b)
	}
	if n := filesUnder(t, out) + filesUnder(t, tmp); n != 0 || historyLen(t, url) != 0 {
		t.Fatalf("save_images unset: %d files kept, %d in history", n, historyLen(t, url))
	}
	if code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64,"save_images":true}`); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if filesUnder(t, out) != 1 || historyLen(t, url) != 1 {
		t.Fatalf("save_images true: %d files, %d in history", filesUnder(t, out), historyLen(t, url))
	}

	code, _, b = post(t, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","steps":1,"width":64,"height":64,"save_images":false}}`)
	var job jobJSON
	decodeJSON(t, b, &job)
	if code != 202 {
		t.Fatalf("submit %d %s", code, b)
	}
	ch, stop := s.img.q.Subscribe(job.ID)
	for range ch {
	}
	stop()
	_, b = get(t, url+"/mica/v1/jobs/"+job.ID)
	decodeJSON(t, b, &job)
	if job.State != "finished" || len(job.Images) != 1 || !strings.HasPrefix(job.Images[0], "/mica/v1/outputs/temp/") {
		t.Fatalf("job %s", b)
	}
	if code, img := get(t, url+job.Images[0]); code != 200 || !strings.HasPrefix(string(img), "\x89PNG") {
		t.Fatalf("temporary image: %d", code)
	}
	if filesUnder(t, out) != 1 || historyLen(t, url) != 1 {
		t.Fatal("a save_images false job reached the outputs or the history")
	}
	if code, _, _ := send(t, "DELETE", url+"/mica/v1/jobs/"+job.ID); code != 204 {
		t.Fatalf("delete %d", code)
	}
	if code, _ := get(t, url+job.Images[0]); code != 404 || filesUnder(t, tmp) != 0 {
		t.Fatalf("the temporary image outlived its job: %d", code)
	}
}

// send sends a request without a body.
func send(t *testing.T, method, url string) (int, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestModelHashes: sd-models reports the checkpoint's SHA-256 and A1111's
// short hash once the background worker has computed them (cached in the
// data folder), and generated pictures then carry "Model hash:".
func TestModelHashes(t *testing.T) {
	url, s := startImages(t)
	raw, err := os.ReadFile(filepath.Join(models(t), "sd-test.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:])
	type entry struct {
		Title  string  `json:"title"`
		Name   string  `json:"model_name"`
		Hash   *string `json:"hash"`
		SHA256 *string `json:"sha256"`
	}
	deadline := time.Now().Add(10 * time.Second)
	var got entry
	for got.SHA256 == nil {
		if time.Now().After(deadline) {
			t.Fatal("the hash was never computed")
		}
		_, b := get(t, url+"/sdapi/v1/sd-models")
		var l []entry
		decodeJSON(t, b, &l)
		for _, e := range l {
			if e.Name == "sd-test" {
				got = e
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if *got.SHA256 != want || got.Hash == nil || *got.Hash != want[:10] || got.Title != "sd-test.safetensors ["+want[:10]+"]" {
		t.Fatalf("sd-models entry %+v %s %v", got, *got.SHA256, got.Hash)
	}
	// The cache answers a new process at once.
	h := openHashCache(s.img.data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if sha := h.sha256(filepath.Join(models(t), "sd-test.safetensors")); sha != want {
		t.Fatalf("cached %q", sha)
	}
	h.close()
	// The title selects the model, and the infotext names its hash.
	code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64,
		"override_settings":{"sd_model_checkpoint":"`+got.Title+`"}}`)
	var resp struct {
		Info string `json:"info"`
	}
	decodeJSON(t, b, &resp)
	var info struct {
		Hash      string   `json:"sd_model_hash"`
		Infotexts []string `json:"infotexts"`
	}
	if code != 200 || json.Unmarshal([]byte(resp.Info), &info) != nil || info.Hash != want[:10] || len(info.Infotexts) != 1 ||
		!strings.Contains(info.Infotexts[0], "Model hash: "+want[:10]+", Model: sd-test") {
		t.Fatalf("%d %s", code, b)
	}
}

func TestWithModelHash(t *testing.T) {
	in := "a cat\nSteps: 1, Seed: 2, Model: m, Version: mica x"
	if got := withModelHash(in, "0123456789"); got != "a cat\nSteps: 1, Seed: 2, Model hash: 0123456789, Model: m, Version: mica x" {
		t.Fatalf("%q", got)
	}
	if withModelHash(in, "") != in {
		t.Fatal("changed without a hash")
	}
}

// TestBudgetSharedByLLMAndImage: with room for one model, generating an
// image unloads the idle LLM and a chat unloads the idle image model.
func TestBudgetSharedByLLMAndImage(t *testing.T) {
	url, s := startImages(t)
	llm, err := s.cat.lookup(testModel)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.img.lookup("sd-test")
	if err != nil {
		t.Fatal(err)
	}
	s.res.budget = max(llmNeed(s.withProjector(llm), s.cfg.Context, s.cfg.Batch), imageNeed(img.Size)) * 6 / 5
	loaded := func() (names []string) {
		for _, m := range s.res.list() {
			names = append(names, m.kind+":"+m.name)
		}
		return names
	}
	if code, _, b := post(t, url+"/mica/v1/models/"+testModel+"/load", ""); code != 200 {
		t.Fatalf("load: %d %s", code, b)
	}
	if code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64}`); code != 200 {
		t.Fatalf("txt2img: %d %s", code, b)
	}
	if got := strings.Join(loaded(), ","); got != "image:sd-test" {
		t.Fatalf("after the image: %s", got)
	}
	if code, _, b := post(t, url+"/api/generate", `{"model":"`+testModel+`","prompt":"hi","stream":false,"options":{"num_predict":1}}`); code != 200 {
		t.Fatalf("generate: %d %s", code, b)
	}
	if got := strings.Join(loaded(), ","); got != "llm:"+testModel {
		t.Fatalf("after the chat: %s", got)
	}
}
