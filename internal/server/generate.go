package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

// job is a validated request holding the engine.
type job struct {
	req    *canon.Request
	info   ModelInfo
	runner Runner
	load   time.Duration
	start  time.Time
	s      *Server
}

// admit reads and decodes a generation request's body and prepares its job
// (model lookup, checks, queue). On failure it has answered the client and
// returns ok false; on success the caller must call cancel and j.done.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, decode func([]byte) (*canon.Request, error)) (req *canon.Request, j *job, ctx context.Context, cancel context.CancelFunc, ok bool) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return nil, nil, nil, nil, false
	}
	if req, err = decode(body); err != nil {
		s.fail(w, r, err)
		return nil, nil, nil, nil, false
	}
	ctx, cancel = context.WithCancel(r.Context())
	if err := s.checkImages(req); err != nil {
		s.fail(w, r, err)
		cancel()
		return nil, nil, nil, nil, false
	}
	if err := s.fetchImages(ctx, req); err != nil {
		if ctx.Err() == nil {
			s.fail(w, r, err)
		}
		cancel()
		return nil, nil, nil, nil, false
	}
	if j, err = s.prepare(ctx, req); err != nil {
		if ctx.Err() == nil {
			s.fail(w, r, err)
		}
		cancel()
		return nil, nil, nil, nil, false
	}
	return req, j, ctx, cancel, true
}

// prepare finds the model, waits for the engine, loads the model and checks
// the request against it. On success the caller owns the engine until
// job.done.
func (s *Server) prepare(ctx context.Context, req *canon.Request) (*job, error) {
	start := time.Now()
	info, err := s.cat.lookup(req.Model)
	if err != nil {
		return nil, err
	}
	info = s.withProjector(info)
	if err := applyFormat(req); err != nil {
		return nil, err
	}
	if err := s.q.acquire(ctx); err != nil {
		return nil, err
	}
	j := &job{req: req, info: info, start: start, s: s}
	j.runner, j.load, err = s.res.ensure(ctx, info)
	if err == nil && !req.LoadOnly {
		if err = j.check(); err != nil {
			s.res.keep(info, s.cfg.KeepAlive)
		}
	}
	if err != nil {
		s.q.release()
		return nil, err
	}
	return j, nil
}

// applyFormat compiles the requested output format (from the cache when it
// was seen before) into the engine request's Grammar.
func applyFormat(r *canon.Request) error {
	f := r.Format
	if f == nil || r.LoadOnly {
		return nil
	}
	if r.Chat != nil && r.Chat.Think {
		return canon.Errorf(f.Param, "%s cannot be combined with thinking yet: turn thinking off (think: false, reasoning_effort \"none\")", f.Param)
	}
	var tools []chat.Tool
	if r.Chat != nil {
		tools = r.Chat.Tools
	}
	g, err := compileFormatTools(f, tools)
	if err != nil {
		return err
	}
	switch {
	case r.Chat != nil:
		r.Chat.Grammar = g
		r.Chat.MarkerGrammar = f.Kind == canon.FormatToolCall
	case r.Completion != nil:
		r.Completion.Grammar = g
	}
	return nil
}

// done applies the keep-alive and frees the engine.
func (j *job) done() {
	ka := j.s.cfg.KeepAlive
	if j.req.KeepAlive != nil {
		ka = *j.req.KeepAlive
	}
	j.s.res.keep(j.info, ka) // 0: unloaded once no other request uses it
	j.s.q.release()
}

// check validates what needs the model: sampling ranges against the
// vocabulary, the token limit and the prompt's length against the context.
func (j *job) check() error {
	r := j.req
	ctxLen := j.runner.Context()
	var prompt []int32
	var err error
	if r.Chat != nil {
		if fam := j.runner.Family(); fam != "gemma4" {
			if r.Chat.Think {
				return canon.Errorf("think", "model %q (%s) does not support thinking", j.info.Name, fam)
			}
			if len(r.Chat.Tools) > 0 {
				return canon.Errorf("tools", "model %q (%s) does not support tools", j.info.Name, fam)
			}
		}
		if err := r.Chat.Sampling.Validate(j.runner.VocabSize()); err != nil {
			return canon.Errorf("", "%s", strings.TrimPrefix(err.Error(), "sample: "))
		}
		prompt, err = j.runner.ChatPrompt(*r.Chat)
		if ie := imageError(r, err); ie != nil {
			return ie
		}
		if err != nil {
			return canon.Errorf("messages", "the conversation cannot be put in the model's chat format: %v", err)
		}
	} else {
		if err := r.Completion.Sampling.Validate(j.runner.VocabSize()); err != nil {
			return canon.Errorf("", "%s", strings.TrimPrefix(err.Error(), "sample: "))
		}
		prompt, err = j.runner.CompletionPrompt(*r.Completion)
		if ie := imageError(r, err); ie != nil {
			return ie
		}
		if err != nil {
			return canon.Errorf("prompt", "the prompt cannot be tokenized: %v", err)
		}
	}
	if len(prompt) == 0 {
		return canon.Errorf("prompt", "the prompt is empty")
	}
	limit := ctxLen
	if r.NumCtx > 0 {
		if r.NumCtx > ctxLen {
			return canon.Errorf("options.num_ctx", "options.num_ctx %d is more than the server's context of %d tokens (start mica serve with a larger --ctx)", r.NumCtx, ctxLen)
		}
		limit = r.NumCtx
	}
	if mt := r.MaxTokens(); mt > ctxLen {
		param := r.MaxTokensParam
		if param == "" {
			param = "max_tokens"
		}
		return canon.Errorf(param, "%s %d is more than the model's context of %d tokens: ask for fewer tokens or start mica serve with a larger --ctx", param, mt, ctxLen)
	}
	if len(prompt) >= limit {
		return &canon.Error{Kind: canon.Invalid, Param: "messages", Code: "context_length_exceeded",
			Msg: fmt.Sprintf("the prompt is %d tokens but the context holds %d, leaving no room for an answer: shorten the prompt", len(prompt), limit)}
	}
	if r.NumCtx > 0 {
		room := r.NumCtx - len(prompt)
		if mt := r.MaxTokens(); mt == 0 || mt > room {
			r.SetMaxTokens(room)
		}
	}
	return nil
}

// run generates, streaming events to onEvent. A cancelled ctx (the client
// left) returns ctx's error; a malformed tool call in the answer is logged
// and the rest of the answer is kept.
func (j *job) run(ctx context.Context, onEvent func(engine.Event)) (engine.Result, error) {
	var res engine.Result
	var err error
	wait := time.Since(j.start)         // metrics: queue and load time before the runner
	defer j.s.met.generationStarted()() // metrics (deferred: a panicking runner)
	if j.req.Chat != nil {
		res, err = j.runner.Chat(ctx, *j.req.Chat, onEvent)
	} else {
		res, err = j.runner.Complete(ctx, *j.req.Completion, onEvent)
	}
	j.s.met.generation(j.info.Name, res.Usage, wait) // metrics
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		j.s.log.Info("request cancelled", "model", j.info.Name, "generated", len(res.Tokens))
		return res, ctx.Err()
	case errors.Is(err, engine.ErrSlowReader):
		// Only a stream can fall behind; the error chunk reaches a client
		// that reads again.
		j.s.log.Warn("stream cancelled: the client did not read", "model", j.info.Name, "generated", len(res.Tokens))
		return res, canon.New(canon.Busy, "the stream was cancelled because the client did not read it for %s while its buffer was full: read the stream as it comes", engine.DefaultStallTimeout)
	case res.Finish == engine.FinishError || res.Finish == "":
		if errors.Is(err, engine.ErrEmptyPrompt) {
			return res, canon.Errorf("prompt", "the prompt is empty")
		}
		if ie := imageError(j.req, err); ie != nil {
			return res, ie
		}
		return res, canon.New(canon.Internal, "generation failed: %v", err)
	}
	j.s.log.Warn("answer has malformed tool calls", "model", j.info.Name, "err", err)
	return res, nil
}

// StreamWriteTimeout bounds one write of a streamed response: a client that
// takes no data for that long is treated as gone (its generation is
// cancelled). The engine's batcher already pauses a request whose client
// reads slowly, and cancels it after engine.DefaultStallTimeout; this
// deadline frees the handler (and its queue slot) when a write blocks.
const StreamWriteTimeout = time.Minute

// streamWriter frames chunks for a streamed response and notices a client
// that has gone. Events are written from the engine's delivery goroutine
// for the request, never from its batcher, so a slow client delays only
// its own stream.
type streamWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	sse    bool
	cancel context.CancelFunc
	failed bool
}

func newStream(w http.ResponseWriter, sse bool, cancel context.CancelFunc) *streamWriter {
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &streamWriter{w: w, rc: http.NewResponseController(w), sse: sse, cancel: cancel}
}

// send writes one JSON payload (already encoded) and flushes it.
func (s *streamWriter) send(payload []byte) {
	if s.failed {
		return
	}
	// Not every ResponseWriter has deadlines (an error then changes
	// nothing).
	_ = s.rc.SetWriteDeadline(time.Now().Add(StreamWriteTimeout))
	var err error
	if s.sse {
		_, err = fmt.Fprintf(s.w, "data: %s\n\n", payload)
	} else {
		_, err = fmt.Fprintf(s.w, "%s\n", payload)
	}
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.failed = true
		s.cancel() // the client is gone: stop generating
	}
}

// close clears the write deadline, so that a kept-alive connection's next
// response has none.
func (s *streamWriter) close() {
	if !s.failed {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// done ends an SSE stream.
func (s *streamWriter) done() {
	if s.sse && !s.failed {
		fmt.Fprint(s.w, "data: [DONE]\n\n")
		s.rc.Flush()
	}
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":"encoding the response failed"}`)
	}
	return b
}
