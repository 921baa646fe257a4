package gemma

import (
	"errors"
	"fmt"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/nn"
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

// bindWeights wraps every tensor the config calls for. All missing or
// mis-shaped tensors are listed in one error.
func bindWeights(f *gguf.File, be compute.Backend, c *Config) (*weights, []*compute.Tensor, error) {
	b := nn.NewBinder(f, be)
	d, V := c.NEmbd, c.NVocab
	w := &weights{layers: make([]layerWeights, c.NLayer)}
	w.tokEmbd = b.Req("token_embd.weight", d, V)
	w.output = b.Opt("output.weight", d, V)
	if w.output == nil {
		w.output = w.tokEmbd
	}
	w.outputNorm = b.F32("output_norm.weight", false, d)

	if c.EmbdPerLayer > 0 {
		lp := c.EmbdPerLayer * c.NLayer
		w.pleTokEmbd = b.Req("per_layer_token_embd.weight", lp, V)
		w.pleProj = b.Req("per_layer_model_proj.weight", d, lp)
		w.pleProjNorm = b.F32("per_layer_proj_norm.weight", false, c.EmbdPerLayer)
	}
	if c.Arch == ArchGemma4 {
		// Global layers rotate with proportional RoPE: rope_freqs holds the
		// per-pair frequency divisors (llama.cpp requires it).
		for _, l := range c.Layers {
			if !l.Sliding {
				w.ropeFreqs = b.F32("rope_freqs.weight", false, l.HeadDim/2)
				break
			}
		}
	}

	for il, l := range c.Layers {
		lw := &w.layers[il]
		name := func(s string) string { return fmt.Sprintf("blk.%d.%s", il, s) }
		qw, kvw := l.NHead*l.HeadDim, l.NHeadKV*l.HeadDim
		lw.attnNorm = b.F32(name("attn_norm.weight"), false, d)
		lw.q = b.Req(name("attn_q.weight"), d, qw)
		lw.qNorm = b.F32(name("attn_q_norm.weight"), false, l.HeadDim)
		lw.o = b.Req(name("attn_output.weight"), qw, d)
		lw.postAttnNorm = b.F32(name("post_attention_norm.weight"), false, d)
		if c.OwnsKV(il) {
			lw.k = b.Req(name("attn_k.weight"), d, kvw)
			lw.kNorm = b.F32(name("attn_k_norm.weight"), false, l.HeadDim)
			// Gemma 4 global layers may have no V projection (k_eq_v).
			lw.v = b.Tensor(name("attn_v.weight"), c.Arch == ArchGemma4, d, kvw)
		}

		lw.ffnNorm = b.F32(name("ffn_norm.weight"), false, d)
		lw.gate = b.Req(name("ffn_gate.weight"), d, l.FF)
		lw.up = b.Req(name("ffn_up.weight"), d, l.FF)
		lw.down = b.Req(name("ffn_down.weight"), l.FF, d)
		lw.postFFNNorm = b.F32(name("post_ffw_norm.weight"), false, d)

		lw.outScale = 1
		if c.Arch == ArchGemma4 {
			lw.outScale = b.Scalar(name("layer_output_scale.weight"), 1)
		}

		if c.NExpert > 0 {
			bindExperts(f, b, c, il, lw)
		}
		if c.EmbdPerLayer > 0 {
			lw.pleGate = b.Req(name("inp_gate.weight"), d, c.EmbdPerLayer)
			lw.pleProj = b.Req(name("proj.weight"), c.EmbdPerLayer, d)
			lw.plePostNorm = b.F32(name("post_norm.weight"), false, d)
		}
	}
	if err := b.Err(); err != nil {
		return nil, nil, fmt.Errorf("gemma: %s: %w", f.Path, err)
	}
	return w, b.Owned(), nil
}

// bindExperts binds a MoE layer: router, its input scale, the extra norms,
// and the experts (fused gate_up, gate first, or separate gate/up), sliced
// into per-expert matrices (row views of the stacked tensors).
func bindExperts(f *gguf.File, b *nn.Binder, c *Config, il int, lw *layerWeights) {
	name := func(s string) string { return fmt.Sprintf("blk.%d.%s", il, s) }
	d, E, ff := c.NEmbd, c.NExpert, c.FFExpert
	lw.router = b.Opt(name("ffn_gate_inp.weight"), d, E)
	if lw.router == nil {
		if f.Has(c.key("expert_count")) {
			b.Problem("%s: missing (want shape %v)", name("ffn_gate_inp.weight"), []int{d, E})
		}
		return
	}
	lw.routerScale = b.F32(name("ffn_gate_inp.scale"), false, d)
	lw.preFFNNorm2 = b.F32(name("pre_ffw_norm_2.weight"), false, d)
	lw.postFFNNorm1 = b.F32(name("post_ffw_norm_1.weight"), false, d)
	lw.postFFNNorm2 = b.F32(name("post_ffw_norm_2.weight"), false, d)

	var gate, up *compute.Tensor
	var gateOff int
	if gu := b.Opt(name("ffn_gate_up_exps.weight"), d, 2*ff, E); gu != nil {
		gate, up, gateOff = gu, gu, ff
	} else {
		gate = b.Req(name("ffn_gate_exps.weight"), d, ff, E)
		up = b.Req(name("ffn_up_exps.weight"), d, ff, E)
	}
	down := b.Req(name("ffn_down_exps.weight"), ff, d, E)
	lw.expScale = make([]float32, E)
	for e := range lw.expScale {
		lw.expScale[e] = 1
	}
	if s := b.Values(name("ffn_down_exps.scale"), b.Opt(name("ffn_down_exps.scale"), E)); s != nil {
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
			b.Problem("%s expert %d: %v", name("experts"), e, err)
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
