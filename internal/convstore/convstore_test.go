package convstore

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conversations.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

func TestRoundTripAndReopen(t *testing.T) {
	s, p := open(t)
	msgs := `[{"role":"user","content":"hi ✓"},{"role":"assistant","content":"hello","reasoning":"…"}]`
	got, err := s.Put(Conversation{ID: "c1", Title: "Hi", Model: "tiny", Messages: json.RawMessage(msgs)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Created.IsZero() || got.Updated.Before(got.Created) || string(got.Messages) != msgs {
		t.Fatalf("Put returned %+v", got)
	}
	first := got.Created
	if _, err := s.Put(Conversation{ID: "c2", Title: "Second", Model: "tiny"}); err != nil {
		t.Fatal(err)
	}
	// Replacing keeps created and moves it to the top of the list.
	if got, err = s.Put(Conversation{ID: "c1", Title: "Hi again", Model: "tiny", Messages: json.RawMessage(`[]`)}); err != nil || !got.Created.Equal(first) || got.Title != "Hi again" {
		t.Fatalf("replace: %+v, %v", got, err)
	}
	s.Close()
	s2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	list, err := s2.List(0)
	if err != nil || len(list) != 2 || list[0].ID != "c1" || list[1].ID != "c2" || list[0].Messages != nil {
		t.Fatalf("List after reopen: %+v, %v", list, err)
	}
	if l, _ := s2.List(1); len(l) != 1 {
		t.Errorf("List(1) gave %d", len(l))
	}
	c2, err := s2.Get("c2")
	if err != nil || string(c2.Messages) != "[]" {
		t.Errorf("Get c2: %s, %v", c2.Messages, err)
	}
	if err := s2.Delete("c2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get("c2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := s2.Delete("c2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice: %v", err)
	}
}

func TestInvalid(t *testing.T) {
	s, _ := open(t)
	cases := map[string]Conversation{
		"id":       {ID: "", Messages: json.RawMessage(`[]`)},
		"id ":      {ID: "a b"},
		"id/":      {ID: "../x"},
		"long id":  {ID: strings.Repeat("a", 65)},
		"title":    {ID: "a", Title: strings.Repeat("x", MaxTitleLen+1)},
		"utf8":     {ID: "a", Title: "\xff"},
		"model":    {ID: "a", Model: strings.Repeat("m", MaxModelLen+1)},
		"messages": {ID: "a", Messages: json.RawMessage(`{"role":"user"}`)},
		"json":     {ID: "a", Messages: json.RawMessage(`[1,`)},
	}
	for name, c := range cases {
		if _, err := s.Put(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Put(%+v) = %v, want ErrInvalid", name, c, err)
		}
	}
	if l, _ := s.List(0); len(l) != 0 {
		t.Errorf("invalid conversations were stored: %+v", l)
	}
}

func TestOpenFails(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "dir", "c.db")); err == nil {
		t.Error("Open in a missing folder succeeded")
	}
}

// FuzzPut: whatever a client sends, Put either refuses it with ErrInvalid
// or stores it so that Get returns the same fields.
func FuzzPut(f *testing.F) {
	f.Add("c1", "title", "tiny", `[{"role":"user","content":"hi"}]`)
	f.Add("", "", "", ``)
	f.Add("x", "\xff", "m", `[`)
	f.Add("a-b_C9", "t", "m", `[null, 1, "s", {"a": [1, 2]}]`)
	s, err := Open(filepath.Join(f.TempDir(), "conversations.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, id, title, model, msgs string) {
		c := Conversation{ID: id, Title: title, Model: model, Messages: json.RawMessage(msgs)}
		got, err := s.Put(c)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Put(%q, %q, %q, %q): %v, want ErrInvalid or success", id, title, model, msgs, err)
			}
			return
		}
		want := msgs
		if want == "" {
			want = "[]"
		}
		if got.ID != id || got.Title != title || got.Model != model || string(got.Messages) != want {
			t.Fatalf("stored %+v, sent %+v", got, c)
		}
	})
}
