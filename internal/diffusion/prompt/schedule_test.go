package prompt

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The expected schedules are A1111's (prompt_parser's grammar and
// get_learned_conditioning_prompt_schedules run on these inputs; they
// include the examples of its docstrings).
func TestSchedule(t *testing.T) {
	type S = []Scheduled
	alt := func(a, b string) S {
		var s S
		for i := 1; i <= 10; i++ {
			if i%2 == 1 {
				s = append(s, Scheduled{i, a})
			} else {
				s = append(s, Scheduled{i, b})
			}
		}
		return s
	}
	for _, c := range []struct {
		in   string
		want S
	}{
		{"test", S{{10, "test"}}},
		{"", S{{10, ""}}},
		{"a [b:3]", S{{3, "a "}, {10, "a b"}}},
		{"a [b: 3]", S{{3, "a "}, {10, "a b"}}},
		{"a [[[b]]:2]", S{{2, "a "}, {10, "a [[b]]"}}},
		{"[(a:2):3]", S{{3, ""}, {10, "(a:2)"}}},
		{"a [b : c : 1] d", S{{1, "a b  d"}, {10, "a  c  d"}}},
		{"a[b:[c:d:2]:1]e", S{{1, "abe"}, {2, "ace"}, {10, "ade"}}},
		{"a [unbalanced", S{{10, "a [unbalanced"}}},
		{"a [b:.5] c", S{{5, "a  c"}, {10, "a b c"}}},
		{"((a][:b:c [d:3]", S{{3, "((a][:b:c "}, {10, "((a][:b:c d"}}},
		{"[a|(b:1.1)]", alt("a", "(b:1.1)")},
		{"[fe|]male", alt("female", "male")},
		{"[fe|||]male", S{{1, "female"}, {2, "male"}, {3, "male"}, {4, "male"}, {5, "female"},
			{6, "male"}, {7, "male"}, {8, "male"}, {9, "female"}, {10, "male"}}},
		{"a|b", S{{10, "a|b"}}},             // "|" outside brackets: the grammar fails, text kept
		{`a\`, S{{10, `a\`}}},               // a backslash escaping nothing: same
		{`\[a:b:3\]`, S{{10, `\[a:b:3\]`}}}, // escaped brackets stay for Parse
		{"[a:b:-3]", S{{10, "b"}}},
		{"[a:b:1e1]", S{{10, "a"}}},
		{"[a:b:1.5]", S{{10, "a"}}},
		{"[a:b:0.99]", S{{9, "a"}, {10, "b"}}},
	} {
		if got := Schedule(c.in, 10); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Schedule(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	long := "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6][: in background:0.25] [shoddy:masterful:0.5]"
	want := S{
		{25, "fantasy landscape with a mountain and an oak in foreground shoddy"},
		{50, "fantasy landscape with a lake and an oak in foreground in background shoddy"},
		{60, "fantasy landscape with a lake and an oak in foreground in background masterful"},
		{75, "fantasy landscape with a lake and an oak in background masterful"},
		{100, "fantasy landscape with a lake and a christmas tree in background masterful"},
	}
	if got := Schedule(long, 100); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("A1111 example:\n%v\nwant\n%v", got, want)
	}
	if got, want := ScheduleHires("a [b:c:12] [d:e:1.5]", 10, 10), (S{{2, "a b d"}, {5, "a c d"}, {10, "a c e"}}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("hires: %v, want %v", got, want)
	}
	// Steps 0 counts as 1; when = int(0.5·1) = 0, so "b" from step 1.
	if got := Schedule("[a:b:0.5]", 0); fmt.Sprint(got) != fmt.Sprint(S{{1, "b"}}) {
		t.Errorf("steps 0: %v", got)
	}
}

// TestScheduleDeep: deeply nested and unclosed brackets stay fast (the
// parser memoizes constructs by position).
func TestScheduleDeep(t *testing.T) {
	s := strings.Repeat("[a:(b", 3000) + strings.Repeat("[", 3000)
	start := time.Now()
	if got := Schedule(s, 20); len(got) != 1 || got[0].Text != s {
		t.Errorf("deep: %d entries", len(got))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deep prompt took %v", d)
	}
}
