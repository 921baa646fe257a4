package infotext

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mica/internal/format/pngtext"
	"mica/internal/testenv"
)

func TestFormat(t *testing.T) {
	p := Params{
		Prompt:   "masterpiece, (cat:1.2)",
		Negative: "blurry, lowres",
		Settings: []KV{
			{"Steps", "20"}, {"Sampler", "DPM++ 2M"}, {"Schedule type", "Karras"}, {"CFG scale", "7"},
			{"Seed", "42"}, {"Size", "512x512"}, {"Model hash", "abcd1234"}, {"Model", "name"},
			{"Lora hashes", "a: 123, b: 456"}, {"Note", "say \"hi\"\nbye\\"}, {"Version", "mica x"},
		},
	}
	want := "masterpiece, (cat:1.2)\nNegative prompt: blurry, lowres\n" +
		`Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x512, ` +
		`Model hash: abcd1234, Model: name, Lora hashes: "a: 123, b: 456", Note: "say \"hi\"\nbye\\", Version: mica x`
	got := Format(p)
	if got != want {
		t.Fatalf("Format:\n%s\nwant\n%s", got, want)
	}
	back, err := Parse(got)
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if got := Format(Params{Prompt: "cat"}); got != "cat" {
		t.Errorf("prompt only: %q", got)
	}
}

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a,b", `"a,b"`},
		{"日本: ü", `"日本: ü"`}, // non-ASCII kept, as ensure_ascii=False
		{"<&>:", `"<&>:"`},   // no HTML escaping
		{"tab\t:\x01", `"tab\t:\u0001"`},
		{`q"q`, `q"q`}, // quotes alone do not trigger quoting
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
		if got := Unquote(Quote(c.in)); got != c.in {
			t.Errorf("Unquote(Quote(%q)) = %q", c.in, got)
		}
	}
	if got := Unquote(`"bad \x"`); got != `"bad \x"` {
		t.Errorf("invalid JSON kept: %q", got)
	}
}

// TestParseA1111 reads infotexts shaped like A1111's, with its rules.
func TestParseA1111(t *testing.T) {
	text := "a portrait of a knight,\n  (shining armor:1.2), detailed  \n\n" +
		"Negative prompt: lowres, bad anatomy\nworst quality\n" +
		`Steps: 28, Sampler: Euler a, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, ` +
		`Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.35, Clip skip: 2, ` +
		`Hires upscale: 1.5, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54, ` +
		`more_art: 1a2b3c", TI hashes: "easynegative: c74b4e810b03", Version: v1.10.1`
	p, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if p.Prompt != "a portrait of a knight,\n(shining armor:1.2), detailed\n" {
		t.Errorf("prompt %q", p.Prompt)
	}
	if p.Negative != "lowres, bad anatomy\nworst quality" {
		t.Errorf("negative %q", p.Negative)
	}
	for k, want := range map[string]string{
		"Steps": "28", "Sampler": "Euler a", "Size": "832x1216", "Clip skip": "2",
		"Lora hashes": "add_detail: 7c6bad76eb54, more_art: 1a2b3c", "TI hashes": "easynegative: c74b4e810b03",
		"Version": "v1.10.1", "Hires upscaler": "Latent",
	} {
		if got, ok := p.Get(k); !ok || got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(p.Settings) != 14 {
		t.Errorf("%d settings: %v", len(p.Settings), p.Settings)
	}
}

func TestParseRules(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     Params
	}{
		{"prompt only", "just a prompt: with colon", Params{Prompt: "just a prompt: with colon"}},
		// Fewer than three pairs: the last line is prompt.
		{"two pairs", "cat\nSteps: 20, Seed: 1", Params{Prompt: "cat\nSteps: 20, Seed: 1"}},
		{"no prompt", "Steps: 20, Seed: 1, Size: 8x8", Params{Settings: []KV{{"Steps", "20"}, {"Seed", "1"}, {"Size", "8x8"}}}},
		{"empty values dropped, junk skipped", "p\nSteps: 20, junk, Empty: , Seed: 1, Steps : 5, Size: 8x8",
			Params{Prompt: "p", Settings: []KV{{"Steps", "20"}, {"Seed", "1"}, {"Steps ", "5"}, {"Size", "8x8"}}}},
		{"repeat keeps first position", "p\nA1: 1, B2: 2, A1: 3",
			Params{Prompt: "p", Settings: []KV{{"A1", "3"}, {"B2", "2"}}}},
		{"quote not closing the value", `p` + "\n" + `K1: "a" b, K2: 2, K3: 3`,
			Params{Prompt: "p", Settings: []KV{{"K1", `"a" b`}, {"K2", "2"}, {"K3", "3"}}}},
		{"negative first", "Negative prompt: ugly\nA1: 1, B2: 2, C3: 3",
			Params{Negative: "ugly", Settings: []KV{{"A1", "1"}, {"B2", "2"}, {"C3", "3"}}}},
		{"unquoted JSON (sd.cpp)", "p\nA1: 1, B2: 2, SDCPP: {\"a\":[1,2],\"s\":\"x,}\"}, Z9: z",
			Params{Prompt: "p", Settings: []KV{{"A1", "1"}, {"B2", "2"}, {"SDCPP", `{"a":[1,2],"s":"x,}"}`}, {"Z9", "z"}}}},
		{"empty", "", Params{}},
	} {
		got, err := Parse(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := Parse("bad \xff"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

// TestReferencePNG parses the infotext stable-diffusion.cpp wrote into the
// reference images.
func TestReferencePNG(t *testing.T) {
	path := testenv.Shared(t, "reference", "sd", "case-b-txt2img-euler_a-f32.png")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skip(err)
	}
	m, err := pngtext.ReadText(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(m["parameters"])
	if err != nil {
		t.Fatal(err)
	}
	if p.Prompt != "a red apple on a wooden table" || p.Negative != "blurry" {
		t.Errorf("%s: prompt %q negative %q", filepath.Base(path), p.Prompt, p.Negative)
	}
	for k, want := range map[string]string{"Steps": "4", "Seed": "7", "Sampler": "euler_a discrete", "Size": "256x256"} {
		if got, _ := p.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if js, _ := p.Get("SDCPP"); !strings.HasPrefix(js, "{") || !strings.HasSuffix(js, "}") {
		t.Errorf("SDCPP = %q", js)
	}
}
