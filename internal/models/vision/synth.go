package vision

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// tensorSpec is one tensor an mmproj file of a configuration holds.
type tensorSpec struct {
	name  string
	ne    []int   // GGUF order, innermost first
	sigma float32 // N(0, sigma); 0 with one > 0: 1 + N(0, one) (norm weights)
	one   float32
	f32   bool // always stored as F32 (norms, biases, embeddings, scalars)
	fixed []float32
}

// specs lists the tensors of an mmproj file for c, in the converter's order.
func (c *Config) specs() []tensorSpec {
	E, F, P, d := c.Width, c.FF, c.PatchSize, c.HeadDim()
	mat := func(name string, in, out int, sigma float32) tensorSpec {
		return tensorSpec{name: name, ne: []int{in, out}, sigma: sigma}
	}
	vec := func(name string, n int, sigma float32) tensorSpec {
		return tensorSpec{name: name, ne: []int{n}, sigma: sigma, f32: true}
	}
	norm := func(name string, n int) tensorSpec {
		return tensorSpec{name: name, ne: []int{n}, one: 0.1, f32: true}
	}
	var s []tensorSpec
	s = append(s, tensorSpec{name: "v.patch_embd.weight", ne: []int{P, P, 3, E}, sigma: 0.02, f32: true})
	if c.Projector == Gemma3 {
		n := (c.ImageSize / P) * (c.ImageSize / P)
		s = append(s, vec("v.patch_embd.bias", E, 0.02),
			tensorSpec{name: "v.position_embd.weight", ne: []int{E, n}, sigma: 0.02, f32: true})
	} else {
		s = append(s, tensorSpec{name: "v.position_embd.weight", ne: []int{E, c.PosSize, 2}, sigma: 0.02, f32: true})
	}
	for il := 0; il < c.Layers; il++ {
		n := func(x string) string { return fmt.Sprintf("v.blk.%d.%s", il, x) }
		if c.Projector == Gemma3 {
			s = append(s, norm(n("ln1.weight"), E), vec(n("ln1.bias"), E, 0.02),
				mat(n("attn_q.weight"), E, E, 0.08), vec(n("attn_q.bias"), E, 0.02),
				mat(n("attn_k.weight"), E, E, 0.08), vec(n("attn_k.bias"), E, 0.02),
				mat(n("attn_v.weight"), E, E, 0.05), vec(n("attn_v.bias"), E, 0.02),
				mat(n("attn_out.weight"), E, E, 0.05), vec(n("attn_out.bias"), E, 0.02),
				norm(n("ln2.weight"), E), vec(n("ln2.bias"), E, 0.02),
				mat(n("ffn_up.weight"), E, F, 0.05), vec(n("ffn_up.bias"), F, 0.02),
				mat(n("ffn_down.weight"), F, E, 0.05), vec(n("ffn_down.bias"), E, 0.02))
			continue
		}
		qk := norm(n("attn_q_norm.weight"), d)
		kk := norm(n("attn_k_norm.weight"), d)
		s = append(s, norm(n("ln1.weight"), E),
			mat(n("attn_q.weight"), E, E, 0.05), mat(n("attn_k.weight"), E, E, 0.05),
			mat(n("attn_v.weight"), E, E, 0.05), mat(n("attn_out.weight"), E, E, 0.05),
			qk, kk, norm(n("attn_post_norm.weight"), E), norm(n("ln2.weight"), E),
			mat(n("ffn_gate.weight"), E, F, 0.05), mat(n("ffn_up.weight"), E, F, 0.05),
			mat(n("ffn_down.weight"), F, E, 0.05), norm(n("ffn_post_norm.weight"), E),
			tensorSpec{name: n("out_scale.weight"), ne: []int{1}, f32: true, fixed: []float32{0.9}})
	}
	if c.Projector == Gemma3 {
		s = append(s, norm("v.post_ln.weight", E), vec("v.post_ln.bias", E, 0.02),
			norm("mm.soft_emb_norm.weight", E), mat("mm.input_projection.weight", c.ProjDim, E, 0.05))
	} else {
		s = append(s, vec("v.std_bias", E, 0.1), norm("v.std_scale", E),
			mat("mm.input_projection.weight", E, c.ProjDim, 0.05))
	}
	return s
}

// meta is the configuration's clip.* metadata as llama.cpp's converter
// writes it.
func (c *Config) meta(name string) []gguf.KV {
	kv := []gguf.KV{
		gguf.String("general.architecture", "clip"),
		gguf.String("general.type", "mmproj"),
		gguf.String("general.name", name),
		gguf.Uint32("general.file_type", uint32(c.FileType)),
		gguf.Bool("clip.has_vision_encoder", true),
		gguf.Uint32("clip.vision.projection_dim", uint32(c.ProjDim)),
		gguf.Uint32("clip.vision.embedding_length", uint32(c.Width)),
		gguf.Uint32("clip.vision.feed_forward_length", uint32(c.FF)),
		gguf.Uint32("clip.vision.block_count", uint32(c.Layers)),
		gguf.Uint32("clip.vision.attention.head_count", uint32(c.Heads)),
		gguf.Float32("clip.vision.attention.layer_norm_epsilon", c.Eps),
	}
	if c.Projector == Gemma3 {
		kv = append(kv, gguf.String("clip.projector_type", string(c.Projector)))
	} else {
		kv = append(kv, gguf.String("clip.vision.projector_type", string(c.Projector)))
	}
	kv = append(kv,
		gguf.Uint32("clip.vision.image_size", uint32(c.ImageSize)),
		gguf.Uint32("clip.vision.patch_size", uint32(c.PatchSize)),
		gguf.Float32s("clip.vision.image_mean", c.Mean[:]),
		gguf.Float32s("clip.vision.image_std", c.Std[:]))
	switch c.Act {
	case compute.GELU:
		kv = append(kv, gguf.Bool("clip.use_gelu", true))
	case compute.SiLU:
		kv = append(kv, gguf.Bool("clip.use_silu", true))
	}
	if c.Merge != map[ProjectorType]int{Gemma3: 4, Gemma4V: 3}[c.Projector] {
		kv = append(kv, gguf.Uint32("clip.vision.projector.scale_factor", uint32(c.Merge)))
	}
	return kv
}

// WriteSynth writes an mmproj GGUF for c with random weights drawn from
// seed: matrices N(0, 0.02…0.08) (F16 when c.FileType is 1, else F32),
// norm weights 1 + N(0, 0.1), embeddings, biases and norms F32. The file
// loads with Open and has real files' names, shapes and keys, for tests
// and benchmarks at real sizes.
func WriteSynth(path string, c *Config, seed uint64) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("vision: synth: %w", err)
	}
	if c.Projector != Gemma3 && c.Projector != Gemma4V {
		return fmt.Errorf("vision: synth: projector %q is not supported", c.Projector)
	}
	if c.FileType != 0 && c.FileType != 1 {
		return fmt.Errorf("vision: synth: file type %d: want 0 (F32) or 1 (F16)", c.FileType)
	}
	specs := c.specs()
	infos := make([]gguf.TensorInfo, len(specs))
	for i, s := range specs {
		dt := tensor.F32
		if !s.f32 && c.FileType == 1 {
			dt = tensor.F16
		}
		ne := make([]int64, len(s.ne))
		for j, d := range s.ne {
			ne[j] = int64(d)
		}
		infos[i] = gguf.TensorInfo{Name: s.name, Type: dt, Shape: ne}
	}
	w, err := gguf.Create(path, 3, 0, c.meta(fmt.Sprintf("synthetic-%s-seed%d", c.Projector, seed)), infos)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d696361))
	for i, s := range specs {
		n := 1
		for _, d := range s.ne {
			n *= d
		}
		vals := s.fixed
		if vals == nil {
			vals = make([]float32, n)
			for j := range vals {
				if s.one > 0 {
					vals[j] = 1 + s.one*float32(rng.NormFloat64())
				} else {
					vals[j] = s.sigma * float32(rng.NormFloat64())
				}
			}
		}
		var data []byte
		if infos[i].Type == tensor.F16 {
			data = make([]byte, 2*n)
			for j, v := range vals {
				binary.LittleEndian.PutUint16(data[2*j:], quant.FP32ToFP16(v))
			}
		} else {
			data = make([]byte, 4*n)
			for j, v := range vals {
				binary.LittleEndian.PutUint32(data[4*j:], math.Float32bits(v))
			}
		}
		if err := w.WriteTensor(s.name, data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
