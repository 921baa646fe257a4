package sd

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/models/sd/internal/nn"
	"mica/internal/models/sd/param"
	"mica/internal/models/sd/vae"
	"mica/internal/tensor"
)

// diffusersLayout walks diffusers' module tree for a UNet of levels
// levels with nres ResBlocks per level and attention where attn[level],
// and for a VAE of vlevels levels, and pairs each diffusers module with
// the single-file module it corresponds to. It is written from the
// diffusers side (its module hierarchy), independently of the name
// rewriting in diffusers.go, so the test checks one against the other.
func diffusersLayout(levels, nres int, attn []bool, vlevels, vres int) (unetMods, vaeMods [][2]string) {
	u := func(d, l string) { unetMods = append(unetMods, [2]string{d, l}) }
	u("conv_in", "input_blocks.0.0")
	u("time_embedding.linear_1", "time_embed.0")
	u("time_embedding.linear_2", "time_embed.2")
	block := 1
	for i := 0; i < levels; i++ {
		for j := 0; j < nres; j++ {
			u(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), fmt.Sprintf("input_blocks.%d.0", block))
			if attn[i] {
				u(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), fmt.Sprintf("input_blocks.%d.1", block))
			}
			block++
		}
		if i < levels-1 {
			u(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), fmt.Sprintf("input_blocks.%d.0.op", block))
			block++
		}
	}
	u("mid_block.resnets.0", "middle_block.0")
	u("mid_block.attentions.0", "middle_block.1")
	u("mid_block.resnets.1", "middle_block.2")
	block = 0
	for i := 0; i < levels; i++ {
		level := levels - 1 - i
		for j := 0; j <= nres; j++ {
			u(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), fmt.Sprintf("output_blocks.%d.0", block))
			slot := 1
			if attn[level] {
				u(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), fmt.Sprintf("output_blocks.%d.1", block))
				slot = 2
			}
			if j == nres && level > 0 {
				u(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), fmt.Sprintf("output_blocks.%d.%d.conv", block, slot))
			}
			block++
		}
	}
	u("conv_norm_out", "out.0")
	u("conv_out", "out.2")

	v := func(d, l string) { vaeMods = append(vaeMods, [2]string{d, l}) }
	for _, side := range []string{"encoder", "decoder"} {
		v(side+".conv_in", side+".conv_in")
		v(side+".conv_out", side+".conv_out")
		v(side+".conv_norm_out", side+".norm_out")
		v(side+".mid_block.resnets.0", side+".mid.block_1")
		v(side+".mid_block.resnets.1", side+".mid.block_2")
		v(side+".mid_block.attentions.0.group_norm", side+".mid.attn_1.norm")
		v(side+".mid_block.attentions.0.to_q", side+".mid.attn_1.q")
		v(side+".mid_block.attentions.0.to_k", side+".mid.attn_1.k")
		v(side+".mid_block.attentions.0.to_v", side+".mid.attn_1.v")
		v(side+".mid_block.attentions.0.to_out.0", side+".mid.attn_1.proj_out")
	}
	for i := 0; i < vlevels; i++ {
		for j := 0; j < vres; j++ {
			v(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), fmt.Sprintf("encoder.down.%d.block.%d", i, j))
		}
		if i < vlevels-1 {
			v(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), fmt.Sprintf("encoder.down.%d.downsample.conv", i))
		}
		for j := 0; j <= vres; j++ {
			v(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), fmt.Sprintf("decoder.up.%d.block.%d", vlevels-1-i, j))
		}
		if i < vlevels-1 {
			v(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), fmt.Sprintf("decoder.up.%d.upsample.conv", vlevels-1-i))
		}
	}
	v("quant_conv", "quant_conv")
	v("post_quant_conv", "post_quant_conv")
	return
}

// Sub-module renames inside a ResBlock (UNet) / ResnetBlock (VAE).
var (
	unetResSub = map[string]string{"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
		"out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
	vaeResSub = map[string]string{"nin_shortcut": "conv_shortcut"}
)

// toDiffusers converts the single-file names of vals into a diffusers
// component's names using the module pairs (longest match first).
func toDiffusers(t *testing.T, prefix string, mods [][2]string, resSub map[string]string, vals map[string][]float32, shapes map[string][]int) (map[string][]float32, map[string][]int, map[string]string) {
	dv, ds, back := map[string][]float32{}, map[string][]int{}, map[string]string{}
	for name, v := range vals {
		ldm, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		best := -1
		for i, m := range mods {
			if strings.HasPrefix(ldm, m[1]+".") && (best < 0 || len(m[1]) > len(mods[best][1])) {
				best = i
			}
		}
		if best < 0 {
			t.Fatalf("no diffusers module for %s", name)
		}
		rest := strings.TrimPrefix(ldm, mods[best][1]+".")
		for from, to := range resSub {
			if r, ok := strings.CutPrefix(rest, from+"."); ok && (strings.Contains(mods[best][0], "resnets")) {
				rest = to + "." + r
			}
		}
		d := mods[best][0] + "." + rest
		shape := shapes[name]
		if strings.Contains(d, "attentions.0.to_") && len(shape) == 4 { // diffusers VAE attention is Linear
			shape = shape[:2]
		}
		dv[d], ds[d], back[d] = v, shape, name
	}
	return dv, ds, back
}

// TestDiffusersFolder writes a tiny SD1 model as a diffusers folder and
// checks that it opens with the single-file names and shapes and computes
// exactly what the single-file checkpoint does.
func TestDiffusersFolder(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	vals, shapes := tinyWeights(t, b, tinyUNet())
	dir := t.TempDir()
	single := filepath.Join(dir, "single.safetensors")
	writeFile(t, single, tensor.F16, vals, shapes)

	root := filepath.Join(dir, "model")
	umods, vmods := diffusersLayout(2, 1, []bool{true, true}, 2, 1)
	uv, us, _ := toDiffusers(t, UNetPrefix, umods, unetResSub, vals, shapes)
	writeFile(t, filepath.Join(root, "unet", "diffusion_pytorch_model.safetensors"), tensor.F16, uv, us)
	vv, vs, _ := toDiffusers(t, VAEPrefix, vmods, vaeResSub, vals, shapes)
	writeFile(t, filepath.Join(root, "vae", "diffusion_pytorch_model.fp16.safetensors"), tensor.F16, vv, vs)
	tv, ts := map[string][]float32{}, map[string][]int{}
	for n, v := range vals {
		if r, ok := strings.CutPrefix(n, SD1Text); ok {
			tv[r], ts[r] = v, shapes[n]
		}
	}
	writeFile(t, filepath.Join(root, "text_encoder", "model.safetensors"), tensor.F16, tv, ts)
	if err := os.MkdirAll(filepath.Join(root, "tokenizer"), 0o755); err != nil {
		t.Fatal(err)
	}

	ck, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Kind != SD1 || !ck.Diffusers || ck.TokenizerDir != filepath.Join(root, "tokenizer") {
		t.Errorf("kind %v, diffusers %v, tokenizer %q", ck.Kind, ck.Diffusers, ck.TokenizerDir)
	}
	ref, err := Open(single)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if !reflect.DeepEqual(ck.Names(), ref.Names()) {
		t.Fatalf("diffusers names map to\n%v\nwant\n%v", ck.Names(), ref.Names())
	}
	for _, n := range ref.Names() {
		a, _ := ck.Shape(n)
		w, _ := ref.Shape(n)
		if !reflect.DeepEqual(a, w) {
			t.Errorf("%s: shape %v, want %v", n, a, w)
		}
	}
	srcD, _ := ck.Source(b, SourceOptions{})
	srcS, _ := ref.Source(b, SourceOptions{})
	if got, want := runUNet(t, b, srcD, ck.Kind.Family()), runUNet(t, b, srcS, ref.Kind.Family()); !reflect.DeepEqual(got, want) {
		t.Error("the diffusers UNet computes something else than the single-file one")
	}
	decode := func(src param.Source) []float32 {
		m, err := vae.Load(src, VAEPrefix, vae.Options{})
		if err != nil {
			t.Fatal(err)
		}
		zv := make([]float32, 4*4*4)
		for i := range zv {
			zv[i] = float32(i%7) - 3
		}
		z, _ := nn.UploadF32(b, zv, 1, 4, 4, 4)
		img, _ := b.Alloc(tensor.F32, 1, 3, 8, 8)
		if err := m.Decode(b, z, img); err != nil {
			t.Fatal(err)
		}
		v, _ := nn.ReadF32(b, img)
		return v
	}
	if got, want := decode(srcD), decode(srcS); !reflect.DeepEqual(got, want) {
		t.Error("the diffusers VAE decodes differently from the single-file one")
	}
}

// TestDiffusersOpenCLIP: text_encoder_2 (Hugging Face
// CLIPTextModelWithProjection) is served under OpenCLIP's single-file
// names, with q/k/v fused into in_proj and text_projection transposed.
func TestDiffusersOpenCLIP(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	root := t.TempDir()
	seq := func(n int, base float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = base + float32(i)
		}
		return v
	}
	// A marker SDXL UNet (context 64+128, ADM 128+1536).
	uv := map[string][]float32{
		"conv_in.weight": seq(32*4*9, 0),
		"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": seq(64*192, 0),
		"add_embedding.linear_1.weight":                                     seq(128*1664, 0),
	}
	us := map[string][]int{"conv_in.weight": {32, 4, 3, 3}, "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": {64, 192}, "add_embedding.linear_1.weight": {128, 1664}}
	writeFile(t, filepath.Join(root, "unet", "diffusion_pytorch_model.safetensors"), tensor.F32, uv, us)
	writeFile(t, filepath.Join(root, "text_encoder", "model.safetensors"), tensor.F32,
		map[string][]float32{"text_model.embeddings.token_embedding.weight": seq(10*64, 0)}, map[string][]int{"text_model.embeddings.token_embedding.weight": {10, 64}})
	l := "text_model.encoder.layers.0."
	tv := map[string][]float32{
		"text_model.embeddings.token_embedding.weight":    seq(10*128, 0),
		"text_model.embeddings.position_embedding.weight": seq(4*128, 0),
		"text_model.final_layer_norm.weight":              seq(128, 0),
		"text_projection.weight":                          seq(128*128, 0),
		l + "self_attn.q_proj.weight":                     seq(128*128, 0),
		l + "self_attn.k_proj.weight":                     seq(128*128, 1e5),
		l + "self_attn.v_proj.weight":                     seq(128*128, 2e5),
		l + "self_attn.q_proj.bias":                       seq(128, 0),
		l + "self_attn.k_proj.bias":                       seq(128, 1000),
		l + "self_attn.v_proj.bias":                       seq(128, 2000),
		l + "mlp.fc1.weight":                              seq(512*128, 0),
	}
	ts := map[string][]int{}
	for n, v := range tv {
		switch {
		case len(v) == 128:
			ts[n] = []int{128}
		case strings.Contains(n, "token_embedding"):
			ts[n] = []int{10, 128}
		case strings.Contains(n, "position_embedding"):
			ts[n] = []int{4, 128}
		case strings.Contains(n, "fc1"):
			ts[n] = []int{512, 128}
		default:
			ts[n] = []int{128, 128}
		}
	}
	writeFile(t, filepath.Join(root, "text_encoder_2", "model.safetensors"), tensor.F32, tv, ts)
	ck, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Kind != SDXL {
		t.Fatalf("kind %v, want SDXL", ck.Kind)
	}
	src, _ := ck.Source(b, SourceOptions{})
	p := SDXLText2 + "transformer.resblocks.0."
	w, _ := readAny(b, src.Tensor(p+"attn.in_proj_weight", param.Linear, 384, 128))
	if w[0] != 0 || w[128*128] != 1e5 || w[2*128*128+5] != 2e5+5 {
		t.Errorf("in_proj_weight is not q, k, v in order: %v %v %v", w[0], w[128*128], w[2*128*128+5])
	}
	bias, _ := readAny(b, src.Tensor(p+"attn.in_proj_bias", param.Bias, 384))
	if bias[128] != 1000 || bias[256+1] != 2001 {
		t.Errorf("in_proj_bias: %v %v", bias[128], bias[257])
	}
	tp, _ := readAny(b, src.Tensor(SDXLText2+"text_projection", param.Linear, 128, 128))
	if tp[1] != 128 || tp[128] != 1 { // T[i][j] = HF weight[j][i] = j·128 + i
		t.Errorf("text_projection not transposed: T[0][1] = %v, T[1][0] = %v", tp[1], tp[128])
	}
	for _, n := range []string{"token_embedding.weight", "positional_embedding", "ln_final.weight", "transformer.resblocks.0.mlp.c_fc.weight"} {
		if _, ok := ck.Shape(SDXLText2 + n); !ok {
			t.Errorf("no %s", n)
		}
	}
	if err := src.Err(); err != nil {
		t.Fatal(err)
	}
}
