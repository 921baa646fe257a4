package vision

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/nn"
	"mica/internal/tensor"
)

// linear is a weight matrix [out, in] with an optional bias and Gemma 4's
// "clippable" bounds on its input and output (±MaxFloat32 when absent).
type linear struct {
	nn.Linear
	inMin, inMax, outMin, outMax float32
}

// unclamped is a linear without bounds.
func unclamped(w, b *compute.Tensor) linear {
	return linear{Linear: nn.Linear{W: w, B: b},
		inMin: -math.MaxFloat32, inMax: math.MaxFloat32, outMin: -math.MaxFloat32, outMax: math.MaxFloat32}
}

type layer struct {
	ln1, ln1b, ln2, ln2b *compute.Tensor // norms (biases: Gemma 3's LayerNorm)
	q, k, v, o           linear
	qNorm, kNorm         *compute.Tensor // Gemma 4, per head
	attnPost, ffnPost    *compute.Tensor // Gemma 4
	gate, up, down       linear          // gate: Gemma 4 only
	outScale             float32         // Gemma 4 (1 when absent)
}

type weights struct {
	patch     *compute.Tensor // [E, 3·P·P], F16 (ggml's im2col rounds to F16)
	patchBias *compute.Tensor // [E] (Gemma 3)
	pos       *compute.Tensor // Gemma 3 [patches, E]; Gemma 4 [2, PosSize, E]
	layers    []layer
	postLN    [2]*compute.Tensor // Gemma 3 final LayerNorm weight, bias

	softEmbNorm *compute.Tensor // Gemma 3 [E]
	negStdBias  *compute.Tensor // Gemma 4: −std_bias [E] (optional)
	stdScale    *compute.Tensor // Gemma 4 [E] (optional)
	proj        linear          // [ProjDim, E]
}

// bindLinear binds prefix.weight ([out, in]), an optional prefix.bias, and
// the optional clamp bounds prefix.{input,output}_{min,max}.
func bindLinear(b *nn.Binder, prefix string, in, out int, bias bool) linear {
	l := linear{Linear: nn.Linear{W: b.Req(prefix+".weight", in, out)}}
	if bias {
		l.B = b.F32(prefix+".bias", false, out)
	}
	l.inMin = b.Scalar(prefix+".input_min", -math.MaxFloat32)
	l.inMax = b.Scalar(prefix+".input_max", math.MaxFloat32)
	l.outMin = b.Scalar(prefix+".output_min", -math.MaxFloat32)
	l.outMax = b.Scalar(prefix+".output_max", math.MaxFloat32)
	return l
}

// bindWeights binds every tensor of the projector's graph.
func bindWeights(f *gguf.File, be compute.Backend, c *Config) (*weights, []*compute.Tensor, error) {
	b := nn.NewBinder(f, be)
	E, P := c.Width, c.PatchSize
	w := &weights{layers: make([]layer, c.Layers)}

	patch := b.Req("v.patch_embd.weight", P, P, 3, E)
	if patch != nil {
		// ggml's conv_2d builds its im2col in F16: patch weights (and
		// pixels, which the F16 matmul rounds) are F16 before the product.
		w.patch = b.Convert("v.patch_embd.weight", patch, tensor.F16)
		if w.patch != nil {
			v, err := compute.Reshape(w.patch, E, 3*P*P)
			if err != nil {
				b.Problem("v.patch_embd.weight: %v", err)
			}
			w.patch = v
		}
	}
	switch c.Projector {
	case Gemma3:
		n := (c.ImageSize / P) * (c.ImageSize / P)
		w.patchBias = b.F32("v.patch_embd.bias", false, E)
		w.pos = b.F32("v.position_embd.weight", false, E, n)
		w.postLN = [2]*compute.Tensor{b.F32("v.post_ln.weight", false, E), b.F32("v.post_ln.bias", false, E)}
		w.softEmbNorm = b.F32("mm.soft_emb_norm.weight", false, E)
		// Stored (vision, text): ne [ProjDim, E]; transposed once to [ProjDim, E]
		// rows for the matmul, keeping its dtype (F16 in converted files).
		w.proj = unclamped(transposed(b, "mm.input_projection.weight", b.Req("mm.input_projection.weight", c.ProjDim, E)), nil)
	case Gemma4V:
		if ti, ok := f.Tensor("v.position_embd.weight"); ok && len(ti.Shape) == 3 {
			c.PosSize = int(ti.Shape[1])
		}
		w.pos = b.Req("v.position_embd.weight", E, c.PosSize, 2)
		if t := b.F32("v.std_bias", true, E); t != nil {
			w.negStdBias = negated(b, "v.std_bias", t)
			w.stdScale = b.F32("v.std_scale", false, E)
		}
		w.proj = bindLinear(b, "mm.input_projection", E, c.ProjDim, false)
	}

	for il := range w.layers {
		l := &w.layers[il]
		name := func(s string) string { return fmt.Sprintf("v.blk.%d.%s", il, s) }
		g3 := c.Projector == Gemma3
		l.ln1 = b.F32(name("ln1.weight"), false, E)
		l.ln2 = b.F32(name("ln2.weight"), false, E)
		if g3 {
			l.ln1b = b.F32(name("ln1.bias"), false, E)
			l.ln2b = b.F32(name("ln2.bias"), false, E)
		}
		l.q = bindLinear(b, name("attn_q"), E, E, g3)
		l.k = bindLinear(b, name("attn_k"), E, E, g3)
		l.v = bindLinear(b, name("attn_v"), E, E, g3)
		l.o = bindLinear(b, name("attn_out"), E, E, g3)
		up, down := name("ffn_up"), name("ffn_down")
		if ti, ok := f.Tensor(down + ".weight"); ok && len(ti.Shape) == 2 && ti.Shape[0] == int64(E) && c.FF != E {
			up, down = down, up // old converters swapped them (llama.cpp swaps back)
		}
		l.up = bindLinear(b, up, E, c.FF, g3)
		l.down = bindLinear(b, down, c.FF, E, g3)
		if !g3 {
			d := c.HeadDim()
			l.qNorm = b.F32(name("attn_q_norm.weight"), false, d)
			l.kNorm = b.F32(name("attn_k_norm.weight"), false, d)
			l.attnPost = b.F32(name("attn_post_norm.weight"), false, E)
			l.ffnPost = b.F32(name("ffn_post_norm.weight"), false, E)
			l.gate = bindLinear(b, name("ffn_gate"), E, c.FF, false)
			l.outScale = b.Scalar(name("out_scale.weight"), 1)
		}
	}
	if err := b.Err(); err != nil {
		return nil, nil, fmt.Errorf("vision: %s: %w", f.Path, err)
	}
	return w, b.Owned(), nil
}

// transposed returns the [cols, rows] transpose of a 2-D tensor in its own
// dtype (F32, F16 or BF16).
func transposed(b *nn.Binder, name string, t *compute.Tensor) *compute.Tensor {
	if t == nil {
		return nil
	}
	out, err := nn.TransposeF32(b.Backend(), t)
	if err != nil {
		b.Problem("%s: transposing: %v", name, err)
		return nil
	}
	b.Own(out)
	return b.Convert(name, out, t.DType)
}

// negated returns −t (so that x − t is computed as x + (−t), exactly).
func negated(b *nn.Binder, name string, t *compute.Tensor) *compute.Tensor {
	out, err := b.Backend().Alloc(tensor.F32, t.Shape...)
	if err == nil {
		b.Own(out)
		err = compute.Scale(t, -1, out)
	}
	if err != nil {
		b.Problem("%s: %v", name, err)
		return nil
	}
	return out
}
