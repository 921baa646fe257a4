package synth

import (
	"bytes"
	"fmt"
	"math"
	"mica/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/models/gemma"
	"mica/internal/tensor"
)

func findShared(t testing.TB) string { return testenv.Shared(t) }

var (
	vocabOnce sync.Once
	vocab     *Vocab
	vocabErr  error
)

// testVocab loads the real 262k vocabulary once (about a second).
func testVocab(t testing.TB) *Vocab {
	sh := findShared(t)
	vocabOnce.Do(func() {
		vocab, vocabErr = LoadVocab(filepath.Join(sh, "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf"))
	})
	if vocabErr != nil {
		t.Fatal(vocabErr)
	}
	return vocab
}

func gemma4Template(t testing.TB) string {
	s, err := ReadChatTemplate(filepath.Join(findShared(t), "testdata/chat-templates/google-gemma-4-31B-it.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gemma3Template(t testing.TB) string {
	s, err := ReadChatTemplate(filepath.Join(findShared(t), "testdata/gemma3-tokenizer/tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeTest(t *testing.T, preset string, typ tensor.DType, seed uint64) string {
	t.Helper()
	o := Options{Preset: preset, Type: typ, Seed: seed, Vocab: testVocab(t), Threads: 2}
	if strings.HasPrefix(preset, "gemma4") {
		o.ChatTemplate = gemma4Template(t)
	} else {
		o.ChatTemplate = gemma3Template(t)
	}
	path := filepath.Join(t.TempDir(), preset+".gguf")
	if _, err := Write(path, o); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTinyModelsRun generates both test presets and runs them through the
// Gemma model: every logit of a short prompt must be finite and the logits
// must vary (a model of zeros would also be finite).
func TestTinyModelsRun(t *testing.T) {
	for _, preset := range []string{"gemma3-test", "gemma4-test"} {
		t.Run(preset, func(t *testing.T) {
			path := writeTest(t, preset, tensor.Q8_0, 7)
			m, err := gemma.Open(path, cpu.New(2))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Config.NVocab != 262144 {
				t.Fatalf("vocab %d", m.Config.NVocab)
			}
			seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: 128})
			if err != nil {
				t.Fatal(err)
			}
			defer seq.Free()
			// 40 tokens: past the sliding window of 32.
			toks := []int32{2}
			for i := 0; i < 39; i++ {
				toks = append(toks, int32(1000+i*977))
			}
			out, err := m.Forward([]*gemma.Sequence{seq}, [][]int32{toks})
			if err != nil {
				t.Fatal(err)
			}
			rows := out[0]
			if len(rows) != len(toks)*262144 {
				t.Fatalf("got %d logits", len(rows))
			}
			var sum, sum2 float64
			for _, v := range rows {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("non-finite logit %v", v)
				}
				sum += float64(v)
				sum2 += float64(v) * float64(v)
			}
			n := float64(len(rows))
			sd := math.Sqrt(sum2/n - (sum/n)*(sum/n))
			// Expected sd ≈ 0.02·√64 = 0.16 (unit-RMS hidden state times
			// N(0, 0.02²) embedding rows); accept a wide band.
			if sd < 0.02 || sd > 2 {
				t.Fatalf("logit sd %.4g outside [0.02, 2]", sd)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	a := writeTest(t, "gemma4-test", tensor.Q4_0, 3)
	b := writeTest(t, "gemma4-test", tensor.Q4_0, 3)
	c := writeTest(t, "gemma4-test", tensor.Q4_0, 4)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	bc, _ := os.ReadFile(c)
	if !bytes.Equal(ba, bb) {
		t.Fatal("same preset, seed and type gave different files")
	}
	if bytes.Equal(ba, bc) {
		t.Fatal("different seeds gave the same file")
	}
}

// TestThreadsSameBytes: the thread count must not change the file.
func TestThreadsSameBytes(t *testing.T) {
	v := testVocab(t)
	var files [][]byte
	for _, th := range []int{1, 3} {
		path := filepath.Join(t.TempDir(), "x.gguf")
		if _, err := Write(path, Options{Preset: "gemma3-test", Type: tensor.F16, Seed: 9, Vocab: v, Threads: th}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("1 and 3 threads wrote different files")
	}
}

func TestGemma4SpecialTokens(t *testing.T) {
	path := writeTest(t, "gemma4-test", tensor.Q8_0, 1)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	types, _ := f.Ints("tokenizer.ggml.token_type")
	want := map[int]string{0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>", 46: "<|tool>", 47: "<tool|>",
		48: "<|tool_call>", 49: "<tool_call|>", 50: "<|tool_response>", 51: "<tool_response|>", 52: `<|"|>`,
		98: "<|think|>", 100: "<|channel>", 101: "<channel|>", 105: "<|turn>", 106: "<turn|>",
		255999: "<|image>", 256000: "<|audio>", 258880: "<|image|>", 258881: "<|audio|>",
		258882: "<image|>", 258883: "<audio|>", 258884: "<|video|>"}
	for id, s := range want {
		if toks[id] != s {
			t.Errorf("token %d = %q, want %q", id, toks[id], s)
		}
	}
	for _, id := range []int{48, 49, 50, 51, 52, 100, 101} {
		if types[id] != tokUserDefined {
			t.Errorf("token %d type %d, want user-defined", id, types[id])
		}
	}
	for _, id := range []int{46, 47, 98, 105, 106} {
		if types[id] != tokControl {
			t.Errorf("token %d type %d, want control", id, types[id])
		}
	}
	if m, _ := f.String("tokenizer.ggml.model"); m != "gemma4" {
		t.Errorf("tokenizer model %q", m)
	}
	if eot, err := f.Int("tokenizer.ggml.eot_token_id"); err != nil || eot != 106 {
		t.Errorf("eot %d %v", eot, err)
	}
	if s, _ := f.String("mica.synth.vocab"); !strings.Contains(s, "Gemma 4 special tokens") {
		t.Errorf("mica.synth.vocab does not say the vocabulary was changed: %q", s)
	}
	if tmpl, _ := f.String("tokenizer.chat_template"); !strings.Contains(tmpl, "<|turn>") {
		t.Error("no Gemma 4 chat template")
	}
}

func TestNoVocab(t *testing.T) {
	_, err := Write(filepath.Join(t.TempDir(), "x.gguf"), Options{Preset: "gemma3-test"})
	if err == nil || !strings.Contains(err.Error(), "--vocab") {
		t.Fatalf("error %v does not name --vocab", err)
	}
}

func TestUnknownPreset(t *testing.T) {
	if _, err := Plan(Options{Preset: "llama-7b"}); err == nil || !strings.Contains(err.Error(), "gemma3-270m") {
		t.Fatalf("error %v does not list the presets", err)
	}
}

// TestValues checks how values are drawn (gemma4-test, F16 matrices):
// matrices N(0, 0.02²), raw norms around 1, q/k norms around
// head_dim^-1/4, layer output scales in [0.3, 1), and rope_freqs 1 for the
// rotated quarter of the global head and 1e30 for the rest.
func TestValues(t *testing.T) {
	path := writeTest(t, "gemma4-test", tensor.F16, 11)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stats := func(name string) (mean, sd float64, vals []float32) {
		ti, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("no tensor %s", name)
		}
		data, err := f.TensorData(name)
		if err != nil {
			t.Fatal(err)
		}
		vals = make([]float32, ti.Elements())
		if err := quant.Dequantize(ti.Type, data, vals); err != nil {
			t.Fatal(err)
		}
		var s, s2 float64
		for _, v := range vals {
			s += float64(v)
			s2 += float64(v) * float64(v)
		}
		n := float64(len(vals))
		return s / n, math.Sqrt(s2/n - s*s/n/n), vals
	}
	// Tolerances: the sample sizes (≥ 4096 values for matrices, 32–64 for
	// norms) put the standard error of the sd near 1% and of a norm mean
	// near 0.1/√32 ≈ 0.018; the bands are several times wider.
	if m, sd, _ := stats("token_embd.weight"); math.Abs(m) > 1e-3 || math.Abs(sd-0.02) > 1e-3 {
		t.Errorf("token_embd: mean %.3g sd %.3g, want 0, 0.02", m, sd)
	}
	if m, sd, _ := stats("blk.0.ffn_down.weight"); math.Abs(m) > 2e-3 || math.Abs(sd-0.02) > 2e-3 {
		t.Errorf("ffn_down: mean %.3g sd %.3g, want 0, 0.02", m, sd)
	}
	if m, sd, _ := stats("blk.0.attn_norm.weight"); math.Abs(m-1) > 0.1 || sd < 0.05 || sd > 0.15 {
		t.Errorf("attn_norm: mean %.3g sd %.3g, want 1, 0.1", m, sd)
	}
	if m, _, _ := stats("blk.0.attn_q_norm.weight"); math.Abs(m-math.Pow(32, -0.25)) > 0.05 {
		t.Errorf("sliding q_norm mean %.3g, want 32^-1/4 = %.3g", m, math.Pow(32, -0.25))
	}
	if m, _, _ := stats("blk.5.attn_k_norm.weight"); math.Abs(m-math.Pow(64, -0.25)) > 0.05 {
		t.Errorf("global k_norm mean %.3g, want 64^-1/4 = %.3g", m, math.Pow(64, -0.25))
	}
	scales := map[float32]bool{}
	for il := 0; il < 6; il++ {
		_, _, v := stats(fmt.Sprintf("blk.%d.layer_output_scale.weight", il))
		if v[0] < 0.3 || v[0] >= 1 {
			t.Errorf("layer %d output scale %v", il, v[0])
		}
		scales[v[0]] = true
	}
	if len(scales) < 6 {
		t.Errorf("layer output scales repeat: %v", scales)
	}
	_, _, rf := stats("rope_freqs.weight")
	if len(rf) != 32 {
		t.Fatalf("rope_freqs has %d values, want 32 (global head 64 / 2)", len(rf))
	}
	for i, v := range rf {
		if want := float32(1e30); (i < 8 && v != 1) || (i >= 8 && v != want) {
			t.Fatalf("rope_freqs[%d] = %v (want 8 ones: 0.25·64/2)", i, v)
		}
	}
}

// TestPoolBlocks: pool mode writes valid blocks with the matrix statistics
// and a model that runs.
func TestPoolBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pool.gguf")
	if _, err := Write(path, Options{Preset: "gemma3-test", Type: tensor.Q4_0, Seed: 2, Vocab: testVocab(t), Blocks: BlocksPool, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := f.TensorData("blk.0.ffn_gate.weight")
	vals := make([]float32, 64*128)
	if err := quant.Dequantize(tensor.Q4_0, data, vals); err != nil {
		t.Fatal(err)
	}
	var s2 float64
	for _, v := range vals {
		s2 += float64(v) * float64(v)
	}
	// Q4_0 of N(0, 0.02²) values: rms within 10% of 0.02.
	if rms := math.Sqrt(s2 / float64(len(vals))); math.Abs(rms-0.02) > 0.002 {
		t.Errorf("pool block rms %.4g, want about 0.02", rms)
	}
	f.Close()
	m, err := gemma.Open(path, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.ForwardLast([]*gemma.Sequence{seq}, [][]int32{{2, 100, 200}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out[0] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite logit")
		}
	}
}
