// Package matmul multiplies weight matrices of any mica data type by F32
// activations: Y = X·Wᵀ, the matrix-vector product of decode and the GEMM of
// prefill and of convolutions. It holds a plain-Go reference for every type
// and SIMD fast paths (AVX2, AVX-512) chosen at run time.
//
// Layout: W is rows×cols, row-major, each row t.RowBytes(cols) bytes (GGUF,
// ne0 = cols). X is n×cols float32. Y is n×rows float32 with leading
// dimension ldy: Y[j*ldy+r] = Σ_k W[r,k]·X[j,k].
//
// Numerics follow llama.cpp: for quantized weights the activations are
// quantized once per call (Prepare) to the type's vec-dot type (Q8_0, Q8_1 or
// Q8_K) and each block's dot product is an exact integer sum scaled by the
// blocks' float scales.
//
// F32, F16 and BF16 weights reproduce the summation order of llamafile's
// tinyBLAS, which llama.cpp's CPU backend uses for these types on an
// AVX-512 machine (see floatorder.go): activations are rounded to the
// weight type (F16, or BF16 with round-to-nearest-even) in Prepare, as
// ggml's vec-dot type demands; each output keeps 16 float32 lane
// accumulators updated by single-rounding fused multiply-adds, reduced
// 16→8→4 lanes and then (l0+l2)+(l1+l3). The fast kernels compute exactly
// the reference's operations, so they agree with it bit for bit.
//
// Fast paths (C through cgo, chosen once at start-up from the CPU's
// features): AVX2+FMA+F16C for everything; with AVX-512 F/BW/VL the float
// kernels use 512-bit vectors (the same lane order), and with VNNI as well
// the quantized kernels use vpdpbusd (on 256-bit vectors). Prepare's
// activation quantizers have an AVX2 version that gives the reference's
// bytes exactly. Without cgo or on other architectures the plain-Go
// reference runs.
//
// Determinism: MulRows may be called on any split of the weight rows (one
// chunk per worker); each Y element is computed by the same instruction
// sequence whatever the split, so results do not depend on the thread count.
// For float weights an element's value also does not depend on n (decode
// and prefill agree bit for bit): every path (n = 1 matrix-vector, register
// tiles for n > 1) performs the same per-element operations. The same
// holds for quantized weights on the fast paths: the n = 1 kernels and the
// tiles add each block's term d_w·d_x·isum into the same eight float lanes
// in the same order (the 32-element types but Q8_0: two blocks per
// multiply-add, see mv_q4p) and reduce them with the same tree, so a row's
// outputs do not depend on n or its position in the batch. Batches have
// dedicated kernels (qkern_batch*.h: Q4_0, Q5_0, IQ4_NL, Q4_1 and Q5_1 at
// every level; Q8_0 and the super-block types in the AVX2 build) that
// unpack each weight block once for up to eight activation rows and keep
// to that same per-element sequence. The
// quantized reference sums blocks sequentially in one float and agrees with
// the fast paths within fastTol (matmul_test.go), not bit for bit.
//
// Benchmarks: go test -bench . ./internal/kernels/matmul (BatchDecode:
// small batches on Gemma shapes), and for the table of `mica bench kernels`
// with the machine's limits measured alongside, MICA_BENCH_REPORT=1 go test
// -run BenchReport -v ./internal/kernels/matmul.
package matmul

import (
	"fmt"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// VecDotType is the type the activations are converted to for weights of
// type wt (ggml's vec_dot_type): Q8_0 for Q4_0, Q5_0, Q8_0 and IQ4_NL; Q8_1
// for Q4_1 and Q5_1; Q8_K for the K-quants and IQ4_XS; F32, F16 and BF16 for
// themselves.
func VecDotType(wt tensor.DType) (tensor.DType, error) {
	switch wt {
	case tensor.F32, tensor.F16, tensor.BF16:
		return wt, nil
	case tensor.Q4_0, tensor.Q5_0, tensor.Q8_0, tensor.IQ4_NL:
		return tensor.Q8_0, nil
	case tensor.Q4_1, tensor.Q5_1:
		return tensor.Q8_1, nil
	case tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_XS:
		return tensor.Q8_K, nil
	}
	return 0, fmt.Errorf("matmul: weight type %v is not supported", wt)
}

// Supported reports whether MulRows handles weights of type wt.
func Supported(wt tensor.DType) bool { _, err := VecDotType(wt); return err == nil }

// vecRowBytes is the byte length of one prepared activation row.
func vecRowBytes(vt tensor.DType, cols int) int {
	switch vt {
	case tensor.Q8_0:
		return cols / 32 * 34
	case tensor.Q8_1:
		return cols / 32 * 36
	case tensor.Q8_K:
		return cols / 256 * 292
	case tensor.F16:
		return 4 * cols
	case tensor.BF16:
		return 8 * cols
	}
	return 0
}

// Prepared holds activations converted to the vec-dot type of a weight type.
// It is read-only during MulRows, so one Prepared serves every row chunk of a
// call, concurrently.
type Prepared struct {
	WType   tensor.DType // weight type it was prepared for
	VecType tensor.DType // F32, F16, BF16, Q8_0, Q8_1 or Q8_K
	N, Cols int
	// F32 holds N×Cols activation values for float weights: for VecType F32
	// the activations themselves (not copied); for F16 and BF16 a copy
	// rounded to that type (every value exactly representable in it), kept
	// in Q's storage.
	F32      []float32
	Q        []byte // quantized types: N rows of RowBytes bytes each; F16/BF16: storage for F32 (and kern, pk); F32: for pk
	RowBytes int
	// kern is what the fast kernels read for BF16 weights: each 32-column
	// group reordered as its 16 odd then its 16 even columns (the operand
	// order of vdpbf16ps lanes), the last Cols%32 columns in place.
	kern []float32
	// pk holds, for the AVX2 GEMM (F16 and F32 weights, more than 48 rows,
	// at most 8 MiB packed), the activations packed in its operand order
	// once for all threads; empty elsewhere.
	pk []byte
}

// Packed reports whether the activations are held in the kernels' operand
// order for all threads (the AVX2 GEMM's F16 and F32 products): then
// MulBlock runs pieces of the product, blocks of BlockRows activation rows
// × ranges of weight rows, without converting anything again.
func (p *Prepared) Packed() bool { return len(p.pk) > 0 }

// BlockRows is the activation rows of one block of the AVX2 GEMM (F16, F32
// and BF16 weights, more than 48 activation rows), a multiple of 3: the
// kernel runs its weight rows over one block at a time, the activations
// packed once for all threads (Packed) or, where they are not, by each
// call block by block. 0 where the products are not computed in blocks
// (quantized weights, fewer rows, other instruction sets).
func (p *Prepared) BlockRows() int {
	if p.N == 0 {
		return 0
	}
	return gemmBlockRows(p.WType, p.N, p.Cols)
}

// MulBlock is MulRows for activation rows [j0, j1) only: the threads of a
// product can share it out by activation rows (each packing only its own
// rows where the kernel packs them per call) or, on packed activations, in
// pieces of activation blocks × weight rows; then j0 must be a multiple of
// 3 (block starts are). The values are MulRows' bits.
func MulBlock(wt tensor.DType, w []byte, cols int, p *Prepared, y []float32, ldy, rowStart, rowEnd, j0, j1 int) error {
	rb, err := checkMul(wt, w, cols, p, y, ldy, rowStart, rowEnd)
	switch {
	case err != nil:
		return err
	case j0 < 0 || j1 > p.N || j0 >= j1 || p.Packed() && j0%3 != 0:
		return fmt.Errorf("matmul: MulBlock: bad activation rows [%d, %d) of %d", j0, j1, p.N)
	case rowEnd == rowStart:
		return nil
	case p.Packed():
		return fastMulBlock(w, rb, cols, p, y, ldy, rowStart, rowEnd, j0, j1)
	}
	// the rows' own view of the converted activations
	v := *p
	v.N = j1 - j0
	switch p.VecType {
	case tensor.F32, tensor.F16, tensor.BF16:
		v.F32 = p.F32[j0*cols : j1*cols]
		if p.kern != nil {
			v.kern = p.kern[j0*cols : j1*cols]
		}
	default:
		v.Q = p.Q[j0*p.RowBytes : j1*p.RowBytes]
	}
	return MulRows(wt, w, cols, &v, y[j0*ldy:], ldy, rowStart, rowEnd)
}

// checkCols validates cols against the weight type's block size.
func checkCols(wt tensor.DType, cols int) error {
	if _, err := VecDotType(wt); err != nil {
		return err
	}
	if cols <= 0 {
		return fmt.Errorf("matmul: %v weights: cols %d must be positive", wt, cols)
	}
	if bs := wt.BlockSize(); cols%bs != 0 {
		return fmt.Errorf("matmul: %v weights: cols %d is not a multiple of the block size %d", wt, cols, bs)
	}
	return nil
}

// PreparedSize is the number of bytes of converted activations Prepare makes
// (in Prepared.Q) for n rows of cols activations and weight type wt: 0 for
// F32, whose activations are used in place; 4·n·cols for F16 (rounded
// values as float32) and 8·n·cols for BF16 (the rounded values and the
// kernels' column order).
func PreparedSize(wt tensor.DType, n, cols int) (int, error) {
	if err := checkCols(wt, cols); err != nil {
		return 0, err
	}
	vt, _ := VecDotType(wt)
	return n*vecRowBytes(vt, cols) + packedBytes(vt, n, cols), nil
}

// Prepare converts n×cols activations x for a product with wt weights.
func Prepare(wt tensor.DType, x []float32, n, cols int) (*Prepared, error) {
	p := new(Prepared)
	if err := PrepareInto(p, wt, x, n, cols); err != nil {
		return nil, err
	}
	return p, nil
}

// PrepareInto is Prepare reusing p's buffer when it is large enough, so a
// caller can avoid an allocation per call. p must not be in use by MulRows.
func PrepareInto(p *Prepared, wt tensor.DType, x []float32, n, cols int) error {
	if err := PrepareLayout(p, wt, x, n, cols); err != nil {
		return err
	}
	PrepareRows(p, x, 0, n)
	return nil
}

// PrepareLayout is the first half of PrepareInto: it checks the arguments
// and sizes p for n×cols activations x and wt weights, converting nothing.
// PrepareRows then converts the rows, each independently of the others, so
// a caller may convert ranges of rows in parallel; p is ready once every
// row has been.
func PrepareLayout(p *Prepared, wt tensor.DType, x []float32, n, cols int) error {
	if err := checkCols(wt, cols); err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("matmul: %v weights: n %d must be positive", wt, n)
	}
	if len(x) < n*cols {
		return fmt.Errorf("matmul: %v weights: activations hold %d values, need n×cols = %d×%d", wt, len(x), n, cols)
	}
	vt, _ := VecDotType(wt)
	rb := vecRowBytes(vt, cols)
	p.WType, p.VecType, p.N, p.Cols, p.RowBytes = wt, vt, n, cols, rb
	p.kern, p.pk = nil, nil
	if vt == tensor.F32 { // used as they are, and packed for the AVX2 GEMM
		p.F32 = x[:n*cols]
		pkb := packedBytes(vt, n, cols)
		if cap(p.Q) < pkb {
			p.Q = make([]byte, pkb)
		}
		p.Q = p.Q[:0]
		if pkb > 0 {
			p.pk = p.Q[:pkb]
		}
		return nil
	}
	p.F32 = nil
	pkb := packedBytes(vt, n, cols)
	if cap(p.Q) < n*rb+pkb || (vt == tensor.F16 || vt == tensor.BF16) && !aligned4(p.Q[:cap(p.Q)]) {
		p.Q = make([]byte, n*rb+pkb)
	}
	if pkb > 0 {
		p.pk = p.Q[n*rb : n*rb+pkb]
	}
	p.Q = p.Q[:n*rb]
	if vt == tensor.F16 || vt == tensor.BF16 {
		m := n * cols
		p.F32 = asFloats(p.Q, m)
		if vt == tensor.BF16 {
			p.kern = asFloats(p.Q[4*m:], m)
		}
	}
	return nil
}

// PrepareRows converts activation rows [j0, j1) of x into p, laid out by
// PrepareLayout with the same x.
func PrepareRows(p *Prepared, x []float32, j0, j1 int) {
	vt, cols, rb := p.VecType, p.Cols, p.RowBytes
	switch vt {
	case tensor.F32:
		if len(p.pk) > 0 && j1 > j0 {
			fastPack(vt, x, cols, j0, j1, p.pk)
		}
		return
	case tensor.F16, tensor.BF16:
		var kern []float32
		if vt == tensor.BF16 {
			kern = p.kern[j0*cols : j1*cols]
		}
		roundActivations(vt, x[j0*cols:j1*cols], p.F32[j0*cols:j1*cols], kern, cols)
		if len(p.pk) > 0 && j1 > j0 {
			fastPack(vt, x, cols, j0, j1, p.pk)
		}
		return
	}
	for j := j0; j < j1; j++ {
		src := x[j*cols : (j+1)*cols]
		dst := p.Q[j*rb : (j+1)*rb]
		if fastQuantize(vt, src, dst) {
			continue
		}
		switch vt {
		case tensor.Q8_0:
			quant.ActivationQ8_0(src, dst)
		case tensor.Q8_1:
			quant.ActivationQ8_1(src, dst)
		case tensor.Q8_K:
			quant.QuantizeQ8_K(src, dst)
		}
	}
}

// checkMul validates the arguments of MulRows/MulRowsRef and returns the
// weight row length in bytes.
func checkMul(wt tensor.DType, w []byte, cols int, p *Prepared, y []float32, ldy, rowStart, rowEnd int) (int, error) {
	if err := checkCols(wt, cols); err != nil {
		return 0, err
	}
	if p == nil {
		return 0, fmt.Errorf("matmul: %v weights: no prepared activations", wt)
	}
	if p.WType != wt && p.VecType != mustVecType(wt) {
		return 0, fmt.Errorf("matmul: activations were prepared for %v weights, not %v", p.WType, wt)
	}
	if p.Cols != cols {
		return 0, fmt.Errorf("matmul: %v weights: activations have %d columns, weights %d", wt, p.Cols, cols)
	}
	if rowStart < 0 || rowEnd < rowStart {
		return 0, fmt.Errorf("matmul: %v weights: bad row range [%d, %d)", wt, rowStart, rowEnd)
	}
	rb64, _ := wt.RowBytes(int64(cols))
	rb := int(rb64)
	if len(w) < rowEnd*rb {
		return 0, fmt.Errorf("matmul: %v weights: %d bytes hold %d rows of %d columns, need %d rows", wt, len(w), len(w)/rb, cols, rowEnd)
	}
	if p.N > 1 && ldy < rowEnd {
		return 0, fmt.Errorf("matmul: %v weights: ldy %d is less than the row end %d", wt, ldy, rowEnd)
	}
	if rowEnd > rowStart && len(y) < (p.N-1)*ldy+rowEnd {
		return 0, fmt.Errorf("matmul: %v weights: output holds %d values, need %d", wt, len(y), (p.N-1)*ldy+rowEnd)
	}
	return rb, nil
}

func mustVecType(wt tensor.DType) tensor.DType { vt, _ := VecDotType(wt); return vt }

// MulRows computes Y[j*ldy+r] for every activation row j and weight rows
// rowStart ≤ r < rowEnd, using the fastest kernel this CPU supports. w holds
// the whole weight matrix from row 0.
func MulRows(wt tensor.DType, w []byte, cols int, p *Prepared, y []float32, ldy int, rowStart, rowEnd int) error {
	rb, err := checkMul(wt, w, cols, p, y, ldy, rowStart, rowEnd)
	if err != nil || rowEnd == rowStart {
		return err
	}
	if fastMul(wt, w, rb, cols, p, y, ldy, rowStart, rowEnd) {
		return nil
	}
	mulRowsRef(wt, w, rb, cols, p, y, ldy, rowStart, rowEnd)
	return nil
}

// MulRowsRef is MulRows in plain Go: the oracle for the fast kernels and the
// path of CGO_ENABLED=0 builds. For quantized types it mirrors ggml's generic
// vec_dot functions (integer block sums × scales); for F32/F16/BF16 it
// follows tinyBLAS's 16-lane fused multiply-add order (see the package doc),
// which the fast kernels reproduce bit for bit.
func MulRowsRef(wt tensor.DType, w []byte, cols int, p *Prepared, y []float32, ldy int, rowStart, rowEnd int) error {
	rb, err := checkMul(wt, w, cols, p, y, ldy, rowStart, rowEnd)
	if err != nil || rowEnd == rowStart {
		return err
	}
	mulRowsRef(wt, w, rb, cols, p, y, ldy, rowStart, rowEnd)
	return nil
}

// Mul is a convenience: Y (n×rows, ldy = rows) = X·Wᵀ on one goroutine.
func Mul(wt tensor.DType, w []byte, rows, cols int, x []float32, n int, y []float32) error {
	p, err := Prepare(wt, x, n, cols)
	if err != nil {
		return err
	}
	return MulRows(wt, w, cols, p, y, rows, 0, rows)
}

// ISA names the instruction set MulRows uses on this machine: "avx512-vnni"
// (AVX-512 F/BW/VL with VNNI), "avx512" (512-bit float kernels, AVX2
// quantized kernels), "avx2" (AVX2+FMA+F16C) or "go".
func ISA() string {
	if avx512Emulated && isa >= isaAVX512 {
		return isaName(isa) + " (emulated)"
	}
	return isaName(isa)
}

func isaName(level int) string {
	switch level {
	case isaAVX512VNNI:
		return "avx512-vnni"
	case isaAVX512:
		return "avx512"
	case isaAVX2:
		return "avx2"
	}
	return "go"
}
