package ops

import (
	"math"

	"mica/internal/kernels/quant"
)

// attentionGGML reproduces, step for step, ggml's CPU flash-attention
// "one chunk" kernel, which llama.cpp runs for batches of fewer than 64
// queries (token generation, short prompts): q is rounded to F16 when K is
// F16; each key's score is a dot product summed like ggml's AVX2
// ggml_vec_dot_f16/f32 (four 8-lane FMA accumulators over blocks of 32,
// the same reduction, leftovers in double); the online softmax advances one
// key at a time with expf; and with F16 V the running output is kept in F16,
// rounded after every key (ggml's VKQ16). This costs accuracy (about 1e-3
// relative with F16 V) but lets mica match llama.cpp's logits. Plain Go, no
// fast path: meant for parity runs. Multiply-adds are fused where ggml's
// -march=native build fuses them (the FMA intrinsics and, by GCC's default
// contraction, S = S*ms + vs); a product is exact in float64, so
// float32(a*b + c) computed in float64 equals a fused float32 multiply-add
// except for rare double-rounding cases.
func attentionGGML(a *attnArgs, r0, r1 int) {
	p := a.p
	d, dv := p.HeadDim, a.dv
	group := p.NHead / p.NKVHead
	scale := p.Scale
	if p.Softcap != 0 {
		scale /= p.Softcap
	}
	qbuf := make([]float32, d)
	kbuf := make([]float32, d)
	acc := make([]float32, dv)
	negInf := float32(math.Inf(-1))
	f16v := a.v.F16 != nil
	for r := r0; r < r1; r++ {
		i, h := r/p.NHead, r%p.NHead
		g := h / group
		q := a.q[i*a.qRow+h*d : i*a.qRow+h*d+d]
		if a.k.F16 != nil {
			for e, v := range q {
				qbuf[e] = quant.FP16ToFP32(quant.FP32ToFP16(v))
			}
		} else {
			copy(qbuf, q)
		}
		var qp int32
		if a.qPos != nil {
			qp = a.qPos[i]
		}
		clear(acc)
		m, sum := negInf, float32(0)
		for j := 0; j < a.nkv; j++ {
			var mv float32
			if a.kPos != nil {
				kp := a.kPos[j]
				if kp < 0 || (p.Causal && kp > qp) || (p.Window > 0 && int(qp)-int(kp) >= p.Window) {
					continue
				}
			}
			if a.mask != nil {
				mv = a.mask[i*a.nkv+j]
				if math.IsInf(float64(mv), -1) {
					continue
				}
			}
			koff := j*a.k.RowStride + g*a.k.HeadStride
			if a.k.F16 != nil {
				for e := range kbuf {
					kbuf[e] = f16to32(a.k.F16[koff+e])
				}
			} else {
				copy(kbuf, a.k.F32[koff:koff+d])
			}
			s := ggmlDot(qbuf, kbuf, a.k.F16 != nil) * scale
			if p.Softcap != 0 {
				s = p.Softcap * float32(math.Tanh(float64(s)))
			}
			s += mv
			ms, vs := float32(1), float32(1)
			if s > m {
				mold := m
				m = s
				ms = float32(math.Exp(float64(mold - m)))
				for e := range acc {
					acc[e] *= ms
					if f16v {
						acc[e] = roundF16(acc[e])
					}
				}
			} else {
				vs = float32(math.Exp(float64(s - m)))
			}
			voff := j*a.v.RowStride + g*a.v.HeadStride
			for e := range acc {
				var v float32
				if f16v {
					v = f16to32(a.v.F16[voff+e])
				} else {
					v = a.v.F32[voff+e]
				}
				acc[e] = fma32(v, vs, acc[e])
				if f16v {
					acc[e] = roundF16(acc[e])
				}
			}
			sum = fma32(sum, ms, vs)
		}
		o := a.out[i*a.oRow+h*dv : i*a.oRow+h*dv+dv]
		var inv float32
		if sum != 0 {
			inv = 1 / sum
		}
		for e := range o {
			o[e] = acc[e] * inv
		}
	}
}

// ggmlDot sums x·y like ggml's AVX2 vec_dot: four 8-lane accumulators
// over blocks of 32 with fused multiply-adds, reduced (acc0+acc2)+(acc1+acc3)
// lane-wise, then the 8 lanes as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)); the
// leftover elements are added in double (F16) or float (F32).
func ggmlDot(x, y []float32, f16 bool) float32 {
	var acc [4][8]float32
	n := len(x)
	np := n &^ 31
	for i := 0; i < np; i += 32 {
		for j := 0; j < 4; j++ {
			for l := 0; l < 8; l++ {
				k := i + 8*j + l
				acc[j][l] = fma32(x[k], y[k], acc[j][l])
			}
		}
	}
	var t [8]float32
	for l := range t {
		t[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
	}
	r := ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]))
	if f16 {
		s := float64(r)
		for k := np; k < n; k++ {
			s += float64(x[k] * y[k])
		}
		return float32(s)
	}
	for k := np; k < n; k++ {
		r = fma32(x[k], y[k], r)
	}
	return r
}

// fma32 is a*b + c with one rounding to float32 (up to double rounding: the
// float64 product of two float32 values is exact).
func fma32(a, b, c float32) float32 {
	return float32(float64(a)*float64(b) + float64(c))
}

func roundF16(x float32) float32 { return quant.FP16ToFP32(quant.FP32ToFP16(x)) }
