package grammar

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

func bit(m []uint64, id int32) bool { return m[id>>6]>>(id&63)&1 != 0 }

// allowedIDs lists the set bits of a mask.
func allowedIDs(m []uint64) []int32 {
	var out []int32
	for w, x := range m {
		for x != 0 {
			b := int32(0)
			for x>>b&1 == 0 {
				b++
			}
			out = append(out, int32(w*64)+b)
			x &^= 1 << b
		}
	}
	return out
}

// shortestCompletion finds, by breadth-first search over automaton states,
// a shortest byte string that takes s to a state that can end.
func shortestCompletion(t testing.TB, s *State) []byte {
	g := s.g
	type item struct {
		stacks []int32
		prev   int
		b      byte
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	start := g.dfa.sets[s.set]
	q := []item{{start, -1, 0}}
	seen := map[string]bool{setKey(start): true}
	// Bytes that belong to the same grammar byte sets behave alike: explore
	// one representative of each such class.
	var reps []byte
	sigs := map[string]bool{}
	for c := 0; c < 256; c++ {
		sig := make([]byte, len(g.p.sets))
		for k := range g.p.sets {
			if g.p.sets[k].has(byte(c)) {
				sig[k] = 1
			}
		}
		if !sigs[string(sig)] {
			sigs[string(sig)] = true
			reps = append(reps, byte(c))
		}
	}
	for i := 0; i < len(q) && i < 200000; i++ {
		if q[i].stacks[0] == 0 { // the empty stack: can end
			var out []byte
			for j := i; q[j].prev >= 0; j = q[j].prev {
				out = append(out, q[j].b)
			}
			slices.Reverse(out)
			return out
		}
		for _, c := range reps {
			n := g.stepList(q[i].stacks, c)
			if k := setKey(n); k != "" && !seen[k] {
				seen[k] = true
				q = append(q, item{n, i, c})
			}
		}
	}
	t.Fatalf("no completion found")
	return nil
}

// byteTokens maps each byte to a token whose text is exactly that byte.
func byteTokens(v *Vocab) [256]int32 {
	var bt [256]int32
	for i := range bt {
		bt[i] = -1
	}
	for id := 0; id < v.Size(); id++ {
		if p := v.Piece(int32(id)); len(p) == 1 && bt[p[0]] < 0 {
			bt[p[0]] = int32(id)
		}
	}
	return bt
}

// randomWalk samples uniformly among allowed tokens for up to free steps,
// then completes along a shortest completion with single-byte tokens, and
// finally emits an EOG token. It checks every chosen token is in the mask.
func randomWalk(t testing.TB, g *Grammar, v *Vocab, rng *rand.Rand, free int) string {
	t.Helper()
	s := g.NewState()
	mask := make([]uint64, v.MaskWords())
	var out []byte
	for step := 0; step < free; step++ {
		if err := s.Mask(v, mask); err != nil {
			t.Fatal(err)
		}
		ids := allowedIDs(mask)
		if len(ids) == 0 {
			t.Fatalf("dead end after %q", out)
		}
		id := ids[rng.IntN(len(ids))]
		if err := s.AcceptToken(v, id); err != nil {
			t.Fatalf("token %d from the mask rejected: %v", id, err)
		}
		if v.IsEOG(id) {
			return string(out)
		}
		out = append(out, v.Piece(id)...)
	}
	bt := byteTokens(v)
	for _, c := range shortestCompletion(t, s) {
		if err := s.Mask(v, mask); err != nil {
			t.Fatal(err)
		}
		if !bit(mask, bt[c]) {
			t.Fatalf("byte token %q missing from mask after %q", c, out)
		}
		if err := s.AcceptToken(v, bt[c]); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := s.Mask(v, mask); err != nil {
		t.Fatal(err)
	}
	if !bit(mask, v.eog[0]) {
		t.Fatalf("EOG not allowed at a complete sentence %q", out)
	}
	if err := s.AcceptToken(v, v.eog[0]); err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// decodeJSON parses one JSON text with numbers kept as text; nil when the
// text is not exactly one valid JSON value.
func decodeJSON(s string) any {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var x any
	if d.Decode(&x) != nil {
		return nil
	}
	if _, err := d.Token(); err != io.EOF {
		return nil
	}
	return x
}

func TestRandomWalksGBNF(t *testing.T) {
	_, v := gemma(t)
	rng := rand.New(rand.NewPCG(1, 2))
	check := map[string]func(string) bool{
		// JSON syntax (json.Number: exponents beyond float64 are valid JSON).
		"json.gbnf": func(s string) bool {
			_, ok := decodeJSON(s).(map[string]any)
			return ok
		},
		"json_arr.gbnf": func(s string) bool {
			_, ok := decodeJSON(s).([]any)
			return ok
		},
		"list.gbnf": func(s string) bool {
			if !strings.HasSuffix(s, "\n") {
				return false
			}
			for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
				if !strings.HasPrefix(line, "- ") || len(line) < 3 || strings.ContainsAny(line, "\r\x0b\x0c\u0085\u2028\u2029") {
					return false
				}
			}
			return true
		},
		"arithmetic.gbnf": nil, "chess.gbnf": nil, "c.gbnf": nil, "english.gbnf": nil, "japanese.gbnf": nil,
	}
	names := make([]string, 0, len(check))
	for name := range check {
		names = append(names, name)
	}
	sort.Strings(names) // a fixed order, so the shared rng gives the same walks every run
	for _, name := range names {
		ok := check[name]
		g := mustCompile(t, readGBNF(t, name))
		for i := 0; i < 8; i++ {
			s := randomWalk(t, g, v, rng, rng.IntN(40))
			if !g.Match([]byte(s)) {
				t.Errorf("%s: walk output not matched by its grammar: %q", name, s)
			}
			if ok != nil && !ok(s) {
				t.Errorf("%s: walk output fails the independent check: %q", name, s)
			}
		}
	}
}

func TestMaskMatchesBruteForce(t *testing.T) {
	_, v := gemma(t)
	rng := rand.New(rand.NewPCG(3, 4))
	// sample: every single-byte token, tokens with JSON punctuation, and
	// random ids
	var sample []int32
	for id := 0; id < v.Size(); id++ {
		p := v.Piece(int32(id))
		if len(p) == 1 || strings.ContainsAny(string(p), "\"{}[],:\\") && rng.IntN(8) == 0 || rng.IntN(100) == 0 || v.IsEOG(int32(id)) {
			sample = append(sample, int32(id))
		}
	}
	mask := make([]uint64, v.MaskWords())
	grammars := map[string]string{}
	for _, name := range []string{"json.gbnf", "arithmetic.gbnf", "japanese.gbnf", "chess.gbnf"} {
		grammars[name] = readGBNF(t, name)
	}
	// bounded strings exercise the counter-chain subtree test
	for _, src := range []string{
		`{"type":"object","properties":{"s":{"type":"string","maxLength":6},"t":{"type":"string","pattern":"^[^a]{2,5}$"}}}`,
		`{"type":"array","items":{"type":"string","minLength":2,"maxLength":4},"maxItems":3}`,
	} {
		text, err := SchemaToGBNF([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		grammars[src] = text
	}
	check := func(name string, s *State) {
		if err := s.Mask(v, mask); err != nil {
			t.Fatal(err)
		}
		for _, id := range sample {
			want := s.Clone().AcceptToken(v, id) == nil
			if bit(mask, id) != want {
				t.Fatalf("%s: token %d %q: mask %v, brute force %v", name, id, v.Piece(id), !want, want)
			}
		}
	}
	// fixed states inside bounded strings and at their limits
	for src, prefixes := range map[string][]string{
		`{"type":"object","properties":{"s":{"type":"string","maxLength":6}}}`: {`{"s":"`, `{"s":"ab`, `{"s":"abcde`, `{"s":"abcdef`, `{"s":"日本`},
		`{"type":"string","pattern":"^[^a]{2,5}$"}`:                            {`"`, `"xy`, `"xyzw`},
		`{"type":"string","minLength":3,"maxLength":40}`:                       {`"`, `"a`, `"abc`, `"` + strings.Repeat("é", 30)},
	} {
		g, err := CompileSchema([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range prefixes {
			s := g.NewState()
			if err := s.Accept([]byte(p)); err != nil {
				t.Fatalf("%s: prefix %s: %v", src, p, err)
			}
			check(src+" after "+p, s)
		}
	}
	for name, text := range grammars {
		g := mustCompile(t, text)
		for walk := 0; walk < 4; walk++ {
			s := g.NewState()
			for step := 0; step < 12; step++ {
				if err := s.Mask(v, mask); err != nil {
					t.Fatal(err)
				}
				for _, id := range sample {
					c := s.Clone()
					want := c.AcceptToken(v, id) == nil
					if bit(mask, id) != want {
						t.Fatalf("%s: token %d %q: mask %v, brute force %v", name, id, v.Piece(id), !want, want)
					}
				}
				ids := allowedIDs(mask)
				if len(ids) == 0 {
					break
				}
				id := ids[rng.IntN(len(ids))]
				if v.IsEOG(id) {
					break
				}
				if err := s.AcceptToken(v, id); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestConcurrentStates drives several States of one Grammar from several
// goroutines (run with -race).
func TestConcurrentStates(t *testing.T) {
	_, v := gemma(t)
	g := mustCompile(t, readGBNF(t, "json.gbnf"))
	done := make(chan string, 4)
	for w := 0; w < 4; w++ {
		go func(seed uint64) {
			rng := rand.New(rand.NewPCG(seed, 9))
			s := g.NewState()
			mask := make([]uint64, v.MaskWords())
			for step := 0; step < 20; step++ {
				if err := s.Mask(v, mask); err != nil {
					done <- err.Error()
					return
				}
				ids := allowedIDs(mask)
				id := ids[rng.IntN(len(ids))]
				if err := s.AcceptToken(v, id); err != nil {
					done <- err.Error()
					return
				}
				if v.IsEOG(id) {
					break
				}
			}
			done <- ""
		}(uint64(w))
	}
	for w := 0; w < 4; w++ {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
}

func TestAcceptTokenErrors(t *testing.T) {
	_, v := gemma(t)
	g := mustCompile(t, `root ::= "ab"`)
	s := g.NewState()
	if err := s.AcceptToken(v, v.eog[0]); err == nil {
		t.Error("EOG accepted before the grammar can end")
	}
	if err := s.AcceptToken(v, int32(v.Size())); err == nil {
		t.Error("out-of-range id accepted")
	}
	if err := s.Accept([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if err := s.Accept([]byte("c")); err == nil || !s.CanEnd() {
		t.Errorf("rejected input must leave the state unchanged: %v", err)
	}
	mask := make([]uint64, v.MaskWords())
	if err := s.Mask(v, mask); err != nil {
		t.Fatal(err)
	}
	if ids := allowedIDs(mask); len(ids) != len(v.eog) {
		t.Errorf("complete sentence: want only the %d EOG tokens, got %d tokens", len(v.eog), len(ids))
	}
	if err := s.AcceptToken(v, v.eog[0]); err != nil || !s.Finished() {
		t.Errorf("EOG at the end: %v", err)
	}
	if err := s.Mask(v, mask[:1]); err == nil {
		t.Error("short mask accepted")
	}
}
