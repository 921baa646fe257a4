package compute

import (
	"fmt"

	"mica/internal/tensor"
)

// Op is one operation for Backend.Run. Ops are plain values built by the
// functions below, which check shapes and types before anything runs; a
// backend executes them (the CPU backend at once, a GPU backend may queue).
type Op interface {
	// Name is the op's name in errors and profiles.
	Name() string
}

// MatMulOp: Y[n, rows] = X[n, cols] · W[rows, cols]ᵀ. W in any supported
// dtype (quantized weights follow llama.cpp's numerics: activations are
// quantized to the weight's dot-product type); X and Y F32, contiguous.
type MatMulOp struct{ W, X, Y *Tensor }

// MatMulsOp: Ys[i] = X · Ws[i]ᵀ for every i: products of one input with
// several weights (a layer's query, key and value projections), each as
// MatMulOp computes it. A backend converts X once per dot-product type
// instead of once per weight and may run all the weights' rows together,
// so no output may overlap X or another output.
type MatMulsOp struct {
	X      *Tensor
	Ws, Ys []*Tensor
}

// GetRowsOp: Y[i] = W[IDs[i]] dequantized to F32 (embedding lookup).
type GetRowsOp struct {
	W   *Tensor
	IDs []int32
	Y   *Tensor
}

// BinaryKind selects an elementwise binary op.
type BinaryKind int

// Elementwise binary ops.
const (
	Add BinaryKind = iota
	Mul
)

// BinaryOp: Y = A ∘ B elementwise. B has A's shape, or is one row (the
// last dimension) broadcast over every row of A. Y may alias A.
type BinaryOp struct {
	Kind    BinaryKind
	A, B, Y *Tensor
}

// ScaleOp: Y = X·S (Y may alias X).
type ScaleOp struct {
	X, Y *Tensor
	S    float32
}

// UnaryKind selects an elementwise activation.
type UnaryKind int

// Elementwise activations.
const (
	GELU      UnaryKind = iota // tanh approximation
	GELUErf                    // exact, with erf
	SiLU                       // x·σ(x)
	QuickGELU                  // x·σ(1.702x)
	Softcap                    // c·tanh(x/c), c = Param
	Tanh
)

// UnaryOp: Y = f(X) elementwise (Y may alias X), or with Gate set
// Y = f(X)·Gate (GELU and SiLU only: ggml's fused geglu and swiglu, one
// pass; Y may alias X or Gate).
type UnaryOp struct {
	Kind  UnaryKind
	X, Y  *Tensor
	Gate  *Tensor
	Param float32
}

// NormKind selects a row normalisation.
type NormKind int

// Row normalisations.
const (
	RMSNorm NormKind = iota
	LayerNorm
)

// NormOp normalises each row of X: RMSNorm y = x/√(mean(x²)+ε)·w;
// LayerNorm y = (x−mean)/√(var+ε)·w + b. W and B are optional rows (nil).
type NormOp struct {
	Kind NormKind
	X, Y *Tensor
	W, B *Tensor
	Eps  float32
}

// GroupNormOp normalises X[C, H, W] (or [N, C, H, W]) over groups of
// channels, then applies per-channel W and B (optional).
type GroupNormOp struct {
	X, Y   *Tensor
	W, B   *Tensor
	Groups int
	Eps    float32
}

// SoftmaxOp: each row of Y = softmax(X·Scale) (Y may alias X).
type SoftmaxOp struct {
	X, Y  *Tensor
	Scale float32
}

// RoPEOp rotates X[tokens, heads, headDim] in place by the positions Pos
// (one per token). The first NRot dimensions of each head are rotated; NeoX
// pairs dimension i with i+NRot/2, otherwise (interleaved) 2i with 2i+1.
// Frequencies are Base^(−2i/NRot)·FreqScale, divided by Factors[i] when given.
type RoPEOp struct {
	X         *Tensor
	Pos       []int32
	NRot      int
	Base      float32
	FreqScale float32
	Factors   *Tensor // optional F32 [NRot/2]
	NeoX      bool
}

// AttentionOp computes softmax(Q·Kᵀ·Scale [softcapped] + mask)·V with a
// streaming softmax (no score matrix is materialised), or with GGML set,
// llama.cpp's arithmetic over one score row per query.
// Q[nq, heads, d], K[nk, kvHeads, d], V[nk, kvHeads, dv], Out[nq, heads, dv];
// heads is a multiple of kvHeads (grouped-query attention). K and V may be
// F32 or F16. A key at position kp is visible to a query at qp when
// (!Causal || kp <= qp) and (Window == 0 || qp-kp < Window).
type AttentionOp struct {
	Q, K, V, Out *Tensor
	QPos, KPos   []int32
	Scale        float32
	Softcap      float32 // 0: none
	Causal       bool
	Window       int
	Mask         *Tensor // optional additive F32 [nq, nk], added after the softcap
	// GGML selects llama.cpp's attention arithmetic without flash attention
	// (ggml_mul_mat(k, q), ggml_soft_max_ext, ggml_mul_mat(v, kq), with Q
	// and the softmax weights rounded to F16 for F16 K and V), which keeps
	// a whole score row per query: for parity with llama.cpp's default
	// configuration. Row j of K and V must be llama.cpp's cache cell j for
	// bit-exact agreement (the summation lanes follow the cell index).
	// Otherwise the backend uses a streaming (flash-attention style)
	// softmax in F32.
	GGML bool
}

// Conv2DOp: Y[N, OC, OH, OW] = conv(X[N, IC, H, W], W[OC, IC, KH, KW]) + B.
//
// W may also be the kernel as a matrix [OC, IC·KH·KW] (each output
// channel's weights in one row, in [IC][KH][KW] order), with KH and KW
// giving the kernel size: this is how quantized kernels are passed, since a
// quantized tensor's blocks run along its last dimension and a 3-wide
// kernel row cannot hold them.
type Conv2DOp struct {
	X, W, B, Y           *Tensor
	StrideH, StrideW     int
	PadH, PadW           int
	DilationH, DilationW int
	KH, KW               int // kernel size when W is a matrix; 0 when W is 4-D
}

// Kernel returns the kernel's output channels, height and width, whether
// W is 4-D or a matrix.
func (o Conv2DOp) Kernel() (oc, kh, kw int) {
	if len(o.W.Shape) == 2 {
		return o.W.Shape[0], o.KH, o.KW
	}
	return o.W.Shape[0], o.W.Shape[2], o.W.Shape[3]
}

// UpsampleOp: nearest-neighbour upsampling of X[N, C, H, W] by Factor.
type UpsampleOp struct {
	X, Y   *Tensor
	Factor int
}

// ConcatOp: Y = concat(A, B) along Axis.
type ConcatOp struct {
	A, B, Y *Tensor
	Axis    int
}

// CopyOp copies Src (any view: permuted, strided) into Dst element by
// element in Src's logical order, converting between F32, F16 and BF16.
type CopyOp struct{ Src, Dst *Tensor }

func (MatMulOp) Name() string    { return "matmul" }
func (MatMulsOp) Name() string   { return "matmuls" }
func (GetRowsOp) Name() string   { return "get_rows" }
func (BinaryOp) Name() string    { return "binary" }
func (ScaleOp) Name() string     { return "scale" }
func (UnaryOp) Name() string     { return "unary" }
func (NormOp) Name() string      { return "norm" }
func (GroupNormOp) Name() string { return "group_norm" }
func (SoftmaxOp) Name() string   { return "softmax" }
func (RoPEOp) Name() string      { return "rope" }
func (AttentionOp) Name() string { return "attention" }
func (Conv2DOp) Name() string    { return "conv2d" }
func (UpsampleOp) Name() string  { return "upsample" }
func (ConcatOp) Name() string    { return "concat" }
func (CopyOp) Name() string      { return "copy" }

func sameShape(a, b *Tensor) bool {
	if len(a.Shape) != len(b.Shape) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}

func needF32(op string, ts ...*Tensor) error {
	for _, t := range ts {
		if t != nil && t.DType != tensor.F32 {
			return fmt.Errorf("%s: tensor %v must be F32", op, t)
		}
	}
	return nil
}

func needContiguous(op string, ts ...*Tensor) error {
	for _, t := range ts {
		if t != nil && !t.Contiguous() {
			return fmt.Errorf("%s: tensor %v must be contiguous (use Copy)", op, t)
		}
	}
	return nil
}
