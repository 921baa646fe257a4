package unet

import (
	"fmt"
	"strings"

	"mica/internal/models/sd/param"
)

// Family says how a UNet counts its attention heads, which the weights
// cannot tell: SD 1.x has a fixed 8 heads, SD 2.x and SDXL have 64-wide
// heads.
type Family int

// UNet families.
const (
	SD1 Family = iota
	SD2
	SDXL
)

func (f Family) String() string {
	switch f {
	case SD1:
		return "SD1"
	case SD2:
		return "SD2"
	case SDXL:
		return "SDXL"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// Config is a UNet's architecture, every dimension derived from the
// checkpoint's shapes by DetectConfig.
type Config struct {
	Family        Family
	InChannels    int   // 4, or 9 for inpainting checkpoints
	OutChannels   int   // 4
	ModelChannels int   // 320 for SD 1.5 and SDXL
	ChannelMult   []int // per level: (1,2,4,4) SD 1.5, (1,2,4) SDXL
	NumResBlocks  int   // ResBlocks per level on the way down (one more on the way up)
	Depth         []int // SpatialTransformer depth per level; 0 = no attention there
	MiddleDepth   int   // depth of the middle block's transformer (0: none)
	ContextDim    int   // cross-attention context width: 768 SD1, 1024 SD2, 2048 SDXL
	ADMDim        int   // width of the vector conditioning y (SDXL 2816); 0 = none
	LinearProj    bool  // proj_in/proj_out are Linear (SDXL) rather than 1×1 convs
}

// TimeEmbedDim is the width of the timestep embedding MLP's output.
func (c *Config) TimeEmbedDim() int { return 4 * c.ModelChannels }

// Heads is the number of attention heads of a transformer with c channels.
func (c *Config) Heads(ch int) int {
	if c.Family == SD1 {
		return 8
	}
	return ch / 64
}

// DetectConfig reads a UNet's architecture from the stored shapes of the
// tensors under prefix (e.g. "model.diffusion_model.").
func DetectConfig(src param.Source, prefix string, family Family) (Config, error) {
	cfg := Config{Family: family}
	shape := func(name string) ([]int, bool) { return src.Shape(prefix + name) }
	s, ok := shape("input_blocks.0.0.weight")
	if !ok || len(s) != 4 {
		return cfg, fmt.Errorf("unet: no conv input_blocks.0.0.weight under %q (found %v)", prefix, s)
	}
	cfg.ModelChannels, cfg.InChannels = s[0], s[1]
	if s, ok = shape("out.2.weight"); !ok || len(s) != 4 {
		return cfg, fmt.Errorf("unet: no conv out.2.weight under %q", prefix)
	}
	cfg.OutChannels = s[0]
	if s, ok = shape("time_embed.0.weight"); !ok || len(s) != 2 || s[1] != cfg.ModelChannels || s[0] != cfg.TimeEmbedDim() {
		return cfg, fmt.Errorf("unet: time_embed.0.weight has shape %v, want [%d %d]", s, cfg.TimeEmbedDim(), cfg.ModelChannels)
	}
	if s, ok = shape("label_emb.0.0.weight"); ok {
		if len(s) != 2 {
			return cfg, fmt.Errorf("unet: label_emb.0.0.weight has shape %v", s)
		}
		cfg.ADMDim = s[1]
	}

	// Walk the input blocks level by level: NumResBlocks ResBlocks (each
	// maybe with a transformer), then a downsampling conv except at the
	// deepest level.
	i := 1
	for level := 0; ; level++ {
		n, depth := 0, -1
		for {
			s, ok := shape(fmt.Sprintf("input_blocks.%d.0.in_layers.2.weight", i))
			if !ok {
				break
			}
			if len(s) != 4 || s[0]%cfg.ModelChannels != 0 {
				return cfg, fmt.Errorf("unet: input_blocks.%d.0.in_layers.2.weight has shape %v, not a multiple of %d channels", i, s, cfg.ModelChannels)
			}
			mult := s[0] / cfg.ModelChannels
			if n == 0 {
				cfg.ChannelMult = append(cfg.ChannelMult, mult)
			} else if mult != cfg.ChannelMult[level] {
				return cfg, fmt.Errorf("unet: input_blocks.%d has %d channels, its level has %d", i, s[0], cfg.ChannelMult[level]*cfg.ModelChannels)
			}
			d, err := transformerDepth(src, fmt.Sprintf("%sinput_blocks.%d.1.", prefix, i))
			if err != nil {
				return cfg, err
			}
			if depth >= 0 && d != depth {
				return cfg, fmt.Errorf("unet: input_blocks.%d has transformer depth %d, its level has %d", i, d, depth)
			}
			depth = d
			n++
			i++
		}
		if n == 0 {
			return cfg, fmt.Errorf("unet: input_blocks.%d has no ResBlock (in_layers.2.weight)", i)
		}
		if level == 0 {
			cfg.NumResBlocks = n
		} else if n != cfg.NumResBlocks {
			return cfg, fmt.Errorf("unet: level %d has %d ResBlocks, level 0 has %d", level, n, cfg.NumResBlocks)
		}
		cfg.Depth = append(cfg.Depth, depth)
		if _, ok := shape(fmt.Sprintf("input_blocks.%d.0.op.weight", i)); !ok {
			break
		}
		i++
		if level > 16 {
			return cfg, fmt.Errorf("unet: more than 16 levels")
		}
	}
	if _, ok := shape(fmt.Sprintf("input_blocks.%d.0.in_layers.2.weight", i)); ok {
		return cfg, fmt.Errorf("unet: input_blocks.%d follows the deepest level without a downsample", i)
	}
	d, err := transformerDepth(src, prefix+"middle_block.1.")
	if err != nil {
		return cfg, err
	}
	cfg.MiddleDepth = d

	// Context width and projection kind from the first transformer.
	first := ""
	for j := 1; j < i && first == ""; j++ {
		if _, ok := shape(fmt.Sprintf("input_blocks.%d.1.proj_in.weight", j)); ok {
			first = fmt.Sprintf("input_blocks.%d.1.", j)
		}
	}
	if first == "" && cfg.MiddleDepth > 0 {
		first = "middle_block.1."
	}
	if first != "" {
		s, _ := shape(first + "proj_in.weight")
		cfg.LinearProj = len(s) == 2
		k, ok := shape(first + "transformer_blocks.0.attn2.to_k.weight")
		if !ok || len(k) != 2 {
			return cfg, fmt.Errorf("unet: %sattn2.to_k.weight missing or not 2-D (%v)", first+"transformer_blocks.0.", k)
		}
		cfg.ContextDim = k[1]
	}
	for l, m := range cfg.ChannelMult {
		ch := m * cfg.ModelChannels
		if cfg.Depth[l] > 0 && (cfg.Heads(ch) == 0 || ch%cfg.Heads(ch) != 0) {
			return cfg, fmt.Errorf("unet: %d channels at level %d do not split into %s heads", ch, l, family)
		}
	}
	return cfg, nil
}

// transformerDepth counts the BasicTransformerBlocks of the
// SpatialTransformer at prefix (0 when there is none).
func transformerDepth(src param.Source, prefix string) (int, error) {
	if _, ok := src.Shape(prefix + "norm.weight"); !ok {
		if _, ok := src.Shape(prefix + "proj_in.weight"); ok {
			return 0, fmt.Errorf("unet: %sproj_in.weight without norm.weight", prefix)
		}
		return 0, nil
	}
	d := 0
	for {
		if _, ok := src.Shape(fmt.Sprintf("%stransformer_blocks.%d.attn1.to_q.weight", prefix, d)); !ok {
			break
		}
		d++
	}
	if d == 0 {
		return 0, fmt.Errorf("unet: transformer %s has no transformer_blocks", strings.TrimSuffix(prefix, "."))
	}
	return d, nil
}
