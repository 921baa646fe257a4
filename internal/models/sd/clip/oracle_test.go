package clip

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/kernels/quant"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
)

// The oracle is a plain-Go float64 text encoder written from the maths, with
// its own weight names, so it shares nothing with the code under test but
// the weight values. It models the two roundings that are part of the
// specification (stable-diffusion.cpp's numerics), not accidents of
// summation order:
//   - with F16 linear weights, a product's input is rounded to F16 (ggml);
//   - quick-GELU and tanh-GELU come from an F16 table: input rounded to F16,
//     output an F16 value (and tanh-GELU is 0 below −10, x above 10).

// oracleWeights fetches a weight's values (as float64) and whether it is
// held in F16, by checkpoint name.
type oracleWeights func(name string) (v []float64, f16 bool)

func f16round(x float64) float64 {
	return float64(quant.FP16ToFP32(quant.FP32ToFP16(float32(x))))
}

func oracleAct(kind compute.UnaryKind, x float64) float64 {
	switch kind {
	case compute.QuickGELU:
		x = f16round(x)
		return f16round(x / (1 + math.Exp(-1.702*x)))
	case compute.GELU:
		if x <= -10 {
			return 0
		}
		if x >= 10 {
			return x
		}
		x = f16round(x)
		return f16round(0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*x*(1+0.044715*x*x))))
	case compute.GELUErf:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	}
	panic(fmt.Sprintf("oracle: activation %d", kind))
}

// oracleLinear returns x[n][in]·W[out][in]ᵀ + b.
func oracleLinear(x [][]float64, w []float64, wF16 bool, b []float64, out int) [][]float64 {
	y := make([][]float64, len(x))
	for r, xr := range x {
		in := len(xr)
		xi := xr
		if wF16 {
			xi = make([]float64, in)
			for i, v := range xr {
				xi[i] = f16round(v)
			}
		}
		y[r] = make([]float64, out)
		for o := range out {
			s := 0.0
			for i, v := range xi {
				s += v * w[o*in+i]
			}
			if b != nil {
				s += b[o]
			}
			y[r][o] = s
		}
	}
	return y
}

func oracleLayerNorm(x []float64, w, b []float64, eps float64) []float64 {
	mean, vr := 0.0, 0.0
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	vr /= float64(len(x))
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = (v-mean)/math.Sqrt(vr+eps)*w[i] + b[i]
	}
	return y
}

// oracleNames are the oracle's own spelling of a flavor's weight names.
type oracleNames struct {
	tok, pos, lnF, proj          string
	ln1, ln2, out, fc1, fc2, blk string
}

func oracleNamesFor(f Flavor, prefix string) oracleNames {
	if f == OpenCLIP {
		return oracleNames{tok: prefix + "token_embedding.weight", pos: prefix + "positional_embedding",
			lnF: prefix + "ln_final", proj: prefix + "text_projection", blk: prefix + "transformer.resblocks.%d.",
			ln1: "ln_1", ln2: "ln_2", out: "attn.out_proj", fc1: "mlp.c_fc", fc2: "mlp.c_proj"}
	}
	return oracleNames{tok: prefix + "embeddings.token_embedding.weight", pos: prefix + "embeddings.position_embedding.weight",
		lnF: prefix + "final_layer_norm", proj: strings.TrimSuffix(prefix, "text_model.") + "text_projection.weight", blk: prefix + "encoder.layers.%d.",
		ln1: "layer_norm1", ln2: "layer_norm2", out: "self_attn.out_proj", fc1: "mlp.fc1", fc2: "mlp.fc2"}
}

// oracleEncode is Encode's specification: hidden after o.Layers blocks
// (final LayerNorm if asked), and the pooled row after all blocks, the final
// LayerNorm and pooled_j = Σ_i h_i·T[i][j] with T the SGM matrix (given as
// T itself or, transposed, as a Linear weight).
func oracleEncode(c Config, prefix string, get oracleWeights, ids []int32, o EncodeOptions) ([][]float64, []float64) {
	n := oracleNamesFor(c.Flavor, prefix)
	P, C, H, D := c.Positions, c.Hidden, c.Heads, c.Hidden/c.Heads
	eps := float64(c.Eps)
	tok, _ := get(n.tok)
	pos, _ := get(n.pos)
	x := make([][]float64, P)
	for t := range P {
		x[t] = make([]float64, C)
		for i := range C {
			x[t][i] = tok[int(ids[t])*C+i] + pos[t*C+i]
		}
	}
	lin := func(x [][]float64, name string, out int) [][]float64 {
		w, f16 := get(name + ".weight")
		b, _ := get(name + ".bias")
		return oracleLinear(x, w, f16, b, out)
	}
	norm := func(x [][]float64, name string) [][]float64 {
		w, _ := get(name + ".weight")
		b, _ := get(name + ".bias")
		y := make([][]float64, len(x))
		for t := range x {
			y[t] = oracleLayerNorm(x[t], w, b, eps)
		}
		return y
	}
	var hidden [][]float64
	for l := range c.Layers {
		p := fmt.Sprintf(n.blk, l)
		h := norm(x, p+n.ln1)
		var q, k, v [][]float64
		if c.Flavor == OpenCLIP {
			w, f16 := get(p + "attn.in_proj_weight")
			b, _ := get(p + "attn.in_proj_bias")
			q = oracleLinear(h, w[:C*C], f16, b[:C], C)
			k = oracleLinear(h, w[C*C:2*C*C], f16, b[C:2*C], C)
			v = oracleLinear(h, w[2*C*C:], f16, b[2*C:], C)
		} else {
			q, k, v = lin(h, p+"self_attn.q_proj", C), lin(h, p+"self_attn.k_proj", C), lin(h, p+"self_attn.v_proj", C)
		}
		a := make([][]float64, P)
		for t := range P {
			a[t] = make([]float64, C)
			for hd := range H {
				s := make([]float64, t+1) // causal: keys 0..t
				mx := math.Inf(-1)
				for j := range s {
					for e := range D {
						s[j] += q[t][hd*D+e] * k[j][hd*D+e]
					}
					s[j] /= math.Sqrt(float64(D))
					mx = math.Max(mx, s[j])
				}
				sum := 0.0
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for j := range s {
					for e := range D {
						a[t][hd*D+e] += s[j] / sum * v[j][hd*D+e]
					}
				}
			}
		}
		ao := lin(a, p+n.out, C)
		for t := range P {
			for i := range C {
				x[t][i] += ao[t][i]
			}
		}
		f := lin(norm(x, p+n.ln2), p+n.fc1, c.MLP)
		for t := range f {
			for i := range f[t] {
				f[t][i] = oracleAct(c.Act, f[t][i])
			}
		}
		f = lin(f, p+n.fc2, C)
		for t := range P {
			for i := range C {
				x[t][i] += f[t][i]
			}
		}
		if l+1 == o.Layers {
			hidden = make([][]float64, P)
			for t := range P {
				hidden[t] = append([]float64(nil), x[t]...)
			}
			if o.FinalNorm {
				hidden = norm(hidden, n.lnF)
			}
		}
	}
	if o.PooledAt == NoPool {
		return hidden, nil
	}
	h := norm(x[o.PooledAt:o.PooledAt+1], n.lnF)[0]
	if c.ProjDim == 0 {
		return hidden, h
	}
	T, _ := get(n.proj)
	pooled := make([]float64, c.ProjDim)
	for j := range pooled {
		for i := range C {
			if c.ProjTransposed {
				pooled[j] += T[j*C+i] * h[i] // Linear weight W = Tᵀ: W[j][i] = T[i][j]
			} else {
				pooled[j] += h[i] * T[i*c.ProjDim+j]
			}
		}
	}
	return hidden, pooled
}

// readF64 reads any F32/F16/BF16 tensor's values.
func readF64(t *testing.T, b compute.Backend, x *compute.Tensor) []float64 {
	t.Helper()
	y, err := b.Alloc(tensor.F32, x.Elems())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free(y)
	if err := compute.Copy(x, y); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4*x.Elems())
	if err := b.Read(y, raw); err != nil {
		t.Fatal(err)
	}
	v := make([]float64, x.Elems())
	for i := range v {
		u := uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24
		v[i] = float64(math.Float32frombits(u))
	}
	return v
}

// recorder is a Source that remembers every tensor it handed out (so the
// oracle reads exactly the weights Load bound) and can serve chosen tensors
// in place of its inner source's.
type recorder struct {
	param.Source
	got      map[string]*compute.Tensor
	override map[string]*compute.Tensor
}

func newRecorder(src param.Source) *recorder {
	return &recorder{Source: src, got: map[string]*compute.Tensor{}, override: map[string]*compute.Tensor{}}
}

func (r *recorder) Tensor(name string, role param.Role, shape ...int) *compute.Tensor {
	x := r.override[name]
	if x == nil {
		x = r.Source.Tensor(name, role, shape...)
	}
	r.got[name] = x
	return x
}

// weights reads the recorded weights back for the oracle.
func (r *recorder) weights(t *testing.T, b compute.Backend) oracleWeights {
	return func(name string) ([]float64, bool) {
		x := r.got[name]
		if x == nil {
			t.Fatalf("oracle: weight %s was not bound by Load", name)
		}
		return readF64(t, b, x), x.DType == tensor.F16
	}
}
