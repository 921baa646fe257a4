package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"mica/internal/llm/grammar"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma"
	"mica/internal/models/gemma/chat"
	"mica/internal/tokenizer"
)

// EventKind says what an Event carries.
type EventKind uint8

const (
	// ContentEvent carries a piece of the answer (or of a completion) in Text.
	ContentEvent EventKind = iota
	// ThinkingEvent carries a piece of a Gemma 4 model's thinking in Text.
	ThinkingEvent
	// ToolCallEvent carries one complete tool call in Call.
	ToolCallEvent
)

// Event is one piece of streamed output. Text is always whole UTF-8
// characters.
type Event struct {
	Kind EventKind
	Text string
	Call chat.ToolCall
	// Choice is the index of the answer the event belongs to (0 unless
	// the request asked for several: ChatRequest.N).
	Choice int
}

// Finish says why a generation ended.
type Finish string

const (
	// FinishStop: the model ended its turn (an end-of-generation token).
	FinishStop Finish = "stop"
	// FinishStopString: a stop string appeared in the output.
	FinishStopString Finish = "stop_string"
	// FinishLength: MaxTokens were generated.
	FinishLength Finish = "length"
	// FinishContext: the context is full.
	FinishContext Finish = "context"
	// FinishCancelled: the context.Context was cancelled.
	FinishCancelled Finish = "cancelled"
	// FinishError: the model or the sampler failed (the error is returned).
	FinishError Finish = "error"
)

// Usage is a request's token counts and timings.
type Usage struct {
	PromptTokens int `json:"prompt_tokens"`
	// CachedTokens of the prompt were still in the cache from the previous
	// request and were not computed again.
	CachedTokens    int `json:"cached_tokens"`
	GeneratedTokens int `json:"generated_tokens"`
	// Prefill is the time spent computing the prompt (up to its logits).
	Prefill time.Duration `json:"prefill_ns"`
	// DecodeSteps are the forward calls on single generated tokens, and
	// Decode the time they and their sampling took.
	DecodeSteps int           `json:"decode_steps"`
	Decode      time.Duration `json:"decode_ns"`
	// TimeToFirstToken runs from the call to the first sampled token.
	TimeToFirstToken time.Duration `json:"ttft_ns"`
}

// PrefillTokensPerSec is the prompt tokens computed per second.
func (u Usage) PrefillTokensPerSec() float64 {
	if u.Prefill <= 0 {
		return 0
	}
	return float64(u.PromptTokens-u.CachedTokens) / u.Prefill.Seconds()
}

// DecodeTokensPerSec is the generated tokens computed per second.
func (u Usage) DecodeTokensPerSec() float64 {
	if u.Decode <= 0 {
		return 0
	}
	return float64(u.DecodeSteps) / u.Decode.Seconds()
}

// Result is a finished (or cancelled) generation.
type Result struct {
	// Text is the answer: the content of a chat answer, or the whole
	// continuation of a completion.
	Text      string
	Thinking  string
	ToolCalls []chat.ToolCall
	// Tokens are the generated ids (without the stop token).
	Tokens []int32
	Finish Finish
	// StopString is the stop string that ended the output
	// (FinishStopString).
	StopString string
	Usage      Usage
	// Choices holds every answer, in order, when the request asked for
	// more than one (ChatRequest.N > 1); nil otherwise. The Result itself
	// then carries the first answer's text, tokens and finish, and the
	// usage of the whole request: the prompt counted once (PromptTokens,
	// and CachedTokens as the first answer found them), the generated
	// tokens and decode steps of all answers summed. Each answer's own
	// Usage counts the prompt positions it copied from the first as
	// cached.
	Choices []Result
}

// Chat answers a conversation in the model's chat format, streaming events
// to onEvent (which may be nil). Special tokens other than the format's own
// markup are left out of the text. On cancellation it returns what was
// generated with ctx's error. Tool calls the model writes in a malformed way
// are reported as an error beside the result.
func (e *Engine) Chat(ctx context.Context, r ChatRequest, onEvent func(Event)) (Result, error) {
	start := time.Now()
	prompt, err := e.chatPlan(r)
	if err != nil {
		return Result{}, err
	}
	if r.Think && r.Grammar != nil {
		return Result{}, ErrThinkGrammar
	}
	if _, err := chat.NewParser(e.family); err != nil {
		return Result{}, err
	}
	return e.generate(ctx, start, prompt, genOptions{r.Sampling, r.MaxTokens, r.Stop, true, r.Grammar, r.MarkerGrammar, r.N}, onEvent)
}

// Complete continues a prompt without a chat format. Special tokens the model
// writes are left out of the text.
func (e *Engine) Complete(ctx context.Context, r CompletionRequest, onEvent func(Event)) (Result, error) {
	start := time.Now()
	prompt, err := e.completionPrompt(r)
	if err != nil {
		return Result{}, err
	}
	return e.generate(ctx, start, prompt, genOptions{r.Sampling, r.MaxTokens, r.Stop, false, r.Grammar, false, r.N}, onEvent)
}

type genOptions struct {
	sampling  sample.Params
	maxTokens int
	stop      []string
	chat      bool // parse the output as a chat answer (else a raw completion)
	grammar   *grammar.Grammar
	markers   bool // the grammar spells the tool-call markers
	n         int  // answers (0 or 1: one)
}

// generation is one request's state. A driver calls pending for the tokens to
// feed, runs them through the model, and hands the last row of logits to
// consume, until done.
type generation struct {
	e         *Engine
	seq       *gemma.Sequence
	prompt    *plan
	runs      []gemma.Input // the prompt's runs from the cached positions on (prepare)
	ri, ro    int           // the next run to feed and the offset in it
	fed       int           // prompt positions in the sequence
	step      int
	choice    int // the answer's index (ChatRequest.N)
	sampler   *sample.Sampler
	dec       *tokenizer.Decoder
	parser    *chat.Parser
	stop      []string
	maxTokens int
	onEvent   func(Event)
	cons      *constraint // nil: unconstrained
	// atPrompt, if set, is called once the whole prompt is fed, before
	// the first token is sampled.
	atPrompt func() error

	held     string // decoded text that may be the start of a stop string
	next     int32  // the last sampled token, to be fed
	done     bool
	start    time.Time
	tPrefill time.Time // start of prefill
	tDecode  time.Time // start of the current decode step
	res      Result
	content  strings.Builder
	thinking strings.Builder
}

func (e *Engine) generate(ctx context.Context, start time.Time, prompt *plan, o genOptions, onEvent func(Event)) (Result, error) {
	n := len(prompt.keys)
	if n == 0 {
		return Result{}, ErrEmptyPrompt
	}
	if n >= e.opts.Context {
		return Result{}, fmt.Errorf("engine: the prompt is %d tokens but the context holds %d, leaving no room for an answer: shorten the prompt or raise the context size (the model was trained for %d)",
			n, e.opts.Context, e.model.Config.ContextLength)
	}
	if o.maxTokens < 0 {
		return Result{}, fmt.Errorf("engine: max tokens %d must not be negative (0: no limit)", o.maxTokens)
	}
	for _, s := range o.stop {
		if s == "" {
			return Result{}, fmt.Errorf("engine: empty stop string")
		}
	}
	choices := max(o.n, 1)
	if o.n < 0 || choices > MaxChoices {
		return Result{}, fmt.Errorf("engine: %d answers requested: between 1 and %d are possible", o.n, MaxChoices)
	}
	smps := make([]*sample.Sampler, choices)
	for i := range smps {
		smp, err := sample.New(choiceParams(o.sampling, i), e.model.Config.NVocab)
		if err != nil {
			return Result{}, err
		}
		for _, id := range prompt.text {
			if err := smp.Accept(id); err != nil {
				return Result{}, err
			}
		}
		smps[i] = smp
	}
	if e.sched != nil {
		// The scheduler's goroutine encodes the images (prepare): it owns
		// the backend.
		gens := make([]*generation, choices)
		for i := range gens {
			gens[i] = e.newGeneration(nil, prompt, 0, smps[i], o, nil, start)
			gens[i].choice = i
		}
		res, err := e.sched.submit(ctx, gens, onEvent)
		return combine(res), err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Later answers restart from a copy of the prompt but its last
	// position (snap), taken when the first answer has fed the prompt: the
	// cached sequence's sliding-window rings may not hold it any more
	// after an answer.
	var snap *gemma.Sequence
	defer func() {
		if snap != nil {
			snap.Free()
		}
	}()
	var res []Result
	for i := range choices {
		r, err := e.runOne(ctx, prompt, smps[i], o, onEvent, start, i, &snap, choices > 1)
		res = append(res, r)
		if err != nil {
			return combine(res), err
		}
	}
	return combine(res), nil
}

// runOne runs one answer on the cached sequence (single-sequence mode).
// With several answers (fork), the first one leaves a copy of the prompt
// but its last position in *snap, and the later ones start from it. Call
// with e.mu held.
func (e *Engine) runOne(ctx context.Context, prompt *plan, smp *sample.Sampler, o genOptions, onEvent func(Event), start time.Time, choice int, snap **gemma.Sequence, fork bool) (Result, error) {
	var seq *gemma.Sequence
	var cached int
	var err error
	if *snap != nil {
		seq, cached, err = e.restore(prompt, *snap)
	} else {
		seq, cached, err = e.sequence(prompt)
	}
	if err != nil {
		return Result{}, err
	}
	g := e.newGeneration(seq, prompt, cached, smp, o, onEvent, start)
	g.choice = choice
	if n := prompt.imageStart(len(prompt.keys) - 1); fork && *snap == nil && n > 0 {
		g.atPrompt = func() error {
			var err error
			*snap, err = e.snapshot(seq, n)
			return err
		}
	}
	if err := g.prepare(); err != nil {
		return Result{}, err
	}
	e.reused.Add(int64(cached))
	e.kvReserved.Store(int64(seq.Cap()))
	defer func() { e.kvFilled.Store(int64(seq.Len())) }()
	return e.run(ctx, g)
}

// newGeneration starts a request's state on seq, which holds the first
// cached positions of prompt.
func (e *Engine) newGeneration(seq *gemma.Sequence, prompt *plan, cached int, smp *sample.Sampler, o genOptions, onEvent func(Event), start time.Time) *generation {
	g := &generation{e: e, seq: seq, prompt: prompt, fed: cached, step: e.opts.Step, sampler: smp,
		dec: e.tok.NewDecoder(), stop: o.stop, maxTokens: o.maxTokens, onEvent: onEvent, start: start}
	if o.chat {
		// Each answer parses its own output (Chat checked the family).
		g.parser, _ = chat.NewParser(e.family)
	}
	g.dec.SkipSpecial = true // the parser's markers are passed by consume
	if o.grammar != nil {
		g.cons = newConstraint(e, o.grammar, o.markers)
		if !o.markers {
			// The grammar's text is the whole answer: marker tokens are
			// never allowed, and ordinary text that spells a marker must
			// stay content.
			g.parser = nil
		}
	}
	g.res.Usage.PromptTokens, g.res.Usage.CachedTokens = len(prompt.keys), cached
	return g
}

// prepare builds the runs still to feed, encoding the images among them
// (through the embedding cache).
func (g *generation) prepare() error {
	runs, err := g.e.inputs(g.prompt, g.fed)
	if err != nil {
		return err
	}
	g.runs, g.ri, g.ro = runs, 0, 0
	return nil
}

// run is the single-sequence driver.
func (e *Engine) run(ctx context.Context, g *generation) (Result, error) {
	for !g.done {
		if err := ctx.Err(); err != nil {
			g.finish(FinishCancelled)
			return g.res, err
		}
		in := g.pending()
		var logits [][]float32
		var err error
		logits, e.logits, err = e.model.ForwardLastInto([]*gemma.Sequence{g.seq}, []gemma.Input{in}, e.logits)
		if err != nil {
			e.cached = e.cached[:min(len(e.cached), g.seq.Len())]
			g.finish(FinishError)
			return g.res, err
		}
		n := in.Len(e.model.Config.NEmbd)
		if g.fed < len(g.prompt.keys) {
			e.cached = append(e.cached, g.prompt.keys[g.fed:g.fed+n]...)
		} else {
			e.cached = append(e.cached, posKey{tok: in.Tokens[0]})
		}
		if err := g.consume(n, logits[0]); err != nil {
			g.finish(FinishError)
			return g.res, err
		}
	}
	return g.res, g.parseErr()
}

// pending returns the input to feed next: a chunk of the prompt's tokens,
// a whole image, or the last sampled token.
func (g *generation) pending() gemma.Input {
	if g.fed < len(g.prompt.keys) {
		if g.fed == g.res.Usage.CachedTokens {
			g.tPrefill = time.Now()
		}
		r := g.runs[g.ri]
		if len(r.Tokens) == 0 {
			return r // an image is fed whole: its rows see each other
		}
		return gemma.Input{Tokens: r.Tokens[g.ro:min(len(r.Tokens), g.ro+g.step)]}
	}
	g.tDecode = time.Now()
	return gemma.Input{Tokens: []int32{g.next}}
}

// consume takes the logits (the last row) after feeding n positions. It is
// advance, pick and take in a row; the batcher runs the picks of a step's
// generations in parallel between the other two.
func (g *generation) consume(n int, logits []float32) error {
	if want, err := g.advance(n, logits); err != nil || !want {
		return err
	}
	id, err := g.pick(logits)
	if err != nil {
		return err
	}
	return g.take(id)
}

// advance records that n positions were fed and reports whether a token is
// to be sampled from their logits (not while prompt remains). It shows the
// first logits to the test hook.
func (g *generation) advance(n int, logits []float32) (bool, error) {
	u := &g.res.Usage
	if g.fed < len(g.prompt.keys) {
		g.fed += n
		g.ro += n
		if r := g.runs[g.ri]; g.ro >= r.Len(g.e.model.Config.NEmbd) {
			g.ri, g.ro = g.ri+1, 0
		}
		if g.fed < len(g.prompt.keys) {
			return false, nil
		}
		u.Prefill = time.Since(g.tPrefill)
		if f := g.atPrompt; f != nil {
			g.atPrompt = nil
			if err := f(); err != nil {
				return false, err
			}
		}
	}
	if h := g.e.firstLogits; h != nil && u.GeneratedTokens == 0 && u.DecodeSteps == 0 {
		h(logits)
	}
	return true, nil
}

// pick samples the next token from the logits (modified in place: the
// grammar's mask, the logit bias, the penalties). It touches only this
// generation's sampler and grammar state (a Grammar is safe for concurrent
// use), so the picks of different generations may run at once. A panic is
// returned as an error.
func (g *generation) pick(logits []float32) (id int32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine: panic while sampling: %v", r)
		}
	}()
	if g.cons != nil {
		if err := g.cons.apply(logits); err != nil {
			return 0, err
		}
	}
	return g.sampler.Sample(logits)
}

// take handles a sampled token: usage, stop conditions, text and events.
func (g *generation) take(id int32) error {
	u := &g.res.Usage
	var err error
	if u.GeneratedTokens == 0 && u.DecodeSteps == 0 {
		u.TimeToFirstToken = time.Since(g.start)
	} else {
		u.DecodeSteps++
		defer func() { u.Decode += time.Since(g.tDecode) }()
	}
	if g.e.isStop(id) {
		g.finish(FinishStop)
		return nil
	}
	u.GeneratedTokens++
	g.res.Tokens = append(g.res.Tokens, id)
	if err := g.sampler.Accept(id); err != nil {
		return err
	}
	ended := false
	if g.cons != nil {
		if ended, err = g.cons.accept(id); err != nil {
			return err
		}
	}
	var t string
	if m, ok := g.e.markers[id]; ok && g.parser != nil {
		t = g.dec.Flush() + m
	} else {
		t = g.dec.Add(id)
	}
	if g.text(t) {
		return nil
	}
	switch {
	case g.parser != nil && g.parser.Done(), ended:
		g.finish(FinishStop)
	case g.maxTokens > 0 && u.GeneratedTokens >= g.maxTokens:
		g.finish(FinishLength)
	case g.seq.Len() >= g.seq.Cap():
		g.finish(FinishContext)
	default:
		g.next = id
	}
	return nil
}

// text passes decoded text through the stop strings; it reports whether a
// stop string ended the generation.
func (g *generation) text(t string) bool {
	if t == "" {
		return false
	}
	buf := g.held + t
	if len(g.stop) == 0 {
		g.held = ""
		g.emit(buf)
		return false
	}
	at, which := -1, ""
	for _, s := range g.stop {
		if i := strings.Index(buf, s); i >= 0 && (at < 0 || i < at) {
			at, which = i, s
		}
	}
	if at >= 0 {
		g.held = ""
		g.emit(buf[:at])
		g.res.StopString = which
		g.finish(FinishStopString)
		return true
	}
	// Hold back the longest end of buf that starts a stop string. Stop
	// strings are whole characters, so the cut falls between characters.
	keep := 0
	for _, s := range g.stop {
		for k := min(len(s)-1, len(buf)); k > keep; k-- {
			if strings.HasSuffix(buf, s[:k]) {
				keep = k
				break
			}
		}
	}
	g.held = buf[len(buf)-keep:]
	g.emit(buf[:len(buf)-keep])
	return false
}

// emit sends released text through the output parser (chat) or as content.
func (g *generation) emit(t string) {
	if t == "" {
		return
	}
	if g.parser == nil {
		g.event(Event{Kind: ContentEvent, Text: t})
		return
	}
	for _, ev := range g.parser.Feed(t) {
		g.event(fromChat(ev))
	}
}

func fromChat(ev chat.Event) Event {
	switch ev.Kind {
	case chat.ThinkingEvent:
		return Event{Kind: ThinkingEvent, Text: ev.Text}
	case chat.ToolCallEvent:
		return Event{Kind: ToolCallEvent, Call: ev.Call}
	}
	return Event{Kind: ContentEvent, Text: ev.Text}
}

func (g *generation) event(ev Event) {
	switch ev.Kind {
	case ContentEvent:
		if ev.Text == "" {
			return
		}
		g.content.WriteString(ev.Text)
	case ThinkingEvent:
		if ev.Text == "" {
			return
		}
		g.thinking.WriteString(ev.Text)
	case ToolCallEvent:
		g.res.ToolCalls = append(g.res.ToolCalls, ev.Call)
	}
	if g.onEvent != nil {
		ev.Choice = g.choice
		g.onEvent(ev)
	}
}

// finish releases what is held back and ends the generation.
func (g *generation) finish(why Finish) {
	if g.done {
		return
	}
	if why != FinishStopString {
		// The decoder's held-back bytes can still complete a stop string.
		if t := g.dec.Flush(); t != "" && g.text(t) {
			return
		}
		g.emit(g.held)
		g.held = ""
	}
	g.done = true
	g.res.Finish = why
	if g.parser != nil {
		for _, ev := range g.parser.Finish() {
			g.event(fromChat(ev))
		}
	}
	g.res.Text, g.res.Thinking = g.content.String(), g.thinking.String()
}

// parseErr reports malformed tool calls in a chat answer.
func (g *generation) parseErr() error {
	if g.parser == nil {
		return nil
	}
	if err := g.parser.Err(); err != nil {
		return fmt.Errorf("engine: the answer's tool calls: %w", err)
	}
	return nil
}
