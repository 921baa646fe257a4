// Package synth writes random-weight Gemma GGUF files with real shapes:
// the tensor names, shapes, metadata keys and tokenizer keys that llama.cpp's
// converter writes for gemma3 / gemma4, the real 262k vocabulary taken from a
// file the user names, and weights drawn from a seeded generator, streamed to
// disk tensor by tensor. Same preset, seed, type and vocabulary give the same
// bytes.
package synth

import (
	"fmt"
	"sort"
	"strings"
)

// Architectures.
const (
	ArchGemma3 = "gemma3"
	ArchGemma4 = "gemma4"
)

// Preset is the geometry of a model family member. Per-layer values are
// derived by the methods below (sliding pattern, KV heads, FFN width).
type Preset struct {
	Name        string
	Arch        string
	Description string
	SizeLabel   string // general.size_label

	NLayer  int
	NEmbd   int
	NHead   int
	NVocab  int
	Context int
	Eps     float32

	HeadDim    int // global layers (Gemma 3: every layer)
	HeadDimSWA int // sliding layers (Gemma 4)
	NHeadKV    int // global layers (Gemma 3: every layer)
	NHeadKVSWA int // sliding layers (Gemma 4)
	FF         int // FFN width
	FFShared   int // FFN width on KV-shared layers (Gemma 4 double-wide MLP); 0: FF

	// SlidingPeriod p: layer l is global iff (l+1)%p == 0 (5:1 → 6, 4:1 → 5).
	SlidingPeriod int
	Window        int
	RopeBase      float32 // global layers
	RopeBaseSWA   float32 // sliding layers
	// PartialRotary is the fraction of a global head that rotates (Gemma 4
	// proportional RoPE, written as rope_freqs); 0 for Gemma 3.
	PartialRotary float64
	KEqV          bool // Gemma 4: global layers have no attn_v (V = K projection)
	SharedKV      int  // Gemma 4: the last n layers own no K/V
	PLE           int  // Gemma 4: per-layer embedding width, 0 when absent
	Softcap       float32
}

const gemmaVocab = 262144

var presets = map[string]*Preset{
	// Gemma 3 270M (google/gemma-3-270m): the shapes of
	// ../shared/reference/BENCHMARKS.md's llama.cpp figures.
	"gemma3-270m": {Name: "gemma3-270m", Arch: ArchGemma3, SizeLabel: "270M",
		Description: "Gemma 3 270M",
		NLayer:      18, NEmbd: 640, NHead: 4, NHeadKV: 1, HeadDim: 256, FF: 2048,
		NVocab: gemmaVocab, Context: 32768, Eps: 1e-6, SlidingPeriod: 6, Window: 512,
		RopeBase: 1e6, RopeBaseSWA: 1e4},
	// Gemma 3 1B (google/gemma-3-1b-pt): 999,885,952 parameters, the count
	// Keras-Hub's gemma3_1b preset lists, which these shapes reproduce.
	"gemma3-1b": {Name: "gemma3-1b", Arch: ArchGemma3, SizeLabel: "1B",
		Description: "Gemma 3 1B",
		NLayer:      26, NEmbd: 1152, NHead: 4, NHeadKV: 1, HeadDim: 256, FF: 6912,
		NVocab: gemmaVocab, Context: 32768, Eps: 1e-6, SlidingPeriod: 6, Window: 512,
		RopeBase: 1e6, RopeBaseSWA: 1e4},
	// Gemma 4 E2B: per-layer embeddings (256), the last 20 of 35 layers share
	// K/V and have a double-wide FFN, 4 sliding : 1 global, v_proj on global
	// layers (no k_eq_v). docs/research/gemma.md §1-2.
	"gemma4-e2b": {Name: "gemma4-e2b", Arch: ArchGemma4, SizeLabel: "E2B",
		Description: "Gemma 4 E2B",
		NLayer:      35, NEmbd: 1536, NHead: 8, NHeadKV: 1, NHeadKVSWA: 1, HeadDim: 512, HeadDimSWA: 256,
		FF: 6144, FFShared: 12288, NVocab: gemmaVocab, Context: 131072, Eps: 1e-6,
		SlidingPeriod: 5, Window: 512, RopeBase: 1e6, RopeBaseSWA: 1e4, PartialRotary: 0.25,
		SharedKV: 20, PLE: 256, Softcap: 30},
	// Gemma 4 31B dense: 60 layers (50 sliding, 10 global), k_eq_v global
	// layers with 4 KV heads of 512, 16 KV heads of 256 on sliding layers.
	"gemma4-31b": {Name: "gemma4-31b", Arch: ArchGemma4, SizeLabel: "31B",
		Description: "Gemma 4 31B",
		NLayer:      60, NEmbd: 5376, NHead: 32, NHeadKV: 4, NHeadKVSWA: 16, HeadDim: 512, HeadDimSWA: 256,
		FF: 21504, NVocab: gemmaVocab, Context: 262144, Eps: 1e-6,
		SlidingPeriod: 6, Window: 1024, RopeBase: 1e6, RopeBaseSWA: 1e4, PartialRotary: 0.25,
		KEqV: true, Softcap: 30},
	// Tiny models with the real vocabulary, for fast tests of everything
	// above the model (tokenizer, chat, tools, constrained decoding).
	"gemma3-test": {Name: "gemma3-test", Arch: ArchGemma3, SizeLabel: "test",
		Description: "tiny Gemma 3 for tests",
		NLayer:      6, NEmbd: 64, NHead: 2, NHeadKV: 1, HeadDim: 32, FF: 128,
		NVocab: gemmaVocab, Context: 8192, Eps: 1e-6, SlidingPeriod: 6, Window: 32,
		RopeBase: 1e6, RopeBaseSWA: 1e4},
	"gemma4-test": {Name: "gemma4-test", Arch: ArchGemma4, SizeLabel: "test",
		Description: "tiny Gemma 4 (31B-style: k_eq_v, proportional RoPE) for tests",
		NLayer:      6, NEmbd: 64, NHead: 4, NHeadKV: 1, NHeadKVSWA: 2, HeadDim: 64, HeadDimSWA: 32,
		FF: 128, NVocab: gemmaVocab, Context: 8192, Eps: 1e-6,
		SlidingPeriod: 6, Window: 32, RopeBase: 1e6, RopeBaseSWA: 1e4, PartialRotary: 0.25,
		KEqV: true, Softcap: 30},
}

// Presets lists the preset names, sorted.
func Presets() []string {
	var out []string
	for k := range presets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LookupPreset returns a copy of the named preset.
func LookupPreset(name string) (*Preset, error) {
	p, ok := presets[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("synth: unknown preset %q (presets: %s)", name, strings.Join(Presets(), ", "))
	}
	c := *p
	return &c, nil
}

// Sliding reports whether layer il uses sliding-window attention.
func (p *Preset) Sliding(il int) bool {
	return p.SlidingPeriod <= 0 || (il+1)%p.SlidingPeriod != 0
}

// OwnsKV reports whether layer il has its own K/V projections.
func (p *Preset) OwnsKV(il int) bool { return il < p.NLayer-p.SharedKV }

// HasV reports whether layer il has a V projection.
func (p *Preset) HasV(il int) bool {
	return p.OwnsKV(il) && !(p.KEqV && !p.Sliding(il))
}

// LayerHeadDim is the head size of layer il.
func (p *Preset) LayerHeadDim(il int) int {
	if p.Arch == ArchGemma4 && p.Sliding(il) {
		return p.HeadDimSWA
	}
	return p.HeadDim
}

// LayerKVHeads is the KV head count of layer il.
func (p *Preset) LayerKVHeads(il int) int {
	if p.Arch == ArchGemma4 && p.Sliding(il) {
		return p.NHeadKVSWA
	}
	return p.NHeadKV
}

// LayerFF is the FFN width of layer il.
func (p *Preset) LayerFF(il int) int {
	if p.FFShared > 0 && !p.OwnsKV(il) {
		return p.FFShared
	}
	return p.FF
}

// ropeFreqCount is the length of rope_freqs (half the global head) and
// ropeRotated how many of its entries are 1 (the rest 1e30, i.e. not rotated).
func (p *Preset) ropeFreqs() (n, rotated int) {
	n = p.HeadDim / 2
	rotated = int(p.PartialRotary * float64(p.HeadDim) / 2)
	return n, rotated
}

func (p *Preset) check() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("synth: preset %s: %s", p.Name, fmt.Sprintf(f, a...))
	}
	switch {
	case p.Arch != ArchGemma3 && p.Arch != ArchGemma4:
		return bad("architecture %q", p.Arch)
	case p.NLayer <= 0 || p.NEmbd <= 0 || p.NHead <= 0 || p.NVocab <= 0:
		return bad("bad sizes")
	case p.SharedKV < 0 || p.SharedKV >= p.NLayer:
		return bad("shared_kv_layers %d for %d layers", p.SharedKV, p.NLayer)
	}
	for il := 0; il < p.NLayer; il++ {
		if kv := p.LayerKVHeads(il); kv <= 0 || p.NHead%kv != 0 {
			return bad("layer %d: %d heads / %d KV heads", il, p.NHead, kv)
		}
	}
	return nil
}
