package sd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"mica/internal/format/safetensors"
)

// A diffusers folder keeps each component in its own subfolder with
// diffusers' (UNet, VAE) or Hugging Face's (text encoders) names. They are
// mapped here to the single-file names, the ones the components bind: the
// correspondence is that of diffusers' conversion scripts
// (convert_diffusers_to_original_stable_diffusion.py and the SDXL one).

// weightFiles finds a component's safetensors files: base.safetensors,
// base.fp16.safetensors, or the shards listed by base.safetensors.index.json.
func weightFiles(dir, base string) ([]string, error) {
	for _, n := range []string{base + ".safetensors", base + ".fp16.safetensors"} {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return []string{p}, nil
		}
	}
	for _, n := range []string{base + ".safetensors.index.json", base + ".safetensors.index.fp16.json", base + ".fp16.safetensors.index.json"} {
		raw, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, fmt.Errorf("sd: %s: %w", filepath.Join(dir, n), err)
		}
		seen := map[string]bool{}
		var out []string
		for _, f := range idx.WeightMap {
			if strings.Contains(f, "/") || strings.Contains(f, `\`) || f == ".." {
				return nil, fmt.Errorf("sd: %s: shard name %q leaves the folder", filepath.Join(dir, n), f)
			}
			if !seen[f] {
				seen[f] = true
				out = append(out, filepath.Join(dir, f))
			}
		}
		sort.Strings(out)
		return out, nil
	}
	return nil, os.ErrNotExist
}

// component opens a component's files (nil when the folder is absent).
func (c *Checkpoint) component(root, sub, base string) ([]*safetensors.File, error) {
	dir := filepath.Join(root, sub)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, nil
	}
	paths, err := weightFiles(dir, base)
	if err != nil {
		return nil, fmt.Errorf("sd: %s: no %s.safetensors (other weight formats are not read)", dir, base)
	}
	var fs []*safetensors.File
	for _, p := range paths {
		f, err := c.open(p)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func (c *Checkpoint) openDiffusers(root string) error {
	c.Diffusers = true
	unetFiles, err := c.component(root, "unet", "diffusion_pytorch_model")
	if err != nil {
		return err
	}
	if unetFiles == nil {
		return fmt.Errorf("sd: %s: a folder but not a diffusers model (no unet/ folder)", root)
	}
	vaeFiles, err := c.component(root, "vae", "diffusion_pytorch_model")
	if err != nil {
		return err
	}
	te1, err := c.component(root, "text_encoder", "model")
	if err != nil {
		return err
	}
	te2, err := c.component(root, "text_encoder_2", "model")
	if err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(root, "tokenizer")); err == nil && st.IsDir() {
		c.TokenizerDir = filepath.Join(root, "tokenizer")
	} else if st, err := os.Stat(filepath.Join(root, "tokenizer_2")); err == nil && st.IsDir() {
		c.TokenizerDir = filepath.Join(root, "tokenizer_2")
	}

	u := newUNetNames(unetFiles)
	for _, f := range unetFiles {
		for i := range f.Tensors {
			info := &f.Tensors[i]
			name, ok := u.ldm(info.Name)
			if !ok {
				return fmt.Errorf("sd: %s: unknown diffusers UNet tensor %q", f.Path, info.Name)
			}
			c.add(UNetPrefix+name, f, info)
		}
	}
	for _, f := range vaeFiles {
		for i := range f.Tensors {
			info := &f.Tensors[i]
			name, ok := diffusersVAEName(info.Name, vaeFiles...)
			if !ok {
				return fmt.Errorf("sd: %s: unknown diffusers VAE tensor %q", f.Path, info.Name)
			}
			c.add(VAEPrefix+name, f, info)
			vaeAttnShape(name, c.tensors[VAEPrefix+name])
		}
	}
	// CLIP-L keeps its Hugging Face names under the single-file prefix.
	clipPrefix := SD1Text
	if te2 != nil {
		clipPrefix = SDXLText1
	}
	for _, f := range te1 {
		for i := range f.Tensors {
			c.add(clipPrefix+f.Tensors[i].Name, f, &f.Tensors[i])
		}
	}
	if te2 != nil {
		prefix := SDXLText2
		if te1 == nil {
			prefix = RefinerText // the refiner has only the bigG encoder
		}
		if err := c.addOpenCLIP(prefix, te2); err != nil {
			return err
		}
	}
	return nil
}

// unetNames maps diffusers UNet names to single-file ones.
type unetNames struct {
	perLevel int          // ResBlocks per down level, plus one (the input_blocks stride)
	midAttn  bool         // mid_block has attentions (middle_block.1 is a transformer)
	upAttn   map[int]bool // up_blocks.i has attentions
}

var indexed = regexp.MustCompile(`^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)$`)

func newUNetNames(fs []*safetensors.File) *unetNames {
	u := &unetNames{upAttn: map[int]bool{}}
	nres := 0
	for _, f := range fs {
		for _, t := range f.Tensors {
			if strings.HasPrefix(t.Name, "mid_block.attentions.") {
				u.midAttn = true
			}
			m := indexed.FindStringSubmatch(t.Name)
			if m == nil {
				continue
			}
			i, _ := strconv.Atoi(m[2])
			j, _ := strconv.Atoi(m[4])
			if m[1] == "down_blocks" && i == 0 && m[3] == "resnets" {
				nres = max(nres, j+1)
			}
			if m[1] == "up_blocks" && m[3] == "attentions" {
				u.upAttn[i] = true
			}
		}
	}
	u.perLevel = nres + 1
	return u
}

// resnetNames: diffusers ResnetBlock2D → LDM ResBlock sub-layer names.
var resnetNames = map[string]string{
	"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
	"norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}

func resnetRest(rest string) (string, bool) {
	layer, param, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	l, ok := resnetNames[layer]
	return l + "." + param, ok
}

func (u *unetNames) ldm(name string) (string, bool) {
	for from, to := range map[string]string{
		"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
		"add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
		"conv_norm_out.": "out.0.", "conv_out.": "out.2.",
	} {
		if strings.HasPrefix(name, from) {
			return to + strings.TrimPrefix(name, from), true
		}
	}
	if rest, ok := strings.CutPrefix(name, "mid_block."); ok {
		kind, rest, _ := strings.Cut(rest, ".")
		idx, rest, _ := strings.Cut(rest, ".")
		k, err := strconv.Atoi(idx)
		if err != nil {
			return "", false
		}
		switch kind {
		case "attentions":
			return "middle_block.1." + rest, k == 0
		case "resnets":
			if u.midAttn {
				k *= 2
			}
			r, ok := resnetRest(rest)
			return fmt.Sprintf("middle_block.%d.%s", k, r), ok
		}
		return "", false
	}
	m := indexed.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	i, _ := strconv.Atoi(m[2])
	j, _ := strconv.Atoi(m[4])
	rest := m[5]
	switch m[1] + "." + m[3] {
	case "down_blocks.resnets":
		r, ok := resnetRest(rest)
		return fmt.Sprintf("input_blocks.%d.0.%s", u.perLevel*i+j+1, r), ok
	case "down_blocks.attentions":
		return fmt.Sprintf("input_blocks.%d.1.%s", u.perLevel*i+j+1, rest), true
	case "down_blocks.downsamplers":
		r, ok := strings.CutPrefix(rest, "conv.")
		return fmt.Sprintf("input_blocks.%d.0.op.%s", u.perLevel*(i+1), r), ok && j == 0
	case "up_blocks.resnets":
		r, ok := resnetRest(rest)
		return fmt.Sprintf("output_blocks.%d.0.%s", u.perLevel*i+j, r), ok
	case "up_blocks.attentions":
		return fmt.Sprintf("output_blocks.%d.1.%s", u.perLevel*i+j, rest), true
	case "up_blocks.upsamplers":
		slot := 1
		if u.upAttn[i] {
			slot = 2
		}
		r, ok := strings.CutPrefix(rest, "conv.")
		return fmt.Sprintf("output_blocks.%d.%d.conv.%s", u.perLevel*i+u.perLevel-1, slot, r), ok && j == 0
	}
	return "", false
}

var vaeIndexed = regexp.MustCompile(`^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)$`)

// diffusersVAEName maps a diffusers AutoencoderKL name to the single-file
// one (without "first_stage_model."); fs are the VAE's files (the decoder's
// level count reverses up_blocks' numbering).
func diffusersVAEName(name string, fs ...*safetensors.File) (string, bool) {
	switch name {
	case "quant_conv.weight", "quant_conv.bias", "post_quant_conv.weight", "post_quant_conv.bias":
		return name, true
	}
	side, rest, ok := strings.Cut(name, ".")
	if !ok || (side != "encoder" && side != "decoder") {
		return "", false
	}
	for from, to := range map[string]string{"conv_in.": "conv_in.", "conv_out.": "conv_out.", "conv_norm_out.": "norm_out."} {
		if r, ok := strings.CutPrefix(rest, from); ok {
			return side + "." + to + r, true
		}
	}
	if r, ok := strings.CutPrefix(rest, "mid_block."); ok {
		for from, to := range map[string]string{
			"resnets.0.": "block_1.", "resnets.1.": "block_2.",
			"attentions.0.group_norm.": "attn_1.norm.",
			"attentions.0.to_q.":       "attn_1.q.", "attentions.0.query.": "attn_1.q.",
			"attentions.0.to_k.": "attn_1.k.", "attentions.0.key.": "attn_1.k.",
			"attentions.0.to_v.": "attn_1.v.", "attentions.0.value.": "attn_1.v.",
			"attentions.0.to_out.0.": "attn_1.proj_out.", "attentions.0.proj_attn.": "attn_1.proj_out.",
		} {
			if p, ok := strings.CutPrefix(r, from); ok {
				return side + ".mid." + to + strings.Replace(p, "conv_shortcut.", "nin_shortcut.", 1), true
			}
		}
		return "", false
	}
	m := vaeIndexed.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	i, _ := strconv.Atoi(m[3])
	j, _ := strconv.Atoi(m[5])
	p := m[6]
	switch m[2] + "." + m[4] {
	case "down_blocks.resnets":
		return fmt.Sprintf("encoder.down.%d.block.%d.%s", i, j, strings.Replace(p, "conv_shortcut.", "nin_shortcut.", 1)), side == "encoder"
	case "down_blocks.downsamplers":
		r, ok := strings.CutPrefix(p, "conv.")
		return fmt.Sprintf("encoder.down.%d.downsample.conv.%s", i, r), ok && side == "encoder" && j == 0
	}
	levels := 0
	for _, f := range fs {
		for _, t := range f.Tensors {
			if m := vaeIndexed.FindStringSubmatch(t.Name); m != nil && m[1] == "decoder" && m[2] == "up_blocks" {
				n, _ := strconv.Atoi(m[3])
				levels = max(levels, n+1)
			}
		}
	}
	l := levels - 1 - i
	switch m[2] + "." + m[4] {
	case "up_blocks.resnets":
		return fmt.Sprintf("decoder.up.%d.block.%d.%s", l, j, strings.Replace(p, "conv_shortcut.", "nin_shortcut.", 1)), side == "decoder" && l >= 0
	case "up_blocks.upsamplers":
		r, ok := strings.CutPrefix(p, "conv.")
		return fmt.Sprintf("decoder.up.%d.upsample.conv.%s", l, r), ok && side == "decoder" && j == 0 && l >= 0
	}
	return "", false
}

// vaeAttnShape gives the mid-block attention's q/k/v/proj_out weights
// their single-file conv shape [C, C, 1, 1] when stored as Linear [C, C].
func vaeAttnShape(name string, e *entry) {
	if strings.Contains(name, ".attn_1.") && strings.HasSuffix(name, ".weight") && !strings.Contains(name, ".norm.") && len(e.shape) == 2 {
		e.shape = append(e.shape, 1, 1)
	}
}

// addOpenCLIP maps a Hugging Face CLIPTextModelWithProjection (diffusers'
// text_encoder_2) to OpenCLIP's single-file names under prefix: q, k and v
// are joined into in_proj, and text_projection is transposed (HF stores
// the Linear weight, OpenCLIP the matrix applied as h·T).
func (c *Checkpoint) addOpenCLIP(prefix string, fs []*safetensors.File) error {
	infos := map[string]part{}
	for _, f := range fs {
		for i := range f.Tensors {
			infos[f.Tensors[i].Name] = part{f, &f.Tensors[i]}
		}
	}
	shapeOf := func(p part) []int {
		s := make([]int, len(p.info.Shape))
		for i, d := range p.info.Shape {
			s[i] = int(d)
		}
		return s
	}
	layer := regexp.MustCompile(`^text_model\.encoder\.layers\.(\d+)\.(.*)$`)
	for name, p := range infos {
		var to string
		switch name {
		case "text_model.embeddings.token_embedding.weight":
			to = "token_embedding.weight"
		case "text_model.embeddings.position_embedding.weight":
			to = "positional_embedding"
		case "text_model.final_layer_norm.weight":
			to = "ln_final.weight"
		case "text_model.final_layer_norm.bias":
			to = "ln_final.bias"
		case "text_model.embeddings.position_ids":
			continue
		case "text_projection.weight":
			s := shapeOf(p)
			if len(s) != 2 {
				return fmt.Errorf("sd: %s: text_projection.weight has shape %v", p.f.Path, s)
			}
			c.tensors[prefix+"text_projection"] = &entry{parts: []part{p}, shape: []int{s[1], s[0]}, transpose: true}
			continue
		}
		if to == "" {
			m := layer.FindStringSubmatch(name)
			if m == nil {
				return fmt.Errorf("sd: %s: unknown text_encoder_2 tensor %q", p.f.Path, name)
			}
			lp := "transformer.resblocks." + m[1] + "."
			rest := m[2]
			switch {
			case strings.HasPrefix(rest, "self_attn.q_proj."):
				// The fused in_proj is made from q, k and v below.
				param := strings.TrimPrefix(rest, "self_attn.q_proj.")
				var parts []part
				shape := []int{0}
				for _, x := range []string{"q", "k", "v"} {
					q, ok := infos["text_model.encoder.layers."+m[1]+".self_attn."+x+"_proj."+param]
					if !ok {
						return fmt.Errorf("sd: %s: layer %s has q_proj.%s but no %s_proj.%s", p.f.Path, m[1], param, x, param)
					}
					s := shapeOf(q)
					shape[0] += s[0]
					if len(shape) == 1 {
						shape = append(shape, s[1:]...)
					}
					parts = append(parts, q)
				}
				c.tensors[prefix+lp+"attn.in_proj_"+param] = &entry{parts: parts, shape: shape}
				continue
			case strings.HasPrefix(rest, "self_attn.k_proj."), strings.HasPrefix(rest, "self_attn.v_proj."):
				continue
			case strings.HasPrefix(rest, "self_attn.out_proj."):
				to = lp + "attn.out_proj." + strings.TrimPrefix(rest, "self_attn.out_proj.")
			case strings.HasPrefix(rest, "layer_norm1."):
				to = lp + "ln_1." + strings.TrimPrefix(rest, "layer_norm1.")
			case strings.HasPrefix(rest, "layer_norm2."):
				to = lp + "ln_2." + strings.TrimPrefix(rest, "layer_norm2.")
			case strings.HasPrefix(rest, "mlp.fc1."):
				to = lp + "mlp.c_fc." + strings.TrimPrefix(rest, "mlp.fc1.")
			case strings.HasPrefix(rest, "mlp.fc2."):
				to = lp + "mlp.c_proj." + strings.TrimPrefix(rest, "mlp.fc2.")
			default:
				return fmt.Errorf("sd: %s: unknown text_encoder_2 tensor %q", p.f.Path, name)
			}
		}
		c.tensors[prefix+to] = &entry{parts: []part{p}, shape: shapeOf(p)}
	}
	return nil
}
