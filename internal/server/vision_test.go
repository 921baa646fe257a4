package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/format/gguf"
	"mica/internal/llm/engine"
	"mica/internal/testenv"
	"mica/internal/tokenizer"
)

// visionModels makes a models folder of links to the tiny reference models:
// gemma3 with its projector beside it (mmproj-gemma3.gguf), and gemma4
// with a Gemma 3 projector beside it (a mismatched pair).
func visionModels(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for link, target := range map[string]string{
		"gemma3.gguf":        testenv.Shared(t, "reference", "gemma", "gemma3-tiny-f32.gguf"),
		"gemma4.gguf":        testenv.Shared(t, "reference", "gemma", "gemma4-tiny-f32.gguf"),
		"mmproj-gemma3.gguf": testenv.Shared(t, "reference", "vision", "mmproj-gemma3-tiny-f32.gguf"),
		"mmproj-gemma4.gguf": testenv.Shared(t, "reference", "vision", "mmproj-gemma3-tiny-f32.gguf"),
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startVision(t testing.TB, cfg Config) (*httptest.Server, *Server) {
	t.Helper()
	cfg.ModelsDir = visionModels(t)
	cfg.Threads, cfg.Context = 2, 1024
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuffer{}, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts, s
}

func devPNG(t testing.TB) []byte {
	b, err := os.ReadFile(testenv.Shared(t, "reference", "vision", "dev-512x384.png"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadedEngine is the server's loaded engine.
func loadedEngine(t testing.TB, s *Server) *engine.Engine {
	rs := s.res.runners()
	if len(rs) == 0 {
		t.Fatal("no model is loaded")
	}
	return rs[0].(*engineRunner).Engine
}

// refArgmax is the reference's greedy first token, as text.
func refArgmax(t testing.TB) (string, int) {
	var ref struct {
		SequenceLength int       `json:"sequence_length"`
		LogitsLast     []float32 `json:"logits_last"`
	}
	testenv.GzipJSON(t, testenv.Shared(t, "reference", "vision", "gemma3-vision.json.gz"), &ref)
	bm := 0
	for j, v := range ref.LogitsLast {
		if v > ref.LogitsLast[bm] {
			bm = j
		}
	}
	g, err := gguf.Open(testenv.Shared(t, "reference", "gemma", "gemma3-tiny-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tok, err := tokenizer.FromGGUF(g)
	if err != nil {
		t.Fatal(err)
	}
	d := tok.NewDecoder()
	return d.Add(int32(bm)) + d.Flush(), ref.SequenceLength
}

// TestVisionParityHTTP: Ollama's /api/generate with raw: true and an image
// lays the prompt out as llama.cpp's mtmd (the reference's 298 positions)
// and answers the reference's greedy first token; an OpenAI chat request
// with a data: URL and Ollama's /api/chat with the same conversation give
// the same answer as the raw prompt spelling out the chat format with
// <__media__>, so the chat path lays images out as `mica dev logits` does.
func TestVisionParityHTTP(t *testing.T) {
	ts, s := startVision(t, Config{})
	img := base64.StdEncoding.EncodeToString(devPNG(t))
	want, positions := refArgmax(t)

	code, _, body := post(t, ts.URL+"/api/generate", fmt.Sprintf(`{"model":"gemma3","raw":true,"stream":false,
		"prompt":"Describe this image: <__media__> What is in it?","images":[%q],"options":{"temperature":0,"num_predict":1}}`, img))
	if code != 200 {
		t.Fatalf("raw generate: %d %s", code, body)
	}
	var gen struct {
		Response        string `json:"response"`
		PromptEvalCount int    `json:"prompt_eval_count"`
	}
	json.Unmarshal(body, &gen)
	if gen.PromptEvalCount != positions || gen.Response != want {
		t.Errorf("raw generate: %d positions, answer %q; want %d and %q", gen.PromptEvalCount, gen.Response, positions, want)
	}

	raw := fmt.Sprintf(`{"model":"gemma3","raw":true,"stream":false,"images":[%q],"options":{"temperature":0,"num_predict":4},
		"prompt":"<start_of_turn>user\n<__media__>What is this?<end_of_turn>\n<start_of_turn>model\n"}`, img)
	code, _, body = post(t, ts.URL+"/api/generate", raw)
	if code != 200 {
		t.Fatalf("raw chat prompt: %d %s", code, body)
	}
	json.Unmarshal(body, &gen)
	rawAnswer, rawPositions := gen.Response, gen.PromptEvalCount

	code, _, body = post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(`{"model":"gemma3","temperature":0,"max_tokens":4,
		"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}},{"type":"text","text":"What is this?"}]}]}`, img))
	if code != 200 {
		t.Fatalf("openai chat: %d %s", code, body)
	}
	var oc struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			Details      struct {
				Cached int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	json.Unmarshal(body, &oc)
	if len(oc.Choices) != 1 || oc.Choices[0].Message.Content != rawAnswer || oc.Usage.PromptTokens != rawPositions {
		t.Errorf("openai chat: %s; want the raw prompt's %q over %d positions", body, rawAnswer, rawPositions)
	}

	code, _, body = post(t, ts.URL+"/api/chat", fmt.Sprintf(`{"model":"gemma3","stream":false,"options":{"temperature":0,"num_predict":4},
		"messages":[{"role":"user","content":"What is this?","images":[%q]}]}`, img))
	if code != 200 {
		t.Fatalf("ollama chat: %d %s", code, body)
	}
	var ch struct {
		Message struct{ Content string } `json:"message"`
	}
	json.Unmarshal(body, &ch)
	if ch.Message.Content != rawAnswer {
		t.Errorf("ollama chat answered %q, want %q", ch.Message.Content, rawAnswer)
	}
	// One encode for five image requests: the embedding cache and the
	// prompt cache (the last two reused the third's positions).
	if n, _, _, _, _ := loadedEngine(t, s).ImageStats(); n != 1 {
		t.Errorf("%d encodes of one image, want 1", n)
	}
}

// TestVisionFollowUp: a follow-up turn reuses the cached conversation
// through the image; only the new turn is prefilled.
func TestVisionFollowUp(t *testing.T) {
	ts, s := startVision(t, Config{})
	img := "data:image/png;base64," + base64.StdEncoding.EncodeToString(devPNG(t))
	turn1 := fmt.Sprintf(`{"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image_url","image_url":{"url":%q}},{"type":"text","text":"What is it?"}]}`, img)
	usage := func(msgs string) (int, int, string) {
		code, _, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"gemma3","temperature":0,"max_tokens":3,"messages":[`+msgs+`]}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var r struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
				Details      struct {
					Cached int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		json.Unmarshal(body, &r)
		return r.Usage.PromptTokens, r.Usage.Details.Cached, r.Choices[0].Message.Content
	}
	p1, c1, answer := usage(turn1)
	if c1 != 0 || p1 < 256 {
		t.Fatalf("first turn: %d positions, %d cached", p1, c1)
	}
	a, _ := json.Marshal(answer)
	p2, c2, _ := usage(turn1 + `,{"role":"assistant","content":` + string(a) + `},{"role":"user","content":"More?"}`)
	t.Logf("follow-up: %d positions, %d cached, %d prefilled", p2, c2, p2-c2)
	if c2 < p1-1 {
		t.Errorf("follow-up reused %d positions, want at least %d (through the image)", c2, p1-1)
	}
	if n, _, _, _, _ := loadedEngine(t, s).ImageStats(); n != 1 {
		t.Errorf("%d encodes, want 1", n)
	}
}

// TestVisionErrors: every bad image input is a 4xx in the dialect's error
// shape, naming the problem, and the server goes on.
func TestVisionErrors(t *testing.T) {
	ts, _ := startVision(t, Config{Vision: VisionConfig{MaxImages: 2}})
	png := devPNG(t)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	oa := func(model, url string, n int) string {
		parts := strings.Repeat(fmt.Sprintf(`{"type":"image_url","image_url":{"url":%q}},`, url), n)
		return fmt.Sprintf(`{"model":%q,"max_tokens":2,"messages":[{"role":"user","content":[%s{"type":"text","text":"Hi"}]}]}`, model, parts)
	}
	ol := func(model, img string, n int) string {
		imgs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("%q,", img), n), ",")
		return fmt.Sprintf(`{"model":%q,"stream":false,"options":{"num_predict":2},"messages":[{"role":"user","content":"Hi","images":[%s]}]}`, model, imgs)
	}
	for _, c := range []struct {
		name, path, body, want string
		status                 int
	}{
		{"corrupt", "/v1/chat/completions", oa("gemma3", "data:image/png;base64,"+b64([]byte("\x89PNG\r\n\x1a\ngarbage")), 1), "image 1", 400},
		{"truncated", "/v1/chat/completions", oa("gemma3", "data:image/png;base64,"+b64(png[:len(png)/3]), 1), "corrupt", 400},
		{"unsupported", "/v1/chat/completions", oa("gemma3", "data:image/bmp;base64,"+b64([]byte("BM not supported")), 1), "unsupported", 400},
		{"not base64", "/v1/chat/completions", oa("gemma3", "data:image/png;base64,@@@", 1), "base64", 400},
		{"not a data URL", "/v1/chat/completions", oa("gemma3", "file:///etc/passwd", 1), "data: URLs", 400},
		{"remote disabled", "/v1/chat/completions", oa("gemma3", "https://example.com/cat.png", 1), "does not fetch", 400},
		{"too many", "/v1/chat/completions", oa("gemma3", "data:image/png;base64,"+b64(png), 3), "limit is 2", 400},
		{"mismatched pair", "/v1/chat/completions", oa("gemma4", "data:image/png;base64,"+b64(png), 1), "gemma3 projector", 400},
		{"ollama corrupt", "/api/chat", ol("gemma3", b64([]byte("GIF89a broken")), 1), "image 1", 400},
		{"ollama not base64", "/api/chat", ol("gemma3", "!!!", 1), "base64", 400},
		{"ollama too many", "/api/chat", ol("gemma3", b64(png), 3), "limit is 2", 400},
		{"ollama mismatched pair", "/api/chat", ol("gemma4", b64(png), 1), "cannot read images", 400},
		{"ollama generate", "/api/generate", fmt.Sprintf(`{"model":"gemma3","prompt":"x <__media__> <__media__>","raw":true,"stream":false,"images":[%q]}`, b64(png)), "marks 2", 400},
		{"projector as model", "/api/chat", ol("mmproj-gemma3", b64(png), 1), "vision projector", 404},
		{"budget top-level", "/v1/chat/completions", strings.Replace(oa("gemma3", "data:image/png;base64,"+b64(png), 1), `"max_tokens":2`, `"max_tokens":2,"image_tokens":280`, 1),
			"image_tokens: image 1: gemma3 images always take 256 tokens", 400},
		{"budget per part", "/v1/chat/completions", strings.Replace(oa("gemma3", "data:image/png;base64,"+b64(png), 1), `"}}`, `","image_tokens":70}}`, 1),
			"messages[0].content[0].image_url.image_tokens: image 1:", 400},
		{"budget not positive", "/v1/chat/completions", strings.Replace(oa("gemma3", "data:image/png;base64,"+b64(png), 1), `"max_tokens":2`, `"max_tokens":2,"image_tokens":0`, 1),
			"image_tokens 0 must be a positive", 400},
		{"ollama budget", "/api/chat", strings.Replace(ol("gemma3", b64(png), 1), `"num_predict":2`, `"num_predict":2,"image_tokens":1120`, 1),
			"options.image_tokens: image 1: gemma3 images always take 256", 400},
	} {
		code, _, body := post(t, ts.URL+c.path, c.body)
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		json.Unmarshal(body, &e)
		msg := string(e.Error)
		if strings.HasPrefix(c.path, "/v1/") {
			var oe struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			}
			if json.Unmarshal(e.Error, &oe) != nil || oe.Type == "" {
				t.Errorf("%s: not an OpenAI error: %s", c.name, body)
			}
			msg = oe.Message
		} else {
			var s string
			if json.Unmarshal(e.Error, &s) != nil {
				t.Errorf("%s: not an Ollama error: %s", c.name, body)
			}
			msg = s
		}
		if code != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want %d mentioning %q", c.name, code, msg, c.status, c.want)
		}
	}
	// The server still answers.
	code, _, body := post(t, ts.URL+"/api/chat", ol("gemma3", b64(png), 1))
	if code != http.StatusOK {
		t.Errorf("after bad requests: %d %s", code, body)
	}
	// Gemma 3 ignores detail (its canvas is fixed) and takes its own 256.
	for _, extra := range []string{`","detail":"high"}}`, `","detail":"low","image_tokens":256}}`} {
		body := strings.Replace(oa("gemma3", "data:image/png;base64,"+b64(png), 1), `"}}`, extra, 1)
		if code, _, resp := post(t, ts.URL+"/v1/chat/completions", body); code != http.StatusOK {
			t.Errorf("gemma3 with %s: %d %s", extra, code, resp)
		}
	}
	// The catalogue lists models, not projectors, and shows vision.
	_, tags := get(t, ts.URL+"/api/tags")
	if strings.Contains(string(tags), "mmproj") {
		t.Errorf("the projector is listed as a model: %s", tags)
	}
	_, _, show := post(t, ts.URL+"/api/show", `{"model":"gemma3"}`)
	if !strings.Contains(string(show), `"vision"`) {
		t.Errorf("/api/show lacks the vision capability: %s", show)
	}
}

// TestVisionRemote: with remote images on, an http URL is fetched within
// the size limit.
func TestVisionRemote(t *testing.T) {
	png := devPNG(t)
	imgs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing.png" {
			http.NotFound(w, r)
			return
		}
		w.Write(png)
	}))
	defer imgs.Close()
	ts, _ := startVision(t, Config{Vision: VisionConfig{RemoteImages: true, MaxImageBytes: int64(len(png))}})
	body := func(url string) string {
		return fmt.Sprintf(`{"model":"gemma3","max_tokens":2,"messages":[{"role":"user","content":[{"type":"image_url","image_url":%q},{"type":"text","text":"Hi"}]}]}`, url)
	}
	if code, _, b := post(t, ts.URL+"/v1/chat/completions", body(imgs.URL+"/dev.png")); code != 200 {
		t.Errorf("remote image: %d %s", code, b)
	}
	if code, _, b := post(t, ts.URL+"/v1/chat/completions", body(imgs.URL+"/missing.png")); code != 400 || !strings.Contains(string(b), "404") {
		t.Errorf("missing remote image: %d %s", code, b)
	}
	ts2, _ := startVision(t, Config{Vision: VisionConfig{RemoteImages: true, MaxImageBytes: 1000}})
	if code, _, b := post(t, ts2.URL+"/v1/chat/completions", body(imgs.URL+"/dev.png")); code != 400 || !strings.Contains(string(b), "limit") {
		t.Errorf("oversized remote image: %d %s", code, b)
	}
}

func TestParseProjectors(t *testing.T) {
	m, err := ParseProjectors([]string{"gemma3=/m/mmproj.gguf", " other:latest = x.gguf "})
	if err != nil || len(m) != 2 || m["gemma3"] != "/m/mmproj.gguf" || m["other"] != "x.gguf" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range [][]string{{"gemma3"}, {"=x"}, {"a/b=x"}, {"a="}, {"a=x", "a=y"}} {
		if _, err := ParseProjectors(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestVisionExplicitProjector: a configured projector that does not fit
// its model fails the load, naming the mismatch.
func TestVisionExplicitProjector(t *testing.T) {
	ts, _ := startVision(t, Config{Vision: VisionConfig{Projectors: map[string]string{
		"gemma3": testenv.Shared(t, "reference", "vision", "mmproj-gemma4-tiny-f32.gguf")}}})
	code, _, body := post(t, ts.URL+"/api/chat", `{"model":"gemma3","stream":false,"messages":[{"role":"user","content":"hi"}]}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "gemma4v projector") {
		t.Errorf("%d %s", code, body)
	}
}

// TestProjectorCache: the answer is kept while the model's folder is
// unchanged, and found again when a projector file comes or goes.
func TestProjectorCache(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	copyFile(t, testenv.Shared(t, "reference", "gemma", "gemma3-tiny-f32.gguf"), model)
	var c projectorCache
	warn := func(err error) { t.Log(err) }
	if p := c.find(model, warn); p != "" {
		t.Fatalf("no projector yet, found %q", p)
	}
	proj := filepath.Join(dir, "mmproj-tiny.gguf")
	copyFile(t, testenv.Shared(t, "reference", "vision", "mmproj-gemma3-tiny-f32.gguf"), proj)
	if p := c.find(model, warn); p != proj {
		t.Fatalf("after adding it: %q, want %q", p, proj)
	}
	if p := c.find(model, warn); p != proj {
		t.Fatalf("cached: %q", p)
	}
	if err := os.Remove(proj); err != nil {
		t.Fatal(err)
	}
	if p := c.find(model, warn); p != "" {
		t.Fatalf("after removing it: %q", p)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
