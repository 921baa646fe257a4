package gemma

import (
	"math"
	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/testenv"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/tensor"
)

func refDir(t testing.TB) string { return testenv.Shared(t, "reference", "gemma") }

// loadRef loads reference model name on be; it is closed when the test ends.
func loadRef(t testing.TB, be compute.Backend, name string) *Model {
	t.Helper()
	f, err := gguf.Open(filepath.Join(refDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := Load(f, be)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

type reference struct {
	Model  string      `json:"model"`
	Tokens []int32     `json:"tokens"`
	NVocab int         `json:"n_vocab"`
	Logits [][]float32 `json:"logits"`
}

func loadReference(t testing.TB, path string) *reference {
	t.Helper()
	var r reference
	testenv.GzipJSON(t, path, &r)
	if len(r.Logits) != len(r.Tokens) {
		t.Fatalf("%s: %d logit rows for %d tokens", path, len(r.Logits), len(r.Tokens))
	}
	return &r
}

// diff returns max |Δ| and rms Δ of got (rows concatenated) against want.
func diff(got []float32, want [][]float32) (maxAbs, rms float64) {
	var sum float64
	n := 0
	for i, row := range want {
		for j, w := range row {
			d := math.Abs(float64(got[i*len(row)+j]) - float64(w))
			if math.IsNaN(d) {
				return math.Inf(1), math.Inf(1)
			}
			maxAbs = max(maxAbs, d)
			sum += d * d
			n++
		}
	}
	return maxAbs, math.Sqrt(sum / float64(n))
}

// Tolerances. llama.cpp's logits have a standard deviation of about 0.32.
//
//   - F32 files: max |Δ| ≤ 1e-3, the reference README's bound, and rms ≤
//     2e-4. mica's F32/F16/BF16 matrix products sum in llama.cpp's order
//     (llamafile tinyBLAS on AVX-512: 16 FMA lanes, then a fixed reduction
//     tree; see kernels/matmul/floatorder.go), and with the F16 cache
//     attention follows llama.cpp's non-flash path (Q and the softmax
//     weights rounded to F16, ggml's soft_max; ops.NumericsGGMLNoFlash).
//     Measured: gemma3-tiny-f32 and gemma4-ple-f32 match to 5.5e-6 and
//     7.7e-6 in prefill, decode, chunked and batched runs (llama.cpp moves
//     by 5e-6 between thread counts); gemma4-tiny-f32 matches to 6e-6 up to
//     position 7 and differs by 0.6–2.5e-4 from position 8 (the first
//     position whose sliding window hides a cell), gemma4-moe-f32 by
//     1.5–4.9e-4 from position 1 — causes not found (the window, the
//     exponential's variant and the output lanes were ruled out). The ring
//     run (sliding caches wrapping) reorders the cells, and with them the
//     softmax sums whose last bit decides some F16 roundings of the
//     weights: 4–8e-4 max, rms ≤ 1.2e-4. A wrong model (a missing scale,
//     norm or rotation) is off by 1e-1 or more.
//   - Q8_0 files: max ≤ 0.02, rms ≤ 0.002. mica quantizes activations as
//     llama.cpp's x86 CPU backend does (quant.ActivationQ8_0: x·(127/amax)
//     rounded half to even — not the reference quantizer, whose ulp-level
//     differences flipped about one activation in 10⁴ and gave 0.017 /
//     0.0031 here); the first position now agrees to 5e-8, later ones to
//     5.7e-3 / rms 2.9e-4 (gemma3) and 8.9e-3 / 4.5e-4 (gemma4): the
//     attention's F16 roundings and the F32 paths' ~1e-6 differences still
//     flip an occasional int8 activation.
//   - Other quantized files (Q4_K/Q6_K with Q8_K activations, the zoo):
//     rms ≤ 0.02 and max ≤ 0.15, the README's bound for F32 activations;
//     measured 0.029–0.038 max, rms 0.0054–0.0067. That is llama.cpp's own
//     spread across machines: its AVX2 build (ec98e2002) differs from these
//     AVX-512-made logits by 0.021 / rms 0.0041 on gemma3-tiny-q4_k_m with
//     its repacked Q4_K kernels and 0.038 / 0.0067 without them, and by
//     0.009–0.023 on the zoo; a single position agrees to 1e-6.
func tolerance(name string) (maxTol, rmsTol float64) {
	switch {
	case strings.Contains(name, "-f32"):
		return 1e-3, 2e-4
	case strings.Contains(name, "-q8_0"):
		return 0.02, 0.002
	}
	return 0.15, 0.02
}

var parityModels = []string{
	"gemma3-tiny-f32", "gemma3-tiny-q8_0", "gemma3-tiny-q4_k_m", "gemma3-tiny-zoo",
	"gemma4-tiny-f32", "gemma4-tiny-q8_0", "gemma4-tiny-q4_k_m",
	"gemma4-ple-f32", "gemma4-moe-f32",
}

// TestParity compares the logits of every reference model against
// llama.cpp's: all tokens in one batch (prefill), token by token (decode),
// in uneven chunks, and two sequences batched together with a third,
// differently long one.
func TestParity(t *testing.T) {
	dir := refDir(t)
	be := cpu.New(2)
	defer be.Close()
	for _, name := range parityModels {
		t.Run(name, func(t *testing.T) {
			ref := loadReference(t, filepath.Join(dir, name+".logits.json.gz"))
			m, err := Open(filepath.Join(dir, name+".gguf"), be)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Config.NVocab != ref.NVocab {
				t.Fatalf("vocab %d, reference %d", m.Config.NVocab, ref.NVocab)
			}
			maxTol, rmsTol := tolerance(name)
			check := func(mode string, got []float32) {
				t.Helper()
				mx, rms := diff(got, ref.Logits)
				t.Logf("%-8s max|Δ| %.3g  rms %.3g", mode, mx, rms)
				if mx > maxTol || rms > rmsTol {
					t.Errorf("%s: max|Δ| %.4g (limit %g), rms %.4g (limit %g)", mode, mx, maxTol, rms, rmsTol)
				}
			}
			n := len(ref.Tokens)

			// Prefill: everything in one call.
			s := newSeq(t, m, n)
			out, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens})
			if err != nil {
				t.Fatal(err)
			}
			check("prefill", out[0])

			// Decode: one token per call.
			s = newSeq(t, m, n)
			var dec []float32
			for i := range ref.Tokens {
				out, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[i : i+1]})
				if err != nil {
					t.Fatal(err)
				}
				dec = append(dec, out[0]...)
			}
			check("decode", dec)

			// Chunked prefill with uneven chunks (3, 5, 3, 5, …).
			s = newSeq(t, m, n)
			var chunked []float32
			for i, step := 0, 3; i < n; i, step = i+step, 8-step {
				out, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[i:min(n, i+step)]})
				if err != nil {
					t.Fatal(err)
				}
				chunked = append(chunked, out[0]...)
			}
			check("chunked", chunked)

			// Batched: the reference sequence split in two calls, each
			// batched with another sequence at a different position.
			a, other := newSeq(t, m, n), newSeq(t, m, n)
			half := n / 2
			o1, err := m.Forward([]*Sequence{other, a}, [][]int32{ref.Tokens[5:9], ref.Tokens[:half]})
			if err != nil {
				t.Fatal(err)
			}
			o2, err := m.Forward([]*Sequence{a, other}, [][]int32{ref.Tokens[half:], ref.Tokens[1:2]})
			if err != nil {
				t.Fatal(err)
			}
			check("batched", append(append([]float32(nil), o1[1]...), o2[0]...))

			// Sliding-window rings: a Step of 3 keeps Window+2 slots in the
			// sliding layers, so the cache wraps many times. One call
			// (split into steps internally), then decoding.
			if m.Config.Window+2 < n {
				s, err := m.NewSequence(SequenceOptions{Capacity: n, KV: tensor.F16, Step: 3})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Free()
				out, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[:n-4]})
				if err != nil {
					t.Fatal(err)
				}
				ring := out[0]
				for i := n - 4; i < n; i++ {
					out, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[i : i+1]})
					if err != nil {
						t.Fatal(err)
					}
					ring = append(ring, out[0]...)
				}
				check("ring", ring)
			}

			// Last-row logits equal the last row of the full output.
			s = newSeq(t, m, n)
			last, err := m.ForwardLast([]*Sequence{s}, [][]int32{ref.Tokens})
			if err != nil {
				t.Fatal(err)
			}
			mx, _ := diff(last[0], ref.Logits[n-1:])
			if mx > maxTol {
				t.Errorf("ForwardLast: max|Δ| %.4g", mx)
			}

			// The same in steps of 3 tokens, the steps before the last
			// wanting no logits (past the last layer that stores K/V
			// they compute nothing), then one more token: its logits
			// need every layer's cache of the steps before.
			s3, err := m.NewSequence(SequenceOptions{Capacity: n, KV: tensor.F16, Step: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer s3.Free()
			last, err = m.ForwardLast([]*Sequence{s3}, [][]int32{ref.Tokens[:n-1]})
			if err != nil {
				t.Fatal(err)
			}
			next, err := m.ForwardLast([]*Sequence{s3}, [][]int32{ref.Tokens[n-1:]})
			if err != nil {
				t.Fatal(err)
			}
			if mx, _ := diff(append(last[0], next[0]...), ref.Logits[n-2:]); mx > maxTol {
				t.Errorf("ForwardLast in steps, then one token: max|Δ| %.4g", mx)
			}
		})
	}
}

func newSeq(t *testing.T, m *Model, n int) *Sequence {
	t.Helper()
	s, err := m.NewSequence(SequenceOptions{Capacity: n, KV: tensor.F16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Free)
	return s
}

// BenchmarkDecode measures one-token steps on the tiny 31B-style model
// (positions 0…63, then the sequence is reset).
func BenchmarkDecode(b *testing.B) {
	dir := refDir(b)
	be := cpu.New(2)
	defer be.Close()
	m, err := Open(filepath.Join(dir, "gemma4-tiny-f32.gguf"), be)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSequence(SequenceOptions{Capacity: 64, KV: tensor.F16})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Free()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if s.Len() == s.Cap() {
			s.Truncate(0)
		}
		if _, err := m.ForwardLast([]*Sequence{s}, [][]int32{{int32(2 + i%100)}}); err != nil {
			b.Fatal(err)
		}
	}
}
