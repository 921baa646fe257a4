package vision

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
)

// CacheKey identifies an image's embeddings: the projector, the token
// budget and the exact canvas the encoder sees (so orientation is part of
// it, and the same picture sent twice in a conversation hits). The canvas
// already follows from the budget; the budget is hashed as well so that a
// budget never shares an entry with another even where a change to the
// encoder makes it matter beyond the canvas size.
type CacheKey [32]byte

// Key is the cache key of in for this projector.
func (p *Projector) Key(in *Input) CacheKey {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%+v\x00", p.Path, p.file.DataOffset, *p.Config)
	var dims [32]byte
	binary.LittleEndian.PutUint64(dims[:], uint64(in.Width))
	binary.LittleEndian.PutUint64(dims[8:], uint64(in.Height))
	binary.LittleEndian.PutUint64(dims[16:], uint64(in.MinTokens))
	binary.LittleEndian.PutUint64(dims[24:], uint64(in.MaxTokens))
	h.Write(dims[:])
	h.Write(in.RGB)
	var k CacheKey
	h.Sum(k[:0])
	return k
}

// Cache is an LRU cache of image embeddings bounded in bytes, safe for
// concurrent use. Returned slices are shared: callers must not modify them.
type Cache struct {
	mu       sync.Mutex
	maxBytes int64
	used     int64
	order    *list.List // front: most recently used
	entries  map[CacheKey]*list.Element
	hits     int64
	misses   int64
}

type cacheEntry struct {
	key CacheKey
	emb []float32
}

// NewCache makes a cache holding at most maxBytes of embeddings.
func NewCache(maxBytes int64) *Cache {
	return &Cache{maxBytes: maxBytes, order: list.New(), entries: map[CacheKey]*list.Element{}}
}

// Get returns the embeddings stored under k.
func (c *Cache) Get(k CacheKey) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		c.misses++
		return nil, false
	}
	c.hits++
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).emb, true
}

// Put stores emb under k, evicting the least recently used entries to stay
// within the byte bound (an entry larger than the bound is not stored).
func (c *Cache) Put(k CacheKey, emb []float32) {
	size := int64(4 * len(emb))
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.used -= int64(4 * len(e.Value.(*cacheEntry).emb))
		c.order.Remove(e)
		delete(c.entries, k)
	}
	if size > c.maxBytes {
		return
	}
	for c.used+size > c.maxBytes {
		last := c.order.Back()
		old := last.Value.(*cacheEntry)
		c.used -= int64(4 * len(old.emb))
		c.order.Remove(last)
		delete(c.entries, old.key)
	}
	c.entries[k] = c.order.PushFront(&cacheEntry{key: k, emb: emb})
	c.used += size
}

// Stats reports the entries, bytes held, hits and misses.
func (c *Cache) Stats() (entries int, bytes, hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.used, c.hits, c.misses
}

// EncodeCached is Encode through cache (nil: no cache).
func (p *Projector) EncodeCached(cache *Cache, in *Input) ([]float32, error) {
	if cache == nil {
		return p.Encode(in)
	}
	k := p.Key(in)
	if emb, ok := cache.Get(k); ok {
		return emb, nil
	}
	emb, err := p.Encode(in)
	if err != nil {
		return nil, err
	}
	cache.Put(k, emb)
	return emb, nil
}
