// Package web serves mica's browser UI: the bundle built from web/ (see
// scripts/web-build.sh), committed under dist/ and embedded in the binary,
// so building mica never needs node. Pages get index.html (never cached
// stale); content-hashed assets are cached forever; text assets are
// gzip-compressed once, when the handler is built.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed dist
var dist embed.FS

// Pages are the UI's own paths; each answers with index.html and the page
// picks its view from the path (/ui/chat, /ui/studio, /ui/gallery). The
// page and /assets/ need no API key (the UI asks for it and sends it).
var Pages = []string{"/{$}", "/ui/{page...}"}

// CSP is the Content-Security-Policy of the page: scripts and styles only
// from mica itself; images also from data: and blob: URLs (dropped files,
// masks).
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

type asset struct {
	body, gz  []byte
	ctype     string
	etag      string // of body; the gzip form's is etag + "-gz"
	immutable bool
}

// Handler serves the UI.
type Handler struct {
	index  *asset
	assets map[string]*asset // by path under /assets/
}

var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".json":  "application/json",
	".txt":   "text/plain; charset=utf-8",
	".map":   "application/json",
	".png":   "image/png",
	".jpg":   "image/jpeg",
	".webp":  "image/webp",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || ctype == "image/svg+xml" || ctype == "application/json"
}

func newAsset(name string, b []byte, immutable bool) (*asset, error) {
	a := &asset{body: b, immutable: immutable, ctype: contentTypes[strings.ToLower(path.Ext(name))]}
	if a.ctype == "" {
		a.ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(b)
	a.etag = `"` + hex.EncodeToString(sum[:12])
	if compressible(a.ctype) && len(b) > 256 {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		zw.Write(b)
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("web: compressing %s: %w", name, err)
		}
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
	}
	return a, nil
}

// New builds a handler from a bundle: index.html at the root and the
// assets under assets/ (names carry a content hash, so they never change).
func New(bundle fs.FS) (*Handler, error) {
	h := &Handler{assets: map[string]*asset{}}
	b, err := fs.ReadFile(bundle, "index.html")
	if err != nil {
		return nil, fmt.Errorf("web: the UI bundle has no index.html (run scripts/web-build.sh): %w", err)
	}
	if h.index, err = newAsset("index.html", b, false); err != nil {
		return nil, err
	}
	err = fs.WalkDir(bundle, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(bundle, p)
		if err != nil {
			return err
		}
		a, err := newAsset(p, b, true)
		if err != nil {
			return err
		}
		h.assets[strings.TrimPrefix(p, "assets/")] = a
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("web: reading the UI bundle: %w", err)
	}
	return h, nil
}

// Embedded is the handler for the bundle built into the binary.
func Embedded() (*Handler, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	return New(sub)
}

// Register mounts the UI on mux: GET (and HEAD) of the pages and of
// /assets/. It adds only method-specific patterns, which take precedence
// over method-less ones for the same path, so an API's catch-all "/" and
// its other routes are unaffected. A broken bundle (a build problem, never
// the user's) makes the pages answer 500 with the reason.
func Register(mux *http.ServeMux) {
	h, err := Embedded()
	if err != nil {
		broken := func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		for _, p := range Pages {
			mux.HandleFunc("GET "+p, broken)
		}
		return
	}
	h.Register(mux)
}

// Register mounts h on mux (see the package-level Register).
func (h *Handler) Register(mux *http.ServeMux) {
	for _, p := range Pages {
		mux.HandleFunc("GET "+p, h.ServePage)
	}
	mux.HandleFunc("GET /assets/{name...}", h.ServeAsset)
}

// ServePage answers with index.html.
func (h *Handler) ServePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", CSP)
	w.Header().Set("Referrer-Policy", "same-origin")
	h.serve(w, r, h.index)
}

// ServeAsset answers with one file under /assets/.
func (h *Handler) ServeAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.PathValue("name")]
	if !ok {
		http.Error(w, "no such file in mica's UI: "+r.URL.Path, http.StatusNotFound)
		return
	}
	h.serve(w, r, a)
}

// acceptsGzip reads Accept-Encoding: gzip (or *) with a non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.ToLower(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				return false
			}
			return true
		}
	}
	return false
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, a *asset) {
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("X-Content-Type-Options", "nosniff")
	if a.immutable {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, a.etag+`"`
	if a.gz != nil {
		hd.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = a.gz, a.etag+`-gz"`
			hd.Set("Content-Encoding", "gzip")
		}
	}
	hd.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" {
		for _, m := range strings.Split(match, ",") {
			if m = strings.TrimSpace(m); m == etag || m == "W/"+etag || m == "*" {
				hd.Del("Content-Encoding")
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
