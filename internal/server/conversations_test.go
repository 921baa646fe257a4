package server

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/convstore"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConversations(t *testing.T) {
	data := t.TempDir()
	ts, _, _ := start(t, Config{DataDir: data})
	u := ts.URL + "/mica/v1/conversations"
	if code, body := do(t, "GET", u, ""); code != 200 || strings.TrimSpace(body) != `{"conversations":[]}` {
		t.Fatalf("empty list: %d %s", code, body)
	}
	msgs := `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello","reasoning":"greet"}]`
	if code, body := do(t, "PUT", u+"/c1", `{"title":"Hi","model":"tiny","messages":`+msgs+`}`); code != 200 || !strings.Contains(body, `"id":"c1"`) || strings.Contains(body, "messages") {
		t.Fatalf("PUT: %d %s", code, body)
	}
	var got struct {
		ID, Title, Model string
		Messages         []map[string]string
	}
	code, body := get(t, u+"/c1")
	decodeJSON(t, body, &got)
	if code != 200 || got.Title != "Hi" || got.Model != "tiny" || len(got.Messages) != 2 || got.Messages[1]["reasoning"] != "greet" {
		t.Fatalf("GET: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/c2", `{"title":"x","messages":{"not":"an array"}}`, 400},
		{"PUT", "/c2", `not json`, 400},
		{"PUT", "/bad%20id", `{"title":"x"}`, 400},
		{"GET", "/nope", ``, 404},
		{"DELETE", "/nope", ``, 404},
	} {
		if code, body := do(t, c.method, u+c.path, c.body); code != c.want || !strings.Contains(body, "detail") {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
		}
	}

	// Kept in the data folder's own database, which outlives the server.
	st, err := convstore.Open(filepath.Join(data, "conversations.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if c, err := st.Get("c1"); err != nil || c.Title != "Hi" {
		t.Fatalf("conversations.db: %+v, %v", c, err)
	}
	if code, _ := do(t, "DELETE", u+"/c1", ""); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := do(t, "GET", u+"/c1", ""); code != 404 {
		t.Fatalf("GET after DELETE: %d", code)
	}
}

func TestConversationsNeedData(t *testing.T) {
	ts, _, _ := start(t, Config{})
	code, body := do(t, "GET", ts.URL+"/mica/v1/conversations", "")
	if code != 503 || !strings.Contains(body, "--data") {
		t.Fatalf("without a data folder: %d %s", code, body)
	}
}

// The UI is mounted at / without changing any API route.
func TestWebUIMounted(t *testing.T) {
	ts, _, _ := start(t, Config{})
	for _, p := range []string{"/", "/ui/chat", "/ui/studio", "/ui/gallery"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(b), "<title>mica</title>") {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if code, body := do(t, "GET", ts.URL+"/v1/models", ""); code != 200 || !strings.Contains(body, `"object":"list"`) {
		t.Errorf("/v1/models: %d %s", code, body)
	}
	if code, body := do(t, "GET", ts.URL+"/nope", ""); code != 404 || !strings.Contains(body, "no such endpoint") {
		t.Errorf("/nope: %d %s", code, body)
	}
	if code, body := do(t, "POST", ts.URL+"/", ""); code != 200 || strings.Contains(body, "<html") {
		t.Errorf("POST /: %d %s (the UI answers GET and HEAD only)", code, body)
	}
}
