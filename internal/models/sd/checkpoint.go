// Package sd opens Stable Diffusion checkpoints: a single-file
// .safetensors (A1111/CivitAI, "LDM" names) or a diffusers folder, whose
// names are mapped to the single-file ones. It detects the model kind from
// the tensors and serves the weights to the components (CLIP, UNet, VAE)
// as a param.Source with sd.cpp's dtype policy, memory-mapped and without
// copies where the stored dtype is the one used.
package sd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"mica/internal/format/safetensors"
	"mica/internal/models/sd/unet"
)

// Name prefixes of the components in the single-file layout.
const (
	UNetPrefix  = "model.diffusion_model."
	VAEPrefix   = "first_stage_model."
	SD1Text     = "cond_stage_model.transformer." // + "text_model.*" (CLIP ViT-L/14, HF layout)
	SD2Text     = "cond_stage_model.model."       // OpenCLIP ViT-H
	SDXLText1   = "conditioner.embedders.0.transformer."
	SDXLText2   = "conditioner.embedders.1.model." // OpenCLIP ViT-bigG
	RefinerText = "conditioner.embedders.0.model." // the SDXL refiner's only encoder (bigG)
)

// Kind is the model family a checkpoint holds.
type Kind int

// Checkpoint kinds.
const (
	Unknown     Kind = iota
	SD1              // SD 1.x: CLIP-L, context 768, 4-channel UNet
	SD1Inpaint       // SD 1.x inpainting: 9-channel UNet input (latent, mask, masked latent)
	SD2              // SD 2.x: OpenCLIP-H, context 1024 (detected, not supported yet)
	SDXL             // SDXL base: CLIP-L + bigG, context 2048, ADM 2816
	SDXLInpaint      // SDXL base layout with a 9-channel UNet input
	SDXLRefiner      // SDXL refiner: bigG only, context 1280, ADM 2560
)

func (k Kind) String() string {
	switch k {
	case SD1:
		return "SD 1.x"
	case SD1Inpaint:
		return "SD 1.x inpainting"
	case SD2:
		return "SD 2.x"
	case SDXL:
		return "SDXL"
	case SDXLInpaint:
		return "SDXL inpainting"
	case SDXLRefiner:
		return "SDXL refiner"
	}
	return "unknown"
}

// Family is the UNet family of the kind (how it counts attention heads).
func (k Kind) Family() unet.Family {
	switch k {
	case SD2:
		return unet.SD2
	case SDXL, SDXLInpaint, SDXLRefiner:
		return unet.SDXL
	}
	return unet.SD1
}

// IsSDXL reports an SDXL-family kind.
func (k Kind) IsSDXL() bool { return k.Family() == unet.SDXL }

// ErrUnsupported is wrapped by errors for checkpoints mica recognises but
// cannot run.
var ErrUnsupported = errors.New("not supported")

// Checkpoint is an open checkpoint: every tensor under its single-file
// name, backed by memory-mapped safetensors files.
type Checkpoint struct {
	Path      string
	Kind      Kind
	Diffusers bool // opened from a diffusers folder
	// TokenizerDir is a diffusers folder's tokenizer/ (vocab.json,
	// merges.txt), or "" for single-file checkpoints.
	TokenizerDir string
	// SeparateVAE is set once SetVAE replaced the checkpoint's VAE.
	SeparateVAE bool

	files   []*safetensors.File
	tensors map[string]*entry
}

// entry locates one single-file-named tensor in the files.
type entry struct {
	parts     []part // one, or several concatenated along the first dimension
	shape     []int  // the single-file shape
	transpose bool   // 2-D tensor stored transposed (diffusers' text_projection)
}

type part struct {
	f    *safetensors.File
	info *safetensors.TensorInfo
}

func (e *entry) file() string { return e.parts[0].f.Path + ": " + e.parts[0].info.Name }

// Open opens a single .safetensors checkpoint or a diffusers folder and
// detects its kind. Unknown layouts, SD 2.x and bad files give errors
// naming what was found.
func Open(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sd: %w", err)
	}
	c := &Checkpoint{Path: path, tensors: map[string]*entry{}}
	if st.IsDir() {
		err = c.openDiffusers(path)
	} else {
		err = c.openSingle(path)
	}
	if err == nil {
		c.Kind, err = detect(c)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Checkpoint) open(path string) (*safetensors.File, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	c.files = append(c.files, f)
	return f, nil
}

func (c *Checkpoint) openSingle(path string) error {
	f, err := c.open(path)
	if err != nil {
		return err
	}
	for i := range f.Tensors {
		c.add(f.Tensors[i].Name, f, &f.Tensors[i])
	}
	return nil
}

func (c *Checkpoint) add(name string, f *safetensors.File, info *safetensors.TensorInfo) {
	shape := make([]int, len(info.Shape))
	for i, d := range info.Shape {
		shape[i] = int(d)
	}
	c.tensors[name] = &entry{parts: []part{{f, info}}, shape: shape}
}

// SetVAE replaces the checkpoint's VAE with the one in path: a
// single-file VAE (names with or without "first_stage_model."), or a
// diffusers VAE file or folder. SDXL then decodes without sd.cpp's 1/32
// conv scale (VAEConvScale returns 1).
func (c *Checkpoint) SetVAE(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "diffusion_pytorch_model.safetensors")
	}
	f, err := c.open(path)
	if err != nil {
		return err
	}
	vae := map[string]*entry{}
	diffusers := false
	for i := range f.Tensors {
		if strings.Contains(f.Tensors[i].Name, "mid_block.") {
			diffusers = true
		}
	}
	for i := range f.Tensors {
		info := &f.Tensors[i]
		name := strings.TrimPrefix(info.Name, VAEPrefix)
		if diffusers {
			var ok bool
			if name, ok = diffusersVAEName(name, f); !ok {
				continue
			}
		}
		if !strings.HasPrefix(name, "encoder.") && !strings.HasPrefix(name, "decoder.") &&
			name != "quant_conv.weight" && name != "quant_conv.bias" && name != "post_quant_conv.weight" && name != "post_quant_conv.bias" {
			continue
		}
		e := &entry{parts: []part{{f, info}}}
		for _, d := range info.Shape {
			e.shape = append(e.shape, int(d))
		}
		vaeAttnShape(name, e)
		vae[VAEPrefix+name] = e
	}
	if _, ok := vae[VAEPrefix+"decoder.conv_in.weight"]; !ok {
		return fmt.Errorf("sd: %s holds no VAE decoder (decoder.conv_in.weight)", path)
	}
	for k := range c.tensors {
		if strings.HasPrefix(k, VAEPrefix) {
			delete(c.tensors, k)
		}
	}
	for k, e := range vae {
		c.tensors[k] = e
	}
	c.SeparateVAE = true
	return nil
}

// VAEConvScale is the conv scale the VAE should run with: 1/32 for SDXL
// checkpoints decoded with their own VAE (sd.cpp's guard against the SDXL
// VAE's F16 overflow, which its references were made with), else 1.
func (c *Checkpoint) VAEConvScale() float32 {
	if c.Kind.IsSDXL() && !c.SeparateVAE {
		return 1.0 / 32
	}
	return 1
}

// LatentScale is the factor between the VAE's latent and the sampler's:
// 0.13025 for SDXL, 0.18215 for SD 1.x/2.x.
func (c *Checkpoint) LatentScale() float32 {
	if c.Kind.IsSDXL() {
		return 0.13025
	}
	return 0.18215
}

// Names lists every tensor's single-file name, sorted.
func (c *Checkpoint) Names() []string {
	out := make([]string, 0, len(c.tensors))
	for k := range c.tensors {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Shape returns a tensor's single-file shape.
func (c *Checkpoint) Shape(name string) ([]int, bool) {
	e, ok := c.tensors[name]
	if !ok {
		return nil, false
	}
	return e.shape, true
}

// Close unmaps the files; tensors served from them must not be used after.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	c.files = nil
	return errors.Join(errs...)
}

func (c *Checkpoint) has(prefix string) bool {
	for k := range c.tensors {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// detect names the kind from the UNet's input channels, context width and
// ADM width and from which text encoders are present.
func detect(c *Checkpoint) (Kind, error) {
	in, ok := c.Shape(UNetPrefix + "input_blocks.0.0.weight")
	if !ok || len(in) != 4 {
		return Unknown, fmt.Errorf("sd: %s: no UNet (%sinput_blocks.0.0.weight) found; the file holds %s", c.Path, UNetPrefix, c.summary())
	}
	inC := in[1]
	ctx := 0
	for _, k := range c.Names() {
		if strings.HasPrefix(k, UNetPrefix) && strings.HasSuffix(k, ".attn2.to_k.weight") {
			if s := c.tensors[k].shape; len(s) == 2 {
				ctx = s[1]
			}
			break
		}
	}
	adm := 0
	if s, ok := c.Shape(UNetPrefix + "label_emb.0.0.weight"); ok && len(s) == 2 {
		adm = s[1]
	}
	clipL := c.width(SD1Text+"text_model.", SDXLText1+"text_model.")
	bigG := c.width(SDXLText2, RefinerText)
	found := fmt.Sprintf("UNet input %d channels, context %d, ADM %d, text encoders %s", inC, ctx, adm, c.encoders())
	inpaint := inC == 9
	if inC != 4 && inC != 9 {
		return Unknown, fmt.Errorf("sd: %s: unknown layout (%s): the UNet input must have 4 or 9 channels", c.Path, found)
	}
	// The UNet's context is the text encoders' hidden states side by side
	// (CLIP-L, then bigG for SDXL); SDXL's ADM input is the pooled bigG
	// output plus 6 (base) or 5 (refiner: size, crop, aesthetic score)
	// 256-wide embeddings.
	//
	// The refiner (Stability-AI/generative-models
	// configs/inference/sd_xl_refiner.yaml): network_config
	// adm_in_channels 2560, model_channels 384, channel_mult [1,2,4,4],
	// attention_resolutions [4,2] with transformer_depth 4 (attention at
	// the middle two levels; the middle block's depth is the last entry,
	// 4, per openaimodel.UNetModel), num_head_channels 64,
	// use_linear_in_transformer, context_dim 1280; one embedder for text,
	// FrozenOpenCLIPEmbedder2 ViT-bigG-14 (layer penultimate,
	// always_return_pooled) at conditioner.embedders.0.model. (diffusers'
	// single_file_utils.CHECKPOINT_KEY_NAMES["xl_refiner"] is
	// conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias),
	// then original_size_as_tuple, crop_coords_top_left and
	// aesthetic_score, each a ConcatTimestepEmbedderND of outdim 256:
	// 1280 + 2·256 + 2·256 + 256 = 2560. ComfyUI's
	// supported_models.SDXLRefiner matches on model_channels 384, context
	// 1280 and adm 2560 too. Only the context, the ADM width and the
	// encoders decide the kind here; the UNet's levels and depths are read
	// from the shapes by unet.DetectConfig.
	switch {
	case c.has(SD2Text) || (c.has(SD1Text) && clipL == 1024):
		return SD2, fmt.Errorf("sd: %s: SD 2.x checkpoint (%s): %w yet (v-prediction and the OpenCLIP-H encoder are not implemented)", c.Path, found, ErrUnsupported)
	case c.has(SDXLText1) && c.has(SDXLText2) && ctx == clipL+bigG && adm == bigG+6*256:
		if inpaint {
			return SDXLInpaint, nil
		}
		return SDXL, nil
	case c.has(RefinerText) && !c.has(SDXLText1) && ctx == bigG && adm == bigG+5*256 && !inpaint:
		return SDXLRefiner, nil
	case c.has(SD1Text) && ctx == clipL && adm == 0:
		if inpaint {
			return SD1Inpaint, nil
		}
		return SD1, nil
	}
	return Unknown, fmt.Errorf("sd: %s: unknown layout (%s)", c.Path, found)
}

// width is a text encoder's hidden size, from its token embedding [V, D]
// under the first prefix that has one (0 if none does).
func (c *Checkpoint) width(prefixes ...string) int {
	for _, p := range prefixes {
		for _, n := range []string{"embeddings.token_embedding.weight", "token_embedding.weight"} {
			if s, ok := c.Shape(p + n); ok && len(s) == 2 {
				return s[1]
			}
		}
	}
	return 0
}

func (c *Checkpoint) encoders() string {
	var out []string
	for _, p := range []string{SD1Text, SD2Text, SDXLText1, SDXLText2, RefinerText} {
		if c.has(p) {
			out = append(out, strings.TrimSuffix(p, "."))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// summary counts the tensors by their first two name components.
func (c *Checkpoint) summary() string {
	counts := map[string]int{}
	for k := range c.tensors {
		parts := strings.SplitN(k, ".", 3)
		p := parts[0]
		if len(parts) > 2 {
			p += "." + parts[1]
		}
		counts[p]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 8 {
		keys = append(keys[:8], "…")
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d tensors", len(c.tensors))
	for i, k := range keys {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString(", ")
		}
		if k == "…" {
			sb.WriteString(k)
			continue
		}
		fmt.Fprintf(&sb, "%s.* (%d)", k, counts[k])
	}
	return sb.String()
}
