package server

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"mica/internal/testenv"
)

func getWith(t *testing.T, url string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAPIKeys(t *testing.T) {
	ts, _, _ := start(t, Config{APIKeys: []string{"secret-key-123", "alice:wonderland-pw"}, DataDir: t.TempDir()})
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for _, c := range []struct {
		path, auth string
		want       int
		body       string
	}{
		{"/v1/models", "", 401, `"code":"invalid_api_key"`},
		{"/v1/models", "Bearer wrong-key-456", 401, `"invalid_api_key"`},
		{"/v1/models", "Bearer secret-key-123", 200, `"data"`},
		{"/api/tags", "", 401, `{"error":"missing or wrong API key`},
		{"/api/tags", "Bearer secret-key-123", 200, `"models"`},
		{"/sdapi/v1/samplers", "", 401, `{"detail":`},
		{"/sdapi/v1/samplers", basic("anyone", "secret-key-123"), 200, `"Euler a"`},
		{"/sdapi/v1/samplers", basic("alice", "wonderland-pw"), 200, `"Euler a"`},
		{"/sdapi/v1/samplers", basic("bob", "wonderland-pw"), 401, `"detail"`},
		{"/health", "", 200, `"ok"`},
	} {
		h := map[string]string{}
		if c.auth != "" {
			h["Authorization"] = c.auth
		}
		code, hdr, body := getWith(t, ts.URL+c.path, h)
		if code != c.want || !strings.Contains(body, c.body) {
			t.Errorf("%s with %q: %d %s (want %d with %s)", c.path, c.auth, code, body, c.want, c.body)
		}
		if code == 401 && !strings.Contains(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate", c.path)
		}
	}
	if _, err := New(Config{ModelsDir: t.TempDir(), APIKeys: []string{"short"}}); err == nil {
		t.Fatal("a 5-character key was accepted")
	}
}

func TestRateLimitPerKey(t *testing.T) {
	ts, _, _ := start(t, Config{APIKeys: []string{"key-one-aaaa", "key-two-bbbb"}, RateLimit: 2})
	one := map[string]string{"Authorization": "Bearer key-one-aaaa"}
	for i := 0; i < 2; i++ {
		if code, _, body := getWith(t, ts.URL+"/v1/models", one); code != 200 {
			t.Fatalf("request %d: %d %s", i+1, code, body)
		}
	}
	code, hdr, body := getWith(t, ts.URL+"/v1/models", one)
	if code != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(body, "rate limit") {
		t.Fatalf("third request: %d %q %s", code, hdr.Get("Retry-After"), body)
	}
	// Another key has its own budget.
	if code, _, body := getWith(t, ts.URL+"/v1/models", map[string]string{"Authorization": "Bearer key-two-bbbb"}); code != 200 {
		t.Fatalf("second key: %d %s", code, body)
	}
}

func TestJobsPerKey(t *testing.T) {
	startImages(t) // writes the sd-test checkpoint into the models folder
	ts, _, _ := start(t, Config{APIKeys: []string{"key-one-aaaa", "key-two-bbbb"}, MaxJobsPerKey: 1, DataDir: t.TempDir(),
		CLIPTokenizer: testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")})
	submit := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/mica/v1/jobs", strings.NewReader(`{"kind":"txt2img","params":{"prompt":"x","steps":30,"width":64,"height":64}}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := submit("key-one-aaaa"); code != 202 {
		t.Fatalf("first job: %d %s", code, b)
	}
	if code, b := submit("key-one-aaaa"); code != 429 || !strings.Contains(b, "limit") {
		t.Fatalf("second job of the same key: %d %s", code, b)
	}
	if code, b := submit("key-two-bbbb"); code != 202 {
		t.Fatalf("another key's job: %d %s", code, b)
	}
}
