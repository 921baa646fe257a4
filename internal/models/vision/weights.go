package vision

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

// linear is a weight matrix [out, in] with an optional bias and Gemma 4's
// "clippable" bounds on its input and output (±MaxFloat32 when absent).
type linear struct {
	w, b                         *compute.Tensor
	inMin, inMax, outMin, outMax float32
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

// binder binds tensors by name and collects every problem for one error.
type binder struct {
	f        *gguf.File
	be       compute.Backend
	problems []string
	owned    []*compute.Tensor
}

func (b *binder) problem(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// tensor wraps a tensor whose GGUF shape (ne, innermost first) must be ne.
func (b *binder) tensor(name string, optional bool, ne ...int) *compute.Tensor {
	ti, ok := b.f.Tensor(name)
	if !ok {
		if !optional {
			b.problem("%s: missing (want shape %v)", name, ne)
		}
		return nil
	}
	if len(ti.Shape) != len(ne) {
		b.problem("%s: shape %v, want %v", name, ti.Shape, ne)
		return nil
	}
	for i := range ne {
		if ti.Shape[i] != int64(ne[i]) {
			b.problem("%s: shape %v, want %v", name, ti.Shape, ne)
			return nil
		}
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

// convert returns t in dtype dt (a copy made once at load when it differs).
func (b *binder) convert(name string, t *compute.Tensor, dt tensor.DType) *compute.Tensor {
	if t == nil || t.DType == dt {
		return t
	}
	if t.DType != tensor.F32 && t.DType != tensor.F16 && t.DType != tensor.BF16 {
		b.problem("%s: type %s, want F32, F16 or BF16", name, t.DType)
		return nil
	}
	out, err := b.be.Alloc(dt, t.Shape...)
	if err == nil {
		b.owned = append(b.owned, out)
		err = compute.Copy(t, out)
	}
	if err != nil {
		b.problem("%s: %v", name, err)
		return nil
	}
	return out
}

// f32 binds a small F32 parameter (norm weights, biases).
func (b *binder) f32(name string, optional bool, ne ...int) *compute.Tensor {
	return b.convert(name, b.tensor(name, optional, ne...), tensor.F32)
}

// values reads a small tensor to the host.
func (b *binder) values(name string, t *compute.Tensor) []float32 {
	t = b.convert(name, t, tensor.F32)
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

// scalar reads an optional one-element tensor, def when absent.
func (b *binder) scalar(name string, def float32) float32 {
	if v := b.values(name, b.tensor(name, true, 1)); len(v) == 1 {
		return v[0]
	}
	return def
}

// linear binds prefix.weight ([out, in]), an optional prefix.bias, and the
// optional clamp bounds prefix.{input,output}_{min,max}.
func (b *binder) linear(prefix string, in, out int, bias bool) linear {
	l := linear{w: b.tensor(prefix+".weight", false, in, out)}
	if bias {
		l.b = b.f32(prefix+".bias", false, out)
	}
	l.inMin = b.scalar(prefix+".input_min", -math.MaxFloat32)
	l.inMax = b.scalar(prefix+".input_max", math.MaxFloat32)
	l.outMin = b.scalar(prefix+".output_min", -math.MaxFloat32)
	l.outMax = b.scalar(prefix+".output_max", math.MaxFloat32)
	return l
}

// bindWeights binds every tensor of the projector's graph.
func bindWeights(f *gguf.File, be compute.Backend, c *Config) (*weights, []*compute.Tensor, error) {
	b := &binder{f: f, be: be}
	E, P := c.Width, c.PatchSize
	w := &weights{layers: make([]layer, c.Layers)}

	patch := b.tensor("v.patch_embd.weight", false, P, P, 3, E)
	if patch != nil {
		// ggml's conv_2d builds its im2col in F16: patch weights (and
		// pixels, which the F16 matmul rounds) are F16 before the product.
		w.patch = b.convert("v.patch_embd.weight", patch, tensor.F16)
		if w.patch != nil {
			v, err := compute.Reshape(w.patch, E, 3*P*P)
			if err != nil {
				b.problem("v.patch_embd.weight: %v", err)
			}
			w.patch = v
		}
	}
	switch c.Projector {
	case Gemma3:
		n := (c.ImageSize / P) * (c.ImageSize / P)
		w.patchBias = b.f32("v.patch_embd.bias", false, E)
		w.pos = b.f32("v.position_embd.weight", false, E, n)
		w.postLN = [2]*compute.Tensor{b.f32("v.post_ln.weight", false, E), b.f32("v.post_ln.bias", false, E)}
		w.softEmbNorm = b.f32("mm.soft_emb_norm.weight", false, E)
		// Stored (vision, text): ne [ProjDim, E]; transposed once to [ProjDim, E]
		// rows for the matmul, keeping its dtype (F16 in converted files).
		w.proj = linear{w: b.transposed("mm.input_projection.weight", b.tensor("mm.input_projection.weight", false, c.ProjDim, E)),
			inMin: -math.MaxFloat32, inMax: math.MaxFloat32, outMin: -math.MaxFloat32, outMax: math.MaxFloat32}
	case Gemma4V:
		if ti, ok := f.Tensor("v.position_embd.weight"); ok && len(ti.Shape) == 3 {
			c.PosSize = int(ti.Shape[1])
		}
		w.pos = b.tensor("v.position_embd.weight", false, E, c.PosSize, 2)
		if t := b.f32("v.std_bias", true, E); t != nil {
			w.negStdBias = b.negated("v.std_bias", t)
			w.stdScale = b.f32("v.std_scale", false, E)
		}
		w.proj = b.linear("mm.input_projection", E, c.ProjDim, false)
	}

	for il := range w.layers {
		l := &w.layers[il]
		name := func(s string) string { return fmt.Sprintf("v.blk.%d.%s", il, s) }
		g3 := c.Projector == Gemma3
		l.ln1 = b.f32(name("ln1.weight"), false, E)
		l.ln2 = b.f32(name("ln2.weight"), false, E)
		if g3 {
			l.ln1b = b.f32(name("ln1.bias"), false, E)
			l.ln2b = b.f32(name("ln2.bias"), false, E)
		}
		l.q = b.linear(name("attn_q"), E, E, g3)
		l.k = b.linear(name("attn_k"), E, E, g3)
		l.v = b.linear(name("attn_v"), E, E, g3)
		l.o = b.linear(name("attn_out"), E, E, g3)
		up, down := name("ffn_up"), name("ffn_down")
		if ti, ok := f.Tensor(down + ".weight"); ok && len(ti.Shape) == 2 && ti.Shape[0] == int64(E) && c.FF != E {
			up, down = down, up // old converters swapped them (llama.cpp swaps back)
		}
		l.up = b.linear(up, E, c.FF, g3)
		l.down = b.linear(down, c.FF, E, g3)
		if !g3 {
			d := c.HeadDim()
			l.qNorm = b.f32(name("attn_q_norm.weight"), false, d)
			l.kNorm = b.f32(name("attn_k_norm.weight"), false, d)
			l.attnPost = b.f32(name("attn_post_norm.weight"), false, E)
			l.ffnPost = b.f32(name("ffn_post_norm.weight"), false, E)
			l.gate = b.linear(name("ffn_gate"), E, c.FF, false)
			l.outScale = b.scalar(name("out_scale.weight"), 1)
		}
	}
	if len(b.problems) > 0 {
		for _, t := range b.owned {
			be.Free(t)
		}
		return nil, nil, fmt.Errorf("vision: %s: %d tensor problem(s):\n  %s", f.Path, len(b.problems), strings.Join(b.problems, "\n  "))
	}
	return w, b.owned, nil
}

// transposed returns the [cols, rows] transpose of a 2-D tensor in its own
// dtype (F32, F16 or BF16).
func (b *binder) transposed(name string, t *compute.Tensor) *compute.Tensor {
	if t == nil {
		return nil
	}
	src := b.convert(name, t, tensor.F32)
	if src == nil {
		return nil
	}
	tv, err := compute.Permute(src, 1, 0)
	var out *compute.Tensor
	if err == nil {
		out, err = b.be.Alloc(tensor.F32, t.Shape[1], t.Shape[0])
	}
	if err == nil {
		b.owned = append(b.owned, out)
		err = compute.Copy(tv, out)
	}
	if err != nil {
		b.problem("%s: transposing: %v", name, err)
		return nil
	}
	return b.convert(name, out, t.DType)
}

// negated returns −t (so that x − t is computed as x + (−t), exactly).
func (b *binder) negated(name string, t *compute.Tensor) *compute.Tensor {
	out, err := b.be.Alloc(tensor.F32, t.Shape...)
	if err == nil {
		b.owned = append(b.owned, out)
		err = compute.Scale(t, -1, out)
	}
	if err != nil {
		b.problem("%s: %v", name, err)
		return nil
	}
	return out
}
