package vision

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindProjector(t *testing.T) {
	touch := func(dir, name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := t.TempDir()
	model := touch(dir, "gemma-3-4b-it-Q4_K_M.gguf")
	if p, err := FindProjector(model); p != "" || err != nil {
		t.Errorf("no projector: got %q, %v", p, err)
	}
	only := touch(dir, "mmproj-model-f16.gguf")
	if p, err := FindProjector(model); p != only || err != nil {
		t.Errorf("the only mmproj file: got %q, %v", p, err)
	}
	touch(dir, "mmproj-other-f16.gguf")
	if _, err := FindProjector(model); err == nil || !strings.Contains(err.Error(), "several") {
		t.Errorf("two candidates: %v", err)
	}
	named := touch(dir, "mmproj-gemma-3-4b-it-Q4_K_M.gguf")
	if p, err := FindProjector(model); p != named || err != nil {
		t.Errorf("named like the model: got %q, %v", p, err)
	}
}
