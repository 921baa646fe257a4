package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"

	"mica/internal/convstore"
)

// The browser UI's conversations, kept on the server in the data folder
// (conversations.db) so they survive a restart. The store is opened for
// each request (SQLite makes that cheap), so it needs no place in the
// server's lifetime.

func (s *Server) conversationRoutes(h func(pattern, method string, f http.HandlerFunc)) {
	h("GET /mica/v1/conversations", http.MethodGet, s.withConversations(s.convList))
	h("GET /mica/v1/conversations/{id}", http.MethodGet, s.withConversations(s.convGet))
	h("PUT /mica/v1/conversations/{id}", http.MethodPut, s.withConversations(s.convPut))
	h("DELETE /mica/v1/conversations/{id}", http.MethodDelete, s.withConversations(s.convDelete))
}

type convHandler func(w http.ResponseWriter, r *http.Request, st *convstore.Store)

func (s *Server) withConversations(f convHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.DataDir == "" {
			s.sdFail(w, r, http.StatusServiceUnavailable, errors.New("conversations are not kept on the server: start mica serve with a data folder (--data DIR)"))
			return
		}
		st, err := convstore.Open(filepath.Join(s.cfg.DataDir, "conversations.db"))
		if err != nil {
			s.sdFail(w, r, http.StatusInternalServerError, err)
			return
		}
		defer st.Close()
		f(w, r, st)
	}
}

func (s *Server) convFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, convstore.ErrNotFound):
		s.sdFail(w, r, http.StatusNotFound, err)
	case errors.Is(err, convstore.ErrInvalid):
		s.sdFail(w, r, http.StatusBadRequest, err)
	default:
		s.sdFail(w, r, http.StatusInternalServerError, err)
	}
}

func (s *Server) convList(w http.ResponseWriter, r *http.Request, st *convstore.Store) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	list, err := st.List(limit)
	if err != nil {
		s.convFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": list})
}

func (s *Server) convGet(w http.ResponseWriter, r *http.Request, st *convstore.Store) {
	c, err := st.Get(r.PathValue("id"))
	if err != nil {
		s.convFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// convPut: {"title", "model", "messages": [...]} creates or replaces the
// conversation named in the path.
func (s *Server) convPut(w http.ResponseWriter, r *http.Request, st *convstore.Store) {
	body, err := readLimited(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		s.sdFail(w, r, http.StatusRequestEntityTooLarge, err)
		return
	}
	var in struct {
		Title    string          `json:"title"`
		Model    string          `json:"model"`
		Messages json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		s.sdFail(w, r, http.StatusBadRequest, errors.New(`want {"title": "…", "model": "…", "messages": [ … ]}: `+err.Error()))
		return
	}
	c, err := st.Put(convstore.Conversation{ID: r.PathValue("id"), Title: in.Title, Model: in.Model, Messages: in.Messages})
	if err != nil {
		s.convFail(w, r, err)
		return
	}
	c.Messages = nil
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) convDelete(w http.ResponseWriter, r *http.Request, st *convstore.Store) {
	if err := st.Delete(r.PathValue("id")); err != nil {
		s.convFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
