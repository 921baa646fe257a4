package synth

import (
	"fmt"
	"strings"
	"testing"

	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

func shapeOf(l *Layout, name string) (gguf.TensorInfo, bool) {
	for _, t := range l.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return gguf.TensorInfo{}, false
}

func metaOf(l *Layout, key string) (gguf.Value, bool) {
	for _, kv := range l.Meta {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return gguf.Value{}, false
}

// TestRealShapes checks the headers of the full-size presets (no data is
// generated) against the published sizes.
func TestRealShapes(t *testing.T) {
	cases := []struct {
		preset  string
		tensors int
		params  int64 // exact where a published count exists
		approx  float64
	}{
		// 18 blocks × 13 tensors + token_embd + output_norm.
		{"gemma3-270m", 18*13 + 2, 268098176, 0},
		// Keras-Hub's gemma3_1b preset: 999,885,952 parameters.
		{"gemma3-1b", 26*13 + 2, 999885952, 0},
		// gemma.md: 30.7B (50 sliding × 479M + 10 global × 534M + 1.41B).
		{"gemma4-31b", 50*14 + 10*13 + 3, 0, 30.7e9},
		// gemma.md: 5.1B total, which includes the ~150M vision and ~300M
		// audio encoders: about 4.65B for the text decoder. (Without its
		// 0.40B + 2.35B embedding tables that leaves 1.88B, plus the
		// encoders the published 2.3B "effective".)
		{"gemma4-e2b", 15*17 + 20*14 + 6, 0, 4.65e9},
	}
	for _, c := range cases {
		l, err := Plan(Options{Preset: c.preset, Type: tensor.Q4_0})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Tensors) != c.tensors {
			t.Errorf("%s: %d tensors, want %d", c.preset, len(l.Tensors), c.tensors)
		}
		if c.params != 0 && l.Params != c.params {
			t.Errorf("%s: %d parameters, want %d", c.preset, l.Params, c.params)
		}
		if c.approx != 0 && (float64(l.Params) < 0.97*c.approx || float64(l.Params) > 1.03*c.approx) {
			t.Errorf("%s: %d parameters, want about %.3g", c.preset, l.Params, c.approx)
		}
		t.Logf("%s: %d tensors, %d parameters, %.2f GB of Q4_0 data", c.preset, len(l.Tensors), l.Params, float64(l.Bytes)/1e9)
	}
}

func TestShapes31B(t *testing.T) {
	l, err := Plan(Options{Preset: "gemma4-31b", Type: tensor.Q4_0})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"token_embd.weight":                "q6_k [5376 262144]",
		"rope_freqs.weight":                "f32 [256]",
		"blk.0.attn_q.weight":              "q4_0 [5376 8192]",
		"blk.0.attn_k.weight":              "q4_0 [5376 4096]",
		"blk.0.attn_v.weight":              "q4_0 [5376 4096]",
		"blk.0.attn_output.weight":         "q4_0 [8192 5376]",
		"blk.0.attn_q_norm.weight":         "f32 [256]",
		"blk.5.attn_q.weight":              "q4_0 [5376 16384]",
		"blk.5.attn_k.weight":              "q4_0 [5376 2048]",
		"blk.5.attn_output.weight":         "q4_0 [16384 5376]",
		"blk.5.attn_k_norm.weight":         "f32 [512]",
		"blk.59.ffn_down.weight":           "q4_0 [21504 5376]",
		"blk.59.ffn_gate.weight":           "q4_0 [5376 21504]",
		"blk.59.layer_output_scale.weight": "f32 [1]",
		"blk.5.attn_v.weight":              "absent",
		"output.weight":                    "absent",
	}
	for name, w := range want {
		got := "absent"
		if ti, ok := shapeOf(l, name); ok {
			got = fmt.Sprintf("%s %v", strings.ToLower(ti.Type.String()), ti.Shape)
		}
		if got != w {
			t.Errorf("%s: %s, want %s", name, got, w)
		}
	}
	kv, _ := metaOf(l, "gemma4.attention.head_count_kv")
	heads, _ := kv.Ints()
	swa, _ := metaOf(l, "gemma4.attention.sliding_window_pattern")
	pat, _ := swa.Bools()
	if len(heads) != 60 || len(pat) != 60 {
		t.Fatalf("per-layer arrays of %d and %d", len(heads), len(pat))
	}
	for il := range heads {
		global := (il+1)%6 == 0
		if pat[il] == global || (global && heads[il] != 4) || (!global && heads[il] != 16) {
			t.Errorf("layer %d: sliding %v, %d KV heads", il, pat[il], heads[il])
		}
	}
}

func TestShapesE2B(t *testing.T) {
	l, err := Plan(Options{Preset: "gemma4-e2b", Type: tensor.F16})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"per_layer_token_embd.weight": "f16 [8960 262144]",
		"per_layer_model_proj.weight": "f16 [1536 8960]",
		"per_layer_proj_norm.weight":  "f32 [256]",
		"blk.4.attn_v.weight":         "f16 [1536 512]", // global, no k_eq_v
		"blk.14.attn_k.weight":        "f16 [1536 512]",
		"blk.15.attn_k.weight":        "absent", // KV-shared
		"blk.15.attn_k_norm.weight":   "absent",
		"blk.15.ffn_up.weight":        "f16 [1536 12288]", // double-wide
		"blk.14.ffn_up.weight":        "f16 [1536 6144]",
		"blk.34.inp_gate.weight":      "f16 [1536 256]",
		"blk.34.proj.weight":          "f16 [256 1536]",
		"rope_freqs.weight":           "f32 [256]",
	}
	for name, w := range want {
		got := "absent"
		if ti, ok := shapeOf(l, name); ok {
			got = fmt.Sprintf("%s %v", strings.ToLower(ti.Type.String()), ti.Shape)
		}
		if got != w {
			t.Errorf("%s: %s, want %s", name, got, w)
		}
	}
}

// TestMatrixTypeRules: llama-quantize's rules for the tied embedding and
// for K-quant rows that are not whole super-blocks.
func TestMatrixTypeRules(t *testing.T) {
	cases := []struct {
		want       tensor.DType
		ne0        int64
		tied, pure bool
		got        tensor.DType
	}{
		{tensor.Q4_0, 640, true, false, tensor.Q8_0},  // Q6_K does not fit 640: Q8_0 (BENCHMARKS.md)
		{tensor.Q4_0, 640, true, true, tensor.Q4_0},   // --pure
		{tensor.Q4_0, 5376, true, false, tensor.Q6_K}, // 5376 = 21·256
		{tensor.Q8_0, 640, true, false, tensor.Q8_0},
		{tensor.F16, 640, true, false, tensor.F16},
		{tensor.Q4_K, 640, false, false, tensor.Q5_0},
		{tensor.Q5_K, 640, false, false, tensor.Q5_1},
		{tensor.Q6_K, 640, false, false, tensor.Q8_0},
		{tensor.Q4_K, 1536, false, false, tensor.Q4_K},
		{tensor.Q4_K, 64, true, true, tensor.Q5_0},
		{tensor.Q4_0, 48, false, false, tensor.F16},
	}
	for _, c := range cases {
		if got := matrixType(c.want, c.ne0, c.tied, c.pure); got != c.got {
			t.Errorf("matrixType(%s, %d, tied %v, pure %v) = %s, want %s", c.want, c.ne0, c.tied, c.pure, got, c.got)
		}
	}
}
