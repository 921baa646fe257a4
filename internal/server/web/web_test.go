package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func embedded(t *testing.T) *Handler {
	t.Helper()
	h, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// apiMux is a mux shaped like the server's: method-less API routes, a
// method-less "/{$}" and a catch-all "/" that answers 404 in JSON.
func apiMux(t *testing.T) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "models") })
	mux.HandleFunc("POST /mica/v1/jobs", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "submit") })
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "mica is running") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error":"no such endpoint"}`, 404) })
	embedded(t).Register(mux)
	return mux
}

func get(mux http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

func TestPagesServeIndex(t *testing.T) {
	mux := apiMux(t)
	index, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/ui/", "/ui/chat", "/ui/chat/abc123", "/ui/studio", "/ui/gallery"} {
		w := get(mux, "GET", p)
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), index) {
			t.Errorf("GET %s: %d, body %q…; want index.html", p, w.Code, w.Body.String()[:min(40, w.Body.Len())])
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (a new build must show at once)", p, cc)
		}
		if w.Header().Get("Content-Security-Policy") != CSP {
			t.Errorf("GET %s: no CSP", p)
		}
	}
}

func TestAPIRoutesUnaffected(t *testing.T) {
	mux := apiMux(t)
	cases := []struct{ method, path, want string }{
		{"GET", "/v1/models", "models"},
		{"POST", "/mica/v1/jobs", "submit"},
		{"POST", "/", "mica is running"}, // only GET and HEAD of / are the UI
		{"GET", "/nope", `{"error":"no such endpoint"}`},
		{"POST", "/ui/chat", `{"error":"no such endpoint"}`},
		{"GET", "/chat", `{"error":"no such endpoint"}`},
	}
	for _, c := range cases {
		w := get(mux, c.method, c.path)
		if got := strings.TrimSpace(w.Body.String()); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestAssets(t *testing.T) {
	h := embedded(t)
	mux := apiMux(t)
	index, _ := fs.ReadFile(dist, "dist/index.html")
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(string(index), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %d assets, want the script, the stylesheet and the icon", len(refs))
	}
	if len(refs) != len(h.assets) {
		t.Errorf("index.html references %d assets, the bundle has %d", len(refs), len(h.assets))
	}
	want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, m := range refs {
		p := m[1]
		w := get(mux, "GET", p)
		if w.Code != 200 {
			t.Errorf("GET %s: %d", p, w.Code)
			continue
		}
		for ext, ct := range want {
			if strings.HasSuffix(p, ext) && w.Header().Get("Content-Type") != ct {
				t.Errorf("GET %s: Content-Type %q, want %q", p, w.Header().Get("Content-Type"), ct)
			}
		}
		if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", p, cc)
		}
		if w.Header().Get("Content-Encoding") != "" {
			t.Errorf("GET %s without Accept-Encoding came compressed", p)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", p)
		}
	}
	if w := get(mux, "GET", "/assets/missing.js"); w.Code != 404 {
		t.Errorf("missing asset: %d, want 404", w.Code)
	}
	if w := get(mux, "GET", "/assets/../index.html"); w.Code == 200 && w.Header().Get("Cache-Control") == "public, max-age=31536000, immutable" {
		t.Errorf("/assets/../index.html served as an asset")
	}
}

func TestGzip(t *testing.T) {
	h := embedded(t)
	mux := apiMux(t)
	for name, a := range h.assets {
		if !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".css") {
			continue
		}
		w := get(mux, "GET", "/assets/"+name, "Accept-Encoding", "br, gzip;q=0.8")
		if w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%s: Content-Encoding %q, Vary %q", name, w.Header().Get("Content-Encoding"), w.Header().Get("Vary"))
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, a.body) {
			t.Fatalf("%s: gzip body does not decompress to the file (%v)", name, err)
		}
		if w.Header().Get("ETag") == a.etag+`"` {
			t.Errorf("%s: the gzip and identity forms share an ETag", name)
		}
		if w := get(mux, "GET", "/assets/"+name, "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" {
			t.Errorf("%s: gzip;q=0 still got gzip", name)
		}
	}
}

func TestConditionalAndHead(t *testing.T) {
	mux := apiMux(t)
	w := get(mux, "GET", "/ui/chat")
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the page")
	}
	if w := get(mux, "GET", "/ui/studio", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
	h := get(mux, "HEAD", "/ui/gallery")
	if h.Code != 200 || h.Body.Len() != 0 || h.Header().Get("Content-Length") != w.Header().Get("Content-Length") {
		t.Errorf("HEAD: %d, %d bytes, length %q vs %q", h.Code, h.Body.Len(), h.Header().Get("Content-Length"), w.Header().Get("Content-Length"))
	}
}

// The budget: the first load under 250 KB of compressed JavaScript
// and CSS (gzip, as served).
func TestSizeBudget(t *testing.T) {
	const budget = 250_000
	total := 0
	for name, a := range embedded(t).assets {
		if strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".css") {
			n := len(a.body)
			if a.gz != nil {
				n = len(a.gz)
			}
			t.Logf("%s: %d bytes, %d compressed", name, len(a.body), n)
			total += n
		}
	}
	if total == 0 || total > budget {
		t.Fatalf("compressed JS+CSS = %d bytes, want 1..%d", total, budget)
	}
}

func TestBrokenBundle(t *testing.T) {
	if _, err := New(fstest.MapFS{"assets/a.js": {Data: []byte("x")}}); err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Errorf("New without index.html: %v", err)
	}
	h, err := New(fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}})
	if err != nil || len(h.assets) != 0 {
		t.Errorf("New with only index.html: %v, %d assets", err, len(h.assets))
	}
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{"": false, "gzip": true, "GZIP": true, "br": false, "deflate, gzip": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "*": true, "gzip;q=0.5": true, "identity": false} {
		r := httptest.NewRequest("GET", "/", nil)
		if v != "" {
			r.Header.Set("Accept-Encoding", v)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: %v, want %v", v, got, want)
		}
	}
}
