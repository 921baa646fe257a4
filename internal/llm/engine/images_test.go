package engine

import (
	"context"
	"errors"
	"math"
	"os"
	"sync"
	"testing"

	"mica/internal/llm/sample"
	"mica/internal/models/gemma/chat"
	"mica/internal/testenv"
)

type visionRef struct {
	Prompt         string `json:"prompt"`
	SequenceLength int    `json:"sequence_length"`
	Chunks         []struct {
		Type     string  `json:"type"`
		PosStart int     `json:"pos_start"`
		NTokens  int     `json:"n_tokens"`
		Tokens   []int32 `json:"tokens"`
	} `json:"chunks"`
	LogitsLast []float32 `json:"logits_last"`
}

func loadVisionRef(t testing.TB, name string) *visionRef {
	t.Helper()
	var r visionRef
	testenv.GzipJSON(t, testenv.Shared(t, "reference", "vision", name), &r)
	return &r
}

func devImage(t testing.TB) Image {
	b, err := os.ReadFile(testenv.Shared(t, "reference", "vision", "dev-512x384.png"))
	if err != nil {
		t.Fatal(err)
	}
	return Image{Data: b}
}

// visionEngine opens a tiny reference model with its tiny projector.
func visionEngine(t testing.TB, family string, o Options) *Engine {
	t.Helper()
	e := openEngine(t, refModel(t, family+"-tiny-f32.gguf"), 2, o)
	if err := e.OpenVision(testenv.Shared(t, "reference", "vision", "mmproj-"+family+"-tiny-f32.gguf")); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestImageCompletionParity: a raw prompt with <__media__> is laid out as
// llama.cpp's mtmd lays it out (the reference chunks: tokens and
// positions), and the logits after it match llama.cpp's within 1e-3 (the
// vision package's bound for this emulation of ggml's F16 roundings, F16
// KV) with the same argmax, through the engine's generation loop.
func TestImageCompletionParity(t *testing.T) {
	for _, fam := range []string{"gemma3", "gemma4"} {
		t.Run(fam, func(t *testing.T) {
			ref := loadVisionRef(t, fam+"-vision.json.gz")
			e := visionEngine(t, fam, Options{})
			req := CompletionRequest{Prompt: ref.Prompt, Images: []Image{devImage(t)}, Sampling: sample.Greedy(), MaxTokens: 1}
			ids, err := e.CompletionPrompt(req)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != ref.SequenceLength {
				t.Fatalf("prompt of %d positions, want %d", len(ids), ref.SequenceLength)
			}
			for _, c := range ref.Chunks {
				got := ids[c.PosStart : c.PosStart+max(c.NTokens, len(c.Tokens))]
				for i, id := range got {
					want := ImageToken
					if c.Type == "text" {
						want = c.Tokens[i]
					}
					if id != want {
						t.Fatalf("%s chunk at %d: position %d holds %d, want %d", c.Type, c.PosStart, c.PosStart+i, id, want)
					}
				}
			}
			var logits []float32
			e.firstLogits = func(l []float32) { logits = append([]float32(nil), l...) }
			res, err := e.Complete(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			maxd, am, bm := 0.0, 0, 0
			for j, want := range ref.LogitsLast {
				maxd = max(maxd, math.Abs(float64(logits[j]-want)))
				if logits[j] > logits[am] {
					am = j
				}
				if want > ref.LogitsLast[bm] {
					bm = j
				}
			}
			t.Logf("logits max |Δ| %.3g, argmax %d (llama.cpp %d)", maxd, am, bm)
			if maxd > 1e-3 || am != bm {
				t.Errorf("logits differ from llama.cpp: max |Δ| %.3g (≤ 1e-3), argmax %d vs %d", maxd, am, bm)
			}
			if len(res.Tokens) != 1 || int(res.Tokens[0]) != bm && !e.isStop(int32(bm)) {
				t.Errorf("greedy token %v, want %d", res.Tokens, bm)
			}
		})
	}
}

func imageTurn(text string, images int) chat.Message {
	var parts []chat.Part
	for range images {
		parts = append(parts, chat.Part{Type: "image"})
	}
	parts = append(parts, chat.Part{Type: "text", Text: text})
	return chat.Message{Role: "user", Content: chat.Parts(parts...)}
}

// TestImageChatCacheAndPrefix: a conversation that goes on after an image
// reuses the KV through the image (no encode, only the new turn is
// prefilled); the same image in another conversation is encoded once
// (embedding cache); the answer is the same as with a fresh engine.
func TestImageChatCacheAndPrefix(t *testing.T) {
	e := visionEngine(t, "gemma3", Options{})
	img := devImage(t)
	first := ChatRequest{Messages: []chat.Message{imageTurn("What is this?", 1)}, Images: []Image{img},
		Sampling: sample.Greedy(), MaxTokens: 4}
	r1, err := e.Chat(context.Background(), first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _, _, _ := e.ImageStats(); n != 1 {
		t.Fatalf("%d encodes after one image, want 1", n)
	}
	if r1.Usage.PromptTokens < 256 || r1.Usage.CachedTokens != 0 {
		t.Fatalf("first turn usage %+v", r1.Usage)
	}
	// The follow-up turn: everything up to the end of the first answer's
	// prompt is cached, the image included.
	follow := first
	follow.Messages = append(append([]chat.Message(nil), first.Messages...),
		chat.Message{Role: "assistant", Content: chat.Text(r1.Text)},
		chat.Message{Role: "user", Content: chat.Text("And the colours?")})
	r2, err := e.Chat(context.Background(), follow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _, _, _ := e.ImageStats(); n != 1 {
		t.Errorf("%d encodes after the follow-up turn, want 1 (the image's positions were cached)", n)
	}
	if r2.Usage.CachedTokens < r1.Usage.PromptTokens-1 {
		t.Errorf("follow-up reused %d positions, want at least the first prompt's %d (through the image)", r2.Usage.CachedTokens, r1.Usage.PromptTokens-1)
	}
	t.Logf("follow-up: %d prompt positions, %d cached, %d prefilled", r2.Usage.PromptTokens, r2.Usage.CachedTokens, r2.Usage.PromptTokens-r2.Usage.CachedTokens)

	// Another conversation with the same image: the prefix differs before
	// the image, so it is prefilled again, from the embedding cache.
	other := ChatRequest{System: "Be brief.", Messages: first.Messages, Images: first.Images, Sampling: sample.Greedy(), MaxTokens: 4}
	r3, err := e.Chat(context.Background(), other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _, hits, _ := e.ImageStats(); n != 1 || hits != 1 {
		t.Errorf("%d encodes and %d cache hits after the same image in another conversation, want 1 and 1", n, hits)
	}
	// The cached path gives what a fresh engine gives.
	fresh := visionEngine(t, "gemma3", Options{})
	for _, c := range []struct {
		req ChatRequest
		got Result
	}{{follow, r2}, {other, r3}} {
		want, err := fresh.Chat(context.Background(), c.req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want.Text != c.got.Text {
			t.Errorf("cached answer %q, fresh engine %q", c.got.Text, want.Text)
		}
	}
}

// TestImageBatched: image requests through the continuous batcher give the
// same greedy answers as one at a time, beside a text request.
func TestImageBatched(t *testing.T) {
	single := visionEngine(t, "gemma4", Options{})
	batched := visionEngine(t, "gemma4", Options{Batch: 3})
	img := devImage(t)
	reqs := []ChatRequest{
		{Messages: []chat.Message{imageTurn("What is this?", 1)}, Images: []Image{img}, Sampling: sample.Greedy(), MaxTokens: 5},
		{Messages: []chat.Message{imageTurn("Compare these.", 2)}, Images: []Image{img, img}, Sampling: sample.Greedy(), MaxTokens: 5, Think: true},
		{Messages: []chat.Message{{Role: "user", Content: chat.Text("Hello there")}}, Sampling: sample.Greedy(), MaxTokens: 5},
	}
	want := make([]Result, len(reqs))
	for i, r := range reqs {
		var err error
		if want[i], err = single.Chat(context.Background(), r, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]Result, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if got[i], err = batched.Chat(context.Background(), r, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range reqs {
		if got[i].Text != want[i].Text || got[i].Thinking != want[i].Thinking || got[i].Usage.PromptTokens != want[i].Usage.PromptTokens {
			t.Errorf("request %d: batched %q/%q (%d positions), single %q/%q (%d)", i, got[i].Text, got[i].Thinking,
				got[i].Usage.PromptTokens, want[i].Text, want[i].Thinking, want[i].Usage.PromptTokens)
		}
	}
}

// TestImageErrors: bad images and image requests to a model without a
// projector fail with ErrImage or ErrNoVision, and the engine goes on.
func TestImageErrors(t *testing.T) {
	e := visionEngine(t, "gemma3", Options{MaxImages: 2})
	img := devImage(t)
	msg := []chat.Message{imageTurn("What?", 1)}
	for name, c := range map[string]struct {
		req  ChatRequest
		want error
	}{
		"corrupt":     {ChatRequest{Messages: msg, Images: []Image{{Data: []byte("\x89PNG\r\n\x1a\nnot really")}}}, ErrImage},
		"truncated":   {ChatRequest{Messages: msg, Images: []Image{{Data: img.Data[:len(img.Data)/2]}}}, ErrImage},
		"unsupported": {ChatRequest{Messages: msg, Images: []Image{{Data: []byte("BM\x00\x00 a bitmap")}}}, ErrImage},
		"empty":       {ChatRequest{Messages: msg, Images: []Image{{}}}, ErrImage},
		"too many":    {ChatRequest{Messages: []chat.Message{imageTurn("What?", 3)}, Images: []Image{img, img, img}}, ErrImage},
		"missing":     {ChatRequest{Messages: []chat.Message{imageTurn("What?", 2)}, Images: []Image{img}}, ErrImage},
		"extra":       {ChatRequest{Messages: msg, Images: []Image{img, img}}, ErrImage},
		"budget":      {ChatRequest{Messages: msg, Images: []Image{{Data: img.Data, Tokens: 70}}}, ErrImage},
	} {
		if _, err := e.ChatPrompt(c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: ChatPrompt error %v, want %v", name, err, c.want)
		}
		if _, err := e.Chat(context.Background(), c.req, nil); !errors.Is(err, c.want) {
			t.Errorf("%s: Chat error %v, want %v", name, err, c.want)
		}
	}
	text := openEngine(t, refModel(t, "gemma3-tiny-f32.gguf"), 2, Options{})
	if _, err := text.Chat(context.Background(), ChatRequest{Messages: msg, Images: []Image{img}}, nil); !errors.Is(err, ErrNoVision) {
		t.Errorf("image to a model without a projector: %v", err)
	}
	// Mismatched pair: a Gemma 4 projector on a Gemma 3 model.
	if err := text.OpenVision(testenv.Shared(t, "reference", "vision", "mmproj-gemma4-tiny-f32.gguf")); err == nil {
		t.Error("a gemma4v projector was paired with a Gemma 3 model")
	} else if _, err2 := text.ChatPrompt(ChatRequest{Messages: msg, Images: []Image{img}}); !errors.Is(err2, ErrNoVision) {
		t.Errorf("after a refused pair: %v", err2)
	} else {
		t.Logf("refused pair: %v", err2)
	}
	// The engine still answers.
	if _, err := e.Chat(context.Background(), ChatRequest{Messages: msg, Images: []Image{img}, Sampling: sample.Greedy(), MaxTokens: 2}, nil); err != nil {
		t.Errorf("after bad requests: %v", err)
	}
}

// TestImagePreparedOnce: measuring a prompt (ChatPrompt, as the server does
// before admitting a request) and running it decode and resize the image
// once; another budget or orientation rule prepares it again.
func TestImagePreparedOnce(t *testing.T) {
	e := visionEngine(t, "gemma4", Options{})
	img := devImage(t)
	req := ChatRequest{Messages: []chat.Message{imageTurn("What is this?", 1)}, Images: []Image{img},
		Sampling: sample.Greedy(), MaxTokens: 1}
	if _, err := e.ChatPrompt(req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Chat(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.vis.decodes.Load(); n != 1 {
		t.Fatalf("%d image preparations for one image measured and run, want 1", n)
	}
	low := req
	low.Images = []Image{img}
	low.Images[0].Detail = "low"
	if _, err := e.ChatPrompt(low); err != nil {
		t.Fatal(err)
	}
	if n := e.vis.decodes.Load(); n != 2 {
		t.Fatalf("%d image preparations after another budget, want 2", n)
	}
	kept := req
	kept.Images = []Image{img}
	kept.Images[0].IgnoreOrientation = true
	if _, err := e.ChatPrompt(kept); err != nil {
		t.Fatal(err)
	}
	if n := e.vis.decodes.Load(); n != 3 {
		t.Fatalf("%d image preparations after another orientation rule, want 3", n)
	}
}
