package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mica/internal/atomicfile"
	"mica/internal/jobs"
	"mica/internal/server/sdapi"
)

// The job API: every generation is a job; these endpoints submit, watch,
// list, reorder and cancel them, and stream their events (Server-Sent
// Events), beside the blocking A1111 endpoints.

func (s *Server) jobRoutes(h func(pattern, method string, f http.HandlerFunc)) {
	h("POST /mica/v1/jobs", http.MethodPost, s.jobSubmit)
	h("GET /mica/v1/jobs", http.MethodGet, s.jobList)
	h("GET /mica/v1/jobs/{id}", http.MethodGet, s.jobGet)
	h("DELETE /mica/v1/jobs/{id}", http.MethodDelete, s.jobDelete)
	h("POST /mica/v1/jobs/{id}/cancel", http.MethodPost, s.jobAction(func(q *jobs.Queue, id string) error { return q.Cancel(id) }))
	h("POST /mica/v1/jobs/{id}/interrupt", http.MethodPost, s.jobAction(func(q *jobs.Queue, id string) error { return q.Interrupt(id) }))
	h("POST /mica/v1/jobs/{id}/skip", http.MethodPost, s.jobAction(func(q *jobs.Queue, id string) error { return q.Skip(id) }))
	h("POST /mica/v1/jobs/{id}/priority", http.MethodPost, s.jobPriority)
	h("POST /mica/v1/jobs/reorder", http.MethodPost, s.jobReorder)
	h("GET /mica/v1/jobs/{id}/preview", http.MethodGet, s.jobPreview)
	h("GET /mica/v1/jobs/{id}/events", http.MethodGet, s.jobEvents)
	h("GET /mica/v1/events", http.MethodGet, s.jobEvents)
	h("GET /mica/v1/ws", http.MethodGet, s.jobSocket)
	h("GET /mica/v1/jobs/{id}/ws", http.MethodGet, s.jobSocket)
	h("GET /mica/v1/history", http.MethodGet, s.jobHistory)
	h("GET /mica/v1/outputs/{date}/{name}", http.MethodGet, s.jobOutput)
}

// jobJSON is a job as the API shows it.
type jobJSON struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Model    string          `json:"model"`
	State    jobs.State      `json:"state"`
	Priority int             `json:"priority"`
	Position *int            `json:"position,omitempty"` // queued jobs only (always, 0 included): how many jobs of the same model run first
	Attempts int             `json:"attempts"`
	Created  time.Time       `json:"created"`
	Started  *time.Time      `json:"started,omitempty"`
	Finished *time.Time      `json:"finished,omitempty"`
	Progress progressJSON    `json:"progress"`
	Error    string          `json:"error,omitempty"`
	Images   []string        `json:"images"`
	Info     json.RawMessage `json:"info,omitempty"`
}

type progressJSON struct {
	Fraction    float64 `json:"progress"`
	ETA         float64 `json:"eta_relative"`
	Step        int     `json:"sampling_step"`
	Steps       int     `json:"sampling_steps"`
	JobNo       int     `json:"job_no"`
	JobCount    int     `json:"job_count"`
	TextInfo    string  `json:"textinfo,omitempty"`
	Interrupted bool    `json:"interrupted"`
	Skipped     bool    `json:"skipped"`
	Previews    int     `json:"previews"`
}

func toProgressJSON(p jobs.ProgressState) progressJSON {
	return progressJSON{Fraction: p.Fraction, ETA: p.ETA.Seconds(), Step: p.Step, Steps: p.Steps, JobNo: p.JobNo,
		JobCount: p.JobCount, TextInfo: p.TextInfo, Interrupted: p.Interrupted, Skipped: p.Skipped, Previews: p.Preview}
}

func toJobJSON(j jobs.Job) jobJSON {
	out := jobJSON{ID: j.ID, Kind: j.Kind, Model: j.Model, State: j.State, Priority: j.Priority,
		Attempts: j.Attempts, Created: j.Created, Error: j.Error, Images: []string{}, Info: j.Result.Info,
		Progress: toProgressJSON(j.Progress)}
	if j.State == jobs.Queued {
		pos := j.Position
		out.Position = &pos
	}
	if !j.Started.IsZero() {
		t := j.Started
		out.Started = &t
	}
	if !j.Finished.IsZero() {
		t := j.Finished
		out.Finished = &t
	}
	for _, p := range j.Result.Images {
		out.Images = append(out.Images, "/mica/v1/outputs/"+p)
	}
	return out
}

func (s *Server) jobFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		s.sdFail(w, r, http.StatusNotFound, err)
	case errors.Is(err, jobs.ErrNotQueued), errors.Is(err, jobs.ErrNotRunning), errors.Is(err, jobs.ErrNotFinished), errors.Is(err, jobs.ErrFinished):
		s.sdFail(w, r, http.StatusConflict, err)
	case errors.Is(err, jobs.ErrBadRequest):
		s.sdFail(w, r, http.StatusBadRequest, err)
	default:
		s.sdFail(w, r, http.StatusInternalServerError, err)
	}
}

// jobSubmit: {"kind": "txt2img"|"img2img", "priority": n, "params": {A1111
// request}} → 202 with the queued job. Unlike A1111's endpoints, params
// without save_images save the images (the UI's history); with
// save_images false they are temporary ("temp/…" paths, see submitImage).
func (s *Server) jobSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	body, ok := s.readImageBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Kind     string          `json:"kind"`
		Priority int             `json:"priority"`
		Params   json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &in); err != nil || len(in.Params) == 0 {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body"}, Msg: `want {"kind": "txt2img" or "img2img", "priority": n, "params": {…}}`, Type: "value_error"}}})
		return
	}
	if in.Kind != "txt2img" && in.Kind != "img2img" {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body", "kind"}, Msg: "kind must be txt2img or img2img", Type: "value_error"}}})
		return
	}
	j, _, status, err := s.submitImage(keyName(r), in.Params, in.Kind == "img2img", in.Priority, true)
	if err != nil {
		s.sdFail(w, r, status, err)
		return
	}
	if got, err := s.img.q.Get(j.ID); err == nil {
		j = got
	}
	w.Header().Set("Location", "/mica/v1/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, toJobJSON(j))
}

func (s *Server) jobGet(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	j, err := s.img.q.Get(r.PathValue("id"))
	if err != nil {
		s.jobFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJobJSON(j))
}

func (s *Server) jobList(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	q := r.URL.Query()
	var f jobs.Filter
	for _, st := range strings.Split(q.Get("state"), ",") {
		if st != "" {
			f.States = append(f.States, jobs.State(st))
		}
	}
	f.Model, f.Kind = q.Get("model"), q.Get("kind")
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	list, next, err := s.img.q.List(f, q.Get("cursor"), limit)
	if err != nil {
		s.jobFail(w, r, err)
		return
	}
	out := struct {
		Jobs []jobJSON `json:"jobs"`
		Next string    `json:"next,omitempty"`
	}{Jobs: []jobJSON{}, Next: next}
	for _, j := range list {
		out.Jobs = append(out.Jobs, toJobJSON(j))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) jobAction(f func(*jobs.Queue, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.imagesReady(w, r) {
			return
		}
		id := r.PathValue("id")
		if err := f(s.img.q, id); err != nil {
			s.jobFail(w, r, err)
			return
		}
		s.jobGet(w, r)
	}
}

func (s *Server) jobDelete(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	if err := s.img.q.Delete(r.PathValue("id")); err != nil {
		s.jobFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) jobPriority(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	body, ok := s.readImageBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Priority *int `json:"priority"`
	}
	if json.Unmarshal(body, &in) != nil || in.Priority == nil {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body", "priority"}, Msg: "an integer priority is required", Type: "value_error.missing"}}})
		return
	}
	s.jobAction(func(q *jobs.Queue, id string) error { return q.SetPriority(id, *in.Priority) })(w, r)
}

func (s *Server) jobReorder(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	body, ok := s.readImageBody(w, r)
	if !ok {
		return
	}
	var in struct {
		IDs []string `json:"ids"`
	}
	if json.Unmarshal(body, &in) != nil || len(in.IDs) == 0 {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body", "ids"}, Msg: "a list of queued job ids in the wanted order is required", Type: "value_error.missing"}}})
		return
	}
	if err := s.img.q.Reorder(in.IDs); err != nil {
		s.jobFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ids": in.IDs})
}

func (s *Server) jobPreview(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	img, mime, n := s.img.q.Preview(r.PathValue("id"))
	if n == 0 {
		s.sdFail(w, r, http.StatusNotFound, errors.New("no preview: the job is not running or has made none yet"))
		return
	}
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(img)
}

// jobEvents streams events as Server-Sent Events: one job's (ending with
// its final event) or every job's.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	ch, stop, ok := s.subscribe(w, r)
	if !ok {
		return
	}
	defer stop()
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if fl != nil {
		fl.Flush()
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, marshal(eventJSON(e)))
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case <-r.Context().Done():
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

// subscribe follows the events of the job named in the path, or of every
// job; it answers the request itself when it cannot.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) (<-chan jobs.Event, func(), bool) {
	if !s.imagesReady(w, r) {
		return nil, nil, false
	}
	id := r.PathValue("id")
	if id != "" {
		if _, err := s.img.q.Get(id); err != nil {
			s.jobFail(w, r, err)
			return nil, nil, false
		}
	}
	ch, stop := s.img.q.Subscribe(id)
	return ch, stop, true
}

func eventJSON(e jobs.Event) map[string]any {
	out := map[string]any{"type": e.Type, "job": e.JobID, "model": e.Model, "state": e.State, "time": e.Time,
		"progress": toProgressJSON(e.Progress)}
	if e.Preview {
		out["preview"] = "/mica/v1/jobs/" + e.JobID + "/preview"
	}
	if e.Error != "" {
		out["error"] = e.Error
	}
	if e.Result != nil {
		imgs := []string{}
		for _, p := range e.Result.Images {
			imgs = append(imgs, "/mica/v1/outputs/"+p)
		}
		out["images"] = imgs
	}
	if e.Dropped > 0 {
		out["dropped"] = e.Dropped
	}
	if e.Positions != nil {
		out["positions"] = e.Positions // the model's queued jobs, after the change
	}
	return out
}

func (s *Server) jobHistory(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	list, next, err := s.img.q.History(r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.jobFail(w, r, err)
		return
	}
	type entry struct {
		Image    string    `json:"image"`
		Job      string    `json:"job"`
		Infotext string    `json:"infotext"`
		Created  time.Time `json:"created"`
	}
	out := struct {
		Images []entry `json:"images"`
		Next   string  `json:"next,omitempty"`
	}{Images: []entry{}, Next: next}
	for _, h := range list {
		out.Images = append(out.Images, entry{Image: "/mica/v1/outputs/" + h.Path, Job: h.JobID, Infotext: h.Infotext, Created: h.Created})
	}
	writeJSON(w, http.StatusOK, out)
}

// jobOutput serves a generated file; names are checked so no request can
// reach outside the outputs folder.
func (s *Server) jobOutput(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	p, err := jobs.ResolveOutput(s.img.data, r.PathValue("date")+"/"+r.PathValue("name"))
	if err != nil {
		s.sdFail(w, r, http.StatusNotFound, err)
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeFile(w, r, p)
}

func writeAtomic(path string, b []byte) error { return atomicfile.WriteFile(path, b) }
