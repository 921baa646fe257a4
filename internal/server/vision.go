package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"mica/internal/llm/engine"
	"mica/internal/models/vision"
	"mica/internal/server/canon"
)

// VisionConfig configures images in chat requests. A model reads images
// when its vision projector (an mmproj GGUF) is named in Projectors or lies
// beside it (mmproj-NAME.gguf, NAME-mmproj.gguf, NAME.mmproj.gguf, or the
// only *mmproj*.gguf in the folder).
type VisionConfig struct {
	// Projectors maps a model name to its mmproj file; a named projector
	// that does not fit its model makes the model fail to load, a found
	// one only refuses images (with the reason).
	Projectors map[string]string
	// RemoteImages lets requests name images by http(s) URLs, which the
	// server then fetches (off by default: data: URLs and base64 only).
	// Config.Offline turns it off.
	RemoteImages bool
	// RemoteTimeout bounds one fetch (default 10 s); MaxImageBytes one
	// fetched image (default 20 MiB).
	RemoteTimeout time.Duration
	MaxImageBytes int64
	// MaxImages is the most images one request may hold (default
	// engine.DefaultMaxImages).
	MaxImages int
}

// Vision defaults.
const (
	DefaultRemoteTimeout = 10 * time.Second
	DefaultMaxImageBytes = 20 << 20
)

func (c VisionConfig) remoteTimeout() time.Duration {
	if c.RemoteTimeout > 0 {
		return c.RemoteTimeout
	}
	return DefaultRemoteTimeout
}

func (c VisionConfig) maxImageBytes() int64 {
	if c.MaxImageBytes > 0 {
		return c.MaxImageBytes
	}
	return DefaultMaxImageBytes
}

func (c VisionConfig) maxImages() int {
	if c.MaxImages > 0 {
		return c.MaxImages
	}
	return engine.DefaultMaxImages
}

// ParseProjectors reads MODEL=FILE entries (a --mmproj flag's values) into
// VisionConfig.Projectors.
func ParseProjectors(entries []string) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range entries {
		name, file, ok := strings.Cut(e, "=")
		name, file = strings.TrimSpace(name), strings.TrimSpace(file)
		if !ok || !validName(canonicalName(name)) || file == "" {
			return nil, fmt.Errorf("vision projector %q: want MODEL=FILE (a model name and its mmproj GGUF)", e)
		}
		if _, dup := out[canonicalName(name)]; dup {
			return nil, fmt.Errorf("vision projector for %q given twice", name)
		}
		out[canonicalName(name)] = file
	}
	return out, nil
}

// withProjector fills in the model's vision projector: the configured
// one, else one found beside the model file.
func (s *Server) withProjector(m ModelInfo) ModelInfo {
	m.MaxImages = s.cfg.Vision.maxImages()
	if p, ok := s.cfg.Vision.Projectors[m.Name]; ok {
		m.Projector, m.ProjectorExplicit = p, true
		return m
	}
	m.Projector = s.projectors.find(m.Path, func(err error) {
		s.log.Warn("looking for the model's vision projector", "model", m.Name, "err", err)
	})
	return m
}

// projectorCache remembers vision.FindProjector's answer per model file,
// which lists the folder and may parse two GGUF headers: every LLM
// request asks. An answer holds while the model file and its folder keep
// their modification times (adding or removing a file changes the
// folder's).
type projectorCache struct {
	mu      sync.Mutex
	entries map[string]projectorEntry
}

type projectorEntry struct {
	file, dir time.Time
	path      string
}

func (c *projectorCache) find(model string, warn func(error)) string {
	fst, err1 := os.Stat(model)
	dst, err2 := os.Stat(filepath.Dir(model))
	if err1 != nil || err2 != nil {
		p, err := vision.FindProjector(model)
		if err != nil {
			warn(err)
		}
		return p
	}
	c.mu.Lock()
	e, ok := c.entries[model]
	c.mu.Unlock()
	if ok && e.file.Equal(fst.ModTime()) && e.dir.Equal(dst.ModTime()) {
		return e.path
	}
	p, err := vision.FindProjector(model)
	if err != nil {
		warn(err)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]projectorEntry{}
	}
	c.entries[model] = projectorEntry{file: fst.ModTime(), dir: dst.ModTime(), path: p}
	c.mu.Unlock()
	return p
}

// checkImages applies the request-level image limits.
func (s *Server) checkImages(req *canon.Request) error {
	n := len(req.Images())
	if n == 0 {
		return nil
	}
	if max := s.cfg.Vision.maxImages(); n > max {
		return &canon.Error{Kind: canon.Invalid, Param: imageParam(req), Code: "too_many_images",
			Msg: fmt.Sprintf("the request has %d images; the limit is %d per request", n, max)}
	}
	return nil
}

// fetchImages downloads the request's http(s) images, within the size and
// time limits; remote images are refused unless the configuration allows
// them.
func (s *Server) fetchImages(ctx context.Context, req *canon.Request) error {
	if len(req.RemoteImages) == 0 {
		return nil
	}
	vc := s.cfg.Vision
	if !vc.RemoteImages || s.cfg.Offline {
		r := req.RemoteImages[0]
		return &canon.Error{Kind: canon.Invalid, Param: r.Param, Code: "remote_images_disabled",
			Msg: fmt.Sprintf("%s: this server does not fetch images from URLs (start it with remote images enabled); send the image inline as a data: URL (data:image/png;base64,...)", r.Param)}
	}
	images := req.Images()
	client := &http.Client{Timeout: vc.remoteTimeout()}
	for _, r := range req.RemoteImages {
		data, err := fetchImage(ctx, client, r.URL, vc.maxImageBytes())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &canon.Error{Kind: canon.Invalid, Param: r.Param, Code: "invalid_image_url",
				Msg: fmt.Sprintf("%s: fetching %s: %v", r.Param, r.URL, err)}
		}
		images[r.Index].Data = data
	}
	req.RemoteImages = nil
	return nil
}

func fetchImage(ctx context.Context, client *http.Client, url string, limit int64) ([]byte, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("the image is %d bytes; the limit is %d", resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("the image is over the limit of %d bytes", limit)
	}
	return data, nil
}

// imageParam is the request field to name in image errors.
func imageParam(req *canon.Request) string {
	if req.ImagesParam != "" {
		return req.ImagesParam
	}
	if req.Chat != nil {
		return "messages"
	}
	return "images"
}

// imageError turns the engine's image errors into client errors (nil for
// other errors).
func imageError(req *canon.Request, err error) *canon.Error {
	var be *engine.BudgetError
	switch {
	case errors.As(err, &be):
		param := be.Param
		if param == "" {
			param = imageParam(req)
		}
		return &canon.Error{Kind: canon.Invalid, Param: param, Code: "invalid_image_tokens",
			Msg: fmt.Sprintf("%s: image %d: %v", param, be.Image+1, be.Err)}
	case errors.Is(err, engine.ErrNoVision):
		return &canon.Error{Kind: canon.Invalid, Param: imageParam(req), Code: "model_without_vision",
			Msg: fmt.Sprintf("model %q cannot read images: %s", req.Model, cleanImageMsg(err))}
	case errors.Is(err, engine.ErrImage):
		return &canon.Error{Kind: canon.Invalid, Param: imageParam(req), Code: "invalid_image",
			Msg: cleanImageMsg(err)}
	}
	return nil
}

// cleanImageMsg drops the engine's sentinel prefixes from a message.
func cleanImageMsg(err error) string {
	msg := err.Error()
	for _, p := range []string{engine.ErrNoVision.Error() + ": ", engine.ErrImage.Error() + ": "} {
		msg = strings.Replace(msg, p, "", 1)
	}
	return msg
}
