package vision

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"mica/internal/format/gguf"
)

// FindProjector looks for the mmproj file paired with the text model at
// modelPath, in the same directory: "mmproj-NAME.gguf", "NAME-mmproj.gguf"
// or "NAME.mmproj.gguf" (NAME the model's file name without .gguf), else
// the only file there whose name contains "mmproj" and ends in .gguf —
// that one only when its headers say it fits the model (projector type and
// width), so a shared models folder does not lend one model's projector to
// the others. It returns "" when there is none, and an error when several
// could be meant. A projector found by name is checked by CheckPair once
// both are loaded (a mismatch is then reported, not hidden).
func FindProjector(modelPath string) (string, error) {
	dir, file := filepath.Split(modelPath)
	name := strings.TrimSuffix(file, filepath.Ext(file))
	for _, cand := range []string{"mmproj-" + name + ".gguf", name + "-mmproj.gguf", name + ".mmproj.gguf"} {
		p := filepath.Join(dir, cand)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	entries, err := os.ReadDir(filepath.Clean(dir + "."))
	if err != nil {
		return "", fmt.Errorf("vision: looking for an mmproj file beside %s: %w", modelPath, err)
	}
	var found []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.Contains(strings.ToLower(n), "mmproj") && strings.HasSuffix(strings.ToLower(n), ".gguf") && n != file {
			found = append(found, filepath.Join(dir, n))
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		if !fits(modelPath, found[0]) {
			return "", nil
		}
		return found[0], nil
	}
	return "", fmt.Errorf("vision: several mmproj files beside %s (%s): name one explicitly", modelPath, strings.Join(found, ", "))
}

// fits reads the two files' headers (no weights) and reports whether the
// projector is for the model's architecture and embedding width.
func fits(modelPath, projPath string) bool {
	m, err := gguf.Open(modelPath)
	if err != nil {
		return false
	}
	defer m.Close()
	p, err := gguf.Open(projPath)
	if err != nil {
		return false
	}
	defer p.Close()
	c, err := ParseConfig(p)
	if err != nil {
		return false
	}
	arch, _ := m.String("general.architecture")
	width, err := m.Uint32(arch + ".embedding_length")
	if err != nil {
		return false
	}
	return (&Projector{Path: projPath, Config: c}).CheckPair(arch, int(width)) == nil
}
