package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"mica/internal/format/gguf"
	"mica/internal/models/gemma"
	"mica/internal/server/canon"
	"mica/internal/tensor"
)

// ModelInfo describes a model file from its header.
type ModelInfo struct {
	// Name is the file's stem; Path the file.
	Name     string
	Path     string
	Size     int64
	Modified time.Time
	// Arch is general.architecture; SizeLabel general.size_label.
	Arch      string
	SizeLabel string
	// Quant names the weights' type (from general.file_type or the most
	// common matrix type).
	Quant   string
	Context int
	// Template is tokenizer.chat_template.
	Template string
	Params   int64
	// Projector is the model's vision projector (mmproj file), "" for
	// none; ProjectorExplicit says the configuration named it. Filled in
	// per request (Server.withProjector), not by the catalog.
	Projector         string
	ProjectorExplicit bool
	// MaxImages is the most images a request may hold (the server's
	// configuration, given to the engine at load).
	MaxImages int
	// geometry is the model's shape (nil when the engine does not know
	// the architecture): what its memory need is estimated from.
	geometry *gemma.Config
}

// isProjector reports whether an architecture is a vision projector's
// (an mmproj file is not a model).
func isProjector(arch string) bool { return arch == "clip" }

// catalog lists the GGUF files of the models folder. Headers are read once
// per file version (size and modification time).
type catalog struct {
	dir   string
	mu    sync.Mutex
	cache map[string]ModelInfo
}

const ggufExt = ".gguf"

// validName reports whether a requested name can only name a file directly
// inside the models folder.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00") && filepath.Base(name) == name
}

// canonicalName strips Ollama's default tag.
func canonicalName(name string) string { return strings.TrimSuffix(name, ":latest") }

// list returns the models, sorted by name. Files whose header cannot be
// read are reported in skipped.
func (c *catalog) list() (models []ModelInfo, skipped []error, err error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(strings.ToLower(e.Name()), ggufExt) || e.IsDir() {
			continue
		}
		name := e.Name()[:len(e.Name())-len(ggufExt)]
		m, err := c.info(name)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		if isProjector(m.Arch) {
			continue // a model's vision projector
		}
		models = append(models, m)
	}
	sort.Slice(models, func(i, j int) bool { return models[i].Name < models[j].Name })
	return models, skipped, nil
}

// lookup finds a model by name; an unknown name is a NotFound error.
func (c *catalog) lookup(name string) (ModelInfo, error) {
	name = canonicalName(name)
	if !validName(name) {
		return ModelInfo{}, &canon.Error{Kind: canon.NotFound, Param: "model", Code: "model_not_found",
			Msg: fmt.Sprintf("model %q not found: a model name is a GGUF file's name without .gguf", name)}
	}
	m, err := c.info(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ModelInfo{}, &canon.Error{Kind: canon.NotFound, Param: "model", Code: "model_not_found",
				Msg: fmt.Sprintf("model %q not found in %s (see GET /v1/models or /api/tags)", name, c.dir)}
		}
		return ModelInfo{}, &canon.Error{Kind: canon.Unavailable, Msg: fmt.Sprintf("model %q cannot be read: %v", name, err)}
	}
	if isProjector(m.Arch) {
		return ModelInfo{}, &canon.Error{Kind: canon.NotFound, Param: "model", Code: "model_not_found",
			Msg: fmt.Sprintf("%q is a vision projector (mmproj file), not a model: name the text model it belongs to", name)}
	}
	return m, nil
}

// info reads (or recalls) the header of DIR/name.gguf.
func (c *catalog) info(name string) (ModelInfo, error) {
	path := filepath.Join(c.dir, name+ggufExt)
	st, err := os.Stat(path)
	if err != nil {
		return ModelInfo{}, err
	}
	if !st.Mode().IsRegular() {
		return ModelInfo{}, fs.ErrNotExist
	}
	c.mu.Lock()
	m, ok := c.cache[path]
	c.mu.Unlock()
	if ok && m.Size == st.Size() && m.Modified.Equal(st.ModTime()) {
		return m, nil
	}
	f, err := gguf.Open(path)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	m = ModelInfo{Name: name, Path: path, Size: st.Size(), Modified: st.ModTime()}
	m.Arch, _ = f.String("general.architecture")
	m.SizeLabel, _ = f.String("general.size_label")
	m.Template, _ = f.String("tokenizer.chat_template")
	if c, err := gemma.ParseConfig(f); err == nil {
		m.geometry = c
	}
	if n, err := f.Int(m.Arch + ".context_length"); err == nil {
		m.Context = int(n)
	}
	counts := map[tensor.DType]int64{}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		m.Params += t.Elements()
		if len(t.Shape) >= 2 {
			counts[t.Type] += t.Elements()
		}
	}
	if ft, err := f.Int("general.file_type"); err == nil && fileTypes[ft] != "" {
		m.Quant = fileTypes[ft]
	} else {
		var best int64
		for dt, n := range counts {
			if n > best || (n == best && dt.String() < m.Quant) {
				best, m.Quant = n, dt.String()
			}
		}
	}
	if m.SizeLabel == "" {
		m.SizeLabel = paramLabel(m.Params)
	}
	c.mu.Lock()
	c.cache[path] = m
	c.mu.Unlock()
	return m, nil
}

// fileTypes names llama.cpp's general.file_type values (llama_ftype).
var fileTypes = map[int64]string{0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
	17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}

func paramLabel(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.0fK", float64(n)/1e3)
}

// digest identifies a model file version (path, size, modification time),
// not its contents: hashing the weights would read the whole file.
func digest(m ModelInfo) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", m.Path, m.Size, m.Modified.UnixNano())))
	return hex.EncodeToString(h[:])
}
