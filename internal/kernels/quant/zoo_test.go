package quant_test

import (
	"encoding/binary"
	"math"
	"mica/internal/testenv"
	"path/filepath"
	"testing"

	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// The zoo (gemma3-tiny-zoo.gguf) holds the weights of gemma3-tiny-f32.gguf
// in every GGUF type, written by llama-quantize without an importance
// matrix; gemma3-tiny-zoo.dequant.gguf holds each of its non-F32 tensors
// dequantized by an implementation that agrees bit for bit with ggml. Both
// comparisons below are exact: no tolerance.

func sharedDir(t testing.TB) string { return testenv.Shared(t) }

func openGemma(t testing.TB, name string) *gguf.File {
	t.Helper()
	path := filepath.Join(sharedDir(t), "reference", "gemma", name)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func elements(ti *gguf.TensorInfo) int {
	n := 1
	for _, d := range ti.Shape {
		n *= int(d)
	}
	return n
}

func tensorF32(t *testing.T, f *gguf.File, name string) []float32 {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("tensor %s missing", name)
	}
	if ti.Type != tensor.F32 {
		t.Fatalf("tensor %s is %v, want F32", name, ti.Type)
	}
	raw, err := f.TensorData(name)
	if err != nil {
		t.Fatalf("tensor %s: %v", name, err)
	}
	out := make([]float32, elements(ti))
	if len(raw) != 4*len(out) {
		t.Fatalf("tensor %s: %d bytes for %d elements", name, len(raw), len(out))
	}
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// zooTypes are the types the issue requires; absentFromZoo those the zoo
// file does not contain (tested elsewhere: Q8_K in TestQ8_KReference).
var (
	zooTypes = []tensor.DType{
		tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1,
		tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.Q8_K,
		tensor.IQ4_NL, tensor.IQ4_XS,
	}
	absentFromZoo = map[tensor.DType]bool{tensor.Q8_K: true}
)

func TestZooDequantizeExact(t *testing.T) {
	zoo := openGemma(t, "gemma3-tiny-zoo.gguf")
	ref := openGemma(t, "gemma3-tiny-zoo.dequant.gguf")
	checked := map[tensor.DType]int{}
	for i := range zoo.Tensors {
		ti := &zoo.Tensors[i]
		if ti.Type == tensor.F32 {
			continue
		}
		raw, err := zoo.TensorData(ti.Name)
		if err != nil {
			t.Fatalf("%s: %v", ti.Name, err)
		}
		got := make([]float32, elements(ti))
		if err := quant.Dequantize(ti.Type, raw, got); err != nil {
			t.Errorf("%s: %v", ti.Name, err)
			continue
		}
		want := tensorF32(t, ref, ti.Name)
		if len(want) != len(got) {
			t.Fatalf("%s: reference has %d elements, zoo %d", ti.Name, len(want), len(got))
		}
		bad, first := 0, -1
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
				if first < 0 {
					first = j
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s (%v): %d of %d values differ; first at %d: got %g (%#08x) want %g (%#08x)",
				ti.Name, ti.Type, bad, len(got), first, got[first], math.Float32bits(got[first]), want[first], math.Float32bits(want[first]))
		}
		checked[ti.Type]++
	}
	for _, ty := range zooTypes {
		switch {
		case checked[ty] > 0:
			t.Logf("%-7v %d tensors dequantized bit-exactly", ty, checked[ty])
		case absentFromZoo[ty]:
			t.Logf("%-7v not in the zoo (covered by its own test)", ty)
		default:
			t.Errorf("%v: required type not covered by the zoo", ty)
		}
	}
}

func TestZooQuantizeExact(t *testing.T) {
	zoo := openGemma(t, "gemma3-tiny-zoo.gguf")
	f32 := openGemma(t, "gemma3-tiny-f32.gguf")
	checked := map[tensor.DType]int{}
	for i := range zoo.Tensors {
		ti := &zoo.Tensors[i]
		if ti.Type == tensor.F32 || !quant.CanQuantize(ti.Type) {
			continue
		}
		want, err := zoo.TensorData(ti.Name)
		if err != nil {
			t.Fatalf("%s: %v", ti.Name, err)
		}
		x := tensorF32(t, f32, ti.Name)
		ne0 := int(ti.Shape[0])
		rowBytes, ok := ti.Type.RowBytes(int64(ne0))
		if !ok || len(x)%ne0 != 0 || int64(len(want)) != rowBytes*int64(len(x)/ne0) {
			t.Fatalf("%s: shape %v does not fit type %v", ti.Name, ti.Shape, ti.Type)
		}
		got := make([]byte, len(want))
		for r := 0; r < len(x)/ne0; r++ {
			if err := quant.Quantize(ti.Type, x[r*ne0:(r+1)*ne0], got[int64(r)*rowBytes:int64(r+1)*rowBytes]); err != nil {
				t.Fatalf("%s row %d: %v", ti.Name, r, err)
			}
		}
		bs := ti.Type.TypeSize()
		bad, first := 0, -1
		for b := 0; b < len(got)/bs; b++ {
			if string(got[b*bs:(b+1)*bs]) != string(want[b*bs:(b+1)*bs]) {
				if first < 0 {
					first = b
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s (%v): %d of %d blocks differ; first is block %d:\n got  %x\n want %x",
				ti.Name, ti.Type, bad, len(got)/bs, first, got[first*bs:(first+1)*bs], want[first*bs:(first+1)*bs])
		}
		checked[ti.Type]++
	}
	for _, ty := range zooTypes {
		switch {
		case checked[ty] > 0:
			t.Logf("%-7v %d tensors quantized byte-identically", ty, checked[ty])
		case absentFromZoo[ty]:
			t.Logf("%-7v not in the zoo", ty)
		case quant.CanQuantize(ty):
			t.Errorf("%v: quantizable type not covered by the zoo", ty)
		default:
			t.Logf("%-7v cannot be quantized (not checked)", ty)
		}
	}
	for _, ty := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		if checked[ty] == 0 {
			t.Errorf("%v: required quantizer not checked against the zoo", ty)
		}
	}
}
