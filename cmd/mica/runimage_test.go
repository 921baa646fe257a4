package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunImageChat: `mica run --image` answers in the chat format through
// the engine (the same answer as the raw prompt spelling out Gemma 3's
// format with <__media__>), and bad input is a clear error.
func TestRunImageChat(t *testing.T) {
	v := filepath.Join(sharedDir(t), "reference", "vision")
	model := filepath.Join(sharedDir(t), "reference", "gemma", "gemma3-tiny-f32.gguf")
	mmproj := filepath.Join(v, "mmproj-gemma3-tiny-f32.gguf")
	img := filepath.Join(v, "dev-512x384.png")
	chatOut, err := runCLI(t, "run", model, "--temperature", "0", "-n", "4", "-t", "2", "--mmproj", mmproj, "--image", img, "What is this?")
	if err != nil {
		t.Fatal(err)
	}
	rawOut, err := runCLI(t, "run", model, "--raw", "--temperature", "0", "-n", "4", "-t", "2", "--mmproj", mmproj, "--image", img,
		"<start_of_turn>user\n<__media__>What is this?<end_of_turn>\n<start_of_turn>model\n")
	if err != nil {
		t.Fatal(err)
	}
	if chatOut != rawOut {
		t.Errorf("chat answer %q, raw chat-format answer %q", chatOut, rawOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mmproj", mmproj, "--image", bad}, "bad.png"},
		{[]string{"--mmproj", mmproj, "--image", filepath.Join(v, "README.md")}, "unsupported image format"},
		{[]string{"--mmproj", filepath.Join(v, "mmproj-gemma4-tiny-f32.gguf"), "--image", img}, "gemma4v projector"},
		{[]string{"--image", img}, "no vision projector found"},
		{[]string{"--mmproj", mmproj, "--image", img, "--raw", "--image", img}, "marks 1 image"},
	} {
		args := append([]string{"run", model, "-n", "1", "-t", "2"}, c.args...)
		prompt := "What?"
		if strings.Contains(strings.Join(c.args, " "), "--raw") {
			prompt = "x <__media__> y"
		}
		if _, err := runCLI(t, append(args, prompt)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
}
