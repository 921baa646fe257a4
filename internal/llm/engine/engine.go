// Package engine generates text with a loaded Gemma model: it builds the
// prompt (chat format or raw), tokenizes it safely, prefills it in chunks,
// samples, stops (end-of-generation tokens, stop strings, token limit, full
// context, cancellation) and streams the output as parsed events with usage
// statistics.
//
// By default one request runs at a time on one cached sequence. With
// Options.Batch > 1 a continuous batcher (scheduler.go) runs up to Batch
// requests together. Each request's state is a generation value driven by
// two calls, "which tokens to feed next" and "here are the logits" (see
// generation.pending / consume): the single-sequence loop (run) and the
// batcher, which feeds many generations through one Model.ForwardLast call,
// share everything else. The batcher copies shared prompt prefixes between
// sequences (prefix.go), runs the N answers of one request on one prefill
// (choices.go), and hands events to each request's own delivery goroutine
// through a bounded outbox, so that a slow reader pauses only its own
// request (outbox.go).
//
// Images (images.go): with a vision projector (OpenVision), chat and raw
// prompts may hold images. A prompt is then a plan of token runs and
// images; each image is decoded and preprocessed when the prompt is built,
// encoded (through an embedding cache keyed by the image's content) only
// when its positions are not already in the KV cache, and fed whole, its
// rows attending to each other. The single sequence's prefix reuse matches
// image positions by content, so a conversation that goes on after an
// image reuses the cache through it. The batcher encodes the images of a
// request when it admits it, in its own goroutine (which owns the backend).
package engine

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/llm/grammar"
	"mica/internal/models/gemma"
	"mica/internal/models/gemma/chat"
	"mica/internal/tensor"
	"mica/internal/tokenizer"
)

// Options configure an Engine.
type Options struct {
	// Context is the most positions (prompt + answer) a request may use.
	// 0: the model's training context, capped at DefaultContext.
	Context int
	// F32KV keeps the KV cache in F32 instead of F16 (llama.cpp's default).
	F32KV bool
	// Step is the prefill chunk in tokens (0: gemma.DefaultStep). A request
	// is cancelled between chunks at the latest.
	Step int
	// Batch is the most requests run together by the continuous batcher
	// (one goroutine that feeds every active request through one forward
	// call per step, each on a sequence of its own). 0 or 1: requests run
	// one at a time on one cached sequence that keeps the previous
	// request's prompt prefix. The batcher reuses prompt prefixes too
	// (prefix.go): a joining request copies the longest prefix of its
	// prompt that a running or recently finished sequence holds.
	Batch int
	// PrefixCache is the most finished sequences the batcher keeps for
	// prefix reuse (0: DefaultPrefixCache; negative: none). Running and
	// kept sequences together never exceed Batch; kept ones count against
	// KVBudget and are dropped, oldest first, when a request needs their
	// room.
	PrefixCache int
	// StreamBuffer is the most events a batched request's callback may
	// fall behind before the request pauses (0: DefaultStreamBuffer);
	// StallTimeout is how long it may stay paused before it is cancelled
	// with ErrSlowReader (0: DefaultStallTimeout). See outbox.go.
	StreamBuffer int
	StallTimeout time.Duration
	// Budget is the most tokens one batched step feeds: each decoding
	// request's token, then prompt chunks of joining requests (0:
	// DefaultBudget).
	Budget int
	// KVBudget is the most KV positions (summed sequence capacities) the
	// batcher's running requests may reserve; others wait (0: no limit
	// beyond Batch). A request's capacity is its prompt plus max tokens,
	// or the context.
	KVBudget int
	// OnBatch, if set, is called by the batcher after each step.
	OnBatch func(BatchStats)
	// MaxImages is the most images one request may hold (0:
	// DefaultMaxImages); ImageCacheBytes bounds the cache of image
	// embeddings (0: DefaultImageCacheBytes). See OpenVision.
	MaxImages       int
	ImageCacheBytes int64
}

// DefaultContext caps the context when Options.Context is 0.
const DefaultContext = 8192

// Engine runs generation requests on one model. Requests are serialised:
// the model computes one forward call at a time.
type Engine struct {
	model  *gemma.Model
	tok    *tokenizer.Tokenizer
	family string
	file   *gguf.File // owned when opened by Open
	opts   Options

	// stopIDs are the ids that end a generation besides tokenizer.IsEOG:
	// the family's end-of-turn token.
	stopIDs map[int32]bool
	// markers are the special tokens the output parser reads (Gemma 4's
	// thinking and tool-call syntax), by id. Other special tokens are left
	// out of the output text.
	markers map[int32]string
	// special lists the vocabulary's special-token strings by first byte,
	// longest first, for cutting them out of chat-template markup.
	special map[byte][]specialToken

	// vocab is the vocabulary prepared for grammar masks, built on first
	// use (about a quarter of a second for 262k tokens) and shared by all
	// constrained requests; eog lists its end-of-generation ids.
	vocabOnce sync.Once
	vocab     *grammar.Vocab
	eog       []int32
	// markerVocab is vocab for MarkerGrammar requests (see
	// ChatRequest.MarkerGrammar), also built on first use.
	markerOnce  sync.Once
	markerVocab *grammar.Vocab

	mu     sync.Mutex
	seq    *gemma.Sequence // the cached sequence (nil until first use)
	cached []posKey        // what the sequence's positions hold
	vis    visionState     // images (images.go)
	logits []float32       // the single-sequence loop's logits row, reused

	// KV cache use, for metrics (KVUse): positions filled and reserved
	// by the live sequences.
	kvFilled, kvReserved atomic.Int64
	// reused counts prompt positions taken from a KV cache instead of
	// being computed (ReusedTokens).
	reused atomic.Int64

	sched *scheduler // the continuous batcher (Options.Batch > 1)

	// firstLogits, in tests, sees the logits after each prompt.
	firstLogits func([]float32)
}

type specialToken struct {
	text string
	id   int32
}

// Open loads the model and its tokenizer from a GGUF file.
func Open(path string, be compute.Backend, o Options) (*Engine, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: tokenizer: %w", path, err)
	}
	m, err := gemma.Load(f, be)
	if err != nil {
		f.Close()
		return nil, err
	}
	e, err := New(m, tok, o)
	if err != nil {
		m.Close()
		f.Close()
		return nil, err
	}
	e.file = f
	return e, nil
}

// New wraps a loaded model and tokenizer. The caller keeps ownership of the
// model (Close does not close it).
func New(m *gemma.Model, tok *tokenizer.Tokenizer, o Options) (*Engine, error) {
	c := m.Config
	if tok.VocabSize() > c.NVocab {
		return nil, fmt.Errorf("engine: the tokenizer has %d tokens but the model's embedding only %d rows", tok.VocabSize(), c.NVocab)
	}
	if o.StreamBuffer < 0 || o.StallTimeout < 0 {
		return nil, fmt.Errorf("engine: stream buffer %d and stall timeout %s must not be negative", o.StreamBuffer, o.StallTimeout)
	}
	if o.StreamBuffer == 0 {
		o.StreamBuffer = DefaultStreamBuffer
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.PrefixCache == 0 {
		o.PrefixCache = DefaultPrefixCache
	}
	if o.Context < 0 || o.Step < 0 || o.Batch < 0 || o.Budget < 0 || o.KVBudget < 0 || o.MaxImages < 0 || o.ImageCacheBytes < 0 {
		return nil, fmt.Errorf("engine: context %d, step %d, batch %d, budget %d, KV budget %d, max images %d and image cache %d must not be negative",
			o.Context, o.Step, o.Batch, o.Budget, o.KVBudget, o.MaxImages, o.ImageCacheBytes)
	}
	if o.MaxImages == 0 {
		o.MaxImages = DefaultMaxImages
	}
	if o.ImageCacheBytes == 0 {
		o.ImageCacheBytes = DefaultImageCacheBytes
	}
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.Context == 0 {
		o.Context = DefaultContext
		if c.ContextLength > 0 {
			o.Context = min(c.ContextLength, DefaultContext)
		}
	}
	if o.Step == 0 {
		o.Step = gemma.DefaultStep
	}
	e := &Engine{model: m, tok: tok, family: c.Arch, opts: o, stopIDs: map[int32]bool{},
		markers: map[int32]string{}, special: map[byte][]specialToken{}}
	if e.family == gemma.ArchGemma4 {
		for _, s := range chat.Gemma4Markers {
			if id, ok := tok.ID(s); ok && tok.IsSpecial(id) {
				e.markers[id] = s
			}
		}
	}
	for _, s := range []string{"<end_of_turn>", "<turn|>"} {
		if id, ok := tok.ID(s); ok && tok.IsControl(id) {
			e.stopIDs[id] = true
		}
	}
	for id := int32(0); int(id) < tok.VocabSize(); id++ {
		if !tok.IsSpecial(id) {
			continue
		}
		if s := tok.TokenText(id); s != "" {
			e.special[s[0]] = append(e.special[s[0]], specialToken{s, id})
		}
	}
	for _, l := range e.special {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].text) > len(l[j].text) })
	}
	if o.Batch > 1 {
		e.startScheduler()
	}
	return e, nil
}

// Close frees the cached sequence and, for Open, the model and file.
func (e *Engine) Close() error {
	if e.sched != nil {
		e.sched.stop()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seq != nil {
		e.seq.Free()
		e.seq, e.cached = nil, nil
	}
	verr := e.closeVision()
	if e.file != nil {
		err := errors.Join(verr, e.model.Close(), e.file.Close())
		e.file = nil
		return err
	}
	return verr
}

// KVUse reports the KV cache positions the live sequences hold (filled)
// and have reserved, and the batcher's budget (0: none). Without batching
// it is the one cached sequence's, kept between requests for prefix reuse;
// with batching, the running requests' and the finished ones kept for
// prefix reuse (Options.PrefixCache).
func (e *Engine) KVUse() (filled, reserved, budget int) {
	return int(e.kvFilled.Load()), int(e.kvReserved.Load()), e.opts.KVBudget
}

// ReusedTokens is the number of prompt positions taken so far from a KV
// cache (the cached sequence, a running request's sequence or a finished
// one kept for reuse) instead of being computed.
func (e *Engine) ReusedTokens() int64 { return e.reused.Load() }

// Model is the model the engine runs.
func (e *Engine) Model() *gemma.Model { return e.model }

// Tokenizer is the model's tokenizer.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// Family is the chat format ("gemma3" or "gemma4"), from the architecture.
func (e *Engine) Family() string { return e.family }

// Context is the most positions one request may use.
func (e *Engine) Context() int { return e.opts.Context }

// isStop reports whether id ends a generation.
func (e *Engine) isStop(id int32) bool { return e.tok.IsEOG(id) || e.stopIDs[id] }

// sequence returns the cached sequence, truncated to the longest prefix of
// prompt it can keep, and how many prompt positions it already holds. At
// least one prompt position is always left to feed (its logits are needed);
// an image's positions are kept whole or not at all. Image positions match
// by the image's content, so a conversation that goes on after an image
// reuses the cache through it. Call with e.mu held.
func (e *Engine) sequence(p *plan) (*gemma.Sequence, int, error) {
	prompt := p.keys
	if e.seq == nil {
		s, err := e.model.NewSequence(gemma.SequenceOptions{Capacity: e.opts.Context, KV: e.kvType(), Step: e.opts.Step})
		if err != nil {
			return nil, 0, err
		}
		e.seq, e.cached = s, nil
	}
	n := 0
	for n < len(prompt)-1 && n < len(e.cached) && prompt[n] == e.cached[n] {
		n++
	}
	n = p.imageStart(n)
	if err := e.seq.Truncate(n); err != nil {
		// The sliding-window rings no longer hold what a shorter prefix
		// needs: start over.
		n = 0
		if err := e.seq.Truncate(0); err != nil {
			return nil, 0, err
		}
	}
	e.cached = e.cached[:n]
	return e.seq, n, nil
}

// snapshot copies the first n positions of seq into a new sequence of
// their size.
func (e *Engine) snapshot(seq *gemma.Sequence, n int) (*gemma.Sequence, error) {
	s, err := e.model.NewSequence(gemma.SequenceOptions{Capacity: n, KV: e.kvType(), Step: e.opts.Step})
	if err != nil {
		return nil, err
	}
	if err := seq.CopyPrefix(s, n); err != nil {
		s.Free()
		return nil, err
	}
	return s, nil
}

// restore makes the cached sequence hold snap's positions (the first
// snap.Len() of prompt) and returns it as sequence does. Call with e.mu
// held, after sequence has made the cached sequence.
func (e *Engine) restore(p *plan, snap *gemma.Sequence) (*gemma.Sequence, int, error) {
	n := snap.Len()
	if err := e.seq.Truncate(0); err != nil {
		return nil, 0, err
	}
	e.cached = e.cached[:0]
	if err := snap.CopyPrefix(e.seq, n); err != nil {
		return nil, 0, err
	}
	e.cached = append(e.cached, p.keys[:n]...)
	return e.seq, n, nil
}

// kvType is the KV cache's type (Options.F32KV).
func (e *Engine) kvType() tensor.DType {
	if e.opts.F32KV {
		return tensor.F32
	}
	return tensor.F16
}
