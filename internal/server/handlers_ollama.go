package server

import (
	"net/http"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/server/canon"
	"mica/internal/server/ollama"
)

func (s *Server) ollamaChat(w http.ResponseWriter, r *http.Request) {
	s.ollamaRun(w, r, ollama.DecodeChat, true)
}

func (s *Server) ollamaGenerate(w http.ResponseWriter, r *http.Request) {
	s.ollamaRun(w, r, ollama.DecodeGenerate, false)
}

func (s *Server) ollamaRun(w http.ResponseWriter, r *http.Request, decode func([]byte) (*canon.Request, error), isChat bool) {
	req, j, ctx, cancel, ok := s.admit(w, r, decode)
	if !ok {
		return
	}
	defer cancel()
	defer j.done()
	enc := &ollama.Encoder{Model: req.Model, Chat: isChat, Start: j.start, Load: j.load}
	if req.LoadOnly {
		reason := "load"
		if req.KeepAlive != nil && *req.KeepAlive == 0 {
			reason = "unload"
		}
		writeJSON(w, http.StatusOK, enc.LoadResponse(reason, time.Now()))
		return
	}
	if !req.Stream {
		res, err := j.run(ctx, nil)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(w, r, err)
			}
			return
		}
		writeJSON(w, http.StatusOK, enc.Final(res, false, time.Now()))
		return
	}
	sw := newStream(w, false, cancel)
	defer sw.close()
	res, err := j.run(ctx, func(ev engine.Event) {
		sw.send(marshal(enc.Event(ev, time.Now())))
	})
	if err != nil {
		if ctx.Err() == nil {
			sw.send(marshal(ollama.Error(canon.As(err))))
		}
		return
	}
	sw.send(marshal(enc.Final(res, true, time.Now())))
}

func details(m ModelInfo) ollama.Details {
	return ollama.Details{Format: "gguf", Family: m.Arch, Families: []string{m.Arch}, ParameterSize: m.SizeLabel, QuantizationLevel: m.Quant}
}

func entry(m ModelInfo) ollama.ModelEntry {
	return ollama.ModelEntry{Name: m.Name, Model: m.Name, ModifiedAt: m.Modified.UTC().Format(time.RFC3339Nano),
		Size: m.Size, Digest: digest(m), Details: details(m)}
}

func (s *Server) ollamaTags(w http.ResponseWriter, r *http.Request) {
	models, skipped, err := s.cat.list()
	if err != nil {
		s.fail(w, r, canon.New(canon.Unavailable, "listing the models folder: %v", err))
		return
	}
	for _, e := range skipped {
		s.log.Warn("model file skipped", "err", e)
	}
	out := ollama.Tags{Models: []ollama.ModelEntry{}}
	for _, m := range models {
		out.Models = append(out.Models, entry(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) ollamaShow(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name, err := ollama.DecodeShow(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m, err := s.cat.lookup(name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	caps := []string{"completion"}
	if m.Arch == "gemma4" {
		caps = append(caps, "tools", "thinking")
	}
	if s.withProjector(m).Projector != "" {
		caps = append(caps, "vision")
	}
	info := map[string]any{"general.architecture": m.Arch, "general.parameter_count": m.Params}
	if m.Context > 0 {
		info[m.Arch+".context_length"] = m.Context
	}
	writeJSON(w, http.StatusOK, ollama.Show{Template: m.Template, Details: details(m), ModelInfo: info,
		Capabilities: caps, ModifiedAt: m.Modified.UTC().Format(time.RFC3339Nano)})
}

func (s *Server) ollamaPS(w http.ResponseWriter, r *http.Request) {
	out := ollama.PS{Models: []ollama.Running{}}
	for _, m := range s.res.list() {
		if m.kind != kindLLM || m.loading {
			continue
		}
		e := ""
		if !m.expires.IsZero() {
			e = m.expires.UTC().Format(time.RFC3339Nano)
		}
		r := ollama.Running{ModelEntry: entry(m.info), ExpiresAt: e}
		r.Size = m.need // Ollama's size here is the memory the loaded model takes
		out.Models = append(out.Models, r)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) ollamaVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version})
}
