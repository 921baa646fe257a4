package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var day = time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC)

func TestSaveImage(t *testing.T) {
	dir := t.TempDir()
	rel, err := SaveImage(dir, day, "00001-42.png", []byte("one"))
	if err != nil || rel != "2026-11-27/00001-42.png" {
		t.Fatalf("SaveImage: %q %v", rel, err)
	}
	// A taken name gets a suffix; nothing is overwritten.
	rel2, err := SaveImage(dir, day, "00001-42.png", []byte("two"))
	if err != nil || rel2 != "2026-11-27/00001-42-1.png" {
		t.Fatalf("second SaveImage: %q %v", rel2, err)
	}
	for rel, want := range map[string]string{rel: "one", rel2: "two"} {
		p, err := ResolveOutput(dir, rel)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s holds %q", rel, b)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "outputs", "2026-11-27"))
	if len(entries) != 2 {
		t.Errorf("outputs folder holds %v", entries)
	}
}

func TestOutputPathsNeverEscape(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"", ".", "..", "../x.png", "..\\x.png", "a/b.png", "/etc/passwd", ".hidden.png",
		"x.png.", "x.png ", "a\x00b.png", "a\nb.png", "c:x.png", "x?.png", "\xff.png",
		strings.Repeat("a", 201),
	} {
		if _, err := SaveImage(dir, day, name, []byte("x")); err == nil {
			t.Errorf("SaveImage accepted %q", name)
		}
	}
	for _, rel := range []string{
		"", "x.png", "../x.png", "2026-11-27/../../x.png", "2026-11-27/../x.png", "2026-11-27/a/b.png",
		"/2026-11-27/x.png", "2026-13-01/x.png", "..", "2026-11-27/", "2026-11-27/..", "2026-1-27/x.png",
		"2026-11-27\\..\\x.png",
	} {
		if p, err := ResolveOutput(dir, rel); err == nil {
			t.Errorf("ResolveOutput accepted %q as %q", rel, p)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "outputs" {
			t.Errorf("something was written beside outputs: %s", e.Name())
		}
	}
}

func TestOpenRemovesHalfWrittenFiles(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "outputs", "2026-11-27")
	os.MkdirAll(folder, 0o755)
	os.WriteFile(filepath.Join(folder, ".a.png.tmp-123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(folder, "a.png"), []byte("whole"), 0o644)
	openTest(t, dir, Options{})
	entries, _ := os.ReadDir(folder)
	if len(entries) != 1 || entries[0].Name() != "a.png" {
		t.Errorf("after Open the folder holds %v", entries)
	}
}

func TestHistoryPaging(t *testing.T) {
	q := openTest(t, "", Options{})
	var want []string
	for i := range 5 {
		rel, err := q.SaveImage("job", day, "x.png", []byte{byte(i)}, "infotext")
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{rel}, want...)
	}
	var got []string
	cursor := ""
	for {
		page, next, err := q.History(cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.Path)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history %v, want %v", got, want)
	}
	if _, _, err := q.History("-1", 2); err == nil {
		t.Error("bad cursor accepted")
	}
}

// FuzzResolveOutput: whatever a request sends, an accepted path lies inside
// a date folder of the outputs folder.
func FuzzResolveOutput(f *testing.F) {
	for _, s := range []string{"2026-11-27/x.png", "../x", "2026-11-27/../../x", "2026-11-27/.x", "2026-11-27/a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		p, err := ResolveOutput("/data", rel)
		if err != nil {
			return
		}
		r, err := filepath.Rel("/data/outputs", p)
		if err != nil || strings.HasPrefix(r, "..") || strings.Count(filepath.ToSlash(r), "/") != 1 || filepath.Clean(p) != p {
			t.Fatalf("%q resolved to %q", rel, p)
		}
		if ValidName(filepath.Base(p)) != nil {
			t.Fatalf("%q resolved to an invalid name %q", rel, p)
		}
	})
}
