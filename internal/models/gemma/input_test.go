package gemma

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// embeddingRows returns token_embd rows for ids, scaled by √d: the input
// the model builds itself from those tokens.
func embeddingRows(t *testing.T, f *gguf.File, c *Config, ids []int32) []float32 {
	t.Helper()
	ti, _ := f.Tensor("token_embd.weight")
	data, err := f.TensorData("token_embd.weight")
	if err != nil {
		t.Fatal(err)
	}
	d := c.NEmbd
	rowBytes, _ := ti.Type.RowBytes(int64(d))
	out := make([]float32, len(ids)*d)
	for i, id := range ids {
		if err := quant.Dequantize(ti.Type, data[int64(id)*rowBytes:int64(id+1)*rowBytes], out[i*d:(i+1)*d]); err != nil {
			t.Fatal(err)
		}
	}
	s := float32(math.Sqrt(float64(d)))
	for i := range out {
		out[i] *= s
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestEmbeddingInput: a run of embedding rows equal to the scaled token
// embeddings gives the token run's logits (exactly: the same numbers go
// into the same arithmetic); a non-causal run lets an early position see a
// later one, and splitting it into steps hides later steps, as llama.cpp's
// micro-batches do.
func TestEmbeddingInput(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	for _, name := range []string{"gemma3-tiny-f32.gguf", "gemma4-tiny-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			f, err := gguf.Open(filepath.Join(refDir(t), name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := Load(f, be)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ids := []int32{2, 17, 400, 33, 1000, 5, 6, 7, 8, 9, 10, 11}
			run := func(step int, in ...Input) [][]float32 {
				t.Helper()
				seq, err := m.NewSequence(SequenceOptions{Capacity: 32, KV: tensor.F16, Step: step})
				if err != nil {
					t.Fatal(err)
				}
				defer seq.Free()
				var rows [][]float32
				for _, r := range in {
					out, err := m.ForwardInputs([]*Sequence{seq}, []Input{r}, true)
					if err != nil {
						t.Fatal(err)
					}
					rows = append(rows, out[0])
				}
				return rows
			}
			V := m.Config.NVocab
			emb := embeddingRows(t, f, m.Config, ids[1:])
			tokens := run(0, Input{Tokens: ids})[0]
			mixed := run(0, Input{Tokens: ids[:1]}, Input{Embd: emb})
			got := append(append([]float32{}, mixed[0]...), mixed[1]...)
			if d := maxDiff(got, tokens); d != 0 {
				t.Errorf("embedding run differs from the token run by %g", d)
			}

			// Non-causal: position 1 now sees positions 2…; its logits change.
			nc := run(0, Input{Tokens: ids[:1]}, Input{Embd: emb, NonCausal: true})
			if d := maxDiff(nc[1][:V], mixed[1][:V]); d < 1e-4 {
				t.Errorf("non-causal run: position 1 unchanged (%g)", d)
			}
			// Split into steps of 4: each step is bidirectional within itself
			// only, so the first step equals a non-causal run of its 4 rows.
			split := run(4, Input{Tokens: ids[:1]}, Input{Embd: emb, NonCausal: true})
			first := run(0, Input{Tokens: ids[:1]}, Input{Embd: emb[:4*m.Config.NEmbd], NonCausal: true})
			if d := maxDiff(split[1][:4*V], first[1]); d > 1e-5 {
				t.Errorf("first step of a split non-causal run differs by %g from the run alone", d)
			}
		})
	}
}

// TestEmbeddingInputErrors: malformed runs are refused before anything
// runs.
func TestEmbeddingInputErrors(t *testing.T) {
	be := cpu.New(1)
	defer be.Close()
	m, err := Open(filepath.Join(refDir(t), "gemma3-tiny-f32.gguf"), be)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seq, err := m.NewSequence(SequenceOptions{Capacity: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Free()
	d := m.Config.NEmbd
	for _, c := range []struct {
		in   Input
		want string
	}{
		{Input{Embd: make([]float32, d+1)}, "not whole rows"},
		{Input{Tokens: []int32{1}, Embd: make([]float32, d)}, "not both"},
		{Input{Embd: make([]float32, 9*d)}, "exceed its context"},
		{Input{}, "no tokens"},
	} {
		_, err := m.ForwardInputs([]*Sequence{seq}, []Input{c.in}, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v", c.want, err)
		}
	}
	if _, err := m.Prefill(seq, nil); err == nil {
		t.Error("empty prefill accepted")
	}
}
