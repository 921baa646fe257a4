package server

// The model management API, for the browser UI and scripts:
//
//	GET  /mica/v1/models                  every model, LLMs and image models, and the memory budget
//	POST /mica/v1/models/{name}/load      load one (?kind=llm|image when the name is both; ?keep_alive=5m|-1|0)
//	POST /mica/v1/models/{name}/unload    unload one (?kind=…)
//
// and A1111's POST /sdapi/v1/unload-checkpoint and /sdapi/v1/reload-checkpoint.
//
// A model object is {"name", "kind": "llm"|"image", "loaded", "size_bytes"
// (the file, or a diffusers folder's files), "memory_bytes" (what it takes
// of the budget when loaded: the estimate, or the measured use when larger),
// "expires_at" (RFC 3339; absent when not loaded, in use, or kept until its
// memory is needed), "vision"}, plus "in_use" (running requests or jobs)
// when not zero. Errors are {"error": {"message", "type"}} with 400 (a bad
// kind or keep_alive), 404 (no such model), 409 (the name is both an LLM
// and an image model and no kind was given; unloading a model in use, which
// is then unloaded as soon as its requests end) or 503 (the model cannot fit
// in the budget, with Retry-After, or failed to load).

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mica/internal/server/canon"
)

func (s *Server) modelRoutes(h func(pattern, method string, f http.HandlerFunc)) {
	h("GET /mica/v1/models", http.MethodGet, s.adminModels)
	h("POST /mica/v1/models/{name}/load", http.MethodPost, s.adminLoad)
	h("POST /mica/v1/models/{name}/unload", http.MethodPost, s.adminUnload)
	h("/sdapi/v1/unload-checkpoint", http.MethodPost, s.sdUnloadCheckpoint)
	h("/sdapi/v1/reload-checkpoint", http.MethodPost, s.sdReloadCheckpoint)
}

// modelJSON is a model as the management API shows it.
type modelJSON struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Loaded      bool   `json:"loaded"`
	SizeBytes   int64  `json:"size_bytes"`
	MemoryBytes int64  `json:"memory_bytes"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	Vision      bool   `json:"vision"`
	InUse       int    `json:"in_use,omitempty"`
}

// memoryJSON is the budget: budget_bytes 0 means no limit; used_bytes is
// what the loaded models take of it; rss_bytes the process's resident
// memory (measured, all of it: models, caches, the server itself).
type memoryJSON struct {
	BudgetBytes int64 `json:"budget_bytes"`
	UsedBytes   int64 `json:"used_bytes"`
	RSSBytes    int64 `json:"rss_bytes,omitempty"`
	TotalBytes  int64 `json:"total_bytes,omitempty"`
}

func (s *Server) memoryState() memoryJSON {
	return memoryJSON{BudgetBytes: max(s.res.budget, 0), UsedBytes: s.res.used(), RSSBytes: processRSS(), TotalBytes: MachineMemory()}
}

// adminModel is one model found by name and kind.
type adminModel struct {
	kind  string
	name  string
	path  string
	size  int64
	llm   ModelInfo  // kind llm
	image imageModel // kind image
}

// describe fills in a model's state from the residency.
func (s *Server) describe(m adminModel, loaded []residentInfo) modelJSON {
	out := modelJSON{Name: m.name, Kind: m.kind, SizeBytes: m.size}
	if m.kind == kindLLM {
		info := s.withProjector(m.llm)
		out.Vision = info.Projector != ""
		out.MemoryBytes = llmNeed(info, s.cfg.Context, s.cfg.Batch)
	} else {
		out.MemoryBytes = imageNeed(m.size)
	}
	for _, r := range loaded {
		if r.kind != m.kind || r.path != m.path || r.loading {
			continue
		}
		out.Loaded, out.MemoryBytes, out.InUse = true, r.need, r.inUse
		if !r.expires.IsZero() {
			out.ExpiresAt = r.expires.UTC().Format(time.RFC3339)
		}
	}
	return out
}

// allModels lists the LLMs and (with the image API on) the image models.
func (s *Server) allModels() ([]adminModel, error) {
	llms, skipped, err := s.cat.list()
	if err != nil {
		return nil, err
	}
	for _, e := range skipped {
		s.log.Warn("model file skipped", "err", e)
	}
	var out []adminModel
	for _, m := range llms {
		out = append(out, adminModel{kind: kindLLM, name: m.Name, path: m.Path, size: m.Size, llm: m})
	}
	if s.img != nil {
		ims, err := s.img.list()
		if err != nil {
			return nil, err
		}
		for _, m := range ims {
			out = append(out, adminModel{kind: kindImage, name: m.Name, path: m.Path, size: m.Size, image: m})
		}
	}
	return out, nil
}

func (s *Server) adminModels(w http.ResponseWriter, r *http.Request) {
	ms, err := s.allModels()
	if err != nil {
		s.fail(w, r, canon.New(canon.Unavailable, "listing the models folder: %v", err))
		return
	}
	loaded := s.res.list()
	out := struct {
		Models []modelJSON `json:"models"`
		Memory memoryJSON  `json:"memory"`
	}{Models: []modelJSON{}, Memory: s.memoryState()}
	for _, m := range ms {
		out.Models = append(out.Models, s.describe(m, loaded))
	}
	writeJSON(w, http.StatusOK, out)
}

// adminError writes {"error": {"message", "type"}} with status.
func adminError(w http.ResponseWriter, status int, msg string) {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusNotFound:
		typ = "not_found_error"
	case status == http.StatusConflict:
		typ = "conflict_error"
	case status >= 500:
		typ = "server_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ}})
}

// findModel resolves the path's name and the kind query parameter; on
// failure it has answered.
func (s *Server) findModel(w http.ResponseWriter, r *http.Request) (adminModel, bool) {
	name, kind := r.PathValue("name"), r.URL.Query().Get("kind")
	if kind != "" && kind != kindLLM && kind != kindImage {
		adminError(w, http.StatusBadRequest, "kind "+strconv.Quote(kind)+": use llm or image")
		return adminModel{}, false
	}
	var found []adminModel
	if kind != kindImage {
		if m, err := s.cat.lookup(name); err == nil {
			found = append(found, adminModel{kind: kindLLM, name: m.Name, path: m.Path, size: m.Size, llm: m})
		} else if e := canon.As(err); e.Kind != canon.NotFound {
			s.fail(w, r, err)
			return adminModel{}, false
		}
	}
	if kind != kindLLM && s.img != nil && name != "" {
		if m, err := s.img.lookup(name); err == nil {
			found = append(found, adminModel{kind: kindImage, name: m.Name, path: m.Path, size: m.Size, image: m})
		}
	}
	switch len(found) {
	case 0:
		what := "model"
		if kind != "" {
			what = map[string]string{kindLLM: "LLM", kindImage: "image model"}[kind]
		}
		adminError(w, http.StatusNotFound, what+" "+strconv.Quote(name)+" not found (see GET /mica/v1/models)")
		return adminModel{}, false
	case 2:
		adminError(w, http.StatusConflict, strconv.Quote(name)+" names both an LLM and an image model: add ?kind=llm or ?kind=image")
		return adminModel{}, false
	}
	return found[0], true
}

// keepAliveParam reads ?keep_alive= (a duration, seconds, or -1), the
// server's keep-alive when absent.
func (s *Server) keepAliveParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("keep_alive")
	if v == "" {
		return s.cfg.KeepAlive, nil
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 {
			return -1, nil
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("keep_alive " + strconv.Quote(v) + ": use a duration (5m, 1h), seconds, or -1 to keep the model until its memory is needed")
	}
	if d < 0 {
		d = -1
	}
	return d, nil
}

func (s *Server) adminLoad(w http.ResponseWriter, r *http.Request) {
	m, ok := s.findModel(w, r)
	if !ok {
		return
	}
	keep, err := s.keepAliveParam(r)
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.loadModel(r, m, keep); err != nil {
		if r.Context().Err() == nil {
			s.fail(w, r, err)
		}
		return
	}
	writeJSON(w, http.StatusOK, s.describe(m, s.res.list()))
}

// loadModel loads m (waiting for memory held by models in use) and leaves
// it loaded for keep.
func (s *Server) loadModel(r *http.Request, m adminModel, keep time.Duration) error {
	if m.kind == kindLLM {
		info := s.withProjector(m.llm)
		if _, _, err := s.res.ensure(r.Context(), info); err != nil {
			return err
		}
		s.res.keep(info, keep)
		return nil
	}
	res, _, err := s.res.acquire(r.Context(), s.img.imageSpec(m.image))
	if err != nil {
		var ce *canon.Error
		if errors.As(err, &ce) || r.Context().Err() != nil {
			return err
		}
		return canon.New(canon.Unavailable, "image model %q failed to load: %v", m.name, err)
	}
	s.res.release(res, keep)
	return nil
}

func (s *Server) adminUnload(w http.ResponseWriter, r *http.Request) {
	m, ok := s.findModel(w, r)
	if !ok {
		return
	}
	if _, err := s.res.unload(m.kind, m.path); err != nil {
		adminError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.describe(m, s.res.list()))
}

// sdUnloadCheckpoint is A1111's unload-checkpoint: every loaded image
// model is unloaded (one running a job, when the job ends).
func (s *Server) sdUnloadCheckpoint(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	for _, m := range s.res.list() {
		if m.kind == kindImage {
			if _, err := s.res.unload(kindImage, m.path); err != nil {
				s.log.Info("unload-checkpoint", "note", err.Error())
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// sdReloadCheckpoint is A1111's reload-checkpoint: the current checkpoint
// (the sd_model_checkpoint option, else the first) is loaded.
func (s *Server) sdReloadCheckpoint(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	im, err := s.img.lookup("")
	if err != nil {
		s.sdFail(w, r, http.StatusNotFound, err)
		return
	}
	err = s.loadModel(r, adminModel{kind: kindImage, name: im.Name, path: im.Path, size: im.Size, image: im}, s.cfg.KeepAlive)
	if err != nil {
		if r.Context().Err() == nil {
			s.sdLoadFail(w, r, err)
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// sdLoadFail answers an image model that cannot be loaded: 503, with
// Retry-After when the error suggests one.
func (s *Server) sdLoadFail(w http.ResponseWriter, r *http.Request, err error) {
	var ce *canon.Error
	if errors.As(err, &ce) && ce.RetryAfter > 0 {
		setRetryAfter(w, ce.RetryAfter)
	}
	msg := err.Error()
	if !strings.Contains(msg, "image model") {
		msg = "loading the image model: " + msg
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "Service Unavailable", "detail": msg, "body": "", "errors": msg})
}
