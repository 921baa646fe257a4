package jobs

import (
	"context"
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
// a date folder of the outputs folder, or directly in the temporary folder.
func FuzzResolveOutput(f *testing.F) {
	for _, s := range []string{"2026-11-27/x.png", "../x", "2026-11-27/../../x", "2026-11-27/.x", "2026-11-27/a\\b", "temp/x.png", "temp/../x", "temp/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		p, err := ResolveOutput("/data", rel)
		if err != nil {
			return
		}
		r, err := filepath.Rel("/data/outputs", p)
		inOutputs := err == nil && !strings.HasPrefix(r, "..") && strings.Count(filepath.ToSlash(r), "/") == 1
		inTemp := filepath.Dir(p) == "/data/temp"
		if !(inOutputs || inTemp) || filepath.Clean(p) != p {
			t.Fatalf("%q resolved to %q", rel, p)
		}
		if ValidName(filepath.Base(p)) != nil {
			t.Fatalf("%q resolved to an invalid name %q", rel, p)
		}
	})
}

// TestKeepImage: images not to be saved go to the temporary folder, never
// to the outputs or the history; they resolve like outputs, and RemoveTemp
// deletes only them.
func TestKeepImage(t *testing.T) {
	q := openTest(t, "", Options{})
	rel, err := KeepImage(q.Dir(), "J1", "a.png", []byte("png"))
	if err != nil || rel != "temp/J1-a.png" || !IsTemp(rel) {
		t.Fatalf("KeepImage: %q %v", rel, err)
	}
	if rel2, _ := KeepImage(q.Dir(), "J1", "a.png", []byte("png2")); rel2 != "temp/J1-a-1.png" {
		t.Fatalf("second name %q", rel2)
	}
	p, err := ResolveOutput(q.Dir(), rel)
	if b, _ := os.ReadFile(p); err != nil || string(b) != "png" {
		t.Fatalf("resolved %q %v", p, err)
	}
	if _, err := os.Stat(OutputsDir(q.Dir())); !os.IsNotExist(err) {
		t.Fatalf("the outputs folder was made: %v", err)
	}
	if h, _, _ := q.History("", 10); len(h) != 0 {
		t.Fatalf("history %v", h)
	}
	saved, _ := SaveImage(q.Dir(), day, "b.png", []byte("kept"))
	if err := RemoveTemp(q.Dir(), []string{rel, saved, "temp/J1-gone.png"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("the temporary image is still there")
	}
	if sp, _ := ResolveOutput(q.Dir(), saved); fileExists(sp) != nil {
		t.Fatal("RemoveTemp deleted a saved image")
	}
	if _, err := KeepImage(q.Dir(), "J1", "../x.png", nil); err == nil {
		t.Fatal("a bad name was kept")
	}
}

func fileExists(p string) error { _, err := os.Stat(p); return err }

// TestTempImagesExpireAndGoWithTheirJob: a job's temporary images are
// deleted with the job, and by the sweeper after the retention.
func TestTempImagesExpireAndGoWithTheirJob(t *testing.T) {
	q := openTest(t, "", Options{TempRetention: 200 * time.Millisecond})
	q.Register("m", RunnerFunc(func(ctx context.Context, j *Job, p Progress) (Result, error) {
		rel, err := p.KeepImage("x.png", []byte("png"))
		return Result{Images: []string{rel}}, err
	}))
	j := wait(t, q, submit(t, q, "m", 0).ID)
	if j.State != Finished || len(j.Result.Images) != 1 || !IsTemp(j.Result.Images[0]) {
		t.Fatalf("%+v", j)
	}
	p, _ := ResolveOutput(q.Dir(), j.Result.Images[0])
	if err := q.Delete(j.ID); err != nil || fileExists(p) == nil {
		t.Fatalf("delete: %v; file left: %v", err, fileExists(p) == nil)
	}
	j = wait(t, q, submit(t, q, "m", 0).ID)
	p, _ = ResolveOutput(q.Dir(), j.Result.Images[0])
	deadline := time.Now().Add(5 * time.Second)
	for fileExists(p) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the temporary image outlived its retention")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
