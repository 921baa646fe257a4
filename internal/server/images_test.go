package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"mica/internal/format/jpegexif"
	"mica/internal/format/pngtext"
	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

var sdOnce sync.Once

// startImages starts a server whose models folder also holds the sd-test
// checkpoint, with a fresh data folder.
func startImages(t *testing.T) (string, *Server) { return startImagesB(t) }

func startImagesB(t testing.TB) (string, *Server) {
	t.Helper()
	dir := models(t)
	var err error
	sdOnce.Do(func() {
		_, err = synth.WriteSD(filepath.Join(dir, "sd-test.safetensors"), synth.SDOptions{Preset: "sd-test", Type: tensor.F16, Threads: 2})
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, s, _ := start(t, Config{DataDir: t.TempDir(), CLIPTokenizer: testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")})
	return ts.URL, s
}

func pngB64(t *testing.T, img image.Image) string {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func decodeB64PNG(t *testing.T, s string) (image.Image, map[string]string) {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	text, err := pngtext.ReadText(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img, text
}

func TestImageAPIListings(t *testing.T) {
	url, _ := startImages(t)
	code, body := get(t, url+"/sdapi/v1/sd-models")
	if code != 200 || !strings.Contains(string(body), `"model_name":"sd-test"`) {
		t.Fatalf("sd-models %d %s", code, body)
	}
	code, body = get(t, url+"/sdapi/v1/samplers")
	if code != 200 || !strings.Contains(string(body), `"name":"DPM++ 2M"`) || !strings.Contains(string(body), `"name":"Euler a"`) {
		t.Fatalf("samplers %d %s", code, body)
	}
	code, body = get(t, url+"/sdapi/v1/schedulers")
	if code != 200 || !strings.Contains(string(body), `"label":"Karras"`) {
		t.Fatalf("schedulers %d %s", code, body)
	}
	code, body = get(t, url+"/sdapi/v1/options")
	if code != 200 || !strings.Contains(string(body), `"sd_model_checkpoint":"sd-test"`) {
		t.Fatalf("options %d %s", code, body)
	}
	if code, _, body := post(t, url+"/sdapi/v1/options", `{"sd_model_checkpoint":"missing"}`); code != 404 {
		t.Fatalf("options with an unknown model: %d %s", code, body)
	}
	if code, _, body := post(t, url+"/sdapi/v1/options", `{"CLIP_stop_at_last_layers":2}`); code != 200 {
		t.Fatalf("options post: %d %s", code, body)
	}
	_, body = get(t, url+"/sdapi/v1/options")
	if !strings.Contains(string(body), `"CLIP_stop_at_last_layers":2`) {
		t.Fatalf("options not kept: %s", body)
	}
	code, body = get(t, url+"/sdapi/v1/progress")
	if code != 200 || !strings.Contains(string(body), `"progress":0`) {
		t.Fatalf("idle progress %d %s", code, body)
	}
	for _, p := range []string{"/sdapi/v1/upscalers", "/sdapi/v1/memory"} {
		if code, body := get(t, url+p); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
}

func TestTxt2ImgAndPNGInfo(t *testing.T) {
	url, _ := startImages(t)
	code, _, body := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"a photo of a cat","negative_prompt":"blurry","seed":42,
		"steps":2,"width":64,"height":64,"sampler_name":"DPM++ 2M","scheduler":"Karras","batch_size":2,"cfg_scale":5,
		"restore_faces":false,"tiling":false,"alwayson_scripts":{},"script_args":[],"eta":null}`)
	if code != 200 {
		t.Fatalf("txt2img %d %s", code, body)
	}
	var resp struct {
		Images     []string
		Parameters map[string]any
		Info       string
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Images) != 2 || resp.Parameters["prompt"] != "a photo of a cat" {
		t.Fatalf("%d images, parameters %v", len(resp.Images), resp.Parameters)
	}
	img, text := decodeB64PNG(t, resp.Images[1])
	if img.Bounds().Dx() != 64 || !strings.Contains(text["parameters"], "Seed: 43") || !strings.Contains(text["parameters"], "Schedule type: Karras") {
		t.Fatalf("image %v, parameters %q", img.Bounds(), text["parameters"])
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(resp.Info), &info); err != nil {
		t.Fatalf("info is not a JSON string: %v", err)
	}
	if info["seed"].(float64) != 42 || len(info["all_seeds"].([]any)) != 2 || len(info["infotexts"].([]any)) != 2 {
		t.Fatalf("info %s", resp.Info)
	}
	// png-info reads the infotext back, A1111-style.
	code, _, body = post(t, url+"/sdapi/v1/png-info", `{"image":"data:image/png;base64,`+resp.Images[0]+`"}`)
	var pi struct {
		Info       string
		Parameters map[string]any
	}
	if code != 200 || json.Unmarshal(body, &pi) != nil || pi.Parameters["Seed"].(float64) != 42 || pi.Parameters["Size-1"].(float64) != 64 {
		t.Fatalf("png-info %d %s", code, body)
	}
	// A JPEG with the infotext in EXIF UserComment (A1111's JPEG files).
	var jb bytes.Buffer
	if err := jpegexif.Encode(&jb, img, 90, text["parameters"]); err != nil {
		t.Fatal(err)
	}
	code, _, body = post(t, url+"/sdapi/v1/png-info", `{"image":"`+base64.StdEncoding.EncodeToString(jb.Bytes())+`"}`)
	pi.Info = ""
	if code != 200 || json.Unmarshal(body, &pi) != nil || pi.Info != text["parameters"] {
		t.Fatalf("png-info of a JPEG: %d %s", code, body)
	}
}

func TestImg2ImgInpaintAndBadInput(t *testing.T) {
	url, _ := startImages(t)
	init := image.NewRGBA(image.Rect(0, 0, 64, 64))
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			init.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), 100, 255})
			if x >= 32 {
				mask.SetGray(x, y, color.Gray{255})
			}
		}
	}
	body := `{"prompt":"oil painting","init_images":["` + pngB64(t, init) + `"],"mask":"` + pngB64(t, mask) +
		`","denoising_strength":0.6,"steps":2,"seed":5,"mask_blur":0,"inpainting_fill":1,"inpaint_full_res":false}`
	code, _, b := post(t, url+"/sdapi/v1/img2img", body)
	if code != 200 {
		t.Fatalf("img2img %d %s", code, b)
	}
	var resp struct{ Images []string }
	json.Unmarshal(b, &resp)
	out, _ := decodeB64PNG(t, resp.Images[0])
	for y := 0; y < 64; y++ {
		for x := 0; x < 32; x++ {
			r1, g1, b1, _ := out.At(x, y).RGBA()
			r0, g0, b0, _ := init.At(x, y).RGBA()
			if r1 != r0 || g1 != g0 || b1 != b0 {
				t.Fatalf("unmasked pixel (%d,%d) changed", x, y)
			}
		}
	}
	small := image.NewGray(image.Rect(0, 0, 8, 8))
	for _, c := range []struct{ path, body, want string }{
		{"img2img", `{"prompt":"x","init_images":["%%%"]}`, "init_images[0]"},
		{"img2img", `{"prompt":"x","init_images":["` + base64.StdEncoding.EncodeToString([]byte("not a picture")) + `"]}`, "not a PNG"},
		{"img2img", `{"prompt":"x","init_images":["` + pngB64(t, init) + `"],"mask":"` + pngB64(t, small) + `"}`, "same size"},
		{"img2img", `{"prompt":"x"}`, "init_images"},
		{"txt2img", `{"prompt":"x","steps":-1}`, "steps"},
		{"txt2img", `{"prompt":"x","steps":"ten"}`, "steps"},
		{"txt2img", `{"prompt":"x","width":"wide"}`, "width"},
		{"txt2img", `{"prompt":"x","width":100000,"height":64}`, "width"},
		{"txt2img", `{"prompt":"x","batch_size":1000}`, "batch_size"},
		{"txt2img", `not json`, "JSON"},
	} {
		code, _, b := post(t, url+"/sdapi/v1/"+c.path, c.body)
		if code != 422 || !strings.Contains(string(b), `"detail"`) || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s: %d %s (want 422 naming %q)", c.path, c.body[:min(len(c.body), 60)], code, b, c.want)
		}
	}
	if code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","sampler_name":"Nope"}`); code != 404 {
		t.Errorf("unknown sampler: %d %s", code, b)
	}
	if code, _, b := post(t, url+"/sdapi/v1/txt2img", `{"prompt":"x","override_settings":{"sd_model_checkpoint":"nope"}}`); code != 404 {
		t.Errorf("unknown model: %d %s", code, b)
	}
}

func TestJobAPIEventsAndInterrupt(t *testing.T) {
	url, _ := startImages(t)
	// An SSE stream of every job's events, read in the background.
	resp, err := http.Get(url + "/mica/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "event: ") {
				events <- strings.TrimPrefix(l, "event: ")
			}
		}
		close(events)
	}()
	code, _, b := post(t, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","steps":40,"width":64,"height":64,"seed":1}}`)
	if code != 202 {
		t.Fatalf("submit %d %s", code, b)
	}
	var job struct {
		ID, State string
		Images    []string
		Progress  struct {
			Progress float64 `json:"progress"`
		}
	}
	json.Unmarshal(b, &job)
	// Wait until it runs and has made progress, then interrupt it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, pb := get(t, url+"/sdapi/v1/progress")
		var p struct {
			Progress     float64
			CurrentImage *string `json:"current_image"`
			State        struct {
				SamplingStep int `json:"sampling_step"`
			}
		}
		json.Unmarshal(pb, &p)
		if p.State.SamplingStep >= 2 && p.CurrentImage != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %s", pb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, b := post(t, url+"/sdapi/v1/interrupt", `{}`); code != 200 {
		t.Fatalf("interrupt %d %s", code, b)
	}
	for {
		_, jb := get(t, url+"/mica/v1/jobs/"+job.ID)
		json.Unmarshal(jb, &job)
		if job.State != "queued" && job.State != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job did not stop: %s", jb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if job.State != "interrupted" || len(job.Images) != 1 {
		t.Fatalf("after interrupt: state %s, %d images", job.State, len(job.Images))
	}
	code, img := get(t, url+job.Images[0])
	if code != 200 || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Fatalf("output %d", code)
	}
	if code, b := get(t, url+"/mica/v1/outputs/..%2f..%2fetc/passwd"); code != 404 {
		t.Fatalf("path escape: %d %s", code, b)
	}
	_, hb := get(t, url+"/mica/v1/history")
	if !strings.Contains(string(hb), job.ID) {
		t.Fatalf("history lacks the job: %s", hb)
	}
	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for !seen["interrupted"] {
		select {
		case e := <-events:
			seen[e] = true
		case <-timeout:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if !seen["queued"] || !seen["started"] || !seen["step"] {
		t.Fatalf("events seen: %v", seen)
	}
	if code, _ := get(t, url+"/mica/v1/jobs/nosuchjob"); code != 404 {
		t.Fatalf("unknown job: %d", code)
	}
}

func TestOpenAIImages(t *testing.T) {
	url, _ := startImages(t)
	code, _, b := post(t, url+"/v1/images/generations", `{"prompt":"a cat","size":"64x64","n":1,"seed":3,"steps":2}`)
	if code != 200 {
		t.Fatalf("generations %d %s", code, b)
	}
	var resp struct {
		Data []struct {
			B64JSON string `json:"b64_json"`
			URL     string
		}
	}
	json.Unmarshal(b, &resp)
	if len(resp.Data) != 1 || resp.Data[0].B64JSON == "" {
		t.Fatalf("generations %s", b)
	}
	code, _, b = post(t, url+"/v1/images/generations", `{"prompt":"a cat","size":"64x64","steps":1,"response_format":"url"}`)
	json.Unmarshal(b, &resp)
	if code != 200 || !strings.HasPrefix(resp.Data[0].URL, "http://") {
		t.Fatalf("url response %d %s", code, b)
	}
	if code, body := get(t, resp.Data[0].URL); code != 200 || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Fatalf("fetching the url: %d", code)
	}
	if code, _, b := post(t, url+"/v1/images/generations", `{"size":"64x64"}`); code != 400 || !strings.Contains(string(b), "prompt") {
		t.Fatalf("missing prompt: %d %s", code, b)
	}
	// Edits: multipart, mask transparent where to repaint.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("prompt", "a hat")
	mw.WriteField("size", "64x64")
	mw.WriteField("steps", "2")
	fw, _ := mw.CreateFormFile("image", "in.png")
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	png.Encode(fw, img)
	mask := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			a := uint8(255)
			if y < 32 {
				a = 0
			}
			mask.Set(x, y, color.NRGBA{0, 0, 0, a})
		}
	}
	fw, _ = mw.CreateFormFile("mask", "mask.png")
	png.Encode(fw, mask)
	mw.Close()
	r, err := http.Post(url+"/v1/images/edits", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	json.Unmarshal(b, &resp)
	if r.StatusCode != 200 || len(resp.Data) != 1 {
		t.Fatalf("edits %d %s", r.StatusCode, b)
	}
	out, _ := decodeB64PNG(t, resp.Data[0].B64JSON)
	if c := color.RGBAModel.Convert(out.At(10, 50)).(color.RGBA); c.R != 200 {
		t.Fatalf("kept area changed: %v", c)
	}
}

func TestImageClientsConcurrently(t *testing.T) {
	url, _ := startImages(t)
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Post(url+"/sdapi/v1/txt2img", "application/json",
				strings.NewReader(`{"prompt":"x","steps":1,"width":64,"height":64,"seed":`+strings.Repeat("1", 1+i%3)+`}`))
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"images":["`) {
				errs <- string(b)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestJobWebSocket(t *testing.T) {
	url, _ := startImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/mica/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	code, _, b := post(t, url+"/mica/v1/jobs", `{"kind":"txt2img","params":{"prompt":"x","steps":2,"width":64,"height":64}}`)
	if code != 202 {
		t.Fatalf("submit %d %s", code, b)
	}
	seen := map[string]bool{}
	for !seen["finished"] {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (seen %v)", err, seen)
		}
		var e struct{ Type string }
		if err := json.Unmarshal(msg, &e); err != nil {
			t.Fatal(err)
		}
		seen[e.Type] = true
	}
	if !seen["queued"] || !seen["started"] || !seen["step"] {
		t.Fatalf("events %v", seen)
	}
}

func TestImageModelUnloadsWhenIdle(t *testing.T) {
	startImagesB(t) // the sd-test checkpoint
	ts, s, _ := start(t, Config{DataDir: t.TempDir(), KeepAlive: 300 * time.Millisecond,
		CLIPTokenizer: testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")})
	if code, _, b := post(t, ts.URL+"/sdapi/v1/txt2img", `{"prompt":"x","steps":1,"width":64,"height":64}`); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if l := s.img.loaded(); len(l) != 1 || l[0] != "sd-test" {
		t.Fatal("the model is not loaded after a request")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.img.loaded()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the image model stayed loaded past its keep-alive")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
