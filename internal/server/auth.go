package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"mica/internal/server/canon"
)

// auth checks API keys when the server has any: "Authorization: Bearer
// KEY" (OpenAI's clients), "Authorization: Basic …" with user:KEY or an
// A1111-style user:password pair, or Ollama's clients' bearer header. It
// also applies the per-key request rate limit.
type auth struct {
	keys    map[[32]byte]string // sha256(secret) → key name for logs and limits
	perMin  float64             // requests per minute per key (0: unlimited)
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newAuth builds the checker from Config.APIKeys ("KEY" or "user:password")
// and Config.RateLimit; nil when no key is configured.
func newAuth(keys []string, perMin int) (*auth, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	a := &auth{keys: map[[32]byte]string{}, perMin: float64(perMin), buckets: map[string]*bucket{}}
	for i, k := range keys {
		k = strings.TrimSpace(k)
		if len(k) < 8 {
			return nil, fmt.Errorf("API key %d is shorter than 8 characters: use a long random secret", i+1)
		}
		name := fmt.Sprintf("key%d", i+1)
		if u, _, ok := strings.Cut(k, ":"); ok && u != "" {
			name = u
		}
		a.keys[sha256.Sum256([]byte(k))] = name
	}
	return a, nil
}

// who returns the key's name for a request, or "" when it carries no valid
// key. Secrets are compared through their hashes in constant time.
func (a *auth) who(r *http.Request) string {
	h := r.Header.Get("Authorization")
	var secret string
	switch {
	case strings.HasPrefix(h, "Bearer "):
		secret = strings.TrimSpace(h[len("Bearer "):])
	case strings.HasPrefix(h, "Basic "):
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len("Basic "):]))
		if err != nil {
			return ""
		}
		user, pass, _ := strings.Cut(string(b), ":")
		// user:KEY (any user name with a key) or a user:password pair.
		if name := a.lookup(pass); name != "" {
			return name
		}
		secret = user + ":" + pass
	default:
		secret = r.Header.Get("X-API-Key")
	}
	return a.lookup(secret)
}

func (a *auth) lookup(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	for k, name := range a.keys {
		if subtle.ConstantTimeCompare(k[:], sum[:]) == 1 {
			return name
		}
	}
	return ""
}

// allow takes one request from the key's bucket (perMin per minute, bursts
// up to perMin); it returns how long to wait when the bucket is empty.
func (a *auth) allow(name string, now time.Time) (bool, time.Duration) {
	if a.perMin <= 0 {
		return true, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.buckets[name]
	if b == nil {
		b = &bucket{tokens: a.perMin, last: now}
		a.buckets[name] = b
	}
	b.tokens = math.Min(a.perMin, b.tokens+now.Sub(b.last).Minutes()*a.perMin)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / a.perMin * float64(time.Minute))
	return false, wait
}

// public paths need no key: liveness, and the web UI's static files (the
// UI itself asks for the key before calling the APIs).
func publicPath(p string) bool {
	if p == "/health" || p == "/" || p == "/favicon.ico" {
		return true
	}
	for _, pre := range []string{"/assets/", "/ui/"} {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// check authenticates and rate-limits a request; it writes the error and
// returns nil when the request may not go on, else the request carrying
// the key's name (keyName reads it).
func (s *Server) check(w http.ResponseWriter, r *http.Request) *http.Request {
	if s.auth == nil || publicPath(r.URL.Path) {
		return r
	}
	name := s.auth.who(r)
	if name == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mica", Basic realm="mica"`)
		s.authFail(w, r, http.StatusUnauthorized, "missing or wrong API key: send Authorization: Bearer KEY")
		return nil
	}
	if ok, wait := s.auth.allow(name, time.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		s.authFail(w, r, http.StatusTooManyRequests, fmt.Sprintf("rate limit of %g requests a minute reached for this key; retry in %s", s.auth.perMin, wait.Round(time.Second)))
		return nil
	}
	return r.WithContext(context.WithValue(r.Context(), keyNameCtx{}, name))
}

type keyNameCtx struct{}

// keyName is the name of the API key a request came with ("" without keys).
func keyName(r *http.Request) string {
	s, _ := r.Context().Value(keyNameCtx{}).(string)
	return s
}

// authFail answers in the dialect of the path.
func (s *Server) authFail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/sdapi/") || strings.HasPrefix(r.URL.Path, "/mica/") {
		writeJSON(w, status, map[string]any{"detail": msg})
		return
	}
	kind := canon.Invalid
	if status == http.StatusTooManyRequests {
		kind = canon.Busy
	}
	e := canon.New(kind, "%s", msg)
	e.Code = map[int]string{401: "invalid_api_key", 429: "rate_limit_exceeded"}[status]
	body := any(nil)
	if ollamaPath(r) {
		body = map[string]string{"error": msg}
	} else {
		body = map[string]any{"error": map[string]any{"message": msg, "type": e.Kind.Type(), "param": nil, "code": e.Code}}
	}
	writeJSON(w, status, body)
}
