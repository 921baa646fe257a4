package ops

import (
	"fmt"
	"math"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// GetRows is the embedding lookup: for i in [start, end) it converts row
// ids[i] of a [rows][rowLen] matrix of type t (raw bytes, any type
// quant.Dequantize knows) to float32 in out[i*rowLen:(i+1)*rowLen].
// It returns an error for an unknown type, a row length that is not a whole
// number of blocks, an id out of range, or short slices.
func GetRows(t tensor.DType, data []byte, rowLen int, ids []int32, out []float32, start, end int) error {
	rb, ok := t.RowBytes(int64(rowLen))
	if !ok || rowLen <= 0 {
		return fmt.Errorf("get_rows: %d elements is not a whole number of %v blocks", rowLen, t)
	}
	rows := int64(len(data)) / rb
	if end > len(ids) || start < 0 || start > end || len(out) < end*rowLen {
		return fmt.Errorf("get_rows: range [%d,%d) does not fit %d ids and %d outputs", start, end, len(ids), len(out)/rowLen)
	}
	for i := start; i < end; i++ {
		id := int64(ids[i])
		if id < 0 || id >= rows {
			return fmt.Errorf("get_rows: id %d out of range [0,%d)", id, rows)
		}
		src := data[id*rb : (id+1)*rb]
		dst := out[i*rowLen : (i+1)*rowLen]
		switch t {
		case tensor.F32:
			for e := range dst {
				dst[e] = math.Float32frombits(uint32(src[4*e]) | uint32(src[4*e+1])<<8 | uint32(src[4*e+2])<<16 | uint32(src[4*e+3])<<24)
			}
		case tensor.F16:
			for e := range dst {
				dst[e] = quant.FP16ToFP32(uint16(src[2*e]) | uint16(src[2*e+1])<<8)
			}
		default:
			if err := quant.Dequantize(t, src, dst); err != nil {
				return fmt.Errorf("get_rows: %w", err)
			}
		}
	}
	return nil
}

// Concat joins a and b along dimension dim into out. Shapes are row-major
// (outermost first) and must agree except along dim. The work units are the
// outer slices (indices over shape[:dim]); [outerStart, outerEnd) selects
// them, and OuterCount tells how many there are.
func Concat(a, b, out []float32, shapeA, shapeB []int, dim, outerStart, outerEnd int) error {
	if len(shapeA) != len(shapeB) || dim < 0 || dim >= len(shapeA) {
		return fmt.Errorf("concat: shapes %v and %v along dimension %d", shapeA, shapeB, dim)
	}
	for i := range shapeA {
		if i != dim && shapeA[i] != shapeB[i] {
			return fmt.Errorf("concat: shapes %v and %v differ outside dimension %d", shapeA, shapeB, dim)
		}
	}
	inner := 1
	for _, s := range shapeA[dim+1:] {
		inner *= s
	}
	na, nb := shapeA[dim]*inner, shapeB[dim]*inner
	outer := OuterCount(shapeA, dim)
	if outerStart < 0 || outerEnd > outer || len(a) < outer*na || len(b) < outer*nb || len(out) < outer*(na+nb) {
		return fmt.Errorf("concat: slices too short for shapes %v and %v", shapeA, shapeB)
	}
	for o := outerStart; o < outerEnd; o++ {
		dst := out[o*(na+nb) : (o+1)*(na+nb)]
		copy(dst, a[o*na:(o+1)*na])
		copy(dst[na:], b[o*nb:(o+1)*nb])
	}
	return nil
}

// OuterCount is the product of shape[:dim].
func OuterCount(shape []int, dim int) int {
	n := 1
	for _, s := range shape[:dim] {
		n *= s
	}
	return n
}

// CopyStrided copies an N-d view: element (i0..iN-1) of shape goes from
// src[srcOff + Σ ik*srcStrides[k]] to dst[dstOff + Σ ik*dstStrides[k]]
// (strides in elements). The work units are rows, i.e. index tuples over
// shape[:N-1] in row-major order; [rowStart, rowEnd) selects them.
func CopyStrided(dst []float32, dstOff int, dstStrides []int, src []float32, srcOff int, srcStrides []int, shape []int, rowStart, rowEnd int) {
	nd := len(shape)
	if nd == 0 {
		if rowStart < rowEnd {
			dst[dstOff] = src[srcOff]
		}
		return
	}
	last := shape[nd-1]
	ds, ss := dstStrides[nd-1], srcStrides[nd-1]
	for r := rowStart; r < rowEnd; r++ {
		d, s := dstOff, srcOff
		rem := r
		for k := nd - 2; k >= 0; k-- {
			ik := rem % shape[k]
			rem /= shape[k]
			d += ik * dstStrides[k]
			s += ik * srcStrides[k]
		}
		if ds == 1 && ss == 1 {
			copy(dst[d:d+last], src[s:s+last])
			continue
		}
		for e := 0; e < last; e++ {
			dst[d+e*ds] = src[s+e*ss]
		}
	}
}

// Permute writes the contiguous tensor src (shape) with its dimensions
// reordered: output dimension k is input dimension perm[k], so the output
// shape is shape[perm[k]]. Rows of the output ([rowStart, rowEnd) over the
// output shape's leading dimensions) are the work units; PermuteRows gives
// their count. It returns an error if perm is not a permutation.
func Permute(src, dst []float32, shape, perm []int, rowStart, rowEnd int) error {
	nd := len(shape)
	if len(perm) != nd {
		return fmt.Errorf("permute: %d axes for a %d-d shape", len(perm), nd)
	}
	seen := make([]bool, nd)
	for _, a := range perm {
		if a < 0 || a >= nd || seen[a] {
			return fmt.Errorf("permute: %v is not a permutation", perm)
		}
		seen[a] = true
	}
	inStrides := contiguousStrides(shape)
	outShape := make([]int, nd)
	srcStrides := make([]int, nd)
	for k, a := range perm {
		outShape[k] = shape[a]
		srcStrides[k] = inStrides[a]
	}
	CopyStrided(dst, 0, contiguousStrides(outShape), src, 0, srcStrides, outShape, rowStart, rowEnd)
	return nil
}

// PermuteRows is the number of work units of Permute.
func PermuteRows(shape, perm []int) int {
	n := 1
	for _, a := range perm[:len(perm)-1] {
		n *= shape[a]
	}
	return n
}

func contiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for k := len(shape) - 1; k >= 0; k-- {
		st[k] = s
		s *= shape[k]
	}
	return st
}
