package server

import (
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"mica/internal/llm/engine"
	"mica/internal/llm/grammar"
	"mica/internal/models/gemma/chat"
	"mica/internal/server/canon"
)

// maxGrammars bounds the compiled-grammar cache. A compiled Grammar keeps
// its lazily built automaton and its token-mask cache, so reusing one for
// the same schema makes later requests cheap.
const maxGrammars = 64

// grammarCache is an LRU of compiled grammars keyed by kind and canonical
// text. Grammars do not depend on the model (the vocabulary is applied per
// engine), so one cache serves every server in the process.
type grammarCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used
	items map[string]*list.Element
}

type grammarEntry struct {
	key string
	g   *grammar.Grammar
}

var grammars = newGrammarCache(maxGrammars)

func newGrammarCache(n int) *grammarCache {
	return &grammarCache{max: n, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *grammarCache) get(key string) *grammar.Grammar {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*grammarEntry).g
	}
	return nil
}

func (c *grammarCache) put(key string, g *grammar.Grammar) *grammar.Grammar {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok { // compiled meanwhile by another request
		c.ll.MoveToFront(e)
		return e.Value.(*grammarEntry).g
	}
	c.items[key] = c.ll.PushFront(&grammarEntry{key, g})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*grammarEntry).key)
	}
	return g
}

func (c *grammarCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// formatKey is the cache key of a format: its kind and canonical text (a
// schema re-encoded with sorted keys, so that spacing and key order do not
// matter).
func formatKey(f *canon.Format) string {
	text := f.Text
	switch f.Kind {
	case canon.FormatJSON:
		text = ""
	case canon.FormatSchema:
		d := json.NewDecoder(bytes.NewReader([]byte(f.Text)))
		d.UseNumber()
		var v any
		if d.Decode(&v) == nil {
			if b, err := json.Marshal(v); err == nil {
				text = string(b)
			}
		}
	}
	return string(rune('0'+f.Kind)) + text
}

// compileFormat returns the grammar of a requested output format, from the
// cache when it was compiled before. A schema or grammar that cannot be
// compiled is an Invalid error naming the request field (and, for JSON
// Schema, the offending keyword).
func compileFormat(f *canon.Format) (*grammar.Grammar, error) {
	return compileFormatTools(f, nil)
}

// compileFormatTools is compileFormat with the request's tools, which a
// FormatToolCall without a name may call.
func compileFormatTools(f *canon.Format, tools []chat.Tool) (*grammar.Grammar, error) {
	var names []string
	if f.Kind == canon.FormatToolCall {
		if f.Text != "" {
			names = []string{f.Text}
		} else {
			for _, t := range tools {
				names = append(names, t.Name)
			}
		}
		if len(names) == 0 {
			return nil, canon.Errorf(f.Param, "%s needs tools: the request has none", f.Param)
		}
		f = &canon.Format{Kind: f.Kind, Text: strings.Join(names, "\x00"), Param: f.Param}
	}
	key := formatKey(f)
	if g := grammars.get(key); g != nil {
		return g, nil
	}
	var g *grammar.Grammar
	var err error
	switch f.Kind {
	case canon.FormatJSON:
		g, err = grammar.Compile(grammar.JSONObjectGBNF())
	case canon.FormatSchema:
		g, err = grammar.CompileSchema([]byte(f.Text))
	case canon.FormatGBNF:
		g, err = grammar.Compile(f.Text)
	case canon.FormatToolCall:
		g, err = grammar.Compile(engine.ToolCallGBNF(names))
	default:
		return nil, canon.New(canon.Internal, "unknown output format kind %d", f.Kind)
	}
	if err != nil {
		e := canon.Errorf(f.Param, "%s cannot be used: %v", f.Param, err)
		var se *grammar.SchemaError
		if errors.As(err, &se) && se.Keyword != "" {
			e.Code = "unsupported_parameter"
			e.Msg = f.Param + ": " + se.Msg
		}
		return nil, e
	}
	return grammars.put(key, g), nil
}
