package canon

import (
	"encoding/base64"
	"fmt"
	"strings"

	"mica/internal/llm/engine"
)

// RemoteImage is an image a request names by an http(s) URL; the server
// fetches it (when its configuration allows) into the engine request's
// image Index.
type RemoteImage struct {
	Index int
	URL   string
	// Param is the request field that named it, for errors.
	Param string
}

// Images collects a request's images in the order the prompt shows them.
type Images struct {
	List   []engine.Image
	Remote []RemoteImage
}

// AddURL adds an image given as a URL: a data: URL with base64 content
// (decoded here), or an http(s) URL left for the server to fetch.
func (im *Images) AddURL(url, param string) error {
	url = strings.TrimSpace(url)
	lower := strings.ToLower(url)
	switch {
	case url == "":
		return Errorf(param, "%s is empty: give a data: URL (data:image/png;base64,...) or an http(s) URL", param)
	case strings.HasPrefix(lower, "data:"):
		data, err := dataURL(url, param)
		if err != nil {
			return err
		}
		im.List = append(im.List, engine.Image{Data: data})
	case strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://"):
		im.Remote = append(im.Remote, RemoteImage{Index: len(im.List), URL: url, Param: param})
		im.List = append(im.List, engine.Image{})
	default:
		return Errorf(param, "%s: only data: URLs (data:image/png;base64,...) and http(s) URLs name images", param)
	}
	return nil
}

// AddBase64 adds an image given as base64 text (Ollama's images); a data:
// URL is accepted too.
func (im *Images) AddBase64(s, param string) error {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "data:") {
		data, err := dataURL(s, param)
		if err != nil {
			return err
		}
		im.List = append(im.List, engine.Image{Data: data})
		return nil
	}
	data, err := decodeBase64(s)
	if err != nil {
		return Errorf(param, "%s is not base64 image data: %v", param, err)
	}
	if len(data) == 0 {
		return Errorf(param, "%s is empty", param)
	}
	im.List = append(im.List, engine.Image{Data: data})
	return nil
}

// dataURL decodes data:[MEDIATYPE][;base64],DATA; only base64 content is
// accepted (an image is binary).
func dataURL(url, param string) ([]byte, error) {
	head, body, ok := strings.Cut(url[len("data:"):], ",")
	if !ok {
		return nil, Errorf(param, "%s: a data: URL needs a comma before its data", param)
	}
	params := strings.Split(head, ";")
	if !strings.EqualFold(params[len(params)-1], "base64") {
		return nil, Errorf(param, "%s: the data: URL must be base64 (data:image/png;base64,...)", param)
	}
	if mt := strings.ToLower(params[0]); mt != "" && !strings.HasPrefix(mt, "image/") && mt != "application/octet-stream" {
		return nil, Errorf(param, "%s: the data: URL's media type %q is not an image", param, params[0])
	}
	data, err := decodeBase64(body)
	if err != nil {
		return nil, Errorf(param, "%s: the data: URL's base64 is invalid: %v", param, err)
	}
	if len(data) == 0 {
		return nil, Errorf(param, "%s: the data: URL holds no data", param)
	}
	return data, nil
}

// decodeBase64 reads standard or URL-safe base64, padded or not, ignoring
// line breaks.
func decodeBase64(s string) ([]byte, error) {
	s = strings.NewReplacer("\n", "", "\r", "", " ", "").Replace(s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return b, nil
}
