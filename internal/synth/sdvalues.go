package synth

import (
	"encoding/binary"
	"fmt"
	"math"

	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// The Stable Diffusion value recipe (shared/reference/sd/README.md, "The
// checkpoint recipe"): value i of tensor N is
//
//	s = FNV-1a-64(N)
//	z = splitmix64 output function of s + (i+1)·0x9E3779B97F4A7C15
//	u = (z >> 11)·2^-53
//	v = float32(offset + scale·(2u − 1))   (in float64, one rounding each)
//
// with scale 0.02·√3 (uniform, standard deviation 0.02), offset 1 for norm
// weights and 0 otherwise; F16 and BF16 files round that float32 to nearest
// even (subnormals kept). A non-zero seed S changes the hash basis to
// s = FNV-1a-64(N) XOR mix(S), mix being the same output function, so that
// seed 0 is exactly the recipe (mix(0) = 0).

// SDScale is the recipe's half-width: 0.02·√3.
const SDScale = 0.0346410161513775

// fnv1a64 is the 64-bit FNV-1a hash of s.
func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// SDBasis is the hash basis of the tensor named name under seed.
func SDBasis(name string, seed uint64) uint64 { return fnv1a64(name) ^ mix64(seed) }

// sdValue is recipe value i of a stream with basis s and the given offset.
func sdValue(s, i uint64, offset float64) float32 {
	z := mix64(s + (i+1)*golden)
	u := float64(int64(z>>11)) * (1.0 / (1 << 53)) // exact: 53 bits
	// float64() keeps the product rounded on its own: no FMA with the add.
	return float32(offset + float64(SDScale*(2*u-1)))
}

// SDFill writes values [e0, e0+len(dst)) of tensor t (kinds w, b, n) into
// dst, as float32. Position ids (kind p) are integers: see SDEncode.
func SDFill(t SDTensor, seed uint64, e0 int64, dst []float32) {
	s := SDBasis(t.Name, seed)
	offset := 0.0
	if t.Kind == KindNorm {
		offset = 1
	}
	if t.Symmetric && len(t.Shape) == 2 && t.Shape[0] == t.Shape[1] {
		n := uint64(t.Shape[1])
		for j := range dst {
			i := uint64(e0) + uint64(j)
			r, c := i/n, i%n
			if r > c {
				r, c = c, r
			}
			dst[j] = sdValue(s, r*n+c, offset)
		}
		return
	}
	for j := range dst {
		dst[j] = sdValue(s, uint64(e0)+uint64(j), offset)
	}
}

// SDStoredType is the type tensor t is stored as in a file whose float
// type is dt: position ids are always I64.
func SDStoredType(t SDTensor, dt tensor.DType) tensor.DType {
	if t.Kind == KindPos {
		return tensor.I64
	}
	return dt
}

// checkSDType accepts the float types a checkpoint can hold.
func checkSDType(dt tensor.DType) error {
	switch dt {
	case tensor.F32, tensor.F16, tensor.BF16:
		return nil
	}
	return fmt.Errorf("synth: Stable Diffusion checkpoints are f32, f16 or bf16, not %s", dt)
}

// toF16 is quant.FP32ToFP16 (round to nearest even, subnormals kept) with
// the common case, a value in the normal half range, inlined.
func toF16(f float32) uint16 {
	if h, ok := f16Normal(f); ok {
		return h
	}
	return quant.FP32ToFP16(f)
}

// f16Normal converts f when it is in the normal half range.
func f16Normal(f float32) (uint16, bool) {
	w := math.Float32bits(f)
	abs := w & 0x7fffffff
	if abs-0x38800000 >= 0x477ff000-0x38800000 {
		return 0, false
	}
	v := abs - 112<<23 // rebias the exponent from 127 to 15
	return uint16(w>>16)&0x8000 | uint16((v+0xfff+(v>>13)&1)>>13), true
}

// sdElemSize is the bytes per element of t in a file of float type dt.
func sdElemSize(t SDTensor, dt tensor.DType) int64 {
	switch {
	case t.Kind == KindPos:
		return 8
	case dt == tensor.F32:
		return 4
	}
	return 2
}

// SDEncode returns the little-endian bytes of elements [e0, e0+n) of
// tensor t stored in a file of float type dt (F32, F16 or BF16).
func SDEncode(t SDTensor, seed uint64, dt tensor.DType, e0, n int64) ([]byte, error) {
	if err := checkSDType(dt); err != nil {
		return nil, err
	}
	out := make([]byte, n*sdElemSize(t, dt))
	sdEncodeInto(t, seed, dt, e0, out, nil)
	return out, nil
}

// sdEncodeInto fills dst (a whole number of elements of t as stored in a
// file of type dt, starting at element e0). scratch, if long enough, holds
// the float32 values on the way.
func sdEncodeInto(t SDTensor, seed uint64, dt tensor.DType, e0 int64, dst []byte, scratch []float32) {
	n := int64(len(dst)) / sdElemSize(t, dt)
	if t.Kind == KindPos {
		// position_ids [1, P]: value i at element i (the index within the
		// last dimension, for any leading shape).
		last := int64(1)
		if len(t.Shape) > 0 {
			last = int64(t.Shape[len(t.Shape)-1])
		}
		for j := range n {
			binary.LittleEndian.PutUint64(dst[8*j:], uint64((e0+j)%last))
		}
		return
	}
	if int64(len(scratch)) < n {
		scratch = make([]float32, n)
	}
	vals := scratch[:n]
	SDFill(t, seed, e0, vals)
	encodeFloats(dt, vals, dst)
}

// encodeFloats stores vals little-endian as dt (F32, F16 or BF16) in dst.
func encodeFloats(dt tensor.DType, vals []float32, dst []byte) {
	switch dt {
	case tensor.F32:
		for j, v := range vals {
			binary.LittleEndian.PutUint32(dst[4*j:], math.Float32bits(v))
		}
	case tensor.F16:
		for j, v := range vals {
			h, ok := f16Normal(v)
			if !ok {
				h = quant.FP32ToFP16(v)
			}
			binary.LittleEndian.PutUint16(dst[2*j:], h)
		}
	default: // BF16
		for j, v := range vals {
			binary.LittleEndian.PutUint16(dst[2*j:], quant.FP32ToBF16(v))
		}
	}
}
