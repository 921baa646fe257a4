package canon

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestImagesAddURL(t *testing.T) {
	data := []byte("\x89PNG\r\n\x1a\n some bytes")
	b64 := base64.StdEncoding.EncodeToString(data)
	var im Images
	for _, u := range []string{
		"data:image/png;base64," + b64,
		"data:;base64," + b64,
		"DATA:image/jpeg;charset=x;BASE64," + strings.TrimRight(b64, "="),
		"data:image/png;base64," + base64.URLEncoding.EncodeToString(data),
		"data:image/png;base64," + b64[:10] + "\n" + b64[10:],
	} {
		if err := im.AddURL(u, "p"); err != nil {
			t.Fatalf("%q: %v", u, err)
		}
		if got := im.List[len(im.List)-1].Data; !bytes.Equal(got, data) {
			t.Fatalf("%q: decoded %q", u, got)
		}
	}
	if err := im.AddURL("https://example.com/a.png", "q"); err != nil || len(im.Remote) != 1 ||
		im.Remote[0].Index != len(im.List)-1 || im.Remote[0].Param != "q" || im.List[len(im.List)-1].Data != nil {
		t.Errorf("remote: %v %+v", err, im.Remote)
	}
	for _, u := range []string{"", "data:", "data:image/png;base64", "data:image/png," + b64, "data:text/plain;base64," + b64,
		"data:image/png;base64,@@@", "data:image/png;base64,", "ftp://x/y.png", "file:///etc/passwd", "/tmp/x.png"} {
		err := im.AddURL(u, "messages[0].content[1].image_url")
		if err == nil {
			t.Errorf("%q accepted", u)
			continue
		}
		if e := As(err); e.Kind != Invalid || e.Param != "messages[0].content[1].image_url" {
			t.Errorf("%q: %+v", u, e)
		}
	}
}

func TestImagesAddBase64(t *testing.T) {
	var im Images
	if err := im.AddBase64(base64.StdEncoding.EncodeToString([]byte("GIF89a")), "images[0]"); err != nil || string(im.List[0].Data) != "GIF89a" {
		t.Fatalf("%v %v", err, im.List)
	}
	if err := im.AddBase64("data:image/gif;base64,R0lGODlh", "images[1]"); err != nil || string(im.List[1].Data) != "GIF89a" {
		t.Fatalf("%v %v", err, im.List)
	}
	for _, s := range []string{"", "!!!", "a"} {
		if err := im.AddBase64(s, "images[2]"); err == nil || As(err).Param != "images[2]" {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// FuzzImageRefs: any text gives an image, a remote reference or an Invalid
// error naming the field; never a panic.
func FuzzImageRefs(f *testing.F) {
	for _, s := range []string{"data:image/png;base64,iVBORw0KGgo=", "data:,", "data:;base64,", "https://x", "R0lGODlh", "data:a;b;base64,=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var im Images
		for _, add := range []func(string, string) error{im.AddURL, im.AddBase64} {
			n := len(im.List)
			if err := add(s, "p"); err != nil {
				if e := As(err); e.Kind != Invalid || e.Param != "p" {
					t.Fatalf("%q: %+v", s, e)
				}
				if len(im.List) != n {
					t.Fatalf("%q: an error added an image", s)
				}
			} else if len(im.List) != n+1 {
				t.Fatalf("%q: no image added", s)
			}
		}
	})
}
