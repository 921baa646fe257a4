package gemma

import (
	"fmt"
	"math"
	"sort"

	"mica/internal/compute"
	"mica/internal/nn"
)

// moe is Gemma 4's mixture-of-experts feed-forward on the residual x[n, d]:
//
//	dense  = N₁(GeGLU(N_ffn(x)))                       (the always-on MLP)
//	p      = softmax(W_router · (rms(x)/√d ⊙ s_router)) (over all experts)
//	routed = N₂(Σ_{e ∈ top-k(p)} ŵ_e · s_e · GeGLU_e(N_pre2(x)))
//
// where ŵ are the top-k probabilities renormalised to sum 1 and s_e the
// per-expert output scale. It returns dense + routed (the caller applies the
// post-FFN norm and the residual add). Routing needs the probabilities on
// the host; the experts' maths runs on the backend, one expert at a time
// over the tokens routed to it.
func (m *Model) moe(p *fwd, il int, x *compute.Tensor) *compute.Tensor {
	c, lw := m.Config, &m.w.layers[il]
	n, d, K, E := x.Rows(), c.NEmbd, c.NExpertUsed, c.NExpert

	dense := p.geglu(p.RMSNorm(x, lw.ffnNorm), lw.gate, lw.up, lw.down)
	p.RMSNormInPlace(dense, lw.postFFNNorm1)

	r := p.RMSNorm(x, nil)
	p.Scale(r, 1/float32(math.Sqrt(float64(d))))
	p.Mul(r, lw.routerScale)
	probs := p.MatMul(lw.router, r)
	if p.Err == nil {
		p.Check(compute.Softmax(probs, probs, 1))
	}
	if p.Err != nil {
		return nil
	}
	host := make([]float32, n*E)
	if err := m.be.Read(probs, nn.F32Bytes(host)); err != nil {
		p.Check(fmt.Errorf("reading router probabilities: %w", err))
		return nil
	}
	sel, wts := route(host, n, E, K)

	// Expert outputs land in out[k] (rank k of every token), then are summed
	// in rank order like llama.cpp.
	x2 := p.RMSNorm(x, lw.preFFNNorm2)
	out := p.New(K, n, d)
	for e := 0; e < E && p.Err == nil; e++ {
		var toks []int32
		var slots []int // destination row k*n+t in out
		var ws []float32
		for t := 0; t < n; t++ {
			for k := 0; k < K; k++ {
				if sel[t*K+k] == e {
					toks, slots, ws = append(toks, int32(t)), append(slots, k*n+t), append(ws, wts[t*K+k])
				}
			}
		}
		if len(toks) == 0 {
			continue
		}
		xe := p.New(len(toks), d)
		p.GetRows(x2, toks, xe)
		y := p.geglu(xe, lw.expGate[e], lw.expUp[e], lw.expDown[e])
		p.Scale(y, lw.expScale[e])
		for j, slot := range slots {
			if p.Err == nil {
				p.Check(compute.Scale(p.Rows(y, j, j+1), ws[j], p.Rows(p.View(out, K*n, d), slot, slot+1)))
			}
		}
	}
	flat := p.View(out, K*n, d)
	routed := p.Rows(flat, 0, n)
	for k := 1; k < K; k++ {
		p.Add(routed, p.Rows(flat, k*n, (k+1)*n))
	}
	p.RMSNormInPlace(routed, lw.postFFNNorm2)
	p.Add(dense, routed)
	return dense
}

// route picks each token's top-k experts from probs[n, E] and their weights,
// renormalised to sum 1 (the sum clamped below at 2⁻¹⁴ as llama.cpp does).
// sel and wts are [n, K], best first.
func route(probs []float32, n, E, K int) (sel []int, wts []float32) {
	sel, wts = make([]int, n*K), make([]float32, n*K)
	idx := make([]int, E)
	for t := 0; t < n; t++ {
		row := probs[t*E : (t+1)*E]
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		var sum float64
		for k := 0; k < K; k++ {
			sel[t*K+k] = idx[k]
			sum += float64(row[idx[k]])
		}
		s := max(float32(sum), 6.103515625e-5)
		for k := 0; k < K; k++ {
			wts[t*K+k] = row[idx[k]] / s
		}
	}
	return sel, wts
}
