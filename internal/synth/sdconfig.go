package synth

import (
	"fmt"
	"strconv"
)

// This file enumerates the tensors of a Stable Diffusion single-file
// checkpoint (LDM names for SD 1.x, SGM names for SDXL) from the
// architecture: names, PyTorch shapes (outermost first), the order in which
// the original training code registers the modules (which is the order of
// the data in the reference files), and each tensor's kind for the value
// recipe. Nothing here reads a reference file.

// Tensor kinds: the recipe gives kind w and b values uniform on
// [-scale, scale), kind n values 1 plus that, and kind p (position ids)
// the integers 0, 1, 2, ... stored as I64.
const (
	KindWeight byte = 'w'
	KindBias   byte = 'b'
	KindNorm   byte = 'n'
	KindPos    byte = 'p'
)

// SDTensor is one tensor of a Stable Diffusion checkpoint.
type SDTensor struct {
	Name  string
	Shape []int // PyTorch order, outermost first; [] for a scalar
	Kind  byte  // KindWeight, KindBias, KindNorm or KindPos
	// Symmetric: a square matrix whose element (i, j) takes the recipe
	// value of flat index min(i,j)·n + max(i,j) (SDXL's text_projection).
	Symmetric bool
}

// Elements is the number of values in the tensor (1 for a scalar).
func (t SDTensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// UNetConfig is the geometry of an LDM/SGM UNet (openaimodel.UNetModel).
type UNetConfig struct {
	InChannels    int   // 4, or 9 for inpainting (latent, mask, masked-image latent)
	OutChannels   int   // 4
	ModelChannels int   // 320
	ChannelMult   []int // per level: (1,2,4,4) SD 1.x, (1,2,4) SDXL
	NumResBlocks  int   // ResBlocks per level on the way down (one more on the way up)
	// TransformerDepth is the number of BasicTransformerBlocks in the
	// SpatialTransformer after each ResBlock of a level; 0: no attention
	// at that level.
	TransformerDepth []int
	MiddleDepth      int  // transformer depth of middle_block.1 (at least 1)
	ContextDim       int  // cross-attention K/V input width (768 SD 1.x, 2048 SDXL)
	NumHeads         int  // fixed head count (SD 1.x: 8), or 0 to use HeadChannels
	HeadChannels     int  // head width when NumHeads is 0 (SDXL: 64)
	LinearProj       bool // proj_in/proj_out are Linear ([C, C]), not 1×1 convs ([C, C, 1, 1])
	TimeEmbedDim     int  // time_embed width (4·ModelChannels)
	// ADMInChannels is the input width of label_emb.0.0 (SDXL: 2816 =
	// pooled 1280 + 6·256 size embeddings); 0: no label_emb.
	ADMInChannels int
}

// Heads is the attention head count at a level of width channels.
func (u UNetConfig) Heads(channels int) int {
	if u.NumHeads > 0 {
		return u.NumHeads
	}
	if u.HeadChannels > 0 {
		return channels / u.HeadChannels
	}
	return 1
}

// VAEConfig is the geometry of the KL autoencoder (first_stage_model).
type VAEConfig struct {
	Channels      int   // ch: 128
	ChannelMult   []int // (1,2,4,4)
	NumResBlocks  int   // per encoder level (the decoder has one more)
	ZChannels     int   // 4 (the encoder writes 2·z: mean and log-variance)
	ImageChannels int   // 3
}

// CLIPTextConfig is a CLIP text transformer in Hugging Face's
// CLIPTextModel layout (prefix …text_model.), with position_ids stored.
type CLIPTextConfig struct {
	Prefix    string // e.g. "cond_stage_model.transformer.text_model."
	Vocab     int    // 49408
	Positions int    // 77
	Hidden    int    // 768
	Layers    int    // 12
	MLP       int    // 3072
	Heads     int    // attention heads, Hidden/64 (not stored in the file)
}

// OpenCLIPTextConfig is an OpenCLIP text transformer in open_clip's own
// layout (fused in_proj, positional_embedding, text_projection,
// logit_scale), as SDXL's conditioner.embedders.1 stores it.
type OpenCLIPTextConfig struct {
	Prefix     string // e.g. "conditioner.embedders.1.model."
	Vocab      int    // 49408
	Positions  int    // 77
	Hidden     int    // 1280
	Layers     int    // 32
	MLP        int    // 5120
	Heads      int    // attention heads, Hidden/64 (not stored in the file)
	Projection int    // text_projection is [Hidden, Projection]: pooled = h·T
	// SymmetricProjection makes text_projection symmetric (requires
	// Projection == Hidden), as the SDXL reference checkpoint does so that
	// h·T and T·h agree.
	SymmetricProjection bool
}

// SDConfig is a whole checkpoint: its components and their order.
type SDConfig struct {
	Name string
	// SDXL selects the SGM layout and order (UNet, CLIP-L, OpenCLIP, VAE);
	// otherwise it is the LDM SD 1.x layout (UNet, VAE, CLIP).
	SDXL bool
	UNet UNetConfig
	VAE  VAEConfig
	// CLIP is the CLIP ViT-L/14 text encoder (SD 1.x's only one, SDXL
	// base's first); nil for the SDXL refiner, which has none.
	CLIP     *CLIPTextConfig
	OpenCLIP *OpenCLIPTextConfig // SDXL base and refiner only
	// Note is the __metadata__ "note" the file carries.
	Note string
}

// Inpainting returns c with a 9-channel UNet input (the inpainting
// checkpoints' latent + mask + masked-image latent).
func (c SDConfig) Inpainting() SDConfig {
	c.UNet.InChannels = 9
	c.UNet.ChannelMult = append([]int(nil), c.UNet.ChannelMult...)
	c.UNet.TransformerDepth = append([]int(nil), c.UNet.TransformerDepth...)
	c.VAE.ChannelMult = append([]int(nil), c.VAE.ChannelMult...)
	return c
}

const (
	noteSD15 = "sdref recipe v1: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SD1.5 shapes"
	noteSDXL = "sdref recipe v1: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SDXL base shapes"
)

func sdVAE(ch int) VAEConfig {
	return VAEConfig{Channels: ch, ChannelMult: []int{1, 2, 4, 4}, NumResBlocks: 2, ZChannels: 4, ImageChannels: 3}
}

// SD15Config is Stable Diffusion 1.5 (v1-inference.yaml): 1131 tensors.
func SD15Config() SDConfig {
	return SDConfig{
		Name: "sd15",
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, ModelChannels: 320,
			ChannelMult: []int{1, 2, 4, 4}, NumResBlocks: 2, TransformerDepth: []int{1, 1, 1, 0},
			MiddleDepth: 1, ContextDim: 768, NumHeads: 8, TimeEmbedDim: 1280},
		VAE:  sdVAE(128),
		CLIP: &CLIPTextConfig{Prefix: "cond_stage_model.transformer.text_model.", Vocab: 49408, Positions: 77, Hidden: 768, Layers: 12, MLP: 3072, Heads: 12},
		Note: noteSD15,
	}
}

// SDXLConfig is SDXL base 1.0 (sd_xl_base.yaml): 2515 tensors.
func SDXLConfig() SDConfig {
	return SDConfig{
		Name: "sdxl",
		SDXL: true,
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, ModelChannels: 320,
			ChannelMult: []int{1, 2, 4}, NumResBlocks: 2, TransformerDepth: []int{0, 2, 10},
			MiddleDepth: 10, ContextDim: 2048, HeadChannels: 64, LinearProj: true, TimeEmbedDim: 1280,
			ADMInChannels: 1280 + 6*256},
		VAE:  sdVAE(128),
		CLIP: &CLIPTextConfig{Prefix: "conditioner.embedders.0.transformer.text_model.", Vocab: 49408, Positions: 77, Hidden: 768, Layers: 12, MLP: 3072, Heads: 12},
		OpenCLIP: &OpenCLIPTextConfig{Prefix: "conditioner.embedders.1.model.", Vocab: 49408, Positions: 77,
			Hidden: 1280, Layers: 32, MLP: 5120, Heads: 20, Projection: 1280, SymmetricProjection: true},
		Note: noteSDXL,
	}
}

// SDTestConfig is the tiny SD-1-structured checkpoint for fast tests:
// CLIP 128 wide (3 layers, 2 heads, MLP 512, vocabulary 49408, 77
// positions), UNet with model_channels 32, channel_mult (1,2,4,4),
// attention at the first three levels (depth 1, SD 1.x's fixed 8 heads, so
// head widths 4/8/16), context 128, time embedding 128; VAE with ch 32.
// Every GroupNorm still has 32 groups.
func SDTestConfig() SDConfig {
	return SDConfig{
		Name: "sd-test",
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, ModelChannels: 32,
			ChannelMult: []int{1, 2, 4, 4}, NumResBlocks: 2, TransformerDepth: []int{1, 1, 1, 0},
			MiddleDepth: 1, ContextDim: 128, NumHeads: 8, TimeEmbedDim: 128},
		VAE:  sdVAE(32),
		CLIP: &CLIPTextConfig{Prefix: "cond_stage_model.transformer.text_model.", Vocab: 49408, Positions: 77, Hidden: 128, Layers: 3, MLP: 512, Heads: 2},
		Note: "mica synth sd-test: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; tiny SD1 structure",
	}
}

// SDXLTestConfig is the tiny SDXL-structured checkpoint for fast tests:
// CLIP-L 64 wide (3 layers, 1 head, MLP 256), OpenCLIP 128 wide (3 layers,
// 2 heads, MLP 512, text_projection [128, 128]), UNet with model_channels 32,
// channel_mult (1,2,4), transformer depth (0,1,2), middle 2, context 192,
// time embedding 128, label_emb.0.0 [128, 128+6·256]; VAE as sd-test.
func SDXLTestConfig() SDConfig {
	return SDConfig{
		Name: "sdxl-test",
		SDXL: true,
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, ModelChannels: 32,
			ChannelMult: []int{1, 2, 4}, NumResBlocks: 2, TransformerDepth: []int{0, 1, 2},
			MiddleDepth: 2, ContextDim: 64 + 128, HeadChannels: 64, LinearProj: true, TimeEmbedDim: 128,
			ADMInChannels: 128 + 6*256},
		VAE:  sdVAE(32),
		CLIP: &CLIPTextConfig{Prefix: "conditioner.embedders.0.transformer.text_model.", Vocab: 49408, Positions: 77, Hidden: 64, Layers: 3, MLP: 256, Heads: 1},
		OpenCLIP: &OpenCLIPTextConfig{Prefix: "conditioner.embedders.1.model.", Vocab: 49408, Positions: 77,
			Hidden: 128, Layers: 3, MLP: 512, Heads: 2, Projection: 128, SymmetricProjection: true},
		Note: "mica synth sdxl-test: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; tiny SDXL structure",
	}
}

// SDXLRefinerConfig is the SDXL refiner 1.0 (sd_xl_refiner.yaml of
// Stability-AI/generative-models, configs/inference): a UNet with
// model_channels 384, channel_mult (1,2,4,4), 2 ResBlocks per level,
// attention_resolutions [4, 2] (so attention at levels 1 and 2 only) with
// transformer_depth 4 (the middle block takes the last entry, also 4),
// 64-wide heads, Linear proj_in/proj_out, context 1280 and adm_in_channels
// 2560; one text encoder, OpenCLIP ViT-bigG/14 (FrozenOpenCLIPEmbedder2,
// penultimate layer, pooled output) under conditioner.embedders.0.model.
// (the key diffusers' single_file_utils.CHECKPOINT_KEY_NAMES["xl_refiner"]
// detects it by); the SDXL VAE. ComfyUI's supported_models.SDXLRefiner
// lists the same UNet (model_channels 384, context 1280, ADM 2560,
// transformer depth 4 at the middle levels only). Unlike the base
// reference checkpoint, text_projection is not made symmetric.
func SDXLRefinerConfig() SDConfig {
	return SDConfig{
		Name: "sdxl-refiner",
		SDXL: true,
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, ModelChannels: 384,
			ChannelMult: []int{1, 2, 4, 4}, NumResBlocks: 2, TransformerDepth: []int{0, 4, 4, 0},
			MiddleDepth: 4, ContextDim: 1280, HeadChannels: 64, LinearProj: true, TimeEmbedDim: 1536,
			ADMInChannels: 1280 + 5*256},
		VAE: sdVAE(128),
		OpenCLIP: &OpenCLIPTextConfig{Prefix: "conditioner.embedders.0.model.", Vocab: 49408, Positions: 77,
			Hidden: 1280, Layers: 32, MLP: 5120, Heads: 20, Projection: 1280},
		Note: "mica synth sdxl-refiner: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SDXL refiner 1.0 shapes",
	}
}

// SDXLRefinerTestConfig is the tiny refiner for fast tests: the refiner's
// structure and names (bigG only, under conditioner.embedders.0.model.;
// four UNet levels with attention at the middle two; ADM = pooled + 5·256)
// with OpenCLIP 128 wide (3 layers, 2 heads, MLP 512, text_projection
// [128, 128]), UNet model_channels 32, transformer depth (0,2,2,0), middle
// 2, context 128, time embedding 128, label_emb.0.0 [128, 128+5·256]; VAE
// as sd-test.
func SDXLRefinerTestConfig() SDConfig {
	return SDConfig{
		Name: "sdxl-refiner-test",
		SDXL: true,
		UNet: UNetConfig{InChannels: 4, OutChannels: 4, ModelChannels: 32,
			ChannelMult: []int{1, 2, 4, 4}, NumResBlocks: 2, TransformerDepth: []int{0, 2, 2, 0},
			MiddleDepth: 2, ContextDim: 128, HeadChannels: 64, LinearProj: true, TimeEmbedDim: 128,
			ADMInChannels: 128 + 5*256},
		VAE: sdVAE(32),
		OpenCLIP: &OpenCLIPTextConfig{Prefix: "conditioner.embedders.0.model.", Vocab: 49408, Positions: 77,
			Hidden: 128, Layers: 3, MLP: 512, Heads: 2, Projection: 128},
		Note: "mica synth sdxl-refiner-test: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; tiny SDXL refiner structure",
	}
}

// Check reports the first inconsistency in c.
func (c SDConfig) Check() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("synth: SD config %q: %s", c.Name, fmt.Sprintf(f, a...))
	}
	u, v := c.UNet, c.VAE
	switch {
	case u.InChannels <= 0 || u.OutChannels <= 0 || u.ModelChannels <= 0 || u.NumResBlocks <= 0 ||
		u.ContextDim <= 0 || u.TimeEmbedDim <= 0 || u.ADMInChannels < 0:
		return bad("UNet sizes must be positive")
	case len(u.ChannelMult) == 0 || len(u.TransformerDepth) != len(u.ChannelMult):
		return bad("UNet has %d channel multipliers and %d transformer depths", len(u.ChannelMult), len(u.TransformerDepth))
	case u.MiddleDepth < 1:
		return bad("UNet middle transformer depth %d (at least 1)", u.MiddleDepth)
	case v.Channels <= 0 || len(v.ChannelMult) == 0 || v.NumResBlocks <= 0 || v.ZChannels <= 0 || v.ImageChannels <= 0:
		return bad("VAE sizes must be positive")
	case c.CLIP == nil && c.OpenCLIP == nil:
		return bad("no text encoder")
	case c.CLIP != nil && (c.CLIP.Vocab <= 0 || c.CLIP.Positions <= 0 || c.CLIP.Hidden <= 0 || c.CLIP.Layers <= 0 || c.CLIP.MLP <= 0 ||
		c.CLIP.Heads <= 0 || c.CLIP.Hidden%c.CLIP.Heads != 0):
		return bad("CLIP text sizes must be positive")
	case c.SDXL != (c.OpenCLIP != nil):
		return bad("an OpenCLIP encoder goes with the SDXL layout and only there")
	}
	for i, m := range u.ChannelMult {
		if m <= 0 || u.TransformerDepth[i] < 0 {
			return bad("UNet level %d: multiplier %d, depth %d", i, m, u.TransformerDepth[i])
		}
		if ch := m * u.ModelChannels; (u.TransformerDepth[i] > 0 || i == len(u.ChannelMult)-1) && ch%u.Heads(ch) != 0 {
			return bad("UNet level %d: %d channels do not split into %d heads", i, ch, u.Heads(ch))
		}
	}
	context := 0
	if c.CLIP != nil {
		context += c.CLIP.Hidden
	}
	if c.OpenCLIP != nil {
		context += c.OpenCLIP.Hidden
		// Base: pooled + 6 size/crop embeddings; refiner (no CLIP-L):
		// pooled + original size, crop and aesthetic score, 5 of them.
		n := 6
		if c.CLIP == nil {
			n = 5
		}
		if want := c.OpenCLIP.Projection + n*256; u.ADMInChannels != want {
			return bad("label_emb input %d, want pooled %d + %d·256 = %d", u.ADMInChannels, c.OpenCLIP.Projection, n, want)
		}
	}
	if u.ContextDim != context {
		return bad("UNet context width %d, but the text encoders give %d", u.ContextDim, context)
	}
	for i, m := range v.ChannelMult {
		if m <= 0 {
			return bad("VAE level %d: multiplier %d", i, m)
		}
	}
	if g := c.OpenCLIP; g != nil {
		if g.Vocab <= 0 || g.Positions <= 0 || g.Hidden <= 0 || g.Layers <= 0 || g.MLP <= 0 || g.Projection <= 0 ||
			g.Heads <= 0 || g.Hidden%g.Heads != 0 {
			return bad("OpenCLIP sizes must be positive")
		}
		if g.SymmetricProjection && g.Projection != g.Hidden {
			return bad("a symmetric text_projection must be square, not [%d, %d]", g.Hidden, g.Projection)
		}
	}
	return nil
}

// SDTensors lists c's tensors in file order. c must pass Check (the
// presets do); SDTensors does not validate.
func SDTensors(c SDConfig) []SDTensor {
	var e sdEnum
	e.unet("model.diffusion_model.", c.UNet)
	if c.SDXL {
		if c.CLIP != nil {
			e.clip(*c.CLIP)
		}
		e.openCLIP(*c.OpenCLIP)
		e.vae("first_stage_model.", c.VAE)
	} else {
		e.vae("first_stage_model.", c.VAE)
		e.clip(*c.CLIP)
	}
	return e.out
}

// sdEnum accumulates tensors in order.
type sdEnum struct{ out []SDTensor }

func (e *sdEnum) add(name string, kind byte, shape ...int) {
	e.out = append(e.out, SDTensor{Name: name, Shape: append([]int{}, shape...), Kind: kind})
}

// linear adds a Linear (or conv) layer's weight and bias; shape is the
// weight's.
func (e *sdEnum) linear(p string, shape ...int) {
	e.add(p+".weight", KindWeight, shape...)
	e.add(p+".bias", KindBias, shape[0])
}

// norm adds a GroupNorm or LayerNorm's weight and bias.
func (e *sdEnum) norm(p string, ch int) {
	e.add(p+".weight", KindNorm, ch)
	e.add(p+".bias", KindBias, ch)
}

func itoa(i int) string { return strconv.Itoa(i) }

// unet follows openaimodel.UNetModel.__init__: time_embed, label_emb,
// input_blocks, middle_block, output_blocks, out.
func (e *sdEnum) unet(p string, u UNetConfig) {
	T := u.TimeEmbedDim
	e.linear(p+"time_embed.0", T, u.ModelChannels)
	e.linear(p+"time_embed.2", T, T)
	if u.ADMInChannels > 0 {
		e.linear(p+"label_emb.0.0", T, u.ADMInChannels)
		e.linear(p+"label_emb.0.2", T, T)
	}
	e.linear(p+"input_blocks.0.0", u.ModelChannels, u.InChannels, 3, 3)
	ch := u.ModelChannels
	skips := []int{ch}
	block := 1
	last := len(u.ChannelMult) - 1
	for level, mult := range u.ChannelMult {
		for range u.NumResBlocks {
			bp := p + "input_blocks." + itoa(block) + "."
			e.resBlock(bp+"0", ch, mult*u.ModelChannels, T)
			ch = mult * u.ModelChannels
			if d := u.TransformerDepth[level]; d > 0 {
				e.spatialTransformer(bp+"1", ch, d, u)
			}
			skips = append(skips, ch)
			block++
		}
		if level != last {
			e.linear(p+"input_blocks."+itoa(block)+".0.op", ch, ch, 3, 3)
			skips = append(skips, ch)
			block++
		}
	}
	e.resBlock(p+"middle_block.0", ch, ch, T)
	e.spatialTransformer(p+"middle_block.1", ch, u.MiddleDepth, u)
	e.resBlock(p+"middle_block.2", ch, ch, T)
	block = 0
	for level := last; level >= 0; level-- {
		out := u.ChannelMult[level] * u.ModelChannels
		for i := 0; i <= u.NumResBlocks; i++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			bp := p + "output_blocks." + itoa(block) + "."
			e.resBlock(bp+"0", ch+skip, out, T)
			ch = out
			layer := 1
			if d := u.TransformerDepth[level]; d > 0 {
				e.spatialTransformer(bp+"1", ch, d, u)
				layer = 2
			}
			if level > 0 && i == u.NumResBlocks {
				e.linear(bp+itoa(layer)+".conv", ch, ch, 3, 3)
			}
			block++
		}
	}
	e.norm(p+"out.0", ch)
	e.linear(p+"out.2", u.OutChannels, ch, 3, 3)
}

// resBlock is openaimodel.ResBlock: in_layers (GroupNorm, SiLU, conv),
// emb_layers (SiLU, Linear), out_layers (GroupNorm, SiLU, dropout, conv),
// and a 1×1 skip_connection when the width changes.
func (e *sdEnum) resBlock(p string, in, out, temb int) {
	e.norm(p+".in_layers.0", in)
	e.linear(p+".in_layers.2", out, in, 3, 3)
	e.linear(p+".emb_layers.1", out, temb)
	e.norm(p+".out_layers.0", out)
	e.linear(p+".out_layers.3", out, out, 3, 3)
	if in != out {
		e.linear(p+".skip_connection", out, in, 1, 1)
	}
}

// spatialTransformer is attention.SpatialTransformer: GroupNorm, proj_in,
// BasicTransformerBlocks (attn1, ff, attn2, norm1-3 in registration
// order), proj_out. The inner width equals ch in SD 1.x and SDXL.
func (e *sdEnum) spatialTransformer(p string, ch, depth int, u UNetConfig) {
	proj := []int{ch, ch, 1, 1}
	if u.LinearProj {
		proj = proj[:2]
	}
	e.norm(p+".norm", ch)
	e.linear(p+".proj_in", proj...)
	for d := range depth {
		bp := p + ".transformer_blocks." + itoa(d) + "."
		e.attention(bp+"attn1", ch, ch)
		e.linear(bp+"ff.net.0.proj", 8*ch, ch) // GEGLU: value and gate, 4·ch each
		e.linear(bp+"ff.net.2", ch, 4*ch)
		e.attention(bp+"attn2", ch, u.ContextDim)
		e.norm(bp+"norm1", ch)
		e.norm(bp+"norm2", ch)
		e.norm(bp+"norm3", ch)
	}
	e.linear(p+".proj_out", proj...)
}

// attention is attention.CrossAttention: bias-free q/k/v, to_out.0 with
// bias; K and V read kv-wide inputs.
func (e *sdEnum) attention(p string, ch, kv int) {
	e.add(p+".to_q.weight", KindWeight, ch, ch)
	e.add(p+".to_k.weight", KindWeight, ch, kv)
	e.add(p+".to_v.weight", KindWeight, ch, kv)
	e.linear(p+".to_out.0", ch, ch)
}

// vae follows AutoencoderKL: encoder, decoder, quant_conv, post_quant_conv.
func (e *sdEnum) vae(p string, v VAEConfig) {
	last := len(v.ChannelMult) - 1
	enc := p + "encoder."
	e.linear(enc+"conv_in", v.Channels, v.ImageChannels, 3, 3)
	ch := v.Channels
	for i, m := range v.ChannelMult {
		for j := range v.NumResBlocks {
			e.vaeResBlock(enc+"down."+itoa(i)+".block."+itoa(j), ch, m*v.Channels)
			ch = m * v.Channels
		}
		if i != last {
			e.linear(enc+"down."+itoa(i)+".downsample.conv", ch, ch, 3, 3)
		}
	}
	e.vaeMid(enc+"mid.", ch)
	e.norm(enc+"norm_out", ch)
	e.linear(enc+"conv_out", 2*v.ZChannels, ch, 3, 3)

	dec := p + "decoder."
	ch = v.ChannelMult[last] * v.Channels
	e.linear(dec+"conv_in", ch, v.ZChannels, 3, 3)
	e.vaeMid(dec+"mid.", ch)
	for i := last; i >= 0; i-- {
		out := v.ChannelMult[i] * v.Channels
		for j := 0; j <= v.NumResBlocks; j++ {
			e.vaeResBlock(dec+"up."+itoa(i)+".block."+itoa(j), ch, out)
			ch = out
		}
		if i != 0 {
			e.linear(dec+"up."+itoa(i)+".upsample.conv", ch, ch, 3, 3)
		}
	}
	e.norm(dec+"norm_out", ch)
	e.linear(dec+"conv_out", v.ImageChannels, ch, 3, 3)
	e.linear(p+"quant_conv", 2*v.ZChannels, 2*v.ZChannels, 1, 1)
	e.linear(p+"post_quant_conv", v.ZChannels, v.ZChannels, 1, 1)
}

// vaeResBlock is the autoencoder's ResnetBlock (no time embedding).
func (e *sdEnum) vaeResBlock(p string, in, out int) {
	e.norm(p+".norm1", in)
	e.linear(p+".conv1", out, in, 3, 3)
	e.norm(p+".norm2", out)
	e.linear(p+".conv2", out, out, 3, 3)
	if in != out {
		e.linear(p+".nin_shortcut", out, in, 1, 1)
	}
}

// vaeMid is ResnetBlock, single-head AttnBlock (1×1 conv q/k/v/proj_out),
// ResnetBlock.
func (e *sdEnum) vaeMid(p string, ch int) {
	e.vaeResBlock(p+"block_1", ch, ch)
	e.norm(p+"attn_1.norm", ch)
	for _, n := range []string{"q", "k", "v", "proj_out"} {
		e.linear(p+"attn_1."+n, ch, ch, 1, 1)
	}
	e.vaeResBlock(p+"block_2", ch, ch)
}

// clip is transformers' CLIPTextModel state dict (text_model.*).
func (e *sdEnum) clip(c CLIPTextConfig) {
	p := c.Prefix
	e.add(p+"embeddings.token_embedding.weight", KindWeight, c.Vocab, c.Hidden)
	e.add(p+"embeddings.position_embedding.weight", KindWeight, c.Positions, c.Hidden)
	e.add(p+"embeddings.position_ids", KindPos, 1, c.Positions)
	for l := range c.Layers {
		lp := p + "encoder.layers." + itoa(l) + "."
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			e.linear(lp+"self_attn."+n, c.Hidden, c.Hidden)
		}
		e.norm(lp+"layer_norm1", c.Hidden)
		e.linear(lp+"mlp.fc1", c.MLP, c.Hidden)
		e.linear(lp+"mlp.fc2", c.Hidden, c.MLP)
		e.norm(lp+"layer_norm2", c.Hidden)
	}
	e.norm(p+"final_layer_norm", c.Hidden)
}

// openCLIP is open_clip's text tower as SGM's FrozenOpenCLIPEmbedder2
// stores it (the visual tower removed).
func (e *sdEnum) openCLIP(c OpenCLIPTextConfig) {
	p := c.Prefix
	e.add(p+"positional_embedding", KindWeight, c.Positions, c.Hidden)
	e.out = append(e.out, SDTensor{Name: p + "text_projection", Shape: []int{c.Hidden, c.Projection},
		Kind: KindWeight, Symmetric: c.SymmetricProjection})
	e.add(p+"logit_scale", KindWeight)
	e.add(p+"token_embedding.weight", KindWeight, c.Vocab, c.Hidden)
	e.norm(p+"ln_final", c.Hidden)
	for l := range c.Layers {
		lp := p + "transformer.resblocks." + itoa(l) + "."
		e.norm(lp+"ln_1", c.Hidden)
		e.add(lp+"attn.in_proj_weight", KindWeight, 3*c.Hidden, c.Hidden)
		e.add(lp+"attn.in_proj_bias", KindBias, 3*c.Hidden)
		e.linear(lp+"attn.out_proj", c.Hidden, c.Hidden)
		e.norm(lp+"ln_2", c.Hidden)
		e.linear(lp+"mlp.c_fc", c.MLP, c.Hidden)
		e.linear(lp+"mlp.c_proj", c.Hidden, c.MLP)
	}
}
