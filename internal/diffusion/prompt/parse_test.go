package prompt

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// The cases are the examples of A1111's parse_prompt_attention docstring
// and behaviour read from its source; weights are float64 and compared
// exactly, since the order of multiplications is part of the behaviour.
func TestParseA1111(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []span
	}{
		{"normal text", []span{{"normal text", 1}}},
		{"an (important) word", []span{{"an ", 1}, {"important", 1.1}, {" word", 1}}},
		{"(unbalanced", []span{{"unbalanced", 1.1}}},
		{`\(literal\]`, []span{{"(literal]", 1}}},
		{"(unnecessary)(parens)", []span{{"unnecessaryparens", 1.1}}},
		{"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", []span{
			{"a ", 1}, {"house", 1.5730000000000004}, {" ", 1.1}, {"on", 1}, {" a ", 1.1},
			{"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006}, {".", 1.1}}},
		{"a (b:1.5) [c] ((d))", []span{{"a ", 1}, {"b", 1.5}, {" ", 1}, {"c", 1 / 1.1}, {" ", 1}, {"d", 1.2100000000000002}}},
		{"", []span{{"", 1}}},
		{"[unclosed", []span{{"unclosed", 1 / 1.1}}},
		{"stray) and] too", []span{{"stray) and] too", 1}}},
		{"time: 5", []span{{"time: 5", 1}}},
		{"a:1.5) b", []span{{"a:1.5) b", 1}}}, // weight without "(" is literal
		{"(a: 1.5 ) b", []span{{"a", 1.5}, {" b", 1}}},
		{"(a:-0.5)", []span{{"a", -0.5}}},
		{"(a:1.2.3)", []span{{"a:1.2.3)", 1.1}}}, // A1111 raises here; literal in mica
		{`a \ b \\ c`, []span{{`a  b \ c`, 1}}},  // a lone backslash vanishes
		{`\[x\] \(y\)`, []span{{"[x] (y)", 1}}},
		{"(a:٣)", []span{{"a", 3}}}, // Python's \d and float() take any decimal digit
		{"a BREAK b", []span{{"a", 1}, {"BREAK", -1}, {"b", 1}}},
		{"a  BREAK,b", []span{{"a", 1}, {"BREAK", -1}, {",b", 1}}},
		{"BREAK", []span{{"", 1}, {"BREAK", -1}, {"", 1}}},
		{"xBREAK BREAKy break", []span{{"xBREAK BREAKy break", 1}}},
		{"(a BREAK b)", []span{{"a", 1.1}, {"BREAK", -1.1}, {"b", 1.1}}},
		{"a BREAK BREAK b", []span{{"a", 1}, {"BREAK", -1}, {"", 1}, {"BREAK", -1}, {"b", 1}}},
		{"(a:" + strings.Repeat("9", 400) + ")", []span{{"a", math.Inf(1)}}},
		{"[a:b:0.5]", []span{{"a:b:0.5", 1 / 1.1}}},
	} {
		got := parse(c.in)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("parse(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParsePublic(t *testing.T) {
	got := Parse("a (b:1.5) [c] ((d)) BREAK e")
	want := []Span{{"a ", 1}, {"b", 1.5}, {" ", 1}, {"c", float32(1 / 1.1)}, {" ", 1}, {"d", float32(1.21)}, {"", 1}, {"BREAK", -1}, {"e", 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Parse = %v, want %v", got, want)
	}
}
