// Package clip is Stable Diffusion's text encoders on mica's compute
// backend: the CLIP ViT-L/14 text transformer of SD 1.x and SDXL (Hugging
// Face CLIPTextModel names) and OpenCLIP ViT-bigG/14 of SDXL (original
// OpenCLIP names), with clip skip, the optional final LayerNorm and the
// pooled, projected output SDXL conditions on. Token ids in, hidden states
// out; tokenizing and prompt weighting live elsewhere.
package clip

import (
	"fmt"
	"strings"

	"mica/internal/compute"
	"mica/internal/models/sd/param"
)

// Flavor says which naming convention a checkpoint's text encoder uses.
type Flavor int

// Naming conventions.
const (
	// OpenAI is Hugging Face's CLIPTextModel layout (SD 1.x's
	// cond_stage_model and SDXL's first embedder): the prefix names the
	// "text_model." level, e.g. "cond_stage_model.transformer.text_model.".
	OpenAI Flavor = iota
	// OpenCLIP is the original OpenCLIP layout (SDXL's second embedder):
	// the prefix names the model, e.g. "conditioner.embedders.1.model.".
	OpenCLIP
)

func (f Flavor) String() string {
	if f == OpenCLIP {
		return "openclip"
	}
	return "openai"
}

// Config is a text encoder's shape and numerics.
type Config struct {
	Flavor    Flavor
	Vocab     int // token embedding rows (49408)
	Positions int // sequence length (77)
	Hidden    int // model width (768 for ViT-L, 1280 for bigG)
	Heads     int // attention heads of 64 dimensions
	Layers    int // transformer blocks
	MLP       int // feed-forward width
	// Act is the MLP activation. CLIP ViT-L uses quick-GELU
	// (compute.QuickGELU, through ggml's F16 table as stable-diffusion.cpp
	// computes it). OpenCLIP bigG is trained with the exact (erf) GELU, but
	// stable-diffusion.cpp, which the references come from, evaluates
	// ggml's tanh approximation from its F16 table (compute.GELU); that is
	// what DetectConfig picks. compute.GELUErf is accepted for OpenCLIP's
	// own numerics.
	Act compute.UnaryKind
	Eps float32 // LayerNorm epsilon (1e-5)
	// ProjDim is the width of the pooled output's projection (1280 for
	// bigG); 0 means no projection (the pooled output is then the final
	// LayerNorm's row).
	ProjDim int
	// ProjTransposed says how the projection is stored. false: as SGM and
	// OpenCLIP store text_projection, a [Hidden, ProjDim] matrix T applied
	// as pooled = h·T. true: as a Linear weight [ProjDim, Hidden] W applied
	// as pooled = W·h (diffusers' text_encoder_2 text_projection.weight,
	// which is SGM's T transposed). Both compute SGM's h·T; only the
	// storage differs. A square T cannot be told apart by shape, so whoever
	// maps diffusers names onto OpenCLIP names must set this.
	ProjTransposed bool
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.Hidden / c.Heads }

func (c Config) validate() error {
	switch {
	case c.Flavor != OpenAI && c.Flavor != OpenCLIP:
		return fmt.Errorf("clip: unknown flavor %d", c.Flavor)
	case c.Vocab <= 0 || c.Positions <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.MLP <= 0:
		return fmt.Errorf("clip: config %+v has a non-positive size", c)
	case c.Heads <= 0 || c.Hidden%c.Heads != 0:
		return fmt.Errorf("clip: hidden size %d is not a multiple of %d heads", c.Hidden, c.Heads)
	case c.ProjDim < 0:
		return fmt.Errorf("clip: negative projection width %d", c.ProjDim)
	case !(c.Eps > 0):
		return fmt.Errorf("clip: LayerNorm epsilon %v must be positive", c.Eps)
	}
	switch c.Act {
	case compute.QuickGELU, compute.GELU, compute.GELUErf:
	default:
		return fmt.Errorf("clip: activation %d is not a GELU", c.Act)
	}
	return nil
}

// names are a flavor's tensor names under the prefix.
type names struct {
	tokenEmb, posEmb         string
	finalNormW, finalNormB   string
	proj                     string
	layer                    func(i int) string // prefix of block i, ending in "."
	ln1, ln2                 string             // norm names inside a block (".weight"/".bias" appended)
	q, k, v, inProj, outProj string             // attention linears (q/k/v for OpenAI, inProj for OpenCLIP)
	fc1, fc2                 string
}

func namesFor(f Flavor, prefix string) names {
	if f == OpenCLIP {
		return names{
			tokenEmb:   prefix + "token_embedding.weight",
			posEmb:     prefix + "positional_embedding",
			finalNormW: prefix + "ln_final.weight",
			finalNormB: prefix + "ln_final.bias",
			proj:       prefix + "text_projection",
			layer:      func(i int) string { return fmt.Sprintf("%stransformer.resblocks.%d.", prefix, i) },
			ln1:        "ln_1",
			ln2:        "ln_2",
			inProj:     "attn.in_proj_",
			outProj:    "attn.out_proj",
			fc1:        "mlp.c_fc",
			fc2:        "mlp.c_proj",
		}
	}
	return names{
		tokenEmb:   prefix + "embeddings.token_embedding.weight",
		posEmb:     prefix + "embeddings.position_embedding.weight",
		finalNormW: prefix + "final_layer_norm.weight",
		finalNormB: prefix + "final_layer_norm.bias",
		// CLIPTextModelWithProjection keeps its projection beside
		// text_model, not inside it.
		proj:    strings.TrimSuffix(prefix, "text_model.") + "text_projection.weight",
		layer:   func(i int) string { return fmt.Sprintf("%sencoder.layers.%d.", prefix, i) },
		ln1:     "layer_norm1",
		ln2:     "layer_norm2",
		q:       "self_attn.q_proj",
		k:       "self_attn.k_proj",
		v:       "self_attn.v_proj",
		outProj: "self_attn.out_proj",
		fc1:     "mlp.fc1",
		fc2:     "mlp.fc2",
	}
}

// DetectConfig reads a text encoder's configuration from the shapes under
// prefix: the flavor from which names exist, sizes from the embeddings and
// the first block, the layer count by probing blocks, heads as Hidden/64
// (every CLIP text model SD uses has 64-dimensional heads), the activation
// stable-diffusion.cpp uses for the flavor, eps 1e-5, and a projection if
// there is one (stored as SGM's matrix for OpenCLIP names, as a Linear
// weight for Hugging Face names).
func DetectConfig(src param.Source, prefix string) (Config, error) {
	var c Config
	switch {
	case has(src, namesFor(OpenAI, prefix).tokenEmb):
		c.Flavor, c.Act = OpenAI, compute.QuickGELU
	case has(src, namesFor(OpenCLIP, prefix).tokenEmb):
		c.Flavor, c.Act = OpenCLIP, compute.GELU
	default:
		return c, fmt.Errorf("clip: no text encoder under %q (neither %s nor %s)", prefix,
			namesFor(OpenAI, prefix).tokenEmb, namesFor(OpenCLIP, prefix).tokenEmb)
	}
	n := namesFor(c.Flavor, prefix)
	c.Eps = 1e-5

	te, _ := src.Shape(n.tokenEmb)
	if len(te) != 2 {
		return c, fmt.Errorf("clip: %s has shape %v, want [vocab, hidden]", n.tokenEmb, te)
	}
	c.Vocab, c.Hidden = te[0], te[1]
	pe, ok := src.Shape(n.posEmb)
	if !ok || len(pe) != 2 || pe[1] != c.Hidden {
		return c, fmt.Errorf("clip: %s has shape %v (present %v), want [positions, %d]", n.posEmb, pe, ok, c.Hidden)
	}
	c.Positions = pe[0]
	if c.Hidden%64 != 0 {
		return c, fmt.Errorf("clip: hidden size %d (from %s) is not a multiple of the 64-wide heads", c.Hidden, n.tokenEmb)
	}
	c.Heads = c.Hidden / 64

	for has(src, n.layer(c.Layers)+n.ln1+".weight") {
		c.Layers++
	}
	if c.Layers == 0 {
		return c, fmt.Errorf("clip: no transformer blocks under %q (no %s)", prefix, n.layer(0)+n.ln1+".weight")
	}
	fc1 := n.layer(0) + n.fc1 + ".weight"
	fs, ok := src.Shape(fc1)
	if !ok || len(fs) != 2 || fs[1] != c.Hidden {
		return c, fmt.Errorf("clip: %s has shape %v (present %v), want [mlp, %d]", fc1, fs, ok, c.Hidden)
	}
	c.MLP = fs[0]

	if ps, ok := src.Shape(n.proj); ok {
		if len(ps) != 2 {
			return c, fmt.Errorf("clip: %s has shape %v, want a matrix", n.proj, ps)
		}
		c.ProjTransposed = c.Flavor == OpenAI // HF: a Linear weight; OpenCLIP: SGM's T
		in := ps[0]
		c.ProjDim = ps[1] // SGM matrix [hidden, proj]
		if c.ProjTransposed {
			c.ProjDim, in = ps[0], ps[1] // Linear weight [proj, hidden]
		}
		if in != c.Hidden {
			return c, fmt.Errorf("clip: %s has shape %v, which does not project from %d", n.proj, ps, c.Hidden)
		}
	}
	return c, c.validate()
}

func has(src param.Source, name string) bool {
	_, ok := src.Shape(name)
	return ok
}
