package gemma

import (
	"slices"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/tensor"
)

// TestCopyPrefix: a sequence that copies another's first n positions and
// goes on gives bit-identical logits to one that computed them itself
// (exact: the copy puts each position in the slot a fresh sequence would
// use, so attention sums in the same order), including sliding-window
// rings that have wrapped, destinations with another capacity (another
// ring size), and with KV-shared layers. Sources that went on too far for
// their ring are refused by CanShare and CopyPrefix.
func TestCopyPrefix(t *testing.T) {
	be := cpu.New(2)
	defer be.Close()
	for _, name := range []string{"gemma3-tiny-f32.gguf", "gemma4-ple-f32.gguf"} {
		t.Run(name, func(t *testing.T) {
			m := loadRef(t, be, name)
			W := m.Config.Window
			if W != 8 {
				t.Fatalf("window %d; the cases below assume 8", W)
			}
			ids := make([]int32, 40)
			for i := range ids {
				ids[i] = int32(3 + (i*37)%900)
			}
			newSeq := func(capacity int) *Sequence {
				s, err := m.NewSequence(SequenceOptions{Capacity: capacity, KV: tensor.F16, Step: 4})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			feed := func(s *Sequence, toks []int32) []float32 {
				t.Helper()
				out, err := m.ForwardLast([]*Sequence{s}, [][]int32{toks})
				if err != nil {
					t.Fatal(err)
				}
				return out[0]
			}
			// Ring of W+Step-1 = 11 slots for capacity 40.
			for _, c := range []struct {
				srcLen, n, dstCap int
				ok                bool
			}{
				{5, 5, 40, true},   // nothing wrapped
				{10, 6, 40, true},  // the prefix lies in the ring
				{20, 17, 40, true}, // wrapped; 3 past n ≤ Step
				{20, 16, 40, true}, // exactly Step past n
				{20, 15, 40, false},
				{30, 30, 40, true},
				{20, 12, 16, false}, // another ring size, source too far on
				{14, 12, 16, true},
				{9, 9, 10, true}, // destination without a ring
			} {
				src := newSeq(40)
				feed(src, ids[:c.srcLen])
				if got := src.CanShare(c.n); got != c.ok {
					t.Errorf("source of %d, prefix %d: CanShare %v, want %v", c.srcLen, c.n, got, c.ok)
				}
				dst := newSeq(c.dstCap)
				err := src.CopyPrefix(dst, c.n)
				if !c.ok {
					if err == nil {
						t.Errorf("source of %d, prefix %d: CopyPrefix did not refuse", c.srcLen, c.n)
					}
					src.Free()
					dst.Free()
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if dst.Len() != c.n {
					t.Fatalf("copied %d positions, Len %d", c.n, dst.Len())
				}
				fresh := newSeq(c.dstCap)
				feed(fresh, ids[:c.n])
				end := min(c.dstCap, c.n+6)
				for q := c.n; q < end; q++ { // go on token by token
					a, b := feed(dst, ids[q:q+1]), feed(fresh, ids[q:q+1])
					if !slices.Equal(a, b) {
						t.Fatalf("source of %d, prefix %d, capacity %d: logits at %d differ from a fresh sequence's", c.srcLen, c.n, c.dstCap, q)
					}
				}
				src.Free()
				dst.Free()
				fresh.Free()
			}
			a, b := newSeq(8), newSeq(8)
			defer a.Free()
			defer b.Free()
			feed(a, ids[:4])
			feed(b, ids[:2])
			if err := a.CopyPrefix(b, 2); err == nil {
				t.Error("copy into a sequence that is not empty was not refused")
			}
			if err := a.CopyPrefix(a, 2); err == nil {
				t.Error("copy into itself was not refused")
			}
			if err := a.CopyPrefix(newSeq(1), 2); err == nil {
				t.Error("copy past the destination's capacity was not refused")
			}
		})
	}
}
