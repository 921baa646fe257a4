package gemma

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

// weights are the model's tensors, wrapped from the memory-mapped file.
// Shapes are compute order (outermost first): a GGUF [cols, rows] matrix is
// [rows, cols] here.
type weights struct {
	tokEmbd    *compute.Tensor // [vocab, d]
	output     *compute.Tensor // [vocab, d]: output.weight, or tokEmbd (tied)
	outputNorm *compute.Tensor // [d]
	ropeFreqs  *compute.Tensor // [nRot/2] global layers of Gemma 4, or nil

	// Per-layer embeddings (nil without PLE).
	pleTokEmbd  *compute.Tensor // [vocab, L*P]
	pleProj     *compute.Tensor // [L*P, d]
	pleProjNorm *compute.Tensor // [P]

	layers []layerWeights
}

type layerWeights struct {
	attnNorm, postAttnNorm *compute.Tensor // [d]
	q, k, v, o             *compute.Tensor // v nil: V comes from the K projection
	qNorm, kNorm           *compute.Tensor // [headDim]
	outScale               float32         // layer_output_scale (1 when absent)

	ffnNorm, postFFNNorm *compute.Tensor // [d]
	gate, up, down       *compute.Tensor // dense GeGLU FFN

	// MoE (router nil when the layer is dense).
	router       *compute.Tensor // [E, d]
	routerScale  *compute.Tensor // [d]
	preFFNNorm2  *compute.Tensor
	postFFNNorm1 *compute.Tensor
	postFFNNorm2 *compute.Tensor
	expGate      []*compute.Tensor // per expert [ffExp, d]
	expUp        []*compute.Tensor // per expert [ffExp, d]
	expDown      []*compute.Tensor // per expert [d, ffExp]
	expScale     []float32         // per-expert output scale (1 when absent)

	// PLE (nil without).
	pleGate, pleProj, plePostNorm *compute.Tensor
}

// binder wraps tensors by name, collecting every problem so a bad file is
// reported in one error.
type binder struct {
	f        *gguf.File
	be       compute.Backend
	problems []string
	owned    []*compute.Tensor // tensors allocated (converted norms)
}

func (b *binder) problem(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// tensor wraps name, checking its GGUF shape (ne order, innermost first).
// Missing tensors are a problem unless optional.
func (b *binder) tensor(name string, optional bool, ne ...int) *compute.Tensor {
	ti, ok := b.f.Tensor(name)
	if !ok {
		if !optional {
			b.problem("%s: missing (want shape %v)", name, ne)
		}
		return nil
	}
	if !sameNE(ti.Shape, ne) {
		b.problem("%s: shape %v, want %v", name, ti.Shape, ne)
		return nil
	}
	data, err := b.f.TensorData(name)
	if err != nil {
		b.problem("%s: %v", name, err)
		return nil
	}
	shape := make([]int, len(ne))
	for i, d := range ne {
		shape[len(ne)-1-i] = d
	}
	t, err := b.be.Wrap(ti.Type, data, shape...)
	if err != nil {
		b.problem("%s: %v", name, err)
		return nil
	}
	return t
}

func (b *binder) req(name string, ne ...int) *compute.Tensor { return b.tensor(name, false, ne...) }
func (b *binder) opt(name string, ne ...int) *compute.Tensor { return b.tensor(name, true, ne...) }

// f32 returns t as an F32 tensor (norm weights and scales must be F32 for
// the ops); other float types are converted once at load.
func (b *binder) f32(name string, t *compute.Tensor) *compute.Tensor {
	if t == nil || t.DType == tensor.F32 {
		return t
	}
	if t.DType != tensor.F16 && t.DType != tensor.BF16 {
		b.problem("%s: type %s, want F32/F16/BF16", name, t.DType)
		return nil
	}
	out, err := b.be.Alloc(tensor.F32, t.Shape...)
	if err == nil {
		err = compute.Copy(t, out)
	}
	if err != nil {
		b.problem("%s: %v", name, err)
		return nil
	}
	b.owned = append(b.owned, out)
	return out
}

// norm binds a norm weight of n elements as F32.
func (b *binder) norm(name string, optional bool, n int) *compute.Tensor {
	return b.f32(name, b.tensor(name, optional, n))
}

// values reads a small float tensor's values to the host (scales that the
// forward pass uses as scalars).
func (b *binder) values(name string, t *compute.Tensor) []float32 {
	t = b.f32(name, t)
	if t == nil {
		return nil
	}
	raw := make([]byte, 4*t.Elems())
	if err := b.be.Read(t, raw); err != nil {
		b.problem("%s: %v", name, err)
		return nil
	}
	out := make([]float32, t.Elems())
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func sameNE(have []int64, want []int) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] != int64(want[i]) {
			return false
		}
	}
	return true
}

// bindWeights wraps every tensor the config calls for. All missing or
// mis-shaped tensors are listed in one error.
func bindWeights(f *gguf.File, be compute.Backend, c *Config) (*weights, []*compute.Tensor, error) {
	b := &binder{f: f, be: be}
	d, V := c.NEmbd, c.NVocab
	w := &weights{layers: make([]layerWeights, c.NLayer)}
	w.tokEmbd = b.req("token_embd.weight", d, V)
	w.output = b.opt("output.weight", d, V)
	if w.output == nil {
		w.output = w.tokEmbd
	}
	w.outputNorm = b.norm("output_norm.weight", false, d)

	if c.EmbdPerLayer > 0 {
		lp := c.EmbdPerLayer * c.NLayer
		w.pleTokEmbd = b.req("per_layer_token_embd.weight", lp, V)
		w.pleProj = b.req("per_layer_model_proj.weight", d, lp)
		w.pleProjNorm = b.norm("per_layer_proj_norm.weight", false, c.EmbdPerLayer)
	}
	if c.Arch == ArchGemma4 {
		// Global layers rotate with proportional RoPE: rope_freqs holds the
		// per-pair frequency divisors (llama.cpp requires it).
		for _, l := range c.Layers {
			if !l.Sliding {
				w.ropeFreqs = b.norm("rope_freqs.weight", false, l.HeadDim/2)
				break
			}
		}
	}

	for il, l := range c.Layers {
		lw := &w.layers[il]
		name := func(s string) string { return fmt.Sprintf("blk.%d.%s", il, s) }
		qw, kvw := l.NHead*l.HeadDim, l.NHeadKV*l.HeadDim
		lw.attnNorm = b.norm(name("attn_norm.weight"), false, d)
		lw.q = b.req(name("attn_q.weight"), d, qw)
		lw.qNorm = b.norm(name("attn_q_norm.weight"), false, l.HeadDim)
		lw.o = b.req(name("attn_output.weight"), qw, d)
		lw.postAttnNorm = b.norm(name("post_attention_norm.weight"), false, d)
		if c.OwnsKV(il) {
			lw.k = b.req(name("attn_k.weight"), d, kvw)
			lw.kNorm = b.norm(name("attn_k_norm.weight"), false, l.HeadDim)
			// Gemma 4 global layers may have no V projection (k_eq_v).
			lw.v = b.tensor(name("attn_v.weight"), c.Arch == ArchGemma4, d, kvw)
		}

		lw.ffnNorm = b.norm(name("ffn_norm.weight"), false, d)
		lw.gate = b.req(name("ffn_gate.weight"), d, l.FF)
		lw.up = b.req(name("ffn_up.weight"), d, l.FF)
		lw.down = b.req(name("ffn_down.weight"), l.FF, d)
		lw.postFFNNorm = b.norm(name("post_ffw_norm.weight"), false, d)

		lw.outScale = 1
		if c.Arch == ArchGemma4 {
			if vs := b.values(name("layer_output_scale.weight"), b.opt(name("layer_output_scale.weight"), 1)); len(vs) == 1 {
				lw.outScale = vs[0]
			}
		}

		if c.NExpert > 0 {
			bindExperts(b, c, il, lw)
		}
		if c.EmbdPerLayer > 0 {
			lw.pleGate = b.req(name("inp_gate.weight"), d, c.EmbdPerLayer)
			lw.pleProj = b.req(name("proj.weight"), c.EmbdPerLayer, d)
			lw.plePostNorm = b.norm(name("post_norm.weight"), false, d)
		}
	}
	if len(b.problems) > 0 {
		for _, t := range b.owned {
			be.Free(t)
		}
		return nil, nil, fmt.Errorf("gemma: %s: %d tensor problem(s):\n  %s", f.Path, len(b.problems), strings.Join(b.problems, "\n  "))
	}
	return w, b.owned, nil
}

// bindExperts binds a MoE layer: router, its input scale, the extra norms,
// and the experts (fused gate_up, gate first, or separate gate/up), sliced
// into per-expert matrices (row views of the stacked tensors).
func bindExperts(b *binder, c *Config, il int, lw *layerWeights) {
	name := func(s string) string { return fmt.Sprintf("blk.%d.%s", il, s) }
	d, E, ff := c.NEmbd, c.NExpert, c.FFExpert
	lw.router = b.opt(name("ffn_gate_inp.weight"), d, E)
	if lw.router == nil {
		if b.f.Has(c.key("expert_count")) {
			b.problem("%s: missing (want shape %v)", name("ffn_gate_inp.weight"), []int{d, E})
		}
		return
	}
	lw.routerScale = b.norm(name("ffn_gate_inp.scale"), false, d)
	lw.preFFNNorm2 = b.norm(name("pre_ffw_norm_2.weight"), false, d)
	lw.postFFNNorm1 = b.norm(name("post_ffw_norm_1.weight"), false, d)
	lw.postFFNNorm2 = b.norm(name("post_ffw_norm_2.weight"), false, d)

	var gate, up *compute.Tensor
	var gateOff int
	if gu := b.opt(name("ffn_gate_up_exps.weight"), d, 2*ff, E); gu != nil {
		gate, up, gateOff = gu, gu, ff
	} else {
		gate = b.req(name("ffn_gate_exps.weight"), d, ff, E)
		up = b.req(name("ffn_up_exps.weight"), d, ff, E)
	}
	down := b.req(name("ffn_down_exps.weight"), ff, d, E)
	lw.expScale = make([]float32, E)
	for e := range lw.expScale {
		lw.expScale[e] = 1
	}
	if s := b.values(name("ffn_down_exps.scale"), b.opt(name("ffn_down_exps.scale"), E)); s != nil {
		copy(lw.expScale, s)
	}
	if gate == nil || up == nil || down == nil {
		return
	}
	slice := func(t *compute.Tensor, e, start, n int) *compute.Tensor {
		m, err := expertMatrix(t, e)
		if err == nil {
			m, err = compute.Rows(m, start, start+n)
		}
		if err != nil {
			b.problem("%s expert %d: %v", name("experts"), e, err)
		}
		return m
	}
	for e := 0; e < E; e++ {
		lw.expGate = append(lw.expGate, slice(gate, e, 0, ff))
		if gateOff > 0 {
			lw.expUp = append(lw.expUp, slice(up, e, gateOff, ff))
		} else {
			lw.expUp = append(lw.expUp, slice(up, e, 0, ff))
		}
		lw.expDown = append(lw.expDown, slice(down, e, 0, d))
	}
}

// expertMatrix is expert e's 2-D matrix of a stacked [E, rows, cols] tensor.
func expertMatrix(t *compute.Tensor, e int) (*compute.Tensor, error) {
	v, err := compute.Rows(t, e, e+1)
	if err != nil {
		return nil, err
	}
	if len(v.Shape) != 3 {
		return nil, errors.New("expert tensor must be 3-D")
	}
	return compute.Reshape(v, v.Shape[1], v.Shape[2])
}
