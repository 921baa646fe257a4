package chat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// This file splits a model's output (the text generated after the prompt)
// into answer, thinking and tool calls, incrementally.
//
// Gemma 4 output looks like
//
//	<|channel>thought\n…reasoning…\n<channel|>…answer…<turn|>
//	<|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>…<|tool_response>
//
// Thinking is the text of <|channel>…<channel|> blocks with the channel name
// line ("thought\n") and the newline before <channel|> removed; tool calls are
// converted to JSON (ToolCall.Arguments); <turn|> and <|tool_response> (both
// stop tokens) end the output and anything after them is ignored. Every other
// special-token string is dropped, so answer and thinking text never contain
// one; a partial marker at the end of a delta is held back until it is
// resolved. A <|turn>ROLE line (as in a rendered turn) is skipped.
//
// Gemma 3 has no thinking and no tool-call syntax (its function calling is
// prompt-only): its output is all answer, ended by <end_of_turn>. A caller that
// asked a Gemma 3 model for tool calls in some textual convention parses the
// answer itself.

// EventKind says what an Event carries.
type EventKind uint8

const (
	// ContentEvent carries a piece of the answer in Text.
	ContentEvent EventKind = iota
	// ThinkingEvent carries a piece of the thinking in Text.
	ThinkingEvent
	// ToolCallEvent carries one complete tool call in Call.
	ToolCallEvent
)

// Event is one piece of parsed output.
type Event struct {
	Kind EventKind
	Text string
	Call ToolCall
}

// Parsed is a whole output, split.
type Parsed struct {
	Content   string
	Thinking  string
	ToolCalls []ToolCall
}

type parseState uint8

const (
	stContent parseState = iota
	stThinking
	stChannelName // after <|channel>: the channel name line
	stRoleLine    // after <|turn>: the role line
	stToolCall
	stDone
)

// channelName is the line that opens Gemma 4's thinking channel.
const channelName = "thought\n"

// thinkClose is the end of a thinking block as the template writes it: the
// newline before <channel|> belongs to the markup, not the thinking.
const thinkClose = "\n" + ChannelEnd

// Parser splits streamed output. Feed it text deltas as they are decoded;
// Finish at the end of the output. It is not safe for concurrent use.
type Parser struct {
	gemma4 bool
	state  parseState
	buf    string    // input not yet consumed
	tail   [2]string // per text channel: already-emitted suffix that may begin a marker
	last   [2]string // per text channel: the last bytes emitted (for tail)
	call   strings.Builder
	inStr  bool // inside a <|"|> string of a tool call
	scan   int  // tool call: bytes of call already scanned
	events []Event
	errs   []error
}

// NewParser returns a parser for the output format of family ("gemma3" or "gemma4").
func NewParser(family string) (*Parser, error) {
	switch family {
	case "gemma3":
		return &Parser{}, nil
	case "gemma4":
		return &Parser{gemma4: true}, nil
	}
	return nil, fmt.Errorf("chat output parser %q: unknown family (known: gemma3, gemma4)", family)
}

// Parse splits a whole output of family; see ParseGemma4.
func Parse(family, output string) (Parsed, error) {
	p, err := NewParser(family)
	if err != nil {
		return Parsed{}, err
	}
	var out Parsed
	var content, thinking strings.Builder
	for _, ev := range append(p.Feed(output), p.Finish()...) {
		switch ev.Kind {
		case ContentEvent:
			content.WriteString(ev.Text)
		case ThinkingEvent:
			thinking.WriteString(ev.Text)
		case ToolCallEvent:
			out.ToolCalls = append(out.ToolCalls, ev.Call)
		}
	}
	out.Content, out.Thinking = content.String(), thinking.String()
	return out, p.Err()
}

// ParseGemma4 splits a whole Gemma 4 output. Malformed tool calls are left
// out of the result and reported in the error; the rest is still returned.
func ParseGemma4(output string) (Parsed, error) { return Parse("gemma4", output) }

// ParseGemma3 splits a whole Gemma 3 output (all of it is Content).
func ParseGemma3(output string) (Parsed, error) { return Parse("gemma3", output) }

// Err reports the malformed tool calls met so far.
func (p *Parser) Err() error { return errors.Join(p.errs...) }

// Done reports whether the end of the model's turn has been seen; input fed
// after it is ignored.
func (p *Parser) Done() bool { return p.state == stDone }

// Feed consumes a delta of output and returns the events it completes.
func (p *Parser) Feed(delta string) []Event {
	if p.state == stDone {
		return nil
	}
	p.buf += delta
	p.run(false)
	return p.take()
}

// Finish ends the output: held-back text is released, and a tool call still
// open is reported as an error (the output was cut off).
func (p *Parser) Finish() []Event {
	p.run(true)
	if p.state == stToolCall {
		p.errs = append(p.errs, fmt.Errorf("tool call %q: output ended inside the call", p.call.String()))
	}
	p.state = stDone
	return p.take()
}

func (p *Parser) take() []Event {
	ev := p.events
	p.events = nil
	return ev
}

// The parser's own copies of the marker lists, safe from callers' edits.
var (
	gemma4Markers = slices.Clone(Gemma4Markers)
	gemma3Markers = slices.Clone(Gemma3Markers)
)

func (p *Parser) markers() []string {
	if p.gemma4 {
		return slices.Clip(gemma4Markers)
	}
	return slices.Clip(gemma3Markers)
}

// run advances the state machine as far as the buffered input allows.
func (p *Parser) run(final bool) {
	for p.state != stDone {
		var progressed bool
		switch p.state {
		case stContent, stThinking:
			progressed = p.scanText(final)
		case stChannelName:
			progressed = p.scanChannelName(final)
		case stRoleLine:
			progressed = p.scanRoleLine(final)
		case stToolCall:
			progressed = p.scanToolCall(final)
		}
		if !progressed {
			return
		}
	}
}

func (p *Parser) channel() int {
	if p.state == stThinking {
		return 1
	}
	return 0
}

// scanText handles the answer and thinking states. It looks for markers in
// tail+buf, where tail is already-emitted text that may begin a marker (after
// a marker was dropped or the channel was interrupted), so that text on both
// sides of a removed marker can never join into a marker.
func (p *Parser) scanText(final bool) bool {
	ch := p.channel()
	markers := p.markers()
	if ch == 1 {
		markers = append(markers, thinkClose)
	}
	logical := p.tail[ch] + p.buf
	skip := len(p.tail[ch])
	i, m := firstMarker(logical, markers)
	if i < 0 {
		h := len(logical)
		if !final {
			h = partialStart(logical, markers)
		}
		if h > skip {
			p.emit(ch, logical[skip:h])
		}
		if h < skip {
			p.tail[ch], p.buf = logical[h:skip], logical[skip:]
		} else {
			p.tail[ch], p.buf = "", logical[h:]
		}
		return false
	}
	if i > skip {
		p.emit(ch, logical[skip:i])
	}
	p.tail[ch] = openSuffix(p.last[ch], markers)
	p.buf = logical[i+len(m):]
	p.marker(m)
	return true
}

// marker applies a marker met in the answer or thinking state.
func (p *Parser) marker(m string) {
	if !p.gemma4 {
		switch m {
		case Gemma3TurnEnd:
			p.state = stDone
		case Gemma3TurnStart:
			p.state = stRoleLine
		}
		return
	}
	switch m {
	case TurnEnd, ToolResponseStart:
		p.state = stDone
	case TurnStart:
		p.state = stRoleLine
	case ToolCallStart:
		p.state = stToolCall
		p.call.Reset()
		p.inStr, p.scan = false, 0
	case ChannelStart:
		if p.state == stContent {
			p.state = stChannelName
		}
	case ChannelEnd, thinkClose:
		if p.state == stThinking {
			p.state = stContent
		}
	}
}

// scanChannelName drops the "thought\n" line that follows <|channel>.
func (p *Parser) scanChannelName(final bool) bool {
	switch {
	case strings.HasPrefix(p.buf, channelName):
		p.buf = p.buf[len(channelName):]
	case strings.HasPrefix(channelName, p.buf) && !final:
		return false // not known yet
	case strings.HasPrefix(channelName, p.buf):
		p.buf = "" // output ended inside the name
	}
	p.state = stThinking
	return true
}

// scanRoleLine drops the rest of a "<|turn>ROLE\n" line.
func (p *Parser) scanRoleLine(final bool) bool {
	if i := strings.IndexByte(p.buf, '\n'); i >= 0 {
		p.buf = p.buf[i+1:]
	} else if final {
		p.buf = ""
	} else {
		return false
	}
	p.state = stContent
	return true
}

// toolCallStops are the markers that end a tool call: its close, or (when the
// close is missing) a marker that cannot occur inside one.
var toolCallStops = []string{ToolCallEnd, TurnEnd, ToolResponseStart, ToolCallStart}

// scanToolCall collects a tool call up to <tool_call|>, which inside a
// <|"|> string is text.
func (p *Parser) scanToolCall(final bool) bool {
	p.call.WriteString(p.buf)
	p.buf = ""
	body := p.call.String()
	for {
		if p.inStr {
			j := strings.Index(body[p.scan:], Quote)
			if j < 0 {
				p.scan = partialFrom(body, p.scan, []string{Quote})
				return false
			}
			p.scan += j + len(Quote)
			p.inStr = false
			continue
		}
		stops := append(toolCallStops[:len(toolCallStops):len(toolCallStops)], Quote)
		j, m := firstMarker(body[p.scan:], stops)
		if j < 0 {
			if !final {
				p.scan = partialFrom(body, p.scan, stops)
			}
			return false
		}
		at := p.scan + j
		switch m {
		case Quote:
			p.scan = at + len(Quote)
			p.inStr = true
			continue
		case ToolCallEnd:
			p.finishCall(body[:at])
			p.buf = body[at+len(m):]
		default:
			p.errs = append(p.errs, fmt.Errorf("tool call %q: not closed with %s before %s", body[:at], ToolCallEnd, m))
			p.buf = body[at:]
		}
		p.call.Reset()
		p.state = stContent
		return true
	}
}

func (p *Parser) finishCall(body string) {
	call, err := ParseToolCall(body)
	if err != nil {
		p.errs = append(p.errs, err)
		return
	}
	p.events = append(p.events, Event{Kind: ToolCallEvent, Call: call})
}

// emit appends text to the answer (ch 0) or thinking (ch 1), merging with
// the previous event of the same kind.
func (p *Parser) emit(ch int, s string) {
	kind := ContentEvent
	if ch == 1 {
		kind = ThinkingEvent
	}
	if n := len(p.events); n > 0 && p.events[n-1].Kind == kind {
		p.events[n-1].Text += s
	} else {
		p.events = append(p.events, Event{Kind: kind, Text: s})
	}
	last := p.last[ch] + s
	if len(last) > maxMarkerLen {
		last = last[len(last)-maxMarkerLen:]
	}
	p.last[ch] = last
}

// maxMarkerLen bounds the length of every marker string.
const maxMarkerLen = 32

// firstMarker returns the earliest occurrence of any marker in s, or -1.
func firstMarker(s string, markers []string) (int, string) {
	best, bm := -1, ""
	for _, m := range markers {
		if i := strings.Index(s, m); i >= 0 && (best < 0 || i < best) {
			best, bm = i, m
		}
	}
	return best, bm
}

// partialStart returns the earliest index from which the rest of s is a
// proper prefix of some marker (text that must wait for more input), or len(s).
func partialStart(s string, markers []string) int { return partialFrom(s, 0, markers) }

func partialFrom(s string, from int, markers []string) int {
	lo := len(s) - maxMarkerLen
	if lo < from {
		lo = from
	}
	for i := lo; i < len(s); i++ {
		if c := s[i]; c != '<' && c != '\n' { // every marker starts with one of these
			continue
		}
		for _, m := range markers {
			if len(s)-i < len(m) && strings.HasPrefix(m, s[i:]) {
				return i
			}
		}
	}
	return len(s)
}

// openSuffix returns the longest suffix of s that is a proper prefix of a marker.
func openSuffix(s string, markers []string) string { return s[partialStart(s, markers):] }
