package vision

import "testing"

// TestCacheLRU: entries are evicted least recently used first, the byte
// bound holds, and an oversized entry is not stored.
func TestCacheLRU(t *testing.T) {
	c := NewCache(3 * 4 * 10) // three entries of 10 floats
	key := func(i byte) CacheKey { return CacheKey{i} }
	for i := byte(0); i < 3; i++ {
		c.Put(key(i), make([]float32, 10))
	}
	if _, ok := c.Get(key(0)); !ok { // 0 becomes the most recent
		t.Fatal("entry 0 missing")
	}
	c.Put(key(3), make([]float32, 10)) // evicts 1, the least recent
	if _, ok := c.Get(key(1)); ok {
		t.Error("entry 1 should have been evicted")
	}
	for _, i := range []byte{0, 2, 3} {
		if _, ok := c.Get(key(i)); !ok {
			t.Errorf("entry %d missing", i)
		}
	}
	c.Put(key(9), make([]float32, 31)) // larger than the whole cache
	if _, ok := c.Get(key(9)); ok {
		t.Error("oversized entry stored")
	}
	n, bytes, hits, misses := c.Stats()
	if n != 3 || bytes != 120 || hits != 4 || misses != 2 {
		t.Errorf("stats: %d entries, %d bytes, %d hits, %d misses", n, bytes, hits, misses)
	}
}

// TestEncodeCached: the second encode of the same picture is a cache hit
// returning the same embeddings; another budget is another key.
func TestEncodeCached(t *testing.T) {
	p, in := openTiny(t, "mmproj-gemma4-tiny-f32.gguf", PreprocessOptions{})
	c := NewCache(1 << 20)
	a, err := p.EncodeCached(c, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.EncodeCached(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("second encode was not served from the cache")
	}
	in2, err := p.Preprocess(loadPNG(t, "dev-512x384.png"), PreprocessOptions{MaxTokens: 70})
	if err != nil {
		t.Fatal(err)
	}
	if p.Key(in2) == p.Key(in) {
		t.Error("a different token budget gave the same key")
	}
	// A larger budget that leaves this small image's canvas as it is still
	// keys apart: the budget is part of the key.
	in3, err := p.Preprocess(loadPNG(t, "dev-512x384.png"), PreprocessOptions{MaxTokens: 560})
	if err != nil {
		t.Fatal(err)
	}
	if in3.Width != in.Width || in3.Height != in.Height {
		t.Fatalf("budget 560 changed the 512×384 canvas: %d×%d vs %d×%d", in3.Width, in3.Height, in.Width, in.Height)
	}
	if p.Key(in3) == p.Key(in) {
		t.Error("budgets 280 and 560 gave the same key")
	}
	if _, _, hits, misses := c.Stats(); hits != 1 || misses != 1 {
		t.Errorf("%d hits, %d misses", hits, misses)
	}
}
