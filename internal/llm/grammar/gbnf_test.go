package grammar

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompileExampleGrammars(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(sharedDir(t), "testdata", "gbnf", "*.gbnf"))
	if len(files) == 0 {
		t.Fatal("no .gbnf files found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Compile(string(b)); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

func TestMatchBasics(t *testing.T) {
	cases := []struct {
		grammar string
		yes, no []string
	}{
		{`root ::= "a" [b-d]* "e"`, []string{"ae", "abcde", "addde"}, []string{"", "a", "aee", "abx"}},
		{`root ::= x{2,3}
x ::= "ab"`, []string{"abab", "ababab"}, []string{"ab", "abababab", ""}},
		{`root ::= [0-9]{3}`, []string{"123"}, []string{"12", "1234"}},
		{`root ::= [0-9]{2,}`, []string{"12", "12345"}, []string{"1"}},
		{`root ::= ("x" | "yz")+ "."?`, []string{"x", "yzx.", "xxyz"}, []string{"", "y", "x.."}},
		{`root ::= [^a]`, []string{"b", "é", "日", "😀"}, []string{"a", "", "\xff", "\xed\xa0\x80"}},
		{`root ::= [α-ω]+`, []string{"αβω"}, []string{"a", "Ω"}},
		{`root ::= .`, []string{"a", "\n", "\U0010FFFF"}, []string{"", "ab"}},
		{`root ::= "\x41\u00e9\n\"\\" # comment`, []string{"Aé\n\"\\"}, []string{"A"}},
		{`root ::= a
a ::= "(" a ")" | ""`, []string{"", "()", "((()))"}, []string{"(", "())"}},
		{`root ::=
  "a"
  | "b"`, []string{"a", "b"}, []string{"ab"}},
	}
	for _, c := range cases {
		g := mustCompile(t, c.grammar)
		for _, s := range c.yes {
			if !g.Match([]byte(s)) {
				t.Errorf("%q should match %q", c.grammar, s)
			}
		}
		for _, s := range c.no {
			if g.Match([]byte(s)) {
				t.Errorf("%q should not match %q", c.grammar, s)
			}
		}
	}
}

func TestUTF8SplitExhaustive(t *testing.T) {
	// Every scalar value in a negated class must be accepted, and nothing
	// else: check the class [^a] against all code points.
	g := mustCompile(t, `root ::= [^a\u0800-\u0fff]`)
	for r := rune(0); r <= 0x10ffff; r += 1 {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		want := r != 'a' && !(r >= 0x800 && r <= 0xfff)
		if got := g.Match([]byte(string(r))); got != want {
			t.Fatalf("U+%04X: got %v want %v", r, got, want)
		}
	}
}

func TestGrammarErrors(t *testing.T) {
	cases := []struct{ grammar, want string }{
		{`root ::= "abc`, "line 1 col 14: unterminated string literal"},
		{`root ::= foo`, "line 1 col 10: undefined rule \"foo\""},
		{"root ::= \"a\"\n  x ::= [b", "line 2 col 9: unterminated character class"},
		{`a ::= "x"`, "no root rule"},
		{`root ::= root "a" | "b"`, "left-recursive"},
		{`root ::= ("a"`, "expected ) to close group"},
		{`root ::= "a"{3,1}`, "max below min"},
		{`root ::= "a"{99999}`, "over the limit"},
		{`root ::= "\q"`, "unknown escape \\q"},
		{`root ::= [z-a]`, "backwards"},
		{"root ::= \"a\"\nroot ::= \"b\"", "line 2 col 1: rule \"root\" is defined twice"},
		{`root = "a"`, "expected ::="},
		{`root ::= ("")*`, "repetition of an empty item"},
		{`root ::= ("a"?)*`, "left-recursive"},
	}
	for _, c := range cases {
		_, err := Compile(c.grammar)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want error containing %q", c.grammar, err, c.want)
		}
	}
	var se *SyntaxError
	if _, err := Compile(`root ::= )`); !errors.As(err, &se) || se.Line != 1 || se.Col != 10 {
		t.Errorf("want SyntaxError at 1:10, got %v", err)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`root ::= "a" [b-c]* x{1,3}
x ::= ("y" | [^z])?`, `root ::= .+`, `root ::= "\u00e9"`, "root ::= (\n\"a\"\n|\"b\")"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		g, err := Compile(text)
		if err != nil {
			return
		}
		// A compiled grammar must be usable without panicking.
		s := g.NewState()
		_ = s.Accept([]byte("a{\"x\": 1}"))
		_ = s.CanEnd()
	})
}
