package ops

import (
	"fmt"
	"math"

	"mica/internal/kernels/quant"
)

// KV is a view of keys or values: the element e of head g at key j is
// F32[j*RowStride + g*HeadStride + e] (or F16[...], raw IEEE half bits).
// Exactly one of F32 and F16 is set. llama.cpp's cache layout (one row of
// all KV heads per cell) is RowStride = NKVHead*HeadDim, HeadStride =
// HeadDim.
type KV struct {
	F32        []float32
	F16        []uint16
	RowStride  int
	HeadStride int
}

func (kv KV) len() int {
	if kv.F16 != nil {
		return len(kv.F16)
	}
	return len(kv.F32)
}

// AttentionParams configures Attention.
type AttentionParams struct {
	NHead, NKVHead int // query heads and key/value heads (NHead a multiple of NKVHead: GQA)
	HeadDim        int // q/k head dimension
	HeadDimV       int // v head dimension; 0 means HeadDim
	Scale          float32
	Softcap        float32 // 0 = none; else scores become Softcap*tanh(score/Softcap)
	Causal         bool    // key visible only if kPos <= qPos
	Window         int     // 0 = none; else key visible only if qPos - kPos < Window (llama.cpp's standard SWA)
	// GGMLSmallBatch reproduces ggml's CPU flash-attention kernel for
	// batches of fewer than 64 queries step for step: q rounded to F16 for
	// F16 keys, one key at a time, and an F16 output accumulator for F16
	// values (about 1e-3 relative error). Without it mica keeps q and the
	// accumulator in F32, like ggml's tiled kernel for batches of 64 or
	// more queries (up to summation order). It runs the plain-Go kernel
	// only: meant for parity runs against llama.cpp, not for speed.
	GGMLSmallBatch bool
	// Numerics selects the arithmetic: NumericsFlash (the default,
	// streaming softmax) or NumericsGGMLNoFlash (llama.cpp's non-flash
	// path, see AttentionNumerics). GGMLSmallBatch, a flash variant, must
	// not be combined with NumericsGGMLNoFlash.
	Numerics AttentionNumerics
}

// AttentionNumerics selects how Attention rounds and sums.
type AttentionNumerics uint8

const (
	// NumericsFlash is mica's streaming (flash-attention style) softmax in
	// F32; see the package doc.
	NumericsFlash AttentionNumerics = iota
	// NumericsGGMLNoFlash reproduces llama.cpp's CPU attention without
	// flash attention (ggml_mul_mat(k, q), ggml_soft_max_ext,
	// ggml_mul_mat(v, kq)) as it runs on an AVX-512 machine: q is rounded
	// to F16 when K is F16 and each score is a 16-lane tinyBLAS dot
	// product; the whole score row is kept (O(NKV) memory per row) for
	// soft_max's arithmetic (ggml's vectorised expf per 16 cells, each
	// group's sum added in double, weights times float(1/sum)); the
	// weights are rounded to F16 when V is F16 and the output is a 16-lane
	// tinyBLAS dot over the cache cells, lane = cell index mod 16. See
	// attention_ggml.go for the details and the assumptions (cell j of
	// the arguments is llama.cpp's cell j; llama.cpp's n_kv a multiple of
	// 16). Scale and Softcap mean what they mean for the other modes; the
	// order matches llama.cpp's when Scale is 1 or Softcap 0 (llama.cpp's
	// models with a softcap scale Q beforehand and pass 1).
	NumericsGGMLNoFlash
)

// AttentionArgs are the tensors of one Attention call.
type AttentionArgs struct {
	Q    []float32 // [nQ][NHead][HeadDim]
	K, V KV        // NKV keys
	NKV  int
	// QPos[i] is query i's position; KPos[j] key j's. A key with a negative
	// position is an empty cache cell and never attended. KPos may be nil
	// only when neither Causal nor Window is set (every key visible).
	QPos, KPos []int32
	// Mask is optional: [nQ][NKV] additive, added after the softcap; -Inf
	// hides a key.
	Mask []float32
	Out  []float32 // [nQ][NHead][HeadDimV]
}

// Validate checks the parameters and that every slice is long enough for
// nQ queries.
func (p AttentionParams) Validate(a *AttentionArgs, nQ int) error {
	dv := p.HeadDimV
	if dv == 0 {
		dv = p.HeadDim
	}
	switch {
	case p.NHead <= 0 || p.NKVHead <= 0 || p.NHead%p.NKVHead != 0:
		return fmt.Errorf("attention: %d query heads is not a positive multiple of %d kv heads", p.NHead, p.NKVHead)
	case p.HeadDim <= 0 || dv <= 0:
		return fmt.Errorf("attention: head dimensions %d/%d must be positive", p.HeadDim, dv)
	case p.Window < 0:
		return fmt.Errorf("attention: negative window %d", p.Window)
	case p.Numerics > NumericsGGMLNoFlash:
		return fmt.Errorf("attention: unknown numerics %d", p.Numerics)
	case p.Numerics == NumericsGGMLNoFlash && p.GGMLSmallBatch:
		return fmt.Errorf("attention: GGMLSmallBatch (a flash kernel) cannot be combined with NumericsGGMLNoFlash")
	case nQ < 0 || a.NKV < 0:
		return fmt.Errorf("attention: negative sizes")
	case len(a.Q) < nQ*p.NHead*p.HeadDim:
		return fmt.Errorf("attention: q has %d values, need %d", len(a.Q), nQ*p.NHead*p.HeadDim)
	case len(a.Out) < nQ*p.NHead*dv:
		return fmt.Errorf("attention: out has %d values, need %d", len(a.Out), nQ*p.NHead*dv)
	case (p.Causal || p.Window > 0) && (len(a.QPos) < nQ || len(a.KPos) < a.NKV):
		return fmt.Errorf("attention: causal/window masking needs %d query and %d key positions, have %d and %d", nQ, a.NKV, len(a.QPos), len(a.KPos))
	case a.KPos != nil && len(a.KPos) < a.NKV:
		return fmt.Errorf("attention: %d key positions for %d keys", len(a.KPos), a.NKV)
	case a.Mask != nil && len(a.Mask) < nQ*a.NKV:
		return fmt.Errorf("attention: mask has %d values, need %d", len(a.Mask), nQ*a.NKV)
	}
	for _, kv := range []struct {
		name string
		v    KV
		d    int
	}{{"k", a.K, p.HeadDim}, {"v", a.V, dv}} {
		if (kv.v.F32 == nil) == (kv.v.F16 == nil) {
			return fmt.Errorf("attention: %s must have exactly one of F32 and F16 storage", kv.name)
		}
		if a.NKV == 0 {
			continue
		}
		if kv.v.RowStride < 0 || kv.v.HeadStride < 0 {
			return fmt.Errorf("attention: %s has negative strides", kv.name)
		}
		need := (a.NKV-1)*kv.v.RowStride + (p.NKVHead-1)*kv.v.HeadStride + kv.d
		if kv.v.len() < need {
			return fmt.Errorf("attention: %s has %d values, its strides need %d", kv.name, kv.v.len(), need)
		}
	}
	return nil
}

// attnArgs is one call's resolved arguments.
type attnArgs struct {
	p          AttentionParams
	q, out     []float32
	k, v       KV
	qPos, kPos []int32
	mask       []float32
	nkv, dv    int
	qRow, oRow int
}

// query returns query i's position (0 without positions) and its mask row
// (nil without a mask).
func (a *attnArgs) query(i int) (qp int32, mr []float32) {
	if a.qPos != nil {
		qp = a.qPos[i]
	}
	if a.mask != nil {
		mr = a.mask[i*a.nkv : i*a.nkv+a.nkv]
	}
	return qp, mr
}

// attnBlock is the number of keys scored per step of the streaming softmax;
// the memory used per row is O(attnBlock + head dims), whatever the length.
const attnBlock = 64

// Attention computes softmax(q·kᵀ*scale [softcapped] + mask) · v for rows
// [rowStart, rowEnd), row r being query r/NHead, head r%NHead. Query head h
// reads kv head h/(NHead/NKVHead). Keys are streamed in blocks with a
// running max and sum (flash-attention style). A row with no visible key
// gets zeros. Each row is independent: any split of the rows gives the
// same bits. It returns Validate's error.
func Attention(p AttentionParams, a *AttentionArgs, nQ, rowStart, rowEnd int) error {
	if err := p.Validate(a, nQ); err != nil {
		return err
	}
	if rowStart < 0 || rowEnd > nQ*p.NHead || rowStart > rowEnd {
		return fmt.Errorf("attention: row range [%d,%d) outside [0,%d)", rowStart, rowEnd, nQ*p.NHead)
	}
	if rowEnd == rowStart {
		return nil
	}
	dv := p.HeadDimV
	if dv == 0 {
		dv = p.HeadDim
	}
	args := &attnArgs{p: p, q: a.Q, out: a.Out, k: a.K, v: a.V, nkv: a.NKV, dv: dv,
		mask: a.Mask, qRow: p.NHead * p.HeadDim, oRow: p.NHead * dv}
	if p.Causal || p.Window > 0 || a.KPos != nil {
		args.qPos, args.kPos = a.QPos, a.KPos
	}
	if args.nkv == 0 {
		for r := rowStart; r < rowEnd; r++ {
			clear(args.out[r*dv : r*dv+dv])
		}
		return nil
	}
	switch {
	case p.Numerics == NumericsGGMLNoFlash:
		attentionNoFlash(args, rowStart, rowEnd)
	case p.GGMLSmallBatch:
		attentionGGML(args, rowStart, rowEnd)
	case useFast:
		attentionFast(args, rowStart, rowEnd)
	default:
		attentionRef(args, rowStart, rowEnd)
	}
	return nil
}

// attentionRef is the plain-Go kernel: the same blocked streaming algorithm
// as mica_attn_rows in ops_amd64.c, scalar.
func attentionRef(a *attnArgs, r0, r1 int) {
	p := a.p
	d, dv := p.HeadDim, a.dv
	group := p.NHead / p.NKVHead
	scale := p.Scale
	if p.Softcap != 0 {
		scale /= p.Softcap
	}
	acc := make([]float32, dv)
	var s, pr [attnBlock]float32
	negInf := float32(math.Inf(-1))
	for r := r0; r < r1; r++ {
		i, h := r/p.NHead, r%p.NHead
		g := h / group
		q := a.q[i*a.qRow+h*d : i*a.qRow+h*d+d]
		qp, mr := a.query(i)
		clear(acc)
		m, sum := negInf, float32(0)
		for j0 := 0; j0 < a.nkv; j0 += attnBlock {
			nb := min(attnBlock, a.nkv-j0)
			any := false
			for jj := 0; jj < nb; jj++ {
				j := j0 + jj
				s[jj] = negInf
				if a.kPos != nil {
					kp := a.kPos[j]
					if kp < 0 || (p.Causal && kp > qp) || (p.Window > 0 && int(qp)-int(kp) >= p.Window) {
						continue
					}
				}
				if mr != nil && math.IsInf(float64(mr[j]), -1) {
					continue
				}
				s[jj] = dotKV(q, a.k, j*a.k.RowStride+g*a.k.HeadStride) * scale
				any = true
			}
			if !any {
				continue
			}
			bmax := negInf
			for jj := 0; jj < nb; jj++ {
				if s[jj] != negInf {
					if p.Softcap != 0 {
						s[jj] = p.Softcap * float32(math.Tanh(float64(s[jj])))
					}
					if mr != nil {
						s[jj] += mr[j0+jj]
					}
				}
				bmax = max(bmax, s[jj])
			}
			if bmax == negInf {
				continue
			}
			if bmax > m {
				if m != negInf {
					ms := float32(math.Exp(float64(m - bmax)))
					sum *= ms
					for e := range acc {
						acc[e] *= ms
					}
				}
				m = bmax
			}
			for jj := 0; jj < nb; jj++ {
				pr[jj] = float32(math.Exp(float64(s[jj] - m)))
				sum += pr[jj]
			}
			for jj := 0; jj < nb; jj++ {
				if pr[jj] == 0 {
					continue
				}
				madKV(acc, pr[jj], a.v, (j0+jj)*a.v.RowStride+g*a.v.HeadStride)
			}
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

func dotKV(q []float32, k KV, off int) float32 {
	var s float32
	if k.F16 != nil {
		row := k.F16[off : off+len(q)]
		for e, v := range q {
			h := row[e]
			var k float32
			if h&0x7c00-0x400 < 0x7800 { // normal: f16to32 inlined by hand
				k = math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + 112<<23))
			} else {
				k = quant.FP16ToFP32(h)
			}
			s += v * k
		}
		return s
	}
	row := k.F32[off : off+len(q)]
	for e, v := range q {
		s += v * row[e]
	}
	return s
}

func madKV(acc []float32, p float32, v KV, off int) {
	if v.F16 != nil {
		row := v.F16[off : off+len(acc)]
		for e := range acc {
			h := row[e]
			var v float32
			if h&0x7c00-0x400 < 0x7800 { // normal: f16to32 inlined by hand
				v = math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + 112<<23))
			} else {
				v = quant.FP16ToFP32(h)
			}
			acc[e] += p * v
		}
		return
	}
	row := v.F32[off : off+len(acc)]
	for e := range acc {
		acc[e] += p * row[e]
	}
}

// f16to32 is quant.FP16ToFP32 with the common case (a normal number:
// exponent field 1..30) done inline by rebiasing the exponent.
func f16to32(h uint16) float32 {
	if h&0x7c00-0x400 < 0x7800 {
		return math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + 112<<23))
	}
	return quant.FP16ToFP32(h)
}
