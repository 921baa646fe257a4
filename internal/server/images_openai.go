package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mica/internal/jobs"
	"mica/internal/server/canon"
)

// OpenAI's image endpoints, on the same job queue: /v1/images/generations
// (JSON) and /v1/images/edits (multipart, with an optional mask whose
// transparent pixels mark what to repaint). Extensions beside OpenAI's
// fields: negative_prompt, seed, steps, cfg_scale, sampler.

type openaiImageRequest struct {
	Prompt         string   `json:"prompt"`
	Model          string   `json:"model"`
	N              int      `json:"n"`
	Size           string   `json:"size"`
	ResponseFormat string   `json:"response_format"`
	NegativePrompt string   `json:"negative_prompt"`
	Seed           *int64   `json:"seed"`
	Steps          int      `json:"steps"`
	CFGScale       *float64 `json:"cfg_scale"`
	Sampler        string   `json:"sampler"`
	Strength       *float64 `json:"strength"`
}

// toA1111 turns the request into the A1111 body the image jobs run.
func (o *openaiImageRequest) toA1111(initImage, mask []byte) (map[string]any, error) {
	if strings.TrimSpace(o.Prompt) == "" {
		return nil, canon.Errorf("prompt", "prompt is required")
	}
	if o.N == 0 {
		o.N = 1
	}
	if o.N < 1 || o.N > 10 {
		return nil, canon.Errorf("n", "n must be between 1 and 10")
	}
	body := map[string]any{"prompt": o.Prompt, "negative_prompt": o.NegativePrompt, "batch_size": o.N}
	if o.Size != "" && o.Size != "auto" {
		w, h, ok := strings.Cut(o.Size, "x")
		wi, e1 := strconv.Atoi(w)
		hi, e2 := strconv.Atoi(h)
		if !ok || e1 != nil || e2 != nil {
			return nil, canon.Errorf("size", "size %q: use WIDTHxHEIGHT, e.g. 512x512", o.Size)
		}
		body["width"], body["height"] = wi, hi
	}
	if o.Model != "" {
		body["override_settings"] = map[string]any{"sd_model_checkpoint": o.Model}
	}
	if o.Seed != nil {
		body["seed"] = *o.Seed
	}
	if o.Steps > 0 {
		body["steps"] = o.Steps
	}
	if o.CFGScale != nil {
		body["cfg_scale"] = *o.CFGScale
	}
	if o.Sampler != "" {
		body["sampler_name"] = o.Sampler
	}
	if initImage != nil {
		body["init_images"] = []string{base64.StdEncoding.EncodeToString(initImage)}
		body["denoising_strength"] = 0.75
		if o.Strength != nil {
			body["denoising_strength"] = *o.Strength
		}
		if mask != nil {
			body["mask"] = base64.StdEncoding.EncodeToString(mask)
			body["inpainting_fill"] = 1
		}
	}
	switch o.ResponseFormat {
	case "", "b64_json", "url":
	default:
		return nil, canon.Errorf("response_format", "response_format %q: use b64_json or url", o.ResponseFormat)
	}
	return body, nil
}

func (s *Server) openaiImages(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	b, err := readLimited(w, r, s.cfg.ImageBodyBytes)
	if err != nil {
		s.fail(w, r, canon.New(canon.TooLarge, "%v", err))
		return
	}
	var in openaiImageRequest
	if err := json.Unmarshal(b, &in); err != nil {
		s.fail(w, r, canon.New(canon.Invalid, "invalid JSON body: %v", err))
		return
	}
	body, err := in.toA1111(nil, nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.openaiImageJob(w, r, &in, body, false)
}

// openaiImageEdits takes multipart form data: image, optional mask (PNG
// with alpha: transparent = repaint, OpenAI's rule), prompt, n, size,
// response_format.
func (s *Server) openaiImageEdits(w http.ResponseWriter, r *http.Request) {
	if !s.imagesReady(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.ImageBodyBytes)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		s.fail(w, r, canon.New(canon.Invalid, "a multipart form with image and prompt is required: %v", err))
		return
	}
	in := openaiImageRequest{Prompt: r.FormValue("prompt"), Model: r.FormValue("model"), Size: r.FormValue("size"),
		ResponseFormat: r.FormValue("response_format"), NegativePrompt: r.FormValue("negative_prompt"), Sampler: r.FormValue("sampler")}
	in.N, _ = strconv.Atoi(r.FormValue("n"))
	in.Steps, _ = strconv.Atoi(r.FormValue("steps"))
	if v := r.FormValue("seed"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.fail(w, r, canon.Errorf("seed", "seed %q is not an integer", v))
			return
		}
		in.Seed = &n
	}
	if v := r.FormValue("strength"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.fail(w, r, canon.Errorf("strength", "strength %q is not a number", v))
			return
		}
		in.Strength = &f
	}
	img, err := formFile(r, "image", "image[]")
	if err != nil || img == nil {
		s.fail(w, r, canon.Errorf("image", "image is required (a PNG, JPEG or WebP file)"))
		return
	}
	mask, err := formFile(r, "mask")
	if err != nil {
		s.fail(w, r, canon.Errorf("mask", "mask: %v", err))
		return
	}
	if mask != nil {
		if mask, err = openaiMaskToA1111(mask); err != nil {
			s.fail(w, r, canon.Errorf("mask", "mask: %v", err))
			return
		}
	}
	body, err := in.toA1111(img, mask)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.openaiImageJob(w, r, &in, body, true)
}

func formFile(r *http.Request, names ...string) ([]byte, error) {
	for _, n := range names {
		f, _, err := r.FormFile(n)
		if errors.Is(err, http.ErrMissingFile) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	}
	return nil, nil
}

// openaiMaskToA1111 converts OpenAI's mask (transparent = edit) to A1111's
// (white = repaint).
func openaiMaskToA1111(b []byte) ([]byte, error) {
	m, err := decodeImage("mask", b)
	if err != nil {
		return nil, err
	}
	bd := m.Bounds()
	out := image.NewGray(image.Rect(0, 0, bd.Dx(), bd.Dy()))
	for y := 0; y < bd.Dy(); y++ {
		for x := 0; x < bd.Dx(); x++ {
			_, _, _, a := m.At(bd.Min.X+x, bd.Min.Y+y).RGBA()
			out.SetGray(x, y, color.Gray{Y: 255 - uint8(a>>8)})
		}
	}
	return encodePNG(out)
}

func (s *Server) openaiImageJob(w http.ResponseWriter, r *http.Request, in *openaiImageRequest, body map[string]any, img2img bool) {
	raw, _ := json.Marshal(body)
	j, _, status, err := s.submitImage(keyName(r), raw, img2img, 0, true)
	if err != nil {
		var ce *canon.Error
		if errors.As(err, &ce) {
			s.fail(w, r, ce)
			return
		}
		kind := canon.Invalid
		switch status {
		case http.StatusNotFound:
			kind = canon.NotFound
		case http.StatusTooManyRequests:
			kind = canon.Busy
		case http.StatusInternalServerError:
			kind = canon.Internal
		}
		s.fail(w, r, canon.New(kind, "%v", err))
		return
	}
	j, err = s.waitJob(r.Context(), j.ID)
	if err != nil {
		return
	}
	if j.State == jobs.Failed || len(j.Result.Images) == 0 {
		s.fail(w, r, canon.New(canon.Internal, "generation %s: %s", j.State, j.Error))
		return
	}
	type datum struct {
		B64JSON       string `json:"b64_json,omitempty"`
		URL           string `json:"url,omitempty"`
		RevisedPrompt string `json:"revised_prompt,omitempty"`
	}
	out := struct {
		Created int64   `json:"created"`
		Data    []datum `json:"data"`
	}{Created: time.Now().Unix()}
	if in.ResponseFormat == "url" {
		for _, p := range j.Result.Images {
			out.Data = append(out.Data, datum{URL: absURL(r, "/mica/v1/outputs/"+p)})
		}
	} else {
		pngs, err := s.readOutputs(j)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, p := range pngs {
			out.Data = append(out.Data, datum{B64JSON: base64.StdEncoding.EncodeToString(p)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func absURL(r *http.Request, path string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, r.Host, path)
}
