package server

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestEngineOptionsReachTheLoader: the server's prefix-cache, stream
// buffer and stall timeout settings are in the options every LLM load
// gets (EngineLoader hands them to engine.Options).
func TestEngineOptionsReachTheLoader(t *testing.T) {
	var mu sync.Mutex
	var got []LoadOptions
	load := func(path string, o LoadOptions) (Runner, error) {
		mu.Lock()
		got = append(got, o)
		mu.Unlock()
		return nil, errors.New("not loaded in this test")
	}
	ts, _, _ := start(t, Config{Batch: 4, PrefixCache: 2, StreamBuffer: 7, StallTimeout: 3 * time.Second, Loader: load})
	if code, _, b := post(t, ts.URL+"/mica/v1/models/"+testModel+"/load", ""); code != 503 {
		t.Fatalf("load: %d %s", code, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d loads", len(got))
	}
	if o := got[0]; o.Batch != 4 || o.PrefixCache != 2 || o.StreamBuffer != 7 || o.StallTimeout != 3*time.Second {
		t.Errorf("load options %+v", o)
	}
	if _, err := New(Config{ModelsDir: t.TempDir(), StreamBuffer: -1}); err == nil {
		t.Error("a negative stream buffer was accepted")
	}
}
