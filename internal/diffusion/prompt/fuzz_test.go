package prompt

import "testing"

// FuzzParse: any text parses and tokenizes without panicking; chunks are
// well formed and hold every token of the non-BREAK spans, in order.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a (b:1.5) [c] ((d))", `\(x\]\\ \`, "(a BREAK b", "[a:b:0.5] [c|d]", "):]([", "(a:٣)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans := parse(s)
		if len(spans) == 0 {
			t.Fatal("no spans")
		}
		var want []int32
		for _, sp := range spans {
			if !sp.isBreak() {
				want = append(want, words{}.Encode(sp.text)...)
			}
		}
		for _, steps := range []int{1, 7} {
			sched := Schedule(s, steps)
			if len(sched) == 0 || sched[len(sched)-1].UntilStep != steps {
				t.Fatalf("%q: schedule %v does not end at %d", s, sched, steps)
			}
			for i := 1; i < len(sched); i++ {
				if sched[i].UntilStep <= sched[i-1].UntilStep {
					t.Fatalf("%q: schedule %v not increasing", s, sched)
				}
			}
		}
		chunks := Tokenize(words{}, s)
		checkLayout(t, chunks)
		var got []int32
		for _, c := range chunks {
			got = append(got, c.IDs[1:c.FirstEOS]...)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d tokens in chunks, %d in spans", s, len(got), len(want))
		}
	})
}
