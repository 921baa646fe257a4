package jobs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mica/internal/atomicfile"
)

// OutputsDir is the folder of generated images inside a data folder.
func OutputsDir(dataDir string) string { return filepath.Join(dataDir, "outputs") }

// saveMu makes choosing a free name and renaming into it one step within the
// process (the data folder lock keeps other processes out).
var saveMu sync.Mutex

// SaveImage writes data as outputs/YYYY-MM-DD/name under dataDir (the date
// is date's, in its location) by write-then-rename, and returns the path
// relative to the outputs folder, with slashes ("2026-11-27/00001.png").
// name must be a plain file name (see ValidName); if it is taken, "-1",
// "-2", … is added before the extension.
func SaveImage(dataDir string, date time.Time, name string, data []byte) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	day := date.Format("2006-01-02")
	dir := filepath.Join(OutputsDir(dataDir), day)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("jobs: outputs folder: %w", err)
	}
	saveMu.Lock()
	defer saveMu.Unlock()
	final, err := freeName(dir, name)
	if err != nil {
		return "", err
	}
	f, err := atomicfile.Create(filepath.Join(dir, final))
	if err != nil {
		return "", fmt.Errorf("jobs: saving %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return "", fmt.Errorf("jobs: saving %s: %w", name, err)
	}
	if err := f.Commit(); err != nil {
		return "", fmt.Errorf("jobs: saving %s: %w", name, err)
	}
	return day + "/" + final, nil
}

func freeName(dir, name string) (string, error) {
	ext := path.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < 100000; i++ {
		try := name
		if i > 0 {
			try = stem + "-" + strconv.Itoa(i) + ext
		}
		_, err := os.Lstat(filepath.Join(dir, try))
		if errors.Is(err, os.ErrNotExist) {
			return try, nil
		}
		if err != nil {
			return "", fmt.Errorf("jobs: saving %s: %w", name, err)
		}
	}
	return "", fmt.Errorf("jobs: saving %s: no free name in %s", name, dir)
}

// ValidName accepts a plain file name for the outputs folder: 1 to 200
// bytes of UTF-8 without path separators, control characters or characters
// Windows forbids, not starting with a dot (no ".", "..", hidden or
// temporary files) and not ending with a dot or space.
func ValidName(name string) error {
	bad := func(why string) error { return fmt.Errorf("jobs: bad output name %q: %s", name, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 200:
		return bad("longer than 200 bytes")
	case !utf8.ValidString(name):
		return bad("not UTF-8")
	case name[0] == '.':
		return bad("starts with a dot")
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " "):
		return bad("ends with a dot or space")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(`/\:*?"<>|`, c) {
			return bad(fmt.Sprintf("contains %q", c))
		}
	}
	return nil
}

// TempDir is the folder of images that are not to be saved (KeepImage):
// A1111's save_images false. They are kept only until their job's result
// has been delivered (RemoveTemp), the job is deleted, or
// Options.TempRetention has passed.
func TempDir(dataDir string) string { return filepath.Join(dataDir, tempFolder) }

const tempFolder = "temp"

// KeepImage writes data as temp/JOBID-name under dataDir (write-then-rename)
// and returns "temp/JOBID-name". Nothing is recorded in the history.
func KeepImage(dataDir, jobID, name string, data []byte) (string, error) {
	final := jobID + "-" + name
	if err := ValidName(final); err != nil {
		return "", err
	}
	dir := TempDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("jobs: temporary folder: %w", err)
	}
	saveMu.Lock()
	defer saveMu.Unlock()
	final, err := freeName(dir, final)
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, final), data); err != nil {
		return "", fmt.Errorf("jobs: keeping %s: %w", name, err)
	}
	return tempFolder + "/" + final, nil
}

// IsTemp reports whether a result path names a temporary image (KeepImage).
func IsTemp(rel string) bool { return strings.HasPrefix(rel, tempFolder+"/") }

// RemoveTemp deletes the temporary images among rels (other paths are left
// alone); a missing file is not an error.
func RemoveTemp(dataDir string, rels []string) error {
	var errs []error
	for _, rel := range rels {
		if !IsTemp(rel) {
			continue
		}
		p, err := ResolveOutput(dataDir, rel)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweepTemp deletes temporary images older than age (and crash leftovers).
func sweepTemp(dataDir string, age time.Duration) {
	dir := TempDir(dataDir)
	files, _ := os.ReadDir(dir)
	cut := time.Now().Add(-age)
	for _, f := range files {
		info, err := f.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if info.ModTime().Before(cut) {
			os.Remove(filepath.Join(dir, f.Name()))
		}
	}
}

// ResolveOutput turns a path relative to the outputs folder, as SaveImage
// returns it ("YYYY-MM-DD/name"), or a temporary image's path as KeepImage
// returns it ("temp/name"), into a file path under dataDir, refusing
// anything else (so request paths never leave the data folder's image
// areas).
func ResolveOutput(dataDir, rel string) (string, error) {
	day, name, ok := strings.Cut(rel, "/")
	if !ok {
		return "", fmt.Errorf("jobs: output path %q: want YYYY-MM-DD/name", rel)
	}
	if day == tempFolder {
		if err := ValidName(name); err != nil {
			return "", err
		}
		return filepath.Join(TempDir(dataDir), name), nil
	}
	if _, err := time.Parse("2006-01-02", day); err != nil || len(day) != 10 {
		return "", fmt.Errorf("jobs: output path %q: %q is not a date folder", rel, day)
	}
	if err := ValidName(name); err != nil {
		return "", err
	}
	return filepath.Join(OutputsDir(dataDir), day, name), nil
}

// removeTemporary deletes files that a crash left half-written in the date
// folders (atomicfile's ".name.tmp-*"); only called while holding the data
// folder's lock, so no writer of this process or another is using them.
func removeTemporary(dataDir string) {
	days, _ := os.ReadDir(OutputsDir(dataDir))
	for _, d := range days {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(OutputsDir(dataDir), d.Name())
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			if n := f.Name(); f.Type().IsRegular() && strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
}

// HistoryEntry is one saved image.
type HistoryEntry struct {
	ID       int64
	JobID    string
	Path     string // relative to the outputs folder
	Infotext string // the generation parameters, as written into the PNG
	Created  time.Time
}

// SaveImage saves an image of job jobID (see the package function
// SaveImage) and records it in the history with its infotext.
func (q *Queue) SaveImage(jobID string, date time.Time, name string, data []byte, infotext string) (string, error) {
	rel, err := SaveImage(q.dir, date, name, data)
	if err != nil {
		return "", err
	}
	if _, err := q.st.history.Exec(jobID, rel, infotext, time.Now().UnixNano()); err != nil {
		return rel, fmt.Errorf("jobs: recording %s in the history: %w", rel, err)
	}
	return rel, nil
}

// History lists saved images, newest first: at most limit (default 50, at
// most 1000) after cursor ("" for the first page); next is "" on the last page.
func (q *Queue) History(cursor string, limit int) (entries []HistoryEntry, next string, err error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var c int64 = 1<<63 - 1
	if cursor != "" {
		c, err = strconv.ParseInt(cursor, 10, 64)
		if err != nil || c <= 0 {
			return nil, "", fmt.Errorf("jobs: history: bad cursor %q", cursor)
		}
	}
	rows, err := q.db.Query(`SELECT id, job_id, path, infotext, created_ns FROM history
		WHERE id < ? ORDER BY id DESC LIMIT ?`, c, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("jobs: history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e HistoryEntry
		var created int64
		if err := rows.Scan(&e.ID, &e.JobID, &e.Path, &e.Infotext, &created); err != nil {
			return nil, "", fmt.Errorf("jobs: history: %w", err)
		}
		e.Created = time.Unix(0, created)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("jobs: history: %w", err)
	}
	if len(entries) > limit {
		entries = entries[:limit]
		next = strconv.FormatInt(entries[limit-1].ID, 10)
	}
	return entries, next, nil
}
