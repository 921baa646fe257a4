package vision

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FindProjector looks for the mmproj file paired with the text model at
// modelPath, in the same directory: "mmproj-NAME.gguf", "NAME-mmproj.gguf"
// or "NAME.mmproj.gguf" (NAME the model's file name without .gguf), else
// the only file there whose name contains "mmproj" and ends in .gguf. It
// returns "" when there is none, and an error when several could be meant.
// Whether the pair fits is for CheckPair to say once both are loaded.
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
		return found[0], nil
	}
	return "", fmt.Errorf("vision: several mmproj files beside %s (%s): name one explicitly", modelPath, strings.Join(found, ", "))
}
