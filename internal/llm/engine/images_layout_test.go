package engine

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"slices"
	"strings"
	"testing"

	"mica/internal/format/imagefile"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
	"mica/internal/models/vision"
	"mica/internal/testenv"
	"mica/internal/tokenizer"
)

// llamaLayout lays a conversation out as llama.cpp's server does: the chat
// template renders each message as one string with <__media__> at each
// image (tools/server/server-common.cpp turns image parts into media
// markers; common/chat.cpp flattens a message holding media into one
// string), then mtmd splits the prompt at the markers, tokenizes each text
// piece with special tokens recognised and puts BEGIN, the image's
// positions and END in each marker's place (tools/mtmd/mtmd.cpp). It
// returns the rendered prompt and its positions (ImageToken at images).
func llamaLayout(t *testing.T, e *Engine, turns [][2]string, nImage int) (string, []int32) {
	t.Helper()
	var flat []chat.Message
	for _, m := range turns {
		flat = append(flat, chat.Message{Role: m[0], Content: chat.Text(strings.ReplaceAll(m[1], ImagePlace, vision.MediaMarker))})
	}
	vars, err := chat.Request{Messages: flat, AddGenerationPrompt: true}.Vars()
	if err != nil {
		t.Fatal(err)
	}
	vars.BOS = e.tok.TokenText(e.tok.BOS())
	segs, err := chat.RenderSegments(e.family, vars)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
	}
	prompt := b.String()
	begin, end := e.Vision().Config.Markers()
	enc := func(s string) []int32 {
		ids, err := e.tok.Encode(s, tokenizer.EncodeOptions{ParseSpecial: true})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	var out []int32
	for i, piece := range strings.Split(prompt, vision.MediaMarker) {
		if i > 0 {
			out = append(out, enc(end)...)
		}
		out = append(out, enc(piece)...)
		if i < strings.Count(prompt, vision.MediaMarker) {
			out = append(out, enc(begin)...)
			out = append(out, slices.Repeat([]int32{ImageToken}, nImage)...)
		}
	}
	return prompt, out
}

// TestChatImageLayout: a conversation with text and images (several in one
// message, images in an earlier turn, spaces and newlines beside them) is
// laid out token for token as llama.cpp's server lays it out for Gemma 3
// and Gemma 4: the message is one string (text parts joined with "\n"
// except next to an image, trimmed as a whole), each image is the
// projector's BEGIN marker, its positions and END with no newline added.
func TestChatImageLayout(t *testing.T) {
	for _, c := range []struct {
		family string
		want   string // the prompt llama.cpp's template renders
	}{
		{"gemma3", "<bos><start_of_turn>user\nFirst:<__media__><end_of_turn>\n<start_of_turn>model\nA cat.<end_of_turn>\n" +
			"<start_of_turn>user\nLook at these: <__media__><__media__> What is it?\nBe brief.<end_of_turn>\n<start_of_turn>model\n"},
		{"gemma4", ""},
	} {
		t.Run(c.family, func(t *testing.T) {
			e := visionEngine(t, c.family, Options{})
			img := devImage(t)
			dec, err := imagefile.Decode(img.Data, imagefile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			in, err := e.Vision().Preprocess(dec, vision.PreprocessOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// What the OpenAI codec makes of [text "First:", image] and
			// [text "Look at these: ", image, image, text " What is it?",
			// text "Be brief."] (openai.flattenParts).
			turns := [][2]string{
				{"user", "First:" + ImagePlace},
				{"assistant", "A cat."},
				{"user", "  Look at these: " + ImagePlace + ImagePlace + " What is it?\nBe brief.\n"},
			}
			var msgs []chat.Message
			for _, m := range turns {
				msgs = append(msgs, chat.Message{Role: m[0], Content: chat.Text(m[1])})
			}
			prompt, want := llamaLayout(t, e, turns, in.Tokens())
			if c.want != "" && prompt != c.want {
				t.Fatalf("rendered prompt\n%q\nwant\n%q", prompt, c.want)
			}
			t.Logf("%s prompt: %q", c.family, prompt)
			got, err := e.ChatPrompt(ChatRequest{Messages: msgs, Images: []Image{img, img, img}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("layout differs from llama.cpp's:\n got %v\nwant %v", squeeze(got), squeeze(want))
			}
			// Markers: exactly one BEGIN and END per image, ids as the
			// real vocabularies' single special tokens where the toy
			// vocabulary has them.
			if n := strings.Count(prompt, vision.MediaMarker); n != 3 {
				t.Errorf("%d image places, want 3", n)
			}
			// One image too few or too many is a clear error.
			if _, err := e.ChatPrompt(ChatRequest{Messages: msgs, Images: []Image{img, img}}); !errors.Is(err, ErrImage) {
				t.Errorf("2 images for 3 places: %v", err)
			}
		})
	}
}

// squeeze shortens runs of image positions for messages.
func squeeze(ids []int32) []int32 {
	var out []int32
	for i, id := range ids {
		if id == ImageToken && i > 0 && ids[i-1] == ImageToken {
			continue
		}
		out = append(out, id)
	}
	return out
}

// TestImageBudget: a request's detail and explicit token budget change a
// Gemma 4 image's token count within the model's limits (a 4000×3000 image:
// "low" at most 70 tokens, "high" more than the default 280); a bad budget
// is a BudgetError naming the field; Gemma 3 ignores detail and takes only
// its own 256.
func TestImageBudget(t *testing.T) {
	g4 := visionEngine(t, "gemma4", Options{})
	big := bigPNG(t, 4000, 3000)
	msgs := []chat.Message{{Role: "user", Content: chat.Text(ImagePlace + "What?")}}
	count := func(e *Engine, im Image) (int, error) {
		ids, err := e.ChatPrompt(ChatRequest{Messages: msgs, Images: []Image{im}})
		n := 0
		for _, id := range ids {
			if id == ImageToken {
				n++
			}
		}
		return n, err
	}
	for _, c := range []struct {
		im       Image
		min, max int
	}{
		{Image{Data: big}, 200, 280},
		{Image{Data: big, Detail: "auto"}, 200, 280},
		{Image{Data: big, Detail: "low"}, 40, 70},
		{Image{Data: big, Detail: "high"}, 281, 1120},
		{Image{Data: big, Tokens: 140}, 100, 140},
		{Image{Data: big, Detail: "high", Tokens: 70}, 40, 70},
		{Image{Data: big, Detail: "high", MinTokens: 100, MaxTokens: 120}, 100, 120}, // the CLI's --image-min/max-tokens
	} {
		n, err := count(g4, c.im)
		if err != nil || n < c.min || n > c.max {
			t.Errorf("detail %q tokens %d: %d image tokens (%v), want %d…%d", c.im.Detail, c.im.Tokens, n, err, c.min, c.max)
		}
	}
	var be *BudgetError
	_, err := count(g4, Image{Data: big, Tokens: 5000, Param: "image_tokens"})
	if !errors.As(err, &be) || !errors.Is(err, ErrImage) || be.Param != "image_tokens" || be.Image != 0 {
		t.Errorf("budget 5000: %v", err)
	}

	g3 := visionEngine(t, "gemma3", Options{})
	if _, err := count(g3, Image{Data: big, MaxTokens: 100}); !errors.As(err, &be) {
		t.Errorf("gemma3 with --image-max-tokens: %v", err)
	}
	for _, im := range []Image{{Data: big, Detail: "low"}, {Data: big, Detail: "high"}, {Data: big, Tokens: 256}} {
		if n, err := count(g3, im); err != nil || n != 256 {
			t.Errorf("gemma3 detail %q tokens %d: %d image tokens (%v), want 256", im.Detail, im.Tokens, n, err)
		}
	}
	_, err = count(g3, Image{Data: big, Tokens: 280, Param: "messages[0].content[0].image_url.image_tokens"})
	if !errors.As(err, &be) || be.Param != "messages[0].content[0].image_url.image_tokens" || !strings.Contains(err.Error(), "256") {
		t.Errorf("gemma3 budget 280: %v", err)
	}
}

// TestImagePLE: a model with per-layer embeddings (Gemma 4 E2B/E4B style)
// reads images: the projector pairs, a conversation with an image runs,
// and answers are deterministic.
func TestImagePLE(t *testing.T) {
	e := openEngine(t, refModel(t, "gemma4-ple-f32.gguf"), 2, Options{})
	if err := e.OpenVision(testenv.Shared(t, "reference", "vision", "mmproj-gemma4-tiny-f32.gguf")); err != nil {
		t.Fatalf("pairing a projector with a per-layer-embedding model: %v", err)
	}
	req := ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Text(ImagePlace + "What is this?")}},
		Images: []Image{devImage(t)}, Sampling: sample.Greedy(), MaxTokens: 3}
	r1, err := e.Chat(context.Background(), req, nil)
	if err != nil && strings.Contains(err.Error(), "not supported yet") {
		t.Skipf("the gemma forward pass still refuses embedding input with per-layer embeddings (needs the hook in model.go): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	fresh := openEngine(t, refModel(t, "gemma4-ple-f32.gguf"), 2, Options{})
	if err := fresh.OpenVision(testenv.Shared(t, "reference", "vision", "mmproj-gemma4-tiny-f32.gguf")); err != nil {
		t.Fatal(err)
	}
	r2, err := fresh.Chat(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Text != r2.Text || r1.Usage.PromptTokens != r2.Usage.PromptTokens {
		t.Errorf("two engines: %q (%d positions) and %q (%d)", r1.Text, r1.Usage.PromptTokens, r2.Text, r2.Usage.PromptTokens)
	}
}

// bigPNG is a w×h PNG with a gradient.
func bigPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y += 7 {
		for x := 0; x < w; x += 7 {
			img.Pix[img.PixOffset(x, y)] = uint8(x)
			img.Pix[img.PixOffset(x, y)+3] = 255
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
