package cpu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"mica/internal/compute"
	"mica/internal/kernels/matmul"
	"mica/internal/kernels/ops"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

func f32Bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

func newF32(t testing.TB, b *Backend, vals []float32, shape ...int) *compute.Tensor {
	t.Helper()
	x, err := b.Alloc(tensor.F32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if vals != nil {
		if err := b.Write(x, f32Bytes(vals)); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func readF32(t *testing.T, b *Backend, x *compute.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Elems())
	if err := b.Read(x, f32Bytes(out)); err != nil {
		t.Fatal(err)
	}
	return out
}

func randVals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}

func sameBits(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestMatMulThreadInvariant: the backend's result is bit-identical for 1
// and 3 threads, and equals the single-call kernel (which is itself checked
// against the plain-Go oracle in package matmul), for a decode row, a
// small batch and a prompt of several GEMM activation blocks (F16: taken
// by the threads in pieces of packed activations).
func TestMatMulThreadInvariant(t *testing.T) {
	types := []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1,
		tensor.Q5_0, tensor.Q5_1, tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_NL, tensor.IQ4_XS}
	b1, b3 := New(1), New(3)
	defer b1.Close()
	defer b3.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 77, 512
	for _, dt := range types {
		w, err := matmul.RandomWeights(dt, rows, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 5, 301} {
			x := randVals(rng, n*cols)
			want := make([]float32, n*rows)
			if err := matmul.Mul(dt, w, rows, cols, x, n, want); err != nil {
				t.Fatal(err)
			}
			for _, b := range []*Backend{b1, b3} {
				wt, err := b.Wrap(dt, w, rows, cols)
				if err != nil {
					t.Fatal(err)
				}
				xt, yt := newF32(t, b, x, n, cols), newF32(t, b, nil, n, rows)
				if err := compute.MatMul(wt, xt, yt); err != nil {
					t.Fatalf("%v: %v", dt, err)
				}
				if got := readF32(t, b, yt); !sameBits(got, want) {
					t.Errorf("%v n=%d threads=%d: result differs from the single-call kernel", dt, n, b.Threads())
				}
			}
		}
	}
}

// TestMatMulActivationSplit: float products too large to pack ahead (over
// 8 MiB of activations), which the backend shares out by activation rows
// (each thread packing its own blocks), equal the single-call kernel at 1
// and 3 threads, several weights sharing one conversion included.
func TestMatMulActivationSplit(t *testing.T) {
	b1, b3 := New(1), New(3)
	defer b1.Close()
	defer b3.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	const rows, cols, n = 7, 4608, 1001
	x := randVals(rng, n*cols)
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		p, err := matmul.Prepare(dt, x, n, cols)
		if err != nil {
			t.Fatal(err)
		}
		if matmul.ISA() == "avx2" && (p.Packed() || p.BlockRows() == 0 || n < actSplitBlocks*3*p.BlockRows()) {
			t.Fatalf("%v: not a product shared out by activation rows (packed %v, block %d)", dt, p.Packed(), p.BlockRows())
		}
		w1, err := matmul.RandomWeights(dt, rows, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := matmul.RandomWeights(dt, rows+2, cols, rng)
		if err != nil {
			t.Fatal(err)
		}
		want1, want2 := make([]float32, n*rows), make([]float32, n*(rows+2))
		if err := matmul.Mul(dt, w1, rows, cols, x, n, want1); err != nil {
			t.Fatal(err)
		}
		if err := matmul.Mul(dt, w2, rows+2, cols, x, n, want2); err != nil {
			t.Fatal(err)
		}
		for _, b := range []*Backend{b1, b3} {
			t1, err := b.Wrap(dt, w1, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			t2, err := b.Wrap(dt, w2, rows+2, cols)
			if err != nil {
				t.Fatal(err)
			}
			xt, y1, y2 := newF32(t, b, x, n, cols), newF32(t, b, nil, n, rows), newF32(t, b, nil, n, rows+2)
			if err := b.matmuls(f32(xt), n, []product{{t1, f32(y1), rows}, {t2, f32(y2), rows + 2}}); err != nil {
				t.Fatal(err)
			}
			if !sameBits(readF32(t, b, y1), want1) || !sameBits(readF32(t, b, y2), want2) {
				t.Errorf("%v threads=%d: result differs from the single-call kernel", dt, b.Threads())
			}
		}
	}
}

// TestConv2D checks the im2col+matmul lowering against the direct reference
// convolution. Tolerance: the reference accumulates in float64, the GEMM in
// float32 over k = IC·KH·KW ≤ 27·… terms of magnitude ≤ 1, so 1e-4 absolute
// is several times the float32 rounding error of such sums.
func TestConv2D(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []ops.Conv2DParams{
		{IC: 3, H: 9, W: 7, OC: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{IC: 4, H: 10, W: 11, OC: 17, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{IC: 2, H: 5, W: 6, OC: 3, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
		{IC: 3, H: 8, W: 8, OC: 4, KH: 2, KW: 3, StrideH: 1, StrideW: 2, PadH: 0, PadW: 2, DilH: 2, DilW: 1},
	}
	for _, threads := range []int{1, 2} {
		b := New(threads)
		for ci, p := range cases {
			if p.DilH == 0 {
				p.DilH, p.DilW = 1, 1
			}
			const batch = 2
			x := randVals(rng, batch*p.IC*p.H*p.W)
			w := randVals(rng, p.OC*p.IC*p.KH*p.KW)
			bias := randVals(rng, p.OC)
			oh, ow := p.OutH(), p.OutW()
			xt := newF32(t, b, x, batch, p.IC, p.H, p.W)
			wt := newF32(t, b, w, p.OC, p.IC, p.KH, p.KW)
			bt := newF32(t, b, bias, p.OC)
			yt := newF32(t, b, nil, batch, p.OC, oh, ow)
			err := compute.Conv2D(compute.Conv2DOp{X: xt, W: wt, B: bt, Y: yt, StrideH: p.StrideH, StrideW: p.StrideW,
				PadH: p.PadH, PadW: p.PadW, DilationH: p.DilH, DilationW: p.DilW})
			if err != nil {
				t.Fatal(err)
			}
			got := readF32(t, b, yt)
			for img := 0; img < batch; img++ {
				want := make([]float32, p.OC*oh*ow)
				ops.Conv2DRef(x[img*p.IC*p.H*p.W:], w, bias, want, p, 0, p.OC)
				for i, v := range want {
					if d := math.Abs(float64(got[img*len(want)+i] - v)); d > 1e-4 {
						t.Fatalf("case %d image %d threads %d: element %d = %v, want %v", ci, img, threads, i, got[img*len(want)+i], v)
					}
				}
			}
		}
		b.Close()
	}
}

// TestCopyPermute: a permuted view copied to a contiguous F32 tensor, and to
// F16 (values representable in F16 exactly, so equality is exact).
func TestCopyPermute(t *testing.T) {
	b := New(2)
	defer b.Close()
	const d0, d1, d2 = 3, 5, 7
	vals := make([]float32, d0*d1*d2)
	for i := range vals {
		vals[i] = float32(i)
	}
	x := newF32(t, b, vals, d0, d1, d2)
	v, err := compute.Permute(x, 2, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	y := newF32(t, b, nil, d2, d0, d1)
	if err := compute.Copy(v, y); err != nil {
		t.Fatal(err)
	}
	got := readF32(t, b, y)
	for i := 0; i < d2; i++ {
		for j := 0; j < d0; j++ {
			for k := 0; k < d1; k++ {
				if want := vals[j*d1*d2+k*d2+i]; got[i*d0*d1+j*d1+k] != want {
					t.Fatalf("(%d,%d,%d) = %v want %v", i, j, k, got[i*d0*d1+j*d1+k], want)
				}
			}
		}
	}
	h, err := b.Alloc(tensor.F16, d2, d0, d1)
	if err != nil {
		t.Fatal(err)
	}
	if err := compute.Copy(v, h); err != nil {
		t.Fatal(err)
	}
	back := newF32(t, b, nil, d2, d0, d1)
	if err := compute.Copy(h, back); err != nil {
		t.Fatal(err)
	}
	if !sameBits(readF32(t, b, back), got) {
		t.Fatal("F16 round trip of small integers is not exact")
	}
}

func TestGetRowsAndErrors(t *testing.T) {
	b := New(2)
	defer b.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	w, _ := matmul.RandomWeights(tensor.Q8_0, 10, 64, rng)
	wt, err := b.Wrap(tensor.Q8_0, w, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	y := newF32(t, b, nil, 3, 64)
	if err := compute.GetRows(wt, []int32{9, 0, 4}, y); err != nil {
		t.Fatal(err)
	}
	got := readF32(t, b, y)
	// Row 9's first block: scale × int8 quant.
	d := halfAt(w[9*68:])
	if want := d * float32(int8(w[9*68+2])); got[0] != want {
		t.Fatalf("row 9 element 0 = %v want %v", got[0], want)
	}
	if err := compute.GetRows(wt, []int32{10}, newF32(t, b, nil, 1, 64)); err == nil {
		t.Fatal("id out of range accepted")
	}
	if err := compute.MatMul(wt, newF32(t, b, nil, 2, 32), newF32(t, b, nil, 2, 10)); err == nil {
		t.Fatal("mismatched matmul accepted")
	}
	if _, err := b.Wrap(tensor.Q8_0, w[:10], 10, 64); err == nil {
		t.Fatal("short wrap accepted")
	}
	if err := compute.Scale(wt, 2, wt); err == nil {
		t.Fatal("write to a wrapped (read-only) tensor accepted")
	}
}

func halfAt(b []byte) float32 { return quant.FP16ToFP32(binary.LittleEndian.Uint16(b)) }

func halfRound(v float32) float32 { return quant.FP16ToFP32(quant.FP32ToFP16(v)) }

func TestHostF32RoundTrip(t *testing.T) {
	b := New(1)
	defer b.Close()
	v := []float32{1, -2.5, 3e-8, 7}
	x, err := compute.FromF32(b, v, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := compute.ToF32(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if got[i] != v[i] {
			t.Fatalf("element %d: %v != %v", i, got[i], v[i])
		}
	}
	if err := compute.WriteF32(x, v[:3]); err == nil {
		t.Fatal("a short write must fail")
	}
}

// TestAllocReuse: a freed buffer is handed out again for the same size,
// zeroed, and the accounting ignores the cache.
func TestAllocReuse(t *testing.T) {
	b := New(1)
	defer b.Close()
	a, err := b.Alloc(tensor.F32, 4096)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, 4096)
	for i := range vals {
		vals[i] = float32(i + 1)
	}
	if err := b.Write(a, f32Bytes(vals)); err != nil {
		t.Fatal(err)
	}
	first := &a.Storage.(*storage).data[0]
	b.Free(a)
	if m := b.Memory(); m.Allocated != 0 {
		t.Fatalf("allocated %d after free", m.Allocated)
	}
	c, err := b.Alloc(tensor.F32, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	if &c.Storage.(*storage).data[0] != first {
		t.Error("the freed buffer of the same size was not reused")
	}
	for i, v := range readF32(t, b, c) {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed: [%d] = %v", i, v)
		}
	}
	if m := b.Memory(); m.Allocated != 4096*4 {
		t.Fatalf("allocated %d, want %d", m.Allocated, 4096*4)
	}
}

// TestCopyConvertsInParallel: a contiguous F32 → F16/BF16 copy large
// enough to be split over the threads (in whole blocks) gives exactly the
// bytes of one quant.Quantize over the whole tensor.
func TestCopyConvertsInParallel(t *testing.T) {
	b := New(2)
	defer b.Close()
	const rows, cols = 96, 1024 // 96Ki values: several parts of minPart
	rng := rand.New(rand.NewPCG(9, 10))
	vals := make([]float32, rows*cols)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64())
	}
	x := newF32(t, b, vals, rows, cols)
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
		y, err := b.Alloc(dt, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		if err := compute.Copy(x, y); err != nil {
			t.Fatal(err)
		}
		rb, _ := dt.RowBytes(cols)
		got := make([]byte, rows*int(rb))
		if err := b.Read(y, got); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, len(got))
		if err := quant.Quantize(dt, vals, want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%v: the parallel conversion differs from quant.Quantize", dt)
		}
		b.Free(y)
	}
}

// TestMatMulsMatchesMatMul: MatMuls (one input, several weights, converted
// once per dot-product type and run in one section) gives each output the
// bits MatMul gives it alone, for weights of one type, of types sharing a
// dot-product type (Q4_K and Q6_K: Q8_K), and of different ones, with row
// counts that are not multiples of the threads' grain, for a decode row,
// a small batch and a prefill-sized one.
func TestMatMulsMatchesMatMul(t *testing.T) {
	b := New(2)
	defer b.Close()
	rng := rand.New(rand.NewPCG(11, 12))
	const cols = 256
	for _, types := range [][]tensor.DType{
		{tensor.F16, tensor.F16, tensor.F16},
		{tensor.Q4_K, tensor.Q6_K, tensor.Q8_0},
		{tensor.F32, tensor.BF16, tensor.Q4_0, tensor.F16},
	} {
		rows := []int{37, 16, 101, 5}
		var ws []*compute.Tensor
		for i, dt := range types {
			data, err := matmul.RandomWeights(dt, rows[i], cols, rng)
			if err != nil {
				t.Fatal(err)
			}
			w, err := b.Wrap(dt, data, rows[i], cols)
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, w)
		}
		for _, n := range []int{1, 7, 70} {
			xs := make([]float32, n*cols)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			x := newF32(t, b, xs, n, cols)
			var ys []*compute.Tensor
			for i := range ws {
				ys = append(ys, newF32(t, b, nil, n, rows[i]))
			}
			if err := compute.MatMuls(x, ws, ys); err != nil {
				t.Fatal(err)
			}
			for i, w := range ws {
				want := newF32(t, b, nil, n, rows[i])
				if err := compute.MatMul(w, x, want); err != nil {
					t.Fatal(err)
				}
				if !sameBits(readF32(t, b, ys[i]), readF32(t, b, want)) {
					t.Errorf("%v n=%d: weight %d (%v) differs from MatMul", types, n, i, w.DType)
				}
			}
		}
	}
	// errors: no weights, a count mismatch, a wrong shape
	x := newF32(t, b, make([]float32, 2*cols), 2, cols)
	y := newF32(t, b, nil, 2, 37)
	if err := compute.MatMuls(x, nil, nil); err == nil {
		t.Error("MatMuls with no weights: no error")
	}
	w, _ := matmul.RandomWeights(tensor.F16, 37, cols, rng)
	wt, _ := b.Wrap(tensor.F16, w, 37, cols)
	if err := compute.MatMuls(x, []*compute.Tensor{wt, wt}, []*compute.Tensor{y}); err == nil {
		t.Error("MatMuls with 2 weights and 1 output: no error")
	}
	if err := compute.MatMuls(x, []*compute.Tensor{wt}, []*compute.Tensor{newF32(t, b, nil, 2, 36)}); err == nil {
		t.Error("MatMuls with a mis-shaped output: no error")
	}
	ro, err := b.Wrap(tensor.F32, make([]byte, 4*2*37), 2, 37)
	if err != nil {
		t.Fatal(err)
	}
	if err := compute.MatMuls(x, []*compute.Tensor{wt, wt}, []*compute.Tensor{y, ro}); err == nil {
		t.Error("MatMuls into a read-only second output: no error")
	}
}

// BenchmarkMatMulGEMM: prompt-sized float products through the backend on
// 2 threads (the `mica bench kernels` GEMM shapes): activation preparation,
// the threads' split and the kernels together.
func BenchmarkMatMulGEMM(b *testing.B) {
	be := New(2)
	defer be.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ rows, cols, n int }{{2048, 640, 512}, {320, 2880, 4096}} {
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
			b.Run(fmt.Sprintf("%v/%dx%d/n=%d", dt, c.rows, c.cols, c.n), func(b *testing.B) {
				data, err := matmul.RandomWeights(dt, c.rows, c.cols, rng)
				if err != nil {
					b.Fatal(err)
				}
				w, err := be.Wrap(dt, data, c.rows, c.cols)
				if err != nil {
					b.Fatal(err)
				}
				x := newF32(b, be, randVals(rng, c.n*c.cols), c.n, c.cols)
				y := newF32(b, be, nil, c.n, c.rows)
				b.ResetTimer()
				for range b.N {
					if err := compute.MatMul(w, x, y); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(c.rows)*float64(c.cols)*float64(c.n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
