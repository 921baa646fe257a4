package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"mica/internal/diffusion/infotext"
	diffsample "mica/internal/diffusion/sample"
	"mica/internal/format/jpegexif"
	"mica/internal/format/pngtext"
	"mica/internal/jobs"
	"mica/internal/server/canon"
	"mica/internal/server/sdapi"
)

// The A1111 / SD.Next endpoints (/sdapi/v1/…).

func (s *Server) imageRoutes(h func(pattern, method string, f http.HandlerFunc)) {
	h("/sdapi/v1/txt2img", http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.sdGenerate(w, r, false) })
	h("/sdapi/v1/img2img", http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.sdGenerate(w, r, true) })
	h("/sdapi/v1/progress", http.MethodGet, s.sdProgress)
	h("/sdapi/v1/interrupt", http.MethodPost, s.sdInterrupt)
	h("/sdapi/v1/skip", http.MethodPost, s.sdSkip)
	s.mux.HandleFunc("/sdapi/v1/options", s.sdOptions)
	h("/sdapi/v1/sd-models", http.MethodGet, s.sdModels)
	h("/sdapi/v1/refresh-checkpoints", http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		if s.imagesReady(w, r) {
			s.img.hashAll() // new files are hashed in the background
			writeJSON(w, http.StatusOK, nil)
		}
	})
	h("/sdapi/v1/samplers", http.MethodGet, s.sdSamplers)
	h("/sdapi/v1/schedulers", http.MethodGet, s.sdSchedulers)
	h("/sdapi/v1/upscalers", http.MethodGet, s.sdUpscalers)
	h("/sdapi/v1/png-info", http.MethodPost, s.sdPNGInfo)
	h("/sdapi/v1/memory", http.MethodGet, s.sdMemory)
	h("/v1/images/generations", http.MethodPost, s.openaiImages)
	h("/v1/images/edits", http.MethodPost, s.openaiImageEdits)
	s.jobRoutes(h)
}

// sdFail answers in FastAPI's shape: {"detail": …} for client errors,
// A1111's {"error", "detail", "body", "errors"} for the rest.
func (s *Server) sdFail(w http.ResponseWriter, r *http.Request, status int, err error) {
	var ve *sdapi.ValidationError
	if errors.As(err, &ve) {
		writeJSON(w, http.StatusUnprocessableEntity, ve)
		return
	}
	var ce *canon.Error
	if errors.As(err, &ce) && ce.RetryAfter > 0 {
		setRetryAfter(w, ce.RetryAfter)
	}
	if status >= 500 {
		s.log.Error("image request failed", "path", r.URL.Path, "err", err)
		writeJSON(w, status, map[string]any{"error": http.StatusText(status), "detail": err.Error(), "body": "", "errors": err.Error()})
		return
	}
	writeJSON(w, status, map[string]any{"detail": err.Error()})
}

func (s *Server) imagesReady(w http.ResponseWriter, r *http.Request) bool {
	if s.img == nil {
		s.sdFail(w, r, http.StatusServiceUnavailable, errors.New("the image API is off: start mica serve with a data folder (--data DIR)"))
		return false
	}
	return true
}

func (s *Server) readImageBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := readLimited(w, r, s.cfg.ImageBodyBytes)
	if err != nil {
		s.sdFail(w, r, http.StatusRequestEntityTooLarge, err)
		return nil, false
	}
	return b, true
}

// submitImage validates a request and queues it; the error is the
// client's (422) when the request itself is wrong. save is what a request
// without save_images means: false on A1111's endpoints (its default),
// true for the job API and OpenAI's endpoints, whose results are fetched
// from the outputs.
//
// save_images false: the images are kept in the data folder's temporary
// area (jobs.KeepImage), never in the outputs or the history, for the
// job's clients: a blocking request deletes them once it has answered;
// otherwise they go with the job (DELETE) or after an hour.
func (s *Server) submitImage(key string, body []byte, img2img bool, priority int, save bool) (jobs.Job, *sdapi.Request, int, error) {
	body, err := withDefault(body, "save_images", save)
	if err != nil {
		return jobs.Job{}, nil, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body"}, Msg: "body is not a JSON object: " + err.Error(), Type: "value_error.jsondecode"}}}
	}
	req, err := sdapi.Decode(body, img2img, s.img.apiLimits())
	if err != nil {
		return jobs.Job{}, nil, http.StatusUnprocessableEntity, err
	}
	ir, err := toImagegen(req)
	if err == nil {
		_, err = ir.Normalize(s.img.lim, 512)
	}
	if err != nil {
		return jobs.Job{}, nil, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body"}, Msg: err.Error(), Type: "value_error"}}}
	}
	if _, _, err := diffsample.Resolve(ir.Sampler, ir.Scheduler); err != nil && ir.Sampler != "" {
		return jobs.Job{}, nil, http.StatusNotFound, fmt.Errorf("sampler not found: %v", err)
	}
	m, err := s.img.lookup(req.Model)
	if err != nil {
		return jobs.Job{}, nil, http.StatusNotFound, err
	}
	if need := imageNeed(m.Size); !s.res.fits(need) {
		return jobs.Job{}, nil, http.StatusServiceUnavailable, s.res.tooBig(kindImage, m.Name, need)
	}
	if req.RefinerCheckpoint != "" {
		// The refiner is loaded beside the model for the job: both must fit.
		rm, err := s.img.lookup(req.RefinerCheckpoint)
		if err != nil {
			return jobs.Job{}, nil, http.StatusNotFound, fmt.Errorf("refiner_checkpoint: %w", err)
		}
		if need, rneed := imageNeed(m.Size), imageNeed(rm.Size); rm.Path != m.Path && !s.res.fits(need+rneed) {
			return jobs.Job{}, nil, http.StatusServiceUnavailable, s.res.tooBigPair(m.Name, need, rm.Name, rneed)
		}
	}
	kind := "txt2img"
	if img2img {
		kind = "img2img"
	}
	if err := s.img.reserve(key); err != nil {
		return jobs.Job{}, req, http.StatusTooManyRequests, err
	}
	j, err := s.img.q.Submit(jobs.Request{Kind: kind, Model: m.Name, Params: body, Priority: priority})
	s.img.own(key, j.ID)
	if err != nil {
		if errors.Is(err, jobs.ErrQueueFull) {
			return j, req, http.StatusTooManyRequests, err
		}
		return j, req, http.StatusInternalServerError, err
	}
	return j, req, 0, nil
}

// withDefault sets a field of a JSON object body when it is absent.
func withDefault(body []byte, field string, v any) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null")
	}
	if _, ok := m[field]; ok {
		return body, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m[field] = b
	return json.Marshal(m)
}

// waitJob waits for a job to end; if the client goes away first, the job is
// cancelled (a blocking request's result has nobody to go to).
func (s *Server) waitJob(ctx context.Context, id string) (jobs.Job, error) {
	ch, stop := s.img.q.Subscribe(id)
	defer stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok || e.State.Terminal() {
				return s.img.q.Get(id)
			}
		case <-ctx.Done():
			s.img.q.Cancel(id)
			return jobs.Job{}, ctx.Err()
		}
	}
}

// dropTemp deletes a job's temporary images (save_images false) once a
// blocking request has delivered them.
func (s *Server) dropTemp(j jobs.Job) {
	if err := jobs.RemoveTemp(s.img.data, j.Result.Images); err != nil {
		s.log.Warn("deleting delivered temporary images", "job", j.ID, "err", err)
	}
}

// readOutputs loads a job's images from the outputs (or temporary) folder.
func (s *Server) readOutputs(j jobs.Job) ([][]byte, error) {
	var out [][]byte
	for _, rel := range j.Result.Images {
		p, err := jobs.ResolveOutput(s.img.data, rel)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// sdGenerate is /sdapi/v1/txt2img and img2img: a job, waited for.
func (s *Server) sdGenerate(w http.ResponseWriter, r *http.Request, img2img bool) {
	if !s.imagesReady(w, r) {
		return
	}
	body, ok := s.readImageBody(w, r)
	if !ok {
		return
	}
	j, req, status, err := s.submitImage(keyName(r), body, img2img, 0, false)
	if err != nil {
		s.sdFail(w, r, status, err)
		return
	}
	j, err = s.waitJob(r.Context(), j.ID)
	if err != nil {
		return // the client left; the job was cancelled
	}
	if j.State == jobs.Failed || (j.State == jobs.Cancelled && len(j.Result.Images) == 0) {
		s.sdFail(w, r, http.StatusInternalServerError, fmt.Errorf("generation %s: %s", j.State, j.Error))
		return
	}
	pngs, err := s.readOutputs(j)
	s.dropTemp(j) // delivered
	if err != nil {
		s.sdFail(w, r, http.StatusInternalServerError, err)
		return
	}
	var info sdapi.Info
	json.Unmarshal(j.Result.Info, &info)
	resp, err := sdapi.EncodeResponse(req, pngs, info)
	if err != nil {
		s.sdFail(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(resp)
}

func (s *Server) sdProgress(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	out := sdapi.Progress{State: sdapi.State{JobTimestamp: "0"}}
	running := s.img.q.Running()
	if len(running) > 0 {
		j := running[0]
		p := j.Progress
		out.ID = j.ID
		out.State = sdapi.State{Skipped: p.Skipped, Interrupted: p.Interrupted, Job: "job(task(" + j.ID + "))",
			JobCount: max(p.JobCount, 1), JobTimestamp: j.Started.Format("20060102150405"), JobNo: p.JobNo,
			SamplingStep: p.Step, SamplingSteps: p.Steps}
		out.Progress, out.EtaRelative = sdapi.ProgressOf(out.State, time.Since(j.Started))
		if p.TextInfo != "" {
			t := p.TextInfo
			out.Textinfo = &t
		}
		if r.URL.Query().Get("skip_current_image") != "true" {
			if img, _, n := s.img.q.Preview(j.ID); n > 0 {
				b := base64.StdEncoding.EncodeToString(img)
				out.CurrentImage = &b
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sdInterrupt(w http.ResponseWriter, r *http.Request) {
	if s.imagesReady(w, r) {
		s.img.q.Interrupt("")
		writeJSON(w, http.StatusOK, map[string]any{})
	}
}

func (s *Server) sdSkip(w http.ResponseWriter, r *http.Request) {
	if s.imagesReady(w, r) {
		s.img.q.Skip("")
		writeJSON(w, http.StatusOK, map[string]any{})
	}
}

func (s *Server) sdOptions(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	im := s.img
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		im.omu.Lock()
		opts := map[string]any{}
		for k, v := range im.options {
			opts[k] = v
		}
		im.omu.Unlock()
		if opts["sd_model_checkpoint"] == "" {
			if m, err := im.lookup(""); err == nil {
				opts["sd_model_checkpoint"] = m.Name
			}
		}
		writeJSON(w, http.StatusOK, opts)
	case http.MethodPost:
		body, ok := s.readImageBody(w, r)
		if !ok {
			return
		}
		var set map[string]any
		if err := json.Unmarshal(body, &set); err != nil {
			s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body"}, Msg: "a JSON object of settings is required", Type: "type_error.dict"}}})
			return
		}
		if v, ok := set["sd_model_checkpoint"].(string); ok {
			if _, err := im.lookup(v); err != nil {
				s.sdFail(w, r, http.StatusNotFound, err)
				return
			}
		}
		im.omu.Lock()
		for k, v := range set {
			im.options[k] = v
		}
		b, _ := json.MarshalIndent(im.options, "", "  ")
		im.omu.Unlock()
		if err := writeAtomic(im.data+"/options.json", b); err != nil {
			s.sdFail(w, r, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, nil)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.sdFail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("%s: use GET or POST", r.Method))
	}
}

func (s *Server) sdModels(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	ms, err := s.img.list()
	if err != nil {
		s.sdFail(w, r, http.StatusInternalServerError, err)
		return
	}
	out := []sdapi.Model{}
	for _, m := range ms {
		title := m.Name
		if strings.HasSuffix(m.Path, ".safetensors") {
			title += ".safetensors"
		}
		e := sdapi.Model{Title: title, ModelName: m.Name, Filename: m.Path}
		// Computed in the background: null until known (never waited for).
		if sha := s.img.hashes.sha256(m.Path); sha != "" {
			short := shortHash(sha)
			e.SHA256, e.Hash = &sha, &short
			e.Title += " [" + short + "]"
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sdSamplers(w http.ResponseWriter, r *http.Request) {
	out := []sdapi.Sampler{}
	for _, i := range diffsample.Samplers() {
		opts := i.Options
		if opts == nil {
			opts = map[string]string{}
		}
		out = append(out, sdapi.Sampler{Name: i.Label, Aliases: append([]string{i.Name}, i.Aliases...), Options: opts})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sdSchedulers(w http.ResponseWriter, r *http.Request) {
	out := []sdapi.Scheduler{{Name: "automatic", Label: "Automatic", Aliases: []string{}, DefaultRho: -1}}
	for _, i := range diffsample.Schedulers() {
		rho := -1.0
		if i.Name == "karras" {
			rho = 7
		}
		al := i.Aliases
		if al == nil {
			al = []string{}
		}
		out = append(out, sdapi.Scheduler{Name: i.Name, Label: i.Label, Aliases: al, DefaultRho: rho})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sdUpscalers(w http.ResponseWriter, r *http.Request) {
	out := []sdapi.Upscaler{}
	for _, n := range []string{"None", "Latent", "Latent (nearest)", "Lanczos"} {
		out = append(out, sdapi.Upscaler{Name: n})
	}
	writeJSON(w, http.StatusOK, out)
}

// sdPNGInfo reads a PNG's text chunks and parses its A1111 infotext.
func (s *Server) sdPNGInfo(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readImageBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Image string `json:"image"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Image == "" {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body", "image"}, Msg: "field required: a base64 PNG", Type: "value_error.missing"}}})
		return
	}
	raw := in.Image
	if i := strings.Index(raw, ";base64,"); strings.HasPrefix(raw, "data:") && i >= 0 {
		raw = raw[i+8:]
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body", "image"}, Msg: "invalid base64", Type: "value_error"}}})
		return
	}
	out := sdapi.PNGInfo{Items: map[string]string{}, Parameters: map[string]any{}}
	text, err := pictureText(b)
	if err != nil && len(text) == 0 {
		s.sdFail(w, r, http.StatusUnprocessableEntity, &sdapi.ValidationError{Detail: []sdapi.FieldError{{Loc: []any{"body", "image"}, Msg: "not a readable PNG or JPEG: " + err.Error(), Type: "value_error"}}})
		return
	}
	for k, v := range text {
		if k == "parameters" {
			out.Info = v
		} else {
			out.Items[k] = v
		}
	}
	if out.Info != "" {
		out.Parameters = infotextDict(out.Info)
	}
	writeJSON(w, http.StatusOK, out)
}

// pictureText reads a picture's text without decoding its pixels: a PNG's
// text chunks, or a JPEG's EXIF UserComment (where A1111 keeps the
// infotext of JPEGs) as "parameters".
func pictureText(b []byte) (map[string]string, error) {
	if !bytes.HasPrefix(b, []byte{0xFF, 0xD8}) {
		return pngtext.ReadText(bytes.NewReader(b))
	}
	c, err := jpegexif.ReadUserComment(bytes.NewReader(b))
	if c == "" {
		return map[string]string{}, err
	}
	return map[string]string{"parameters": c}, err
}

// infotextDict is A1111's parsed form of an infotext: numbers as numbers,
// "Size: WxH" also as Size-1 and Size-2.
func infotextDict(text string) map[string]any {
	out := map[string]any{}
	p, err := infotext.Parse(text)
	if err != nil {
		return out
	}
	out["Prompt"] = p.Prompt
	out["Negative prompt"] = p.Negative
	for _, kv := range p.Settings {
		v := any(kv.Value)
		if n, err := strconv.ParseInt(kv.Value, 10, 64); err == nil {
			v = n
		} else if f, err := strconv.ParseFloat(kv.Value, 64); err == nil {
			v = f
		} else if kv.Value == "True" || kv.Value == "False" {
			v = kv.Value == "True"
		}
		out[kv.Key] = v
		if a, b, ok := strings.Cut(kv.Value, "x"); ok {
			if w, e1 := strconv.Atoi(a); e1 == nil {
				if h, e2 := strconv.Atoi(b); e2 == nil {
					out[kv.Key+"-1"], out[kv.Key+"-2"] = w, h
				}
			}
		}
	}
	return out
}

func (s *Server) sdMemory(w http.ResponseWriter, r *http.Request) {
	ram := map[string]any{}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		vals := map[string]int64{}
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				vals[k] = n << 10
			}
		}
		f.Close()
		ram["total"], ram["free"] = vals["MemTotal"], vals["MemAvailable"]
		ram["used"] = vals["MemTotal"] - vals["MemAvailable"]
	}
	// "budget" is mica's: the memory budget every loaded model shares
	// (budget_bytes 0: no limit) and what the loaded ones take of it.
	writeJSON(w, http.StatusOK, map[string]any{"ram": ram, "cuda": map[string]any{"error": "mica runs on the CPU"},
		"budget": s.memoryState()})
}
