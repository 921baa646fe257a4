package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mica/internal/format/jpegexif"
	"mica/internal/format/pngtext"
	"mica/internal/server"
	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

func runGen(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newGenCmd()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestGenLocalAndThroughServer: mica gen makes the same picture on its own
// and as a job of a running server, with the infotext in the PNG.
func TestGenLocalAndThroughServer(t *testing.T) {
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "tiny.safetensors")
	if _, err := synth.WriteSD(ckpt, synth.SDOptions{Preset: "sd-test", Type: tensor.F16, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "local.png")
	args := []string{"a red apple", "-W", "64", "-H", "64", "--steps", "2", "--seed", "9", "--sampler", "Euler a"}
	stdout, err := runGen(t, append(args, "-m", ckpt, "--clip-tokenizer", tok, "-o", local)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "Seed: 9") || !strings.Contains(stdout, "a red apple") {
		t.Fatalf("printed %q", stdout)
	}
	// JPEG output keeps the infotext in EXIF UserComment, as A1111 does.
	jpg := filepath.Join(dir, "local.jpg")
	if _, err := runGen(t, append(args, "-m", ckpt, "--clip-tokenizer", tok, "-o", jpg)...); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(jpg)
	comment, err := jpegexif.ReadUserComment(f)
	f.Close()
	if err != nil || !strings.Contains(comment, "Seed: 9") {
		t.Fatalf("JPEG infotext %q, %v", comment, err)
	}
	s, err := server.New(server.Config{ModelsDir: dir, DataDir: filepath.Join(dir, "data"), CLIPTokenizer: tok, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	remote := filepath.Join(dir, "remote.png")
	if _, err := runGen(t, append(args, "--server", ts.URL, "-m", "tiny", "-o", remote)...); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(local)
	b, _ := os.ReadFile(remote)
	ta, _ := pngtext.ReadText(bytes.NewReader(a))
	tb, _ := pngtext.ReadText(bytes.NewReader(b))
	// The server adds the checkpoint's "Model hash" once its background
	// hashing has finished, as A1111 does; the rest is the same.
	remoteText := regexp.MustCompile(`Model hash: [0-9a-f]{10}, `).ReplaceAllString(tb["parameters"], "")
	if ta["parameters"] == "" || ta["parameters"] != remoteText {
		t.Fatalf("infotexts differ:\n%s\n%s", ta["parameters"], tb["parameters"])
	}
	pa, errA := png.Decode(bytes.NewReader(a))
	pb, errB := png.Decode(bytes.NewReader(b))
	if errA != nil || errB != nil || !samePixels(pa, pb) {
		t.Fatal("the server's picture differs from the local one")
	}
	if _, err := runGen(t, append(args, "--server", ts.URL, "-m", "missing", "-o", remote)...); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown model through the server: %v", err)
	}
	if _, err := runGen(t, "x", "-o", remote); err == nil || !strings.Contains(err.Error(), "no model") {
		t.Fatalf("no model: %v", err)
	}
}

// samePixels reports whether two pictures have the same size and colours.
func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				return false
			}
		}
	}
	return true
}

// TestGenRefiner: --refiner hands the sampling over to an SDXL refiner and
// the infotext says so, as A1111's does.
func TestGenRefiner(t *testing.T) {
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	dir := t.TempDir()
	base, ref := filepath.Join(dir, "xl.safetensors"), filepath.Join(dir, "xl-refiner.safetensors")
	for p, preset := range map[string]string{base: "sdxl-test", ref: "sdxl-refiner-test"} {
		if _, err := synth.WriteSD(p, synth.SDOptions{Preset: preset, Type: tensor.F16, Threads: 2}); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"a red apple", "-m", base, "--clip-tokenizer", tok, "-W", "64", "-H", "64", "--steps", "4", "--seed", "9",
		"--sampler", "Euler", "-o", filepath.Join(dir, "out.png")}
	stdout, err := runGen(t, append(args, "--refiner", ref, "--refiner-switch-at", "0.5")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "Refiner: xl-refiner [") || !strings.Contains(stdout, "Refiner switch at: 0.5") {
		t.Fatalf("printed %q", stdout)
	}
	if _, err := runGen(t, append(args, "--refiner-switch-at", "0.5")...); err == nil || !strings.Contains(err.Error(), "needs --refiner") {
		t.Errorf("--refiner-switch-at alone: %v", err)
	}
	if _, err := runGen(t, append(args, "--refiner", filepath.Join(dir, "missing.safetensors"))...); err == nil || !strings.Contains(err.Error(), "--refiner") {
		t.Errorf("missing refiner: %v", err)
	}
}
