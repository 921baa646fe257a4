package grammar

import (
	"testing"
)

// jsonStates are prefixes that put json.gbnf at typical positions.
var jsonStates = []struct{ name, prefix string }{
	{"start", ""},
	{"in-string", `{"name": "Ali`},
	{"in-number", `{"n": 12`},
	{"after-comma", `{"a": 1, `},
}

func benchMask(b *testing.B, mode string) {
	_, v := gemma(b)
	text := readGBNF(b, "json.gbnf")
	mask := make([]uint64, v.MaskWords())
	for _, st := range jsonStates {
		b.Run(st.name, func(b *testing.B) {
			g := mustCompile(b, text)
			s := g.NewState()
			if err := s.Accept([]byte(st.prefix)); err != nil {
				b.Fatal(err)
			}
			if err := s.Mask(v, mask); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				switch mode {
				case "uncached": // automaton built, masks not cached
					g.mu.Lock()
					clear(g.dfa.masks[v].m)
					g.mu.Unlock()
				case "cold": // fresh grammar: automaton and masks built from scratch
					b.StopTimer()
					g = mustCompile(b, text)
					s = g.NewState()
					if err := s.Accept([]byte(st.prefix)); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if err := s.Mask(v, mask); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMaskJSONCached(b *testing.B)   { benchMask(b, "cached") }
func BenchmarkMaskJSONUncached(b *testing.B) { benchMask(b, "uncached") }
func BenchmarkMaskJSONCold(b *testing.B)     { benchMask(b, "cold") }

// BenchmarkMaskSchema measures masks along one generation under a JSON
// Schema with a bounded string (each position is a new automaton state).
// "fresh" compiles the schema for every generation, so every mask is
// computed from scratch; "reused" reuses one Grammar, so the walk is
// replayed from the mask cache, as when a server caches compiled schemas.
func BenchmarkMaskSchema(b *testing.B) {
	_, v := gemma(b)
	src := `{"type":"object","properties":{"name":{"type":"string","maxLength":40},"age":{"type":"integer","minimum":0,"maximum":150},"email":{"type":"string","format":"email"}},"required":["name","age","email"],"additionalProperties":false}`
	text := []byte(`{"age":42,"email":"ada.lovelace@example.org","name":"Ada Lovelace, Countess of Lovelace"}`)
	mask := make([]uint64, v.MaskWords())
	for _, mode := range []string{"fresh", "reused"} {
		b.Run(mode, func(b *testing.B) {
			g, err := CompileSchema([]byte(src))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if mode == "fresh" {
					if g, err = CompileSchema([]byte(src)); err != nil {
						b.Fatal(err)
					}
				}
				s := g.NewState()
				for j := range text {
					if err := s.Mask(v, mask); err != nil {
						b.Fatal(err)
					}
					if err := s.Accept(text[j : j+1]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(text)), "µs/mask")
		})
	}
}

func BenchmarkNewVocabGemma(b *testing.B) {
	tok, _ := gemma(b)
	for i := 0; i < b.N; i++ {
		NewVocab(tok)
	}
}
