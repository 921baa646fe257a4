package matmul

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

var allTypes = []tensor.DType{
	tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1, tensor.Q5_0,
	tensor.Q5_1, tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_NL,
	tensor.IQ4_XS,
}

// testCols are awkward column counts the type allows: one block, a few
// blocks, and non-powers of two (640 and 2880 are Gemma/SD sizes).
func testCols(t tensor.DType) []int {
	switch t.BlockSize() {
	case 1:
		return []int{1, 7, 13, 16, 40, 48, 64, 70, 640, 2880}
	case 32:
		return []int{32, 96, 640, 2880}
	}
	return []int{256, 768, 2560}
}

var (
	testRows = []int{1, 3, 17, 33}
	testN    = []int{1, 2, 3, 4, 5, 7, 16}
)

const u = 1.0 / (1 << 24) // float32 unit roundoff

// isaLevels are the fast-path levels this machine can run.
func isaLevels() []int {
	var l []int
	for _, v := range []int{isaAVX2, isaAVX512, isaAVX512VNNI} {
		if v <= maxISA {
			l = append(l, v)
		}
	}
	return l
}

func withISA(level int, f func()) {
	old := isa
	isa = level
	defer func() { isa = old }()
	f()
}

// dequantRows returns W as float64 (rows×cols) using the library's
// dequantizer (independent of this package). With magnitude set, the block
// minimum terms of Q4_1/Q5_1/Q2_K/Q4_K/Q5_K count positively: the result is
// |scale part| + |min part|, which bounds every float term either kernel
// adds (RandomWeights makes all block scales positive and the quants of these
// types are unsigned, so flipping the sign of the min scale gives exactly
// that).
func dequantRows(t *testing.T, wt tensor.DType, w []byte, rows, cols int, magnitude bool) []float64 {
	t.Helper()
	if magnitude {
		w = bytes.Clone(w)
		var off int
		switch wt {
		case tensor.Q2_K:
			off = 82
		case tensor.Q4_K, tensor.Q5_K:
			off = 2
		default:
			off = -1
		}
		if off >= 0 {
			for b := 0; b < len(w); b += wt.TypeSize() {
				w[b+off+1] ^= 0x80
			}
		}
	}
	out32 := make([]float32, rows*cols)
	switch wt {
	case tensor.F32, tensor.F16, tensor.BF16:
		rb, _ := wt.RowBytes(int64(cols))
		for r := 0; r < rows; r++ {
			widenRow(wt, w[r*int(rb):(r+1)*int(rb)], out32[r*cols:(r+1)*cols])
		}
	default:
		if err := quant.Dequantize(wt, w, out32); err != nil {
			t.Fatalf("dequantize %v: %v", wt, err)
		}
	}
	out := make([]float64, len(out32))
	for i, v := range out32 {
		out[i] = float64(v)
		if magnitude {
			out[i] = math.Abs(out[i])
		}
	}
	return out
}

// preparedValues is X as the kernels see it: the activations themselves for
// float weights, the dequantized Q8 blocks otherwise.
func preparedValues(t *testing.T, p *Prepared) []float64 {
	t.Helper()
	out := make([]float64, p.N*p.Cols)
	if !p.VecType.Quantized() {
		for i, v := range p.F32 {
			out[i] = float64(v)
		}
		return out
	}
	for j := 0; j < p.N; j++ {
		row := p.Q[j*p.RowBytes : (j+1)*p.RowBytes]
		for b := 0; b < p.Cols/p.VecType.BlockSize(); b++ {
			switch p.VecType {
			case tensor.Q8_0, tensor.Q8_1:
				blk := row[b*p.VecType.TypeSize():]
				d := float64(quant.FP16ToFP32(binary.LittleEndian.Uint16(blk)))
				off := 2
				if p.VecType == tensor.Q8_1 {
					off = 4
				}
				for k := 0; k < 32; k++ {
					out[j*p.Cols+b*32+k] = d * float64(int8(blk[off+k]))
				}
			case tensor.Q8_K:
				blk := row[b*292:]
				d := float64(math.Float32frombits(binary.LittleEndian.Uint32(blk)))
				for k := 0; k < 256; k++ {
					out[j*p.Cols+b*256+k] = d * float64(int8(blk[4+k]))
				}
			}
		}
	}
	return out
}

// fastTol is the allowed |fast − reference| for one element whose terms
// have absolute sum s (Σ_k |W_k|·|X_k|, min parts counted positively).
//
// Quantized types: the integer block sums are exact in both; each side then
// rounds at most T = 2·nb + 32 float operations (one scale product and one
// accumulation per block and per min term, int32→float conversions of lane
// sums, 8-lane reductions), each term bounded by s, so each is within
// γ_T·s ≈ T·u·s of the exact value of the same terms and the two within
// 2·T·u·s. A wrong block or nibble moves the result by about s/cols·32 or
// more, far above this for the sizes tested.
//
// Float types: tolerance 0. The fast kernels perform exactly the
// reference's operations (the same fused multiply-adds per lane, the same
// reduction tree), so the results must be bit-identical (checkFast checks
// the bits; this bound only orders the failure message).
func fastTol(wt tensor.DType, cols int, s float64) float64 {
	if wt.Quantized() {
		nb := cols / wt.BlockSize()
		return 2 * float64(2*nb+32) * u * s
	}
	return 0
}

// mulAll runs MulRows (or the reference) for all rows in the given row
// chunks; y has ldy = rows+pad and NaN in the padding.
func mulAll(t *testing.T, ref bool, wt tensor.DType, w []byte, rows, cols int, p *Prepared, pad int, cuts []int) []float32 {
	t.Helper()
	ldy := rows + pad
	y := make([]float32, p.N*ldy)
	for i := range y {
		y[i] = float32(math.NaN())
	}
	prev := 0
	for _, c := range append(cuts, rows) {
		var err error
		if ref {
			err = MulRowsRef(wt, w, cols, p, y, ldy, prev, c)
		} else {
			err = MulRows(wt, w, cols, p, y, ldy, prev, c)
		}
		if err != nil {
			t.Fatal(err)
		}
		prev = c
	}
	for j := 0; j < p.N; j++ {
		for r := rows; r < ldy; r++ {
			if !math.IsNaN(float64(y[j*ldy+r])) {
				t.Fatalf("%v: wrote Y[%d][%d] outside the row range", wt, j, r)
			}
		}
	}
	return y
}

// TestFastMatchesReference compares every fast level with the plain-Go
// reference on awkward sizes, and checks that any split of the rows gives
// bit-identical results.
func TestFastMatchesReference(t *testing.T) {
	if len(isaLevels()) == 0 {
		t.Log("no fast path on this machine/build: checking the reference's split invariance only")
	}
	rng := rand.New(rand.NewPCG(7, 11))
	maxRows := testRows[len(testRows)-1]
	for _, wt := range allTypes {
		for _, cols := range testCols(wt) {
			wAll, err := RandomWeights(wt, maxRows, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			mag := dequantRows(t, wt, wAll, maxRows, cols, true)
			for _, n := range testN {
				for _, rows := range testRows {
					checkFast(t, wt, wAll, mag, rows, cols, n, rng)
				}
			}
		}
	}
}

// TestLargeBatch covers activation counts above the quantized kernels'
// L2 block of activation rows (about 128 KiB of them) and the float GEMM's
// row block, with awkward remainders.
func TestLargeBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1, tensor.Q4_K, tensor.Q6_K} {
		cols := 2880
		if wt.BlockSize() == 256 {
			cols = 2560
		}
		rows := 7
		w, err := RandomWeights(wt, rows, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		checkFast(t, wt, w, dequantRows(t, wt, w, rows, cols, true), rows, cols, 157, rng)
	}
	// float weights: more weight rows than one row block (48) and activation
	// rows than one activation block (48), three column blocks (2112 > 2·1024)
	// with lane states carried between them, and a tail (2125 = 2112 + 13)
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		for _, cols := range []int{2112, 2125} {
			rows := 53
			w, err := RandomWeights(wt, rows, cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			checkFast(t, wt, w, dequantRows(t, wt, w, rows, cols, true), rows, cols, 61, rng)
		}
	}
}

// checkFast runs one case: rows×cols weights (the first rows of wAll) times
// n random activation rows, reference versus every fast level, plus row
// split invariance of both.
func checkFast(t *testing.T, wt tensor.DType, wAll []byte, mag []float64, rows, cols, n int, rng *rand.Rand) {
	t.Helper()
	x := RandomActivations(n, cols, rng)
	p, err := Prepare(wt, x, n, cols)
	if err != nil {
		t.Fatal(err)
	}
	xv := preparedValues(t, p)
	rb, _ := wt.RowBytes(int64(cols))
	w := wAll[:rows*int(rb)]
	name := fmt.Sprintf("%v/rows=%d/cols=%d/n=%d", wt, rows, cols, n)
	ref := mulAll(t, true, wt, w, rows, cols, p, 3, nil)
	if refSplit := mulAll(t, true, wt, w, rows, cols, p, 3, splitPoints(rows)); !sameBits(ref, refSplit) {
		t.Fatalf("%s: reference differs between row splits", name)
	}
	for _, level := range isaLevels() {
		withISA(level, func() {
			fast := mulAll(t, false, wt, w, rows, cols, p, 3, nil)
			for _, cuts := range [][]int{splitPoints(rows), {rows / 2}, everyRow(rows)} {
				if got := mulAll(t, false, wt, w, rows, cols, p, 3, cuts); !sameBits(fast, got) {
					t.Fatalf("%s %s: result depends on the row split %v", name, isaName(level), cuts)
				}
			}
			if !wt.Quantized() {
				for i := range fast {
					if math.Float32bits(fast[i]) != math.Float32bits(ref[i]) {
						t.Fatalf("%s %s: Y[%d][%d] fast %g (%#08x) reference %g (%#08x): float kernels must match the reference bit for bit",
							name, isaName(level), i/(rows+3), i%(rows+3), fast[i], math.Float32bits(fast[i]), ref[i], math.Float32bits(ref[i]))
					}
				}
			}
			ldy := rows + 3
			for j := 0; j < n; j++ {
				for r := 0; r < rows; r++ {
					s := 0.0
					for k := 0; k < cols; k++ {
						s += mag[r*cols+k] * math.Abs(xv[j*cols+k])
					}
					f, g := float64(fast[j*ldy+r]), float64(ref[j*ldy+r])
					if d := math.Abs(f - g); !(d <= fastTol(wt, cols, s)) {
						t.Fatalf("%s %s: Y[%d][%d] fast %g reference %g: |diff| %.3g > tolerance %.3g (Σ|wx| %g)",
							name, isaName(level), j, r, f, g, d, fastTol(wt, cols, s), s)
					}
				}
			}
		})
	}
}

func splitPoints(rows int) []int {
	var c []int
	for _, v := range []int{1, 2, 5, 6, 13, 17, 30} {
		if v < rows {
			c = append(c, v)
		}
	}
	return c
}

func everyRow(rows int) []int {
	c := make([]int, 0, rows)
	for r := 1; r < rows; r++ {
		c = append(c, r)
	}
	return c
}

func sameBits(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestThreadsIdentical runs the fastest path with rows split over 1, 2 and
// 3 concurrent goroutines: the results must be bit-identical.
func TestThreadsIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, wt := range allTypes {
		rows, cols := 37, 512
		if wt.BlockSize() == 1 {
			cols = 520
		}
		for _, n := range []int{1, 9} {
			w, _ := RandomWeights(wt, rows, cols, rng)
			p, err := Prepare(wt, RandomActivations(n, cols, rng), n, cols)
			if err != nil {
				t.Fatal(err)
			}
			var first []float32
			for _, threads := range []int{1, 2, 3} {
				y := make([]float32, n*rows)
				if err := mulParallel(wt, w, rows, cols, p, y, threads); err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = y
				} else if !sameBits(first, y) {
					t.Fatalf("%v n=%d: %d threads differ from 1", wt, n, threads)
				}
			}
		}
	}
}

// TestReferenceSanity checks the reference (and so, through the test above,
// the fast paths) against a float64 product of the library's dequantized
// weights with the original, unquantized activations.
//
// Bound: the reference computes Σ W̃·X̃ with X̃ the Q8 activations, so
// |ref − Σ W̃·x| ≤ Σ|W̃|·|x − X̃| + (float error ≤ (2·nb+32)·u·Σ|W̃||X̃|
// for quantized types, cols·u·Σ|W̃||x| for float types, both with min terms
// counted positively). The activation error itself is checked per element:
// |x − X̃| ≤ 0.51·d_block + |x|·2⁻¹⁰ (rounding to the nearest step of a
// scale d = amax/127 that may itself be rounded to F16).
func TestReferenceSanity(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, wt := range allTypes {
		cols := 768
		if wt.BlockSize() == 1 {
			cols = 131
		}
		rows, n := 9, 3
		w, _ := RandomWeights(wt, rows, cols, rng)
		x := RandomActivations(n, cols, rng)
		p, err := Prepare(wt, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		xq := preparedValues(t, p)
		bs := p.VecType.BlockSize()
		for i := range x {
			amax := 0.0
			b := i / bs * bs
			for _, v := range x[b : b+bs] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			if e := math.Abs(float64(x[i]) - xq[i]); e > 0.51*amax/127+math.Abs(float64(x[i]))/1024 {
				t.Fatalf("%v: activation %d quantized %g → %g (block amax %g)", wt, i, x[i], xq[i], amax)
			}
		}
		wd := dequantRows(t, wt, w, rows, cols, false)
		mag := dequantRows(t, wt, w, rows, cols, true)
		y := make([]float32, n*rows)
		if err := MulRowsRef(wt, w, cols, p, y, rows, 0, rows); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < n; j++ {
			for r := 0; r < rows; r++ {
				exact, qerr, s := 0.0, 0.0, 0.0
				for k := 0; k < cols; k++ {
					wk, xk := wd[r*cols+k], float64(x[j*cols+k])
					exact += wk * xk
					qerr += math.Abs(wk) * math.Abs(xk-xq[j*cols+k])
					s += mag[r*cols+k] * math.Abs(xq[j*cols+k])
				}
				fl := float64(cols) * u * s
				if wt.Quantized() {
					fl = float64(2*cols/wt.BlockSize()+32) * u * s
				}
				if d := math.Abs(float64(y[j*rows+r]) - exact); d > qerr+fl {
					t.Fatalf("%v Y[%d][%d] = %g, float64 of dequantized %g: |diff| %g > %g", wt, j, r, y[j*rows+r], exact, d, qerr+fl)
				}
			}
		}
	}
}

// TestActivationQuantizers cross-checks the quant package's Q8_0/Q8_1/Q8_K
// quantizers, used by Prepare, with this package's independent versions.
func TestActivationQuantizers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := RandomActivations(1, 4096, rng)
	// Block 0's largest magnitude is 127, so its scale 127/amax is exactly
	// 1 and these are exact ties: llama.cpp's x86 quantizer rounds them
	// half to even (2.5 → 2, −3.5 → −4, 0.5 → 0), the reference one away.
	x[0], x[5], x[6], x[7] = 127, 2.5, -3.5, 0.5
	for i := 256; i < 512; i++ {
		x[i] = 0 // an all-zero block
	}
	for _, c := range []struct {
		vt   tensor.DType
		lib  func([]float32, []byte)
		mine func([]float32, []byte)
	}{
		{tensor.Q8_0, quant.ActivationQ8_0, quantizeQ8_0},
		{tensor.Q8_1, quant.ActivationQ8_1, quantizeQ8_1},
		{tensor.Q8_K, quant.QuantizeQ8_K, quantizeQ8_K},
	} {
		a := make([]byte, vecRowBytes(c.vt, len(x)))
		b := make([]byte, len(a))
		c.lib(x, a)
		c.mine(x, b)
		if !bytes.Equal(a, b) {
			t.Errorf("%v: quant package and independent quantizer differ", c.vt)
		}
		if c.vt == tensor.Q8_0 {
			if got := []int8{int8(a[2+5]), int8(a[2+6]), int8(a[2+7])}; got[0] != 2 || got[1] != -4 || got[2] != 0 {
				t.Errorf("Q8_0 ties 2.5, -3.5, 0.5 quantized to %v, want [2 -4 0] (half to even)", got)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	x := make([]float32, 64)
	if _, err := Prepare(tensor.Q4_K, x, 1, 64); err == nil {
		t.Error("Q4_K with 64 columns: no error")
	}
	if _, err := Prepare(tensor.IQ2_XXS, x, 1, 256); err == nil {
		t.Error("IQ2_XXS: no error")
	}
	if _, err := Prepare(tensor.Q8_0, x, 2, 64); err == nil {
		t.Error("short activations: no error")
	}
	p, _ := Prepare(tensor.Q8_0, x, 1, 64)
	w := make([]byte, 3*68)
	y := make([]float32, 4)
	if err := MulRows(tensor.Q8_0, w, 64, p, y, 4, 0, 4); err == nil {
		t.Error("too few weight rows: no error")
	}
	if err := MulRows(tensor.Q4_0, w, 64, p, y, 4, 0, 2); err != nil {
		t.Errorf("Q4_0 weights with activations prepared for Q8_0 (same vec type): %v", err)
	}
	if err := MulRows(tensor.Q4_1, w, 64, p, y, 4, 0, 2); err == nil {
		t.Error("Q4_1 weights with Q8_0 activations: no error")
	}
	if err := MulRows(tensor.Q8_0, w, 64, p, y[:1], 4, 0, 2); err == nil {
		t.Error("short output: no error")
	}
	if err := MulRows(tensor.Q8_0, w, 64, p, y, 4, 2, 1); err == nil {
		t.Error("reversed row range: no error")
	}
}

// TestFastActivationQuantizers: the SIMD activation quantizers must give the
// quant package's bytes exactly, including ties (x·(1/d) exactly k+½, which
// Q8_0/Q8_1 round away from zero and Q8_K to even), zero blocks, repeated
// extreme magnitudes of both signs, and tiny and large scales.
func TestFastActivationQuantizers(t *testing.T) {
	if maxISA < isaAVX2 {
		t.Skip("no SIMD quantizers in this build")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	x := RandomActivations(1, 8192, rng)
	// block 1: d = 1 (amax 127), halves everywhere
	x[32] = 127
	for i := 33; i < 64; i++ {
		x[i] = float32(i-48) + 0.5
	}
	// super-block 1 (256..511): max magnitude -127 first → iscale 1, halves
	x[256] = -127
	x[300] = 127
	for i := 257; i < 512; i++ {
		if i != 300 {
			x[i] = float32((i%200)-100) + 0.5
		}
	}
	clear(x[512:768]) // zero super-block (and zero 32-blocks)
	for i := 768; i < 1024; i++ {
		x[i] *= 1e-7 // subnormal F16 scales
	}
	for i := 1024; i < 1280; i++ {
		x[i] *= 3e5
	}
	for _, c := range []struct {
		vt  tensor.DType
		lib func([]float32, []byte)
	}{{tensor.Q8_0, quant.ActivationQ8_0}, {tensor.Q8_1, quant.ActivationQ8_1}, {tensor.Q8_K, quant.QuantizeQ8_K}} {
		want := make([]byte, vecRowBytes(c.vt, len(x)))
		got := make([]byte, len(want))
		c.lib(x, want)
		withISA(isaAVX2, func() {
			if !fastQuantize(c.vt, x, got) {
				t.Fatalf("%v: no fast quantizer", c.vt)
			}
		})
		if !bytes.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%v: byte %d: SIMD %d, quant package %d", c.vt, i, got[i], want[i])
				}
			}
		}
	}
}

// TestPrepareRowsInParts: converting the activation rows in separate
// ranges (as the backend does on several threads) gives exactly
// PrepareInto's result for every vec-dot type.
func TestPrepareRowsInParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const n, cols = 7, 512
	x := RandomActivations(n, cols, rng)
	for _, wt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_1, tensor.Q4_K} {
		var whole, parts Prepared
		if err := PrepareInto(&whole, wt, x, n, cols); err != nil {
			t.Fatal(err)
		}
		if err := PrepareLayout(&parts, wt, x, n, cols); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int{{4, 7}, {0, 1}, {1, 4}} {
			PrepareRows(&parts, x, r[0], r[1])
		}
		if !bytes.Equal(whole.Q, parts.Q) || len(whole.F32) != len(parts.F32) {
			t.Errorf("%v: rows converted in parts differ from PrepareInto", wt)
		}
		for i := range whole.F32 {
			if math.Float32bits(whole.F32[i]) != math.Float32bits(parts.F32[i]) {
				t.Fatalf("%v: value %d differs", wt, i)
			}
		}
	}
}
