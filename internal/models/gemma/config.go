// Package gemma runs Gemma 3 and Gemma 4 text decoders from GGUF files, as
// llama.cpp's converter writes them, on a compute backend: it reads the
// hyper-parameters (Config), binds the weights by name, and computes logits
// with a per-sequence KV cache, batched over several sequences per call.
package gemma

import (
	"errors"
	"fmt"
	"math"

	"mica/internal/format/gguf"
)

// Architectures this package runs (GGUF general.architecture).
const (
	ArchGemma3 = "gemma3"
	ArchGemma4 = "gemma4"
)

// ErrArchitecture is wrapped when a file holds another architecture.
var ErrArchitecture = errors.New("unsupported architecture")

// Config is everything the forward pass needs from a file's metadata, read
// once at load. Per-layer values live in Layers.
type Config struct {
	Arch          string // ArchGemma3 or ArchGemma4
	Name          string // general.name, for messages
	NLayer        int
	NEmbd         int
	NVocab        int // rows of token_embd
	ContextLength int // training context (<arch>.context_length)
	Eps           float32
	Window        int // sliding window (keys visible: 0 <= qpos-kpos < Window)

	// QueryScale multiplies Q before attention (Gemma 3: 1/√head_dim, or
	// 1/√(n_embd/n_head) for the 62-layer 27B; Gemma 4: 1).
	QueryScale float32
	// FinalSoftcap: logits = c·tanh(logits/c) when > 0.
	FinalSoftcap float32
	// VNorm: V gets a weightless RMSNorm per head (Gemma 4).
	VNorm bool

	// Per-layer embeddings (Gemma 4 E2B/E4B): width per layer, 0 when absent.
	EmbdPerLayer int
	// SharedKVLayers: the last n layers own no K/V and read a donor's cache.
	SharedKVLayers int

	// Mixture of experts (Gemma 4 26B-A4B style); NExpert 0 when dense.
	NExpert     int
	NExpertUsed int
	FFExpert    int

	Layers []LayerConfig
}

// LayerConfig is one block's geometry.
type LayerConfig struct {
	Sliding   bool // sliding-window attention (else global)
	NHead     int
	NHeadKV   int
	HeadDim   int // query/key/value head size
	NRot      int // rotated dimensions (NeoX)
	RopeBase  float32
	RopeScale float32 // frequency scale (1/linear factor)
	FF        int     // dense FFN width
	// KVLayer is the layer whose cache this layer reads: itself, or the
	// donor for KV-shared layers (the last owning layer of the same type).
	KVLayer int
}

// OwnsKV reports whether layer il computes and stores its own K/V.
func (c *Config) OwnsKV(il int) bool { return c.Layers[il].KVLayer == il }

// lastKVLayer is the last layer that computes and stores its own K/V:
// after it, only the rows whose logits are wanted matter.
func (c *Config) lastKVLayer() int {
	last := 0
	for il := range c.Layers {
		if c.OwnsKV(il) {
			last = il
		}
	}
	return last
}

// key is the architecture-prefixed metadata key.
func (c *Config) key(k string) string { return c.Arch + "." + k }

// ParseConfig reads the hyper-parameters of a gemma3 or gemma4 GGUF file.
// Another architecture is refused with an error wrapping ErrArchitecture.
func ParseConfig(f *gguf.File) (*Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("gemma: %s: %w", f.Path, err)
	}
	if arch != ArchGemma3 && arch != ArchGemma4 {
		return nil, fmt.Errorf("gemma: %s: architecture %q: %w (this package runs %q and %q)", f.Path, arch, ErrArchitecture, ArchGemma3, ArchGemma4)
	}
	c := &Config{Arch: arch}
	c.Name, _ = f.String("general.name")
	p := &metaReader{f: f, c: c}

	c.NLayer = p.int("block_count", -1)
	c.NEmbd = p.int("embedding_length", -1)
	c.ContextLength = p.int("context_length", 0)
	c.Eps = p.float("attention.layer_norm_rms_epsilon", -1)
	c.Window = p.int("attention.sliding_window", -2)
	if p.err != nil {
		return nil, p.err
	}
	if c.NLayer <= 0 || c.NLayer > 4096 || c.NEmbd <= 0 {
		return nil, fmt.Errorf("gemma: %s: block_count %d / embedding_length %d out of range", f.Path, c.NLayer, c.NEmbd)
	}
	if ti, ok := f.Tensor("token_embd.weight"); ok && len(ti.Shape) == 2 {
		c.NVocab = int(ti.Shape[1])
	}

	nHead := p.perLayer("attention.head_count", -1)
	nHeadKV := p.perLayer("attention.head_count_kv", 0)
	ff := p.perLayer("feed_forward_length", -1)
	if p.err != nil {
		return nil, p.err
	}
	if nHeadKV == nil {
		nHeadKV = nHead
	}
	sliding, err := c.slidingPattern(f)
	if err != nil {
		return nil, err
	}

	ropeBase := p.float("rope.freq_base", 10000)
	// Linear RoPE scaling (Gemma 3 4B/12B/27B: factor 8 on global layers).
	ropeScale := float32(1)
	if t, err := f.String(c.key("rope.scaling.type")); err == nil && t != "linear" && t != "none" {
		p.fail("rope.scaling.type %q is not supported (only linear)", t)
	}
	if fac := p.float("rope.scaling.factor", 0); fac > 0 {
		ropeScale = 1 / fac
	}
	// Sliding layers: Gemma 3 fixes base 1e4 and scale 1 (llama.cpp ignores
	// the file here); Gemma 4 reads rope.freq_base_swa, defaulting to the
	// global base.
	ropeBaseSWA, ropeScaleSWA := float32(10000), float32(1)
	if arch == ArchGemma4 {
		ropeBaseSWA, ropeScaleSWA = p.float("rope.freq_base_swa", ropeBase), ropeScale
	}

	var headDim, headDimSWA, nRot, nRotSWA int
	defHead := 0
	if nHead[0] > 0 {
		defHead = c.NEmbd / nHead[0]
	}
	headDim = p.int("attention.key_length", defHead)
	if v := p.int("attention.value_length", headDim); v != headDim {
		p.fail("attention.value_length %d differs from key_length %d", v, headDim)
	}
	headDimSWA = headDim
	if arch == ArchGemma4 {
		headDimSWA = p.int("attention.key_length_swa", headDim)
		if v := p.int("attention.value_length_swa", headDimSWA); v != headDimSWA {
			p.fail("attention.value_length_swa %d differs from key_length_swa %d", v, headDimSWA)
		}
	}
	nRot = p.int("rope.dimension_count", headDim)
	nRotSWA = nRot
	if arch == ArchGemma4 {
		nRotSWA = p.int("rope.dimension_count_swa", headDimSWA)
	}

	switch arch {
	case ArchGemma3:
		c.QueryScale = float32(1 / math.Sqrt(float64(headDim)))
		if c.NLayer == 62 { // 27B: query_pre_attn_scalar = n_embd/n_head
			c.QueryScale = float32(1 / math.Sqrt(float64(c.NEmbd/nHead[0])))
		}
		// llama.cpp applies a final softcap to Gemma 3 only without SWA.
		if c.Window == 0 {
			c.FinalSoftcap = p.float("final_logit_softcapping", 0)
		}
	case ArchGemma4:
		c.QueryScale = 1
		c.VNorm = true
		c.FinalSoftcap = p.float("final_logit_softcapping", 0)
		c.EmbdPerLayer = p.int("embedding_length_per_layer_input", 0)
		c.SharedKVLayers = p.int("attention.shared_kv_layers", 0)
		c.NExpert = p.int("expert_count", 0)
		c.NExpertUsed = p.int("expert_used_count", 0)
		c.FFExpert = p.int("expert_feed_forward_length", 0)
	}
	if p.err != nil {
		return nil, p.err
	}

	c.Layers = make([]LayerConfig, c.NLayer)
	for il := range c.Layers {
		l := LayerConfig{Sliding: sliding[il], NHead: nHead[il], NHeadKV: nHeadKV[il], FF: ff[il], KVLayer: il,
			HeadDim: headDim, NRot: nRot, RopeBase: ropeBase, RopeScale: ropeScale}
		if l.Sliding {
			l.HeadDim, l.NRot, l.RopeBase, l.RopeScale = headDimSWA, nRotSWA, ropeBaseSWA, ropeScaleSWA
		}
		c.Layers[il] = l
	}
	if err := c.assignKVDonors(); err != nil {
		return nil, fmt.Errorf("gemma: %s: %w", f.Path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("gemma: %s: %w", f.Path, err)
	}
	return c, nil
}

// slidingPattern returns, per layer, whether it uses sliding-window
// attention. The key sliding_window_pattern is a bool array (true = sliding)
// or a period n (layer l is global iff l%n == n-1). Gemma 3 files usually
// lack it: the default is the 5 local : 1 global period of 6.
func (c *Config) slidingPattern(f *gguf.File) ([]bool, error) {
	key := c.key("attention.sliding_window_pattern")
	out := make([]bool, c.NLayer)
	period := func(n int) {
		for il := range out {
			out[il] = n == 0 || il%n < n-1
		}
	}
	v, ok := f.Get(key)
	switch {
	case !ok && c.Arch == ArchGemma3:
		period(6)
	case !ok:
		return nil, fmt.Errorf("gemma: %s: key %s is missing", f.Path, key)
	case v.IsArray():
		bs, ok := v.Bools()
		if !ok || len(bs) != c.NLayer {
			return nil, fmt.Errorf("gemma: %s: key %s: want %d bools, got %s of %d", f.Path, key, c.NLayer, v.TypeName(), v.Len())
		}
		copy(out, bs)
	default:
		n, ok := v.Int()
		if !ok || n < 0 || n > int64(c.NLayer)+1 {
			return nil, fmt.Errorf("gemma: %s: key %s: bad value %v", f.Path, key, v)
		}
		period(int(n))
	}
	return out, nil
}

// assignKVDonors points each KV-shared layer at the last layer before the
// shared block with the same attention type (llama.cpp: layers at or after
// n_layer - shared_kv_layers reuse an earlier cache).
func (c *Config) assignKVDonors() error {
	if c.SharedKVLayers < 0 || c.SharedKVLayers >= c.NLayer {
		return fmt.Errorf("attention.shared_kv_layers %d for %d layers", c.SharedKVLayers, c.NLayer)
	}
	first := c.NLayer - c.SharedKVLayers
	for il := first; il < c.NLayer; il++ {
		donor := -1
		for j := first - 1; j >= 0; j-- {
			if c.Layers[j].Sliding == c.Layers[il].Sliding {
				donor = j
				break
			}
		}
		if donor < 0 {
			return fmt.Errorf("KV-shared layer %d has no earlier %s layer to read from", il, attnKind(c.Layers[il].Sliding))
		}
		c.Layers[il].KVLayer = donor
	}
	return nil
}

func attnKind(sliding bool) string {
	if sliding {
		return "sliding"
	}
	return "global"
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NVocab <= 0 {
		bad("token_embd.weight is missing or not 2-D")
	}
	if c.Eps <= 0 {
		bad("attention.layer_norm_rms_epsilon %v must be positive", c.Eps)
	}
	anySliding := false
	for il, l := range c.Layers {
		anySliding = anySliding || l.Sliding
		switch {
		case l.NHead <= 0 || l.NHeadKV <= 0 || l.NHead%l.NHeadKV != 0:
			bad("layer %d: %d heads / %d KV heads", il, l.NHead, l.NHeadKV)
		case l.HeadDim <= 0 || l.HeadDim%2 != 0:
			bad("layer %d: head dim %d", il, l.HeadDim)
		case l.NRot <= 0 || l.NRot > l.HeadDim || l.NRot%2 != 0:
			bad("layer %d: rope dimension %d for head dim %d", il, l.NRot, l.HeadDim)
		case l.FF <= 0:
			bad("layer %d: feed_forward_length %d", il, l.FF)
		}
		if d := c.Layers[l.KVLayer]; d.NHeadKV != l.NHeadKV || d.HeadDim != l.HeadDim {
			bad("layer %d reads layer %d's cache but their KV geometry differs", il, l.KVLayer)
		}
	}
	if anySliding && c.Window <= 0 {
		bad("sliding layers need attention.sliding_window > 0, got %d", c.Window)
	}
	if c.NExpert > 0 && (c.NExpertUsed <= 0 || c.NExpertUsed > c.NExpert || c.FFExpert <= 0) {
		bad("experts: %d used of %d, width %d", c.NExpertUsed, c.NExpert, c.FFExpert)
	}
	if c.EmbdPerLayer < 0 {
		bad("embedding_length_per_layer_input %d", c.EmbdPerLayer)
	}
	return errors.Join(errs...)
}

// metaReader reads arch-prefixed keys, remembering the first error.
type metaReader struct {
	f   *gguf.File
	c   *Config
	err error
}

func (p *metaReader) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("gemma: %s: %s", p.f.Path, fmt.Sprintf(format, args...))
	}
}

// int reads an integer key; def < 0 makes it required.
func (p *metaReader) int(k string, def int) int {
	key := p.c.key(k)
	if !p.f.Has(key) {
		if def < 0 {
			p.fail("key %s is missing", key)
			return 0
		}
		return def
	}
	v, err := p.f.Int(key)
	if err != nil || v < 0 || v > 1<<31 {
		p.fail("key %s: %v", key, errOr(err, "out of range"))
		return 0
	}
	return int(v)
}

// float reads a float key; def < 0 makes it required.
func (p *metaReader) float(k string, def float32) float32 {
	key := p.c.key(k)
	if !p.f.Has(key) {
		if def < 0 {
			p.fail("key %s is missing", key)
		}
		return def
	}
	v, err := p.f.Float(key)
	if err != nil {
		p.fail("key %s: %v", key, err)
		return 0
	}
	return float32(v)
}

// perLayer reads a key that is a scalar or an array with one value per
// layer; def < 0 makes it required, def 0 returns nil when absent.
func (p *metaReader) perLayer(k string, def int) []int {
	key := p.c.key(k)
	v, ok := p.f.Get(key)
	if !ok {
		if def < 0 {
			p.fail("key %s is missing", key)
		}
		return nil
	}
	out := make([]int, p.c.NLayer)
	if v.IsArray() {
		xs, ok := v.Ints()
		if !ok || len(xs) != p.c.NLayer {
			p.fail("key %s: want %d integers, got %s of %d", key, p.c.NLayer, v.TypeName(), v.Len())
			return out
		}
		for i, x := range xs {
			out[i] = int(x)
		}
		return out
	}
	x, ok := v.Int()
	if !ok {
		p.fail("key %s: want an integer, got %s", key, v.TypeName())
	}
	for i := range out {
		out[i] = int(x)
	}
	return out
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}
