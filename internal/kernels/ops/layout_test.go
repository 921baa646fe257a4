package ops

import (
	"encoding/binary"
	"math"
	"testing"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

func TestGetRows(t *testing.T) {
	r := newRand(12)
	const rows, n = 5, 64
	m := randVec(r, rows*n, 1)
	ids := []int32{4, 0, 4, 2}
	f32 := make([]byte, 4*len(m))
	f16 := make([]byte, 2*len(m))
	for i, v := range m {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		binary.LittleEndian.PutUint16(f16[2*i:], quant.FP32ToFP16(v))
	}
	q8, _ := tensor.Q8_0.RowBytes(rows * n)
	q8b := make([]byte, q8)
	if err := quant.Quantize(tensor.Q8_0, m, q8b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    tensor.DType
		data []byte
		tol  float64
	}{{tensor.F32, f32, 0}, {tensor.F16, f16, 1e-3 * 4}, {tensor.Q8_0, q8b, 0.05}} {
		out := make([]float32, len(ids)*n)
		if err := GetRows(tc.t, tc.data, n, ids, out, 0, 2); err != nil {
			t.Fatal(err)
		}
		if err := GetRows(tc.t, tc.data, n, ids, out, 2, 4); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			for e := 0; e < n; e++ {
				if d := math.Abs(float64(out[i*n+e] - m[int(id)*n+e])); d > tc.tol {
					t.Fatalf("%v row %d [%d] = %g, want %g", tc.t, id, e, out[i*n+e], m[int(id)*n+e])
				}
			}
		}
		// F16 must be exactly the half conversion
		if tc.t == tensor.F16 && out[0] != quant.FP16ToFP32(quant.FP32ToFP16(m[4*n])) {
			t.Fatal("f16 row not converted exactly")
		}
	}
	out := make([]float32, n)
	if err := GetRows(tensor.F32, f32, n, []int32{5}, out, 0, 1); err == nil {
		t.Error("out-of-range id accepted")
	}
	if err := GetRows(tensor.Q8_0, q8b, 33, []int32{0}, out, 0, 1); err == nil {
		t.Error("row length that is not whole blocks accepted")
	}
}

func TestConcat(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5, 6} // [2][3]
	b := []float32{7, 8, 9, 10}      // [2][2]
	out := make([]float32, 10)       // [2][5]
	if err := Concat(a, b, out, []int{2, 3}, []int{2, 2}, 1, 0, OuterCount([]int{2, 3}, 1)); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "concat dim1", out, []float32{1, 2, 3, 7, 8, 4, 5, 6, 9, 10})
	out2 := make([]float32, 10)
	if err := Concat(a, b[:2], out2[:8], []int{2, 3}, []int{1, 3}, 0, 0, 1); err == nil {
		t.Fatal("mismatched shapes accepted")
	}
	if err := Concat(a, []float32{7, 8, 9}, out2[:9], []int{2, 3}, []int{1, 3}, 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "concat dim0", out2[:9], []float32{1, 2, 3, 4, 5, 6, 7, 8, 9})
}

func TestPermuteAndCopyStrided(t *testing.T) {
	shape := []int{2, 3, 4}
	src := make([]float32, 24)
	for i := range src {
		src[i] = float32(i)
	}
	perm := []int{2, 0, 1} // out[k][i][j] = src[i][j][k], out shape [4][2][3]
	dst := make([]float32, 24)
	rows := PermuteRows(shape, perm)
	if rows != 8 {
		t.Fatalf("PermuteRows = %d", rows)
	}
	for _, parts := range splits(rows) {
		clear(dst)
		for _, s := range parts {
			if err := Permute(src, dst, shape, perm, s[0], s[1]); err != nil {
				t.Fatal(err)
			}
		}
		for k := 0; k < 4; k++ {
			for i := 0; i < 2; i++ {
				for j := 0; j < 3; j++ {
					if got, want := dst[(k*2+i)*3+j], src[(i*3+j)*4+k]; got != want {
						t.Fatalf("permute [%d][%d][%d] = %g, want %g", k, i, j, got, want)
					}
				}
			}
		}
	}
	if err := Permute(src, dst, shape, []int{0, 0, 1}, 0, 1); err == nil {
		t.Fatal("non-permutation accepted")
	}
	// a strided view: column 1 of a [3][4] matrix into a contiguous [3]
	col := make([]float32, 3)
	CopyStrided(col, 0, []int{1}, src, 1, []int{4}, []int{3}, 0, 1)
	sameBits(t, "column view", col, []float32{1, 5, 9})
}
