package vision

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/testenv"
)

func TestFindProjector(t *testing.T) {
	touch := func(dir, name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	copyFile := func(src, dir, name string) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	g3 := testenv.Shared(t, "reference", "gemma", "gemma3-tiny-f32.gguf")
	g4 := testenv.Shared(t, "reference", "gemma", "gemma4-tiny-f32.gguf")
	mm3 := testenv.Shared(t, "reference", "vision", "mmproj-gemma3-tiny-f32.gguf")
	dir := t.TempDir()
	model := copyFile(g3, dir, "gemma-3-4b-it-Q4_K_M.gguf")
	other := copyFile(g4, dir, "gemma-4-other.gguf")
	if p, err := FindProjector(model); p != "" || err != nil {
		t.Errorf("no projector: got %q, %v", p, err)
	}
	// The only mmproj file of the folder pairs with the model it fits,
	// and not with another model of the folder.
	only := copyFile(mm3, dir, "mmproj-model-f16.gguf")
	if p, err := FindProjector(model); p != only || err != nil {
		t.Errorf("the only mmproj file: got %q, %v", p, err)
	}
	if p, err := FindProjector(other); p != "" || err != nil {
		t.Errorf("a gemma3 projector lent to a gemma4 model: got %q, %v", p, err)
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
