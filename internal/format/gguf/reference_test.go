package gguf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/tensor"
)

// referenceFiles lists every GGUF the issue requires mica to open.
func referenceFiles(t testing.TB) []string {
	shared := sharedDir(t)
	var files []string
	for _, dir := range []string{"reference/gemma", "reference/vision"} {
		m, err := filepath.Glob(filepath.Join(shared, dir, "*.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	files = append(files, filepath.Join(shared, "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf"))
	if len(files) < 10 {
		t.Fatalf("found only %d reference GGUF files", len(files))
	}
	return files
}

func TestReferenceFiles(t *testing.T) {
	for _, path := range referenceFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := os.Stat(path)
			if f.headerRead > f.headerSize+128<<10 {
				t.Errorf("Open read %d bytes for a %d-byte header", f.headerRead, f.headerSize)
			}
			arch, err := f.String("general.architecture")
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Base(path)
			switch {
			case strings.Contains(base, "vocab"), strings.Contains(base, "dequant"):
				// gemma4 tokenizer file; dequantized reference tensors.
			case strings.HasPrefix(base, "mmproj"):
				if arch != "clip" {
					t.Errorf("architecture %q, want clip", arch)
				}
			case strings.HasPrefix(base, "gemma3"):
				if arch != "gemma3" {
					t.Errorf("architecture %q, want gemma3", arch)
				}
			case strings.HasPrefix(base, "gemma4"):
				if arch != "gemma4" {
					t.Errorf("architecture %q, want gemma4", arch)
				}
			}
			var total int64
			for _, ti := range f.Tensors {
				if len(ti.Shape) == 0 || ti.Size <= 0 || !ti.Type.Known() {
					t.Errorf("implausible tensor %+v", ti)
				}
				total += ti.Size
				d, err := f.TensorData(ti.Name)
				if err != nil || int64(len(d)) != ti.Size {
					t.Fatalf("TensorData(%s): %d bytes, %v", ti.Name, len(d), err)
				}
			}
			if f.DataOffset+total > st.Size() {
				t.Errorf("tensors (%d bytes) do not fit after data offset %d in %d bytes", total, f.DataOffset, st.Size())
			}
			if strings.Contains(base, "vocab") {
				toks, err := f.Strings("tokenizer.ggml.tokens")
				if err != nil {
					t.Fatal(err)
				}
				if len(toks) != 262145 {
					t.Errorf("tokenizer.ggml.tokens has %d entries, want 262145", len(toks))
				}
				if toks[2] != "<eos>" && toks[1] != "<eos>" {
					t.Errorf("unexpected special tokens %q", toks[:4])
				}
				return
			}
			if len(f.Tensors) == 0 {
				t.Fatal("no tensors")
			}
			if strings.HasPrefix(base, "gemma") && !strings.Contains(base, "dequant") {
				emb, ok := f.Tensor("token_embd.weight")
				if !ok {
					t.Fatal("no token_embd.weight")
				}
				nEmbd, err := f.Int(arch + ".embedding_length")
				if err != nil {
					t.Fatal(err)
				}
				if emb.Shape[0] != nEmbd || len(emb.Shape) != 2 {
					t.Errorf("token_embd.weight shape %v, embedding_length %d", emb.Shape, nEmbd)
				}
				nLayer, err := f.Int(arch + ".block_count")
				if err != nil {
					t.Fatal(err)
				}
				last := fmt.Sprintf("blk.%d.attn_norm.weight", nLayer-1)
				if _, ok := f.Tensor(last); !ok {
					t.Errorf("block_count %d but no %s", nLayer, last)
				}
			}
		})
	}
}

// TestZooTypes checks that the zoo file holds the tensor types its README lists.
func TestZooTypes(t *testing.T) {
	f, err := Open(filepath.Join(sharedDir(t), "reference/gemma/gemma3-tiny-zoo.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[tensor.DType]bool{}
	for _, ti := range f.Tensors {
		seen[ti.Type] = true
	}
	for _, want := range []tensor.DType{tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1,
		tensor.Q5_0, tensor.Q5_1, tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K,
		tensor.IQ4_NL, tensor.IQ4_XS} {
		if !seen[want] {
			t.Errorf("zoo has no %s tensor", want)
		}
	}
}

// TestRewriteIdentical copies reference files (written by llama.cpp's
// gguf-py and ggml) through Create/WriteTensor: the result must be byte for
// byte the original, which shows the writer produces what ggml produces.
func TestRewriteIdentical(t *testing.T) {
	for _, path := range referenceFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out := filepath.Join(t.TempDir(), "copy.gguf")
			tensors := make([]TensorInfo, len(f.Tensors))
			for i, ti := range f.Tensors {
				tensors[i] = TensorInfo{Name: ti.Name, Type: ti.Type, Shape: ti.Shape}
			}
			w, err := Create(out, f.Version, f.Alignment, f.Meta, tensors)
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range tensors {
				d, err := f.TensorData(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.WriteTensor(ti.Name, d); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				n := 0
				for n < len(got) && n < len(want) && got[n] == want[n] {
					n++
				}
				t.Fatalf("rewritten file differs from the original at byte %d (sizes %d and %d)", n, len(got), len(want))
			}
		})
	}
}
