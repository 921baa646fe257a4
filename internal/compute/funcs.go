package compute

import (
	"fmt"

	"mica/internal/tensor"
)

// The functions below check an op's operands and run it on the backend that
// owns the output. They are what models call.

func run(out *Tensor, op Op) error {
	if out == nil || out.owner == nil {
		return fmt.Errorf("%s: output tensor has no backend", op.Name())
	}
	if out.wrapped {
		return fmt.Errorf("%s: output %v is read-only (wrapped host memory)", op.Name(), out)
	}
	return out.owner.Run(op)
}

// MatMul computes y[n, rows] = x[n, cols] · w[rows, cols]ᵀ.
func MatMul(w, x, y *Tensor) error {
	if err := checkMatMul("matmul", w, x, y); err != nil {
		return err
	}
	return run(y, MatMulOp{W: w, X: x, Y: y})
}

// MatMuls computes ys[i] = x · ws[i]ᵀ for every i (each as MatMul would):
// one input against several weights, converted once. The outputs must not
// overlap x or each other (the products run together).
func MatMuls(x *Tensor, ws, ys []*Tensor) error {
	const op = "matmuls"
	if len(ws) == 0 || len(ws) != len(ys) {
		return fmt.Errorf("%s: %d weights and %d outputs (need the same number, at least one)", op, len(ws), len(ys))
	}
	for i := range ws {
		if err := checkMatMul(op, ws[i], x, ys[i]); err != nil {
			return err
		}
		if ys[i].owner != ys[0].owner {
			return fmt.Errorf("%s: outputs %v and %v are on different backends", op, ys[0], ys[i])
		}
		if ys[i].wrapped {
			return fmt.Errorf("%s: output %v is read-only (wrapped host memory)", op, ys[i])
		}
	}
	return run(ys[0], MatMulsOp{X: x, Ws: ws, Ys: ys})
}

func checkMatMul(op string, w, x, y *Tensor) error {
	if len(w.Shape) != 2 {
		return shapeErr(op, "weight %v must be 2-D", w)
	}
	if err := needF32(op, x, y); err != nil {
		return err
	}
	if err := needContiguous(op, x, y); err != nil {
		return err
	}
	rows, cols := w.Shape[0], w.Shape[1]
	if x.Dim(-1) != cols || y.Dim(-1) != rows || x.Rows() != y.Rows() {
		return shapeErr(op, "w %v, x %v, y %v", w, x, y)
	}
	return nil
}

// GetRows writes rows ids of w (any dtype) to y as F32.
func GetRows(w *Tensor, ids []int32, y *Tensor) error {
	const op = "get_rows"
	if len(w.Shape) != 2 || y.Rows() != len(ids) || y.Dim(-1) != w.Shape[1] {
		return shapeErr(op, "w %v, %d ids, y %v", w, len(ids), y)
	}
	if err := needF32(op, y); err != nil {
		return err
	}
	for i, id := range ids {
		if id < 0 || int(id) >= w.Shape[0] {
			return fmt.Errorf("%s: id %d at %d out of range [0,%d)", op, id, i, w.Shape[0])
		}
	}
	return run(y, GetRowsOp{W: w, IDs: ids, Y: y})
}

func binary(kind BinaryKind, a, b, y *Tensor) error {
	const op = "binary"
	if err := needF32(op, a, b, y); err != nil {
		return err
	}
	if err := needContiguous(op, a, b, y); err != nil {
		return err
	}
	if !sameShape(a, y) || (!sameShape(a, b) && b.Elems() != a.Dim(-1)) {
		return shapeErr(op, "a %v, b %v, y %v", a, b, y)
	}
	return run(y, BinaryOp{Kind: kind, A: a, B: b, Y: y})
}

// AddTo computes y = a + b (b the same shape as a, or one row broadcast).
func AddTo(a, b, y *Tensor) error { return binary(Add, a, b, y) }

// MulTo computes y = a ⊙ b (b the same shape as a, or one row broadcast).
func MulTo(a, b, y *Tensor) error { return binary(Mul, a, b, y) }

// Scale computes y = x·s.
func Scale(x *Tensor, s float32, y *Tensor) error {
	if err := unaryCheck("scale", x, y); err != nil {
		return err
	}
	return run(y, ScaleOp{X: x, Y: y, S: s})
}

func unaryCheck(op string, x, y *Tensor) error {
	if err := needF32(op, x, y); err != nil {
		return err
	}
	if err := needContiguous(op, x, y); err != nil {
		return err
	}
	if x.Elems() != y.Elems() {
		return shapeErr(op, "x %v, y %v", x, y)
	}
	return nil
}

// Unary applies an activation: y = f(x) (param is the softcap value).
func Unary(kind UnaryKind, x, y *Tensor, param float32) error {
	if err := unaryCheck("unary", x, y); err != nil {
		return err
	}
	if kind == Softcap && param <= 0 {
		return fmt.Errorf("unary: softcap must be positive, got %v", param)
	}
	return run(y, UnaryOp{Kind: kind, X: x, Y: y, Param: param})
}

// Gated applies an activation times a gate: y = f(x)·g, for GELU (ggml's
// geglu) and SiLU (swiglu), in one pass. y may alias x or g.
func Gated(kind UnaryKind, x, g, y *Tensor) error {
	const op = "gated unary"
	if err := unaryCheck(op, x, y); err != nil {
		return err
	}
	if err := unaryCheck(op, g, y); err != nil {
		return err
	}
	if kind != GELU && kind != SiLU {
		return fmt.Errorf("%s: only GELU and SiLU take a gate, got kind %d", op, kind)
	}
	return run(y, UnaryOp{Kind: kind, X: x, Y: y, Gate: g})
}

// Norm normalises the rows of x into y (w, b optional rows).
func Norm(kind NormKind, x, w, b, y *Tensor, eps float32) error {
	const op = "norm"
	if err := unaryCheck(op, x, y); err != nil {
		return err
	}
	for _, p := range []*Tensor{w, b} {
		if p != nil && (p.Elems() != x.Dim(-1) || p.DType != tensor.F32 || !p.Contiguous()) {
			return shapeErr(op, "parameter %v for rows of %d", p, x.Dim(-1))
		}
	}
	return run(y, NormOp{Kind: kind, X: x, W: w, B: b, Y: y, Eps: eps})
}

// GroupNorm normalises x[C,H,W] or x[N,C,H,W] over groups of channels.
func GroupNorm(x, w, b, y *Tensor, groups int, eps float32) error {
	const op = "group_norm"
	if err := unaryCheck(op, x, y); err != nil {
		return err
	}
	nd := len(x.Shape)
	if nd != 3 && nd != 4 {
		return shapeErr(op, "x %v must be [C,H,W] or [N,C,H,W]", x)
	}
	c := x.Shape[nd-3]
	if groups <= 0 || c%groups != 0 {
		return shapeErr(op, "%d channels in %d groups", c, groups)
	}
	for _, p := range []*Tensor{w, b} {
		if p != nil && p.Elems() != c {
			return shapeErr(op, "parameter %v for %d channels", p, c)
		}
	}
	return run(y, GroupNormOp{X: x, Y: y, W: w, B: b, Groups: groups, Eps: eps})
}

// Softmax computes y = softmax(x·scale) over each row.
func Softmax(x, y *Tensor, scale float32) error {
	if err := unaryCheck("softmax", x, y); err != nil {
		return err
	}
	return run(y, SoftmaxOp{X: x, Y: y, Scale: scale})
}

// RoPE rotates x[tokens, heads, headDim] in place (see RoPEOp).
func RoPE(op RoPEOp) error {
	x := op.X
	if err := needF32("rope", x); err != nil {
		return err
	}
	if len(x.Shape) != 3 || len(op.Pos) != x.Shape[0] {
		return shapeErr("rope", "x %v with %d positions", x, len(op.Pos))
	}
	if op.NRot <= 0 || op.NRot > x.Shape[2] || op.NRot%2 != 0 {
		return shapeErr("rope", "n_rot %d for head dim %d", op.NRot, x.Shape[2])
	}
	if op.Factors != nil && op.Factors.Elems() != op.NRot/2 {
		return shapeErr("rope", "%d frequency factors for n_rot %d", op.Factors.Elems(), op.NRot)
	}
	if op.FreqScale == 0 {
		op.FreqScale = 1
	}
	return run(x, op)
}

// Attention runs scaled dot-product attention (see AttentionOp).
func Attention(op AttentionOp) error {
	const name = "attention"
	q, k, v, out := op.Q, op.K, op.V, op.Out
	if len(q.Shape) != 3 || len(k.Shape) != 3 || len(v.Shape) != 3 || len(out.Shape) != 3 {
		return shapeErr(name, "q %v, k %v, v %v, out %v must be 3-D", q, k, v, out)
	}
	nq, heads, d := q.Shape[0], q.Shape[1], q.Shape[2]
	nk, kvHeads := k.Shape[0], k.Shape[1]
	if k.Shape[2] != d || v.Shape[0] != nk || v.Shape[1] != kvHeads ||
		out.Shape[0] != nq || out.Shape[1] != heads || out.Shape[2] != v.Shape[2] ||
		kvHeads == 0 || heads%kvHeads != 0 {
		return shapeErr(name, "q %v, k %v, v %v, out %v", q, k, v, out)
	}
	if len(op.QPos) != nq || len(op.KPos) != nk {
		return shapeErr(name, "%d query / %d key positions for %d / %d rows", len(op.QPos), len(op.KPos), nq, nk)
	}
	if err := needF32(name, q, out, op.Mask); err != nil {
		return err
	}
	if err := needContiguous(name, q, out, op.Mask); err != nil {
		return err
	}
	if op.Mask != nil && (op.Mask.Rows() != nq || op.Mask.Dim(-1) != nk) {
		return shapeErr(name, "mask %v for %d queries and %d keys", op.Mask, nq, nk)
	}
	for _, t := range []*Tensor{k, v} {
		if t.DType != tensor.F32 && t.DType != tensor.F16 {
			return fmt.Errorf("%s: K/V %v must be F32 or F16", name, t)
		}
	}
	return run(out, op)
}

// Conv2D runs a 2-D convolution (see Conv2DOp); zero dilation means 1.
func Conv2D(op Conv2DOp) error {
	const name = "conv2d"
	x, w, y := op.X, op.W, op.Y
	if op.DilationH == 0 {
		op.DilationH = 1
	}
	if op.DilationW == 0 {
		op.DilationW = 1
	}
	if op.StrideH <= 0 || op.StrideW <= 0 || op.PadH < 0 || op.PadW < 0 {
		return fmt.Errorf("%s: stride %dx%d and padding %dx%d must be positive / non-negative", name, op.StrideH, op.StrideW, op.PadH, op.PadW)
	}
	if len(x.Shape) != 4 || len(y.Shape) != 4 {
		return shapeErr(name, "x %v, w %v, y %v", x, w, y)
	}
	switch len(w.Shape) {
	case 4:
		if x.Shape[1] != w.Shape[1] || op.KH != 0 || op.KW != 0 {
			return shapeErr(name, "x %v, w %v (kernel size %dx%d given for a 4-D kernel)", x, w, op.KH, op.KW)
		}
	case 2:
		if op.KH <= 0 || op.KW <= 0 || w.Shape[1] != x.Shape[1]*op.KH*op.KW {
			return shapeErr(name, "x %v, kernel matrix %v, kernel %dx%d: want [OC, %d·KH·KW]", x, w, op.KH, op.KW, x.Shape[1])
		}
	default:
		return shapeErr(name, "x %v, w %v, y %v", x, w, y)
	}
	_, kh, kw := op.Kernel()
	oh := (x.Shape[2]+2*op.PadH-op.DilationH*(kh-1)-1)/op.StrideH + 1
	ow := (x.Shape[3]+2*op.PadW-op.DilationW*(kw-1)-1)/op.StrideW + 1
	if y.Shape[0] != x.Shape[0] || y.Shape[1] != w.Shape[0] || y.Shape[2] != oh || y.Shape[3] != ow {
		return shapeErr(name, "y %v, want [%d %d %d %d]", y, x.Shape[0], w.Shape[0], oh, ow)
	}
	if op.B != nil && op.B.Elems() != w.Shape[0] {
		return shapeErr(name, "bias %v for %d output channels", op.B, w.Shape[0])
	}
	if err := needF32(name, x, y, op.B); err != nil {
		return err
	}
	return run(y, op)
}

// Upsample scales x[N,C,H,W] by an integer factor (nearest neighbour).
func Upsample(x, y *Tensor, factor int) error {
	if len(x.Shape) != 4 || factor < 1 || len(y.Shape) != 4 ||
		y.Shape[0] != x.Shape[0] || y.Shape[1] != x.Shape[1] ||
		y.Shape[2] != x.Shape[2]*factor || y.Shape[3] != x.Shape[3]*factor {
		return shapeErr("upsample", "x %v ×%d, y %v", x, factor, y)
	}
	if err := needF32("upsample", x, y); err != nil {
		return err
	}
	return run(y, UpsampleOp{X: x, Y: y, Factor: factor})
}

// Concat writes concat(a, b) along axis into y.
func Concat(a, b, y *Tensor, axis int) error {
	if axis < 0 {
		axis += len(a.Shape)
	}
	ok := len(a.Shape) == len(b.Shape) && len(a.Shape) == len(y.Shape) && axis >= 0 && axis < len(a.Shape)
	for i := 0; ok && i < len(a.Shape); i++ {
		if i == axis {
			ok = y.Shape[i] == a.Shape[i]+b.Shape[i]
		} else {
			ok = a.Shape[i] == b.Shape[i] && a.Shape[i] == y.Shape[i]
		}
	}
	if !ok {
		return shapeErr("concat", "a %v, b %v, y %v on axis %d", a, b, y, axis)
	}
	if err := needF32("concat", a, b, y); err != nil {
		return err
	}
	return run(y, ConcatOp{A: a, B: b, Y: y, Axis: axis})
}

// Copy copies src (any view) into the contiguous dst, converting dtype
// between F32, F16 and BF16.
func Copy(src, dst *Tensor) error {
	if src.Elems() != dst.Elems() {
		return shapeErr("copy", "src %v, dst %v", src, dst)
	}
	for _, t := range []*Tensor{src, dst} {
		if t.DType != tensor.F32 && t.DType != tensor.F16 && t.DType != tensor.BF16 {
			return fmt.Errorf("copy: %v must be F32, F16 or BF16", t)
		}
	}
	if err := needContiguous("copy", dst); err != nil {
		return err
	}
	return run(dst, CopyOp{Src: src, Dst: dst})
}
