package server

import (
	"net/http"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/server/canon"
	"mica/internal/server/openai"
)

func (s *Server) openaiChat(w http.ResponseWriter, r *http.Request) {
	s.openaiGenerate(w, r, openai.DecodeChat, true)
}

func (s *Server) openaiCompletion(w http.ResponseWriter, r *http.Request) {
	s.openaiGenerate(w, r, openai.DecodeCompletion, false)
}

func (s *Server) openaiGenerate(w http.ResponseWriter, r *http.Request, decode func([]byte) (*canon.Request, error), isChat bool) {
	req, j, ctx, cancel, ok := s.admit(w, r, decode)
	if !ok {
		return
	}
	defer cancel()
	defer j.done()
	prefix := "cmpl"
	if isChat {
		prefix = "chatcmpl"
	}
	id, created := openai.NewID(prefix), time.Now().Unix()
	if !req.Stream {
		res, err := j.run(ctx, nil)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(w, r, err)
			}
			return
		}
		if isChat {
			writeJSON(w, http.StatusOK, openai.ChatResponse(id, req.Model, created, res))
		} else {
			writeJSON(w, http.StatusOK, openai.TextResponse(id, req.Model, created, res))
		}
		return
	}
	sw := newStream(w, true, cancel)
	defer sw.close()
	n := 0
	if isChat {
		n = req.Chat.N
	} else {
		n = req.Completion.N
	}
	enc := &openai.Stream{ID: id, Model: req.Model, Created: created, Chat: isChat, N: n}
	for _, c := range enc.Start() {
		sw.send(openai.Marshal(c))
	}
	res, err := j.run(ctx, func(ev engine.Event) {
		for _, c := range enc.Event(ev) {
			sw.send(openai.Marshal(c))
		}
	})
	if err != nil {
		if ctx.Err() == nil {
			sw.send(openai.Marshal(openai.Error(canon.As(err))))
		}
		return
	}
	for _, c := range enc.Finish(res, req.IncludeUsage) {
		sw.send(openai.Marshal(c))
	}
	sw.done()
}

func (s *Server) openaiModels(w http.ResponseWriter, r *http.Request) {
	models, skipped, err := s.cat.list()
	if err != nil {
		s.fail(w, r, canon.New(canon.Unavailable, "listing the models folder: %v", err))
		return
	}
	for _, e := range skipped {
		s.log.Warn("model file skipped", "err", e)
	}
	out := openai.ModelList{Object: "list", Data: []openai.Model{}}
	for _, m := range models {
		out.Data = append(out.Data, openaiModel(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func openaiModel(m ModelInfo) openai.Model {
	return openai.Model{ID: m.Name, Object: "model", Created: m.Modified.Unix(), OwnedBy: "mica"}
}

func (s *Server) openaiModel(w http.ResponseWriter, r *http.Request) {
	m, err := s.cat.lookup(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, openaiModel(m))
}
