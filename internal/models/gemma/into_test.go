package gemma

import (
	"math"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/tensor"
)

// TestForwardLastIntoMatchesAlone: a decode batch whose logits go into one
// reused buffer (the batcher's ForwardLastInto) gives every sequence the
// same logits, bit for bit, as that sequence decoding alone with
// ForwardLast, for float and quantized weights (the kernels compute each
// row of a batch as they compute a lone row: no tolerance). Sequences of
// different lengths share the batch, one of them fed several tokens at once
// (a prompt chunk beside decodes). The buffer is grown once, then reused.
func TestForwardLastIntoMatchesAlone(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	for _, name := range []string{"gemma3-tiny-f32.gguf", "gemma3-tiny-q8_0.gguf", "gemma4-tiny-q8_0.gguf", "gemma4-ple-f32.gguf", "gemma4-moe-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			m := loadRef(t, be, name)
			V := m.Config.NVocab
			const nSeq = 4
			newSeqs := func() []*Sequence {
				out := make([]*Sequence, nSeq)
				for i := range out {
					s, err := m.NewSequence(SequenceOptions{Capacity: 64, KV: tensor.F16, Step: 8})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(s.Free)
					out[i] = s
				}
				return out
			}
			batched, lone := newSeqs(), newSeqs()
			// Step k's input for sequence i: a prompt of 3+2i tokens at
			// step 0, then one token, except sequence 3, which takes
			// another chunk of 5 at step 2.
			input := func(i, k int) []int32 {
				n := 1
				switch {
				case k == 0:
					n = 3 + 2*i
				case i == 3 && k == 2:
					n = 5
				}
				ids := make([]int32, n)
				for j := range ids {
					ids[j] = int32(2 + (i*131+k*17+j*7)%(V-2))
				}
				return ids
			}
			var buf []float32
			var first *float32
			for k := range 6 {
				ins := make([]Input, nSeq)
				for i := range ins {
					ins[i].Tokens = input(i, k)
				}
				got, nbuf, err := m.ForwardLastInto(batched, ins, buf)
				if err != nil {
					t.Fatal(err)
				}
				if len(nbuf) != nSeq*V {
					t.Fatalf("buffer of %d values for %d sequences of %d", len(nbuf), nSeq, V)
				}
				if first == nil {
					first = &nbuf[0]
				} else if &nbuf[0] != first {
					t.Fatalf("step %d: the buffer was not reused", k)
				}
				buf = nbuf
				for i := range nSeq {
					if &got[i][0] != &buf[i*V] || len(got[i]) != V {
						t.Fatalf("step %d: sequence %d's row is not row %d of the buffer", k, i, i)
					}
					want, err := m.ForwardLast(lone[i:i+1], [][]int32{input(i, k)})
					if err != nil {
						t.Fatal(err)
					}
					for j, w := range want[0] {
						if math.Float32bits(got[i][j]) != math.Float32bits(w) {
							t.Fatalf("step %d sequence %d logit %d: batched %v, alone %v", k, i, j, got[i][j], w)
						}
					}
				}
			}
		})
	}
}
