package tokenizer

import (
	"runtime"
	"sync"
	"testing"
)

// TestFootprint logs the heap a loaded 262k vocabulary keeps.
func TestFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the vocabulary again")
	}
	p := sharedPath(t, "testdata", "gemma3-tokenizer", "tokenizer.json.gz")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tok, err := LoadHFJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("tokenizer.json vocabulary keeps %.1f MiB of heap", float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
	runtime.KeepAlive(tok)
}

// TestConcurrentEncode: a Tokenizer is shared by goroutines (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tok := hfTokenizer(t)
	texts := []string{"Hello, world!", "<start_of_turn>user\nhi<end_of_turn>\n", "日本語のテキスト", "emoji 😀🎉"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i], _ = tok.Encode(s, EncodeOptions{ParseSpecial: true})
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				i := (g + k) % len(texts)
				got, _ := tok.Encode(texts[i], EncodeOptions{ParseSpecial: true})
				if len(got) != len(want[i]) || tok.Decode(got) != texts[i] {
					t.Errorf("goroutine %d: %q -> %v", g, texts[i], got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
