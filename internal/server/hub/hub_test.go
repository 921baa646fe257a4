package hub

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/testenv"
	cliptok "mica/internal/tokenizer/clip"
)

// hfFiles makes the Hugging Face files from OpenAI's merges file, as the
// repository holds them.
func hfFiles(t *testing.T) (vocab, merges []byte) {
	path := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	tok, err := cliptok.LoadBPEFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]int32{}
	for id := 0; id < tok.Vocab(); id++ {
		v[tok.Token(int32(id))] = int32(id)
	}
	vocab, _ = json.Marshal(v)
	f, _ := os.Open(path)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(gz)
	var lines []string
	sc.Scan() // the version line
	for sc.Scan() && len(lines) < cliptok.Merges {
		lines = append(lines, sc.Text())
	}
	return vocab, []byte("#version: 0.2\n" + strings.Join(lines, "\n") + "\n")
}

func TestFetchCLIPTokenizer(t *testing.T) {
	vocab, merges := hfFiles(t)
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		switch r.URL.Path {
		case "/" + CLIPRepo + "/resolve/main/vocab.json":
			w.Write(vocab)
		case "/" + CLIPRepo + "/resolve/main/merges.txt":
			w.Write(merges)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	old := BaseURL
	BaseURL = srv.URL
	defer func() { BaseURL = old }()
	dir := filepath.Join(t.TempDir(), "tokenizers", "clip")
	if err := FetchCLIPTokenizer(context.Background(), srv.Client(), dir); err != nil {
		t.Fatal(err)
	}
	v, _ := os.Open(filepath.Join(dir, "vocab.json"))
	m, _ := os.Open(filepath.Join(dir, "merges.txt"))
	tok, err := cliptok.LoadHF(v, m)
	v.Close()
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("a photo of a cat"); len(got) != 5 || got[4] != 2368 {
		t.Fatalf("fetched tokenizer encodes %v", got)
	}
	// A broken download leaves nothing behind.
	merges = []byte("garbage")
	dir2 := filepath.Join(t.TempDir(), "clip")
	if err := FetchCLIPTokenizer(context.Background(), srv.Client(), dir2); err == nil {
		t.Fatal("a broken tokenizer was accepted")
	}
	if _, err := os.Stat(filepath.Join(dir2, "vocab.json")); err == nil {
		t.Fatal("files of a failed fetch were kept")
	}
	srv.Close()
	if err := FetchCLIPTokenizer(context.Background(), nil, dir2); err == nil || !strings.Contains(err.Error(), "--clip-tokenizer") {
		t.Fatalf("unreachable server: %v", err)
	}
}
