// Package hub fetches, once, the small public files a model needs but does
// not carry: today the CLIP tokenizer of single-file Stable Diffusion
// checkpoints, from Hugging Face, as A1111 does on first use. Downloads
// are bounded in size and time, checked before use, and written with
// write-then-rename, so a half-fetched file never stays behind.
package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"mica/internal/atomicfile"
	cliptok "mica/internal/tokenizer/clip"
)

// BaseURL is where files are fetched from (a mirror may be set instead).
var BaseURL = "https://huggingface.co"

// CLIPRepo is the repository whose tokenizer SD 1.x and SDXL use.
const CLIPRepo = "openai/clip-vit-large-patch14"

// maxFile bounds one download (vocab.json is ~1 MB, merges.txt ~0.5 MB).
const maxFile = 8 << 20

// FetchCLIPTokenizer downloads vocab.json and merges.txt of CLIPRepo into
// dir, checks that they load as a CLIP tokenizer, and only then puts them
// in place.
func FetchCLIPTokenizer(ctx context.Context, client *http.Client, dir string) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	files := map[string][]byte{}
	for _, name := range []string{"vocab.json", "merges.txt"} {
		b, err := get(ctx, client, fmt.Sprintf("%s/%s/resolve/main/%s", BaseURL, CLIPRepo, name))
		if err != nil {
			return fmt.Errorf("fetching the CLIP tokenizer (%s) from %s: %w; give one with --clip-tokenizer instead", name, BaseURL, err)
		}
		files[name] = b
	}
	if _, err := cliptok.LoadHF(bytes.NewReader(files["vocab.json"]), bytes.NewReader(files["merges.txt"])); err != nil {
		return fmt.Errorf("the CLIP tokenizer fetched from %s does not load: %w", BaseURL, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	return nil
}

func get(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "mica")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, errors.New(url + ": larger than expected")
	}
	return b, nil
}
