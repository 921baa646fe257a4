package server

// Checkpoint hashes, as A1111 shows them: the SHA-256 of a checkpoint file
// (/sdapi/v1/sd-models "sha256") and its first 10 hex digits (the short
// "hash", in the model's title "name.safetensors [hash]" and the
// infotext's "Model hash:"). Reading a multi-GB file takes seconds, so no
// request waits for it: a background worker hashes the files one at a time
// and caches the results in the data folder (model-hashes.json), keyed by
// path, size and modification time; until a file's hash is known, it is
// reported as null (and left out of infotexts).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"mica/internal/atomicfile"
)

// hashFile is the cache's name in the data folder.
const hashFile = "model-hashes.json"

// hashEntry is one cached hash.
type hashEntry struct {
	Size    int64  `json:"size"`
	ModNano int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// hashCache computes and remembers checkpoint hashes.
type hashCache struct {
	file string
	log  *slog.Logger

	mu      sync.Mutex
	entries map[string]hashEntry // by path
	pending map[string]bool

	work chan string
	stop chan struct{}
	wg   sync.WaitGroup
}

func openHashCache(dataDir string, log *slog.Logger) *hashCache {
	h := &hashCache{file: filepath.Join(dataDir, hashFile), log: log, entries: map[string]hashEntry{},
		pending: map[string]bool{}, work: make(chan string, 1024), stop: make(chan struct{})}
	if b, err := os.ReadFile(h.file); err == nil {
		if err := json.Unmarshal(b, &h.entries); err != nil {
			log.Warn("model hash cache unreadable; hashing again", "file", h.file, "err", err)
			h.entries = map[string]hashEntry{}
		}
	}
	h.wg.Add(1)
	go h.worker()
	return h
}

// close stops the worker (a hash being computed is abandoned).
func (h *hashCache) close() {
	close(h.stop)
	h.wg.Wait()
}

// sha256 returns the file's hash when known; otherwise it schedules the
// file for hashing and returns "". Folders (diffusers) have none.
func (h *hashCache) sha256(path string) string {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.entries[path]; ok && e.Size == st.Size() && e.ModNano == st.ModTime().UnixNano() {
		return e.SHA256
	}
	if !h.pending[path] {
		select {
		case h.work <- path:
			h.pending[path] = true
		default: // the worker is far behind; asked again on the next listing
		}
	}
	return ""
}

// shortHash is A1111's short hash: the first 10 hex digits ("" unknown).
func shortHash(sha string) string {
	if len(sha) < 10 {
		return ""
	}
	return sha[:10]
}

var errHashStopped = errors.New("stopped")

func (h *hashCache) worker() {
	defer h.wg.Done()
	for {
		var path string
		select {
		case <-h.stop:
			return
		case path = <-h.work:
		}
		st, err := os.Stat(path)
		var sum string
		if err == nil {
			sum, err = h.hash(path)
		}
		if errors.Is(err, errHashStopped) {
			return
		}
		if err != nil {
			h.done(path, nil)
			h.log.Warn("hashing a checkpoint", "file", path, "err", err)
			continue
		}
		if st2, err := os.Stat(path); err != nil || st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
			h.done(path, nil) // changed while being read: hashed again when next asked
			continue
		}
		e := hashEntry{Size: st.Size(), ModNano: st.ModTime().UnixNano(), SHA256: sum}
		// The cache file is written before the hash is published, so
		// whoever sees a hash can also find it in the file.
		h.mu.Lock()
		all := maps.Clone(h.entries)
		h.mu.Unlock()
		all[path] = e
		b, _ := json.MarshalIndent(all, "", "  ")
		if err := atomicfile.WriteFile(h.file, b); err != nil {
			h.log.Warn("saving the model hash cache", "file", h.file, "err", err)
		}
		h.done(path, &e)
	}
}

// done ends a file's pending state, recording its hash when there is one.
func (h *hashCache) done(path string, e *hashEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, path)
	if e != nil {
		h.entries[path] = *e
	}
}

// hash reads the file through SHA-256, giving up when the cache closes.
func (h *hashCache) hash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d := sha256.New()
	buf := make([]byte, 4<<20)
	for {
		select {
		case <-h.stop:
			return "", errHashStopped
		default:
		}
		n, err := f.Read(buf)
		d.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(d.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}
