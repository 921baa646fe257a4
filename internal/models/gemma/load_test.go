package gemma

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

// rewrite copies the GGUF file src to a temporary file after editing its
// metadata and tensor table (a tensor whose shape changed gets zero bytes).
func rewrite(t *testing.T, src string, meta func([]gguf.KV) []gguf.KV, tensors func([]gguf.TensorInfo) []gguf.TensorInfo) string {
	return rewriteData(t, src, meta, tensors, nil)
}

// rewriteData is rewrite where data(name, f) may supply a tensor's bytes
// (nil: copy or zero as rewrite does).
func rewriteData(t *testing.T, src string, meta func([]gguf.KV) []gguf.KV, tensors func([]gguf.TensorInfo) []gguf.TensorInfo, data func(string, *gguf.File) []byte) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs := append([]gguf.KV(nil), f.Meta...)
	if meta != nil {
		kvs = meta(kvs)
	}
	var tis []gguf.TensorInfo
	for _, ti := range f.Tensors {
		ti.Shape = append([]int64(nil), ti.Shape...)
		tis = append(tis, ti)
	}
	if tensors != nil {
		tis = tensors(tis)
	}
	dst := filepath.Join(t.TempDir(), "edited.gguf")
	w, err := gguf.Create(dst, 3, 0, kvs, tis)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range w.Tensors() {
		buf := make([]byte, ti.Size)
		if data != nil {
			if b := data(ti.Name, f); b != nil {
				copy(buf, b)
				if err := w.WriteTensor(ti.Name, buf); err != nil {
					t.Fatal(err)
				}
				continue
			}
		}
		if orig, ok := f.Tensor(ti.Name); ok && orig.Size == ti.Size && orig.Type == ti.Type {
			b, err := f.TensorData(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			copy(buf, b)
		}
		if err := w.WriteTensor(ti.Name, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func setMeta(kvs []gguf.KV, key string, v gguf.Value) []gguf.KV {
	for i := range kvs {
		if kvs[i].Key == key {
			kvs[i].Value = v
			return kvs
		}
	}
	return append(kvs, gguf.KV{Key: key, Value: v})
}

func dropMeta(kvs []gguf.KV, key string) []gguf.KV {
	var out []gguf.KV
	for _, kv := range kvs {
		if kv.Key != key {
			out = append(out, kv)
		}
	}
	return out
}

func TestRefusesOtherArchitecture(t *testing.T) {
	src := filepath.Join(refDir(t), "gemma3-tiny-f32.gguf")
	path := rewrite(t, src, func(kvs []gguf.KV) []gguf.KV {
		return setMeta(kvs, "general.architecture", gguf.ValueOf("llama"))
	}, nil)
	be := cpu.New(1)
	defer be.Close()
	_, err := Open(path, be)
	if !errors.Is(err, ErrArchitecture) || !strings.Contains(err.Error(), `"llama"`) {
		t.Fatalf("want a refusal naming the architecture, got %v", err)
	}
}

// TestTensorProblemsListedTogether: two missing tensors and a mis-shaped
// one are all named in one error.
func TestTensorProblemsListedTogether(t *testing.T) {
	src := filepath.Join(refDir(t), "gemma4-tiny-f32.gguf")
	path := rewrite(t, src, nil, func(tis []gguf.TensorInfo) []gguf.TensorInfo {
		var out []gguf.TensorInfo
		for _, ti := range tis {
			switch ti.Name {
			case "blk.1.ffn_up.weight", "output_norm.weight":
				continue
			case "blk.3.attn_q.weight":
				ti.Shape[1] = 128
			}
			out = append(out, ti)
		}
		return out
	})
	be := cpu.New(1)
	defer be.Close()
	_, err := Open(path, be)
	if err == nil {
		t.Fatal("loaded a model with missing tensors")
	}
	for _, want := range []string{"3 tensor problem", "blk.1.ffn_up.weight: missing", "output_norm.weight: missing", "blk.3.attn_q.weight: shape [256 128], want [256 256]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestConfig pins the geometry read from each reference file.
func TestConfig(t *testing.T) {
	dir := refDir(t)
	open := func(name string) *Config {
		f, err := gguf.Open(filepath.Join(dir, name+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := ParseConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	g3 := open("gemma3-tiny-f32")
	if g3.QueryScale != 0.125 || g3.VNorm || g3.FinalSoftcap != 0 || g3.Window != 8 {
		t.Errorf("gemma3: %+v", g3)
	}
	for il, l := range g3.Layers {
		want := LayerConfig{Sliding: il != 5, NHead: 4, NHeadKV: 1, HeadDim: 64, NRot: 64, RopeBase: 10000, RopeScale: 1, FF: 512, KVLayer: il}
		if il == 5 {
			want.RopeBase = 1e6
		}
		if l != want {
			t.Errorf("gemma3 layer %d: %+v, want %+v", il, l, want)
		}
	}
	g4 := open("gemma4-tiny-f32")
	if g4.QueryScale != 1 || !g4.VNorm || g4.FinalSoftcap != 30 {
		t.Errorf("gemma4: %+v", g4)
	}
	if l := g4.Layers[5]; l.Sliding || l.NHeadKV != 1 || l.HeadDim != 128 || l.NRot != 128 || l.RopeBase != 1e6 {
		t.Errorf("gemma4 global layer: %+v", l)
	}
	if l := g4.Layers[0]; !l.Sliding || l.NHeadKV != 2 || l.HeadDim != 64 || l.RopeBase != 1e4 {
		t.Errorf("gemma4 sliding layer: %+v", l)
	}
	ple := open("gemma4-ple-f32")
	if ple.EmbdPerLayer != 32 || ple.SharedKVLayers != 2 {
		t.Errorf("ple: %d per layer, %d shared", ple.EmbdPerLayer, ple.SharedKVLayers)
	}
	n := ple.NLayer
	for il := n - 2; il < n; il++ {
		l := ple.Layers[il]
		if l.KVLayer >= n-2 || ple.Layers[l.KVLayer].Sliding != l.Sliding {
			t.Errorf("ple layer %d reads layer %d", il, l.KVLayer)
		}
		if l.FF != 2*ple.Layers[0].FF {
			t.Errorf("ple shared layer %d: FF %d, want double %d", il, l.FF, ple.Layers[0].FF)
		}
	}
	moe := open("gemma4-moe-f32")
	if moe.NExpert != 8 || moe.NExpertUsed != 2 || moe.FFExpert <= 0 {
		t.Errorf("moe: %d experts, %d used, width %d", moe.NExpert, moe.NExpertUsed, moe.FFExpert)
	}
}

// TestGemma3PatternKey: without sliding_window_pattern Gemma 3 uses the
// 5:1 default; a bool array overrides it.
func TestGemma3PatternKey(t *testing.T) {
	src := filepath.Join(refDir(t), "gemma3-tiny-f32.gguf")
	be := cpu.New(1)
	defer be.Close()
	for _, tc := range []struct {
		name string
		edit func([]gguf.KV) []gguf.KV
		want []bool
	}{
		{"absent", func(k []gguf.KV) []gguf.KV { return dropMeta(k, "gemma3.attention.sliding_window_pattern") },
			[]bool{true, true, true, true, true, false}},
		{"array", func(k []gguf.KV) []gguf.KV {
			return setMeta(k, "gemma3.attention.sliding_window_pattern", gguf.ArrayOf([]bool{true, false, true, false, true, false}))
		}, []bool{true, false, true, false, true, false}},
	} {
		f, err := gguf.Open(rewrite(t, src, tc.edit, nil))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseConfig(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for il, l := range c.Layers {
			if l.Sliding != tc.want[il] {
				t.Errorf("%s: layer %d sliding %v", tc.name, il, l.Sliding)
			}
		}
	}
}

// TestBadInput: every misuse is an error naming the problem, and a failed
// call leaves the sequence usable.
func TestBadInput(t *testing.T) {
	be := cpu.New(1)
	defer be.Close()
	m, err := Open(filepath.Join(refDir(t), "gemma3-tiny-f32.gguf"), be)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSequence(SequenceOptions{Capacity: 4, KV: tensor.F16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	other, _ := m.NewSequence(SequenceOptions{Capacity: 4})
	defer other.Free()
	for _, tc := range []struct {
		seqs []*Sequence
		toks [][]int32
		want string
	}{
		{[]*Sequence{s}, [][]int32{{2, 3, 4, 5, 6}}, "exceed its context of 4"},
		{[]*Sequence{s}, [][]int32{{2, 5000}}, "id 5000 outside the vocabulary"},
		{[]*Sequence{s}, [][]int32{{-1}}, "id -1 outside"},
		{[]*Sequence{s}, [][]int32{{}}, "no tokens"},
		{[]*Sequence{s, s}, [][]int32{{2}, {3}}, "twice"},
		{[]*Sequence{s, other}, [][]int32{{2}}, "2 sequences, 1 token lists"},
	} {
		_, err := m.Forward(tc.seqs, tc.toks)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v", tc.want, err)
		}
	}
	if s.Len() != 0 {
		t.Fatalf("failed calls advanced the sequence to %d", s.Len())
	}
	if _, err := m.Forward([]*Sequence{s}, [][]int32{{2, 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(3); err == nil {
		t.Error("truncating past the end succeeded")
	}
	if _, err := m.NewSequence(SequenceOptions{Capacity: 4, KV: tensor.Q8_0}); err == nil {
		t.Error("a Q8_0 KV cache was accepted")
	}
}

// TestSeparateExpertTensors: a MoE file with separate ffn_gate_exps /
// ffn_up_exps (instead of the fused ffn_gate_up_exps, gate first) computes
// exactly the same logits.
func TestSeparateExpertTensors(t *testing.T) {
	dir := refDir(t)
	src := filepath.Join(dir, "gemma4-moe-f32.gguf")
	split := func(name string) (layer, part string, ok bool) {
		if !strings.HasSuffix(name, ".ffn_gate_exps.weight") && !strings.HasSuffix(name, ".ffn_up_exps.weight") {
			return "", "", false
		}
		i := strings.Index(name, ".ffn_")
		return name[:i], name[i+5 : len(name)-len("_exps.weight")], true
	}
	path := rewriteData(t, src, nil, func(tis []gguf.TensorInfo) []gguf.TensorInfo {
		var out []gguf.TensorInfo
		for _, ti := range tis {
			if blk, ok := strings.CutSuffix(ti.Name, ".ffn_gate_up_exps.weight"); ok {
				d, ff2, e := ti.Shape[0], ti.Shape[1], ti.Shape[2]
				out = append(out,
					gguf.TensorInfo{Name: blk + ".ffn_gate_exps.weight", Type: ti.Type, Shape: []int64{d, ff2 / 2, e}},
					gguf.TensorInfo{Name: blk + ".ffn_up_exps.weight", Type: ti.Type, Shape: []int64{d, ff2 / 2, e}})
				continue
			}
			out = append(out, ti)
		}
		return out
	}, func(name string, f *gguf.File) []byte {
		blk, part, ok := split(name)
		if !ok {
			return nil
		}
		fused, _ := f.Tensor(blk + ".ffn_gate_up_exps.weight")
		b, err := f.TensorData(fused.Name)
		if err != nil {
			t.Fatal(err)
		}
		row := int(fused.Shape[0]) * 4 // F32 rows of d
		ff, E := int(fused.Shape[1])/2, int(fused.Shape[2])
		var out []byte
		for e := 0; e < E; e++ {
			first := e * 2 * ff
			if part == "up" {
				first += ff
			}
			out = append(out, b[first*row:(first+ff)*row]...)
		}
		return out
	})
	be := cpu.New(2)
	defer be.Close()
	run := func(p string) []float32 {
		m, err := Open(p, be)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s, err := m.NewSequence(SequenceOptions{Capacity: 16, KV: tensor.F16})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Free()
		out, err := m.Forward([]*Sequence{s}, [][]int32{{2, 100, 200, 300, 400, 500, 600, 700, 800, 900}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	a, b := run(src), run(path)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: fused %v, separate %v", i, a[i], b[i])
		}
	}
}

// TestRingTruncate: a sliding-window ring can rewind only while it still
// holds a full window before the new end; after a permitted rewind the
// logits continue to match the reference.
func TestRingTruncate(t *testing.T) {
	dir := refDir(t)
	ref := loadReference(t, filepath.Join(dir, "gemma3-tiny-f32.logits.json.gz"))
	be := cpu.New(2)
	defer be.Close()
	m, err := Open(filepath.Join(dir, "gemma3-tiny-f32.gguf"), be)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Window 8, Step 3: the sliding layers keep 10 positions.
	s, err := m.NewSequence(SequenceOptions{Capacity: 32, KV: tensor.F16, Step: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	if _, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[:20]}); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(10); err == nil {
		t.Fatal("rewinding past the ring's window succeeded")
	}
	if err := s.Truncate(18); err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[18:24]})
	if err != nil {
		t.Fatal(err)
	}
	maxTol, rmsTol := tolerance("gemma3-tiny-f32")
	if mx, rms := diff(out[0], ref.Logits[18:24]); mx > maxTol || rms > rmsTol {
		t.Errorf("after rewinding: max|Δ| %.3g, rms %.3g", mx, rms)
	}
	if err := s.Truncate(0); err != nil {
		t.Fatal(err)
	}
	out, err = m.Forward([]*Sequence{s}, [][]int32{ref.Tokens[:12]})
	if err != nil {
		t.Fatal(err)
	}
	if mx, rms := diff(out[0], ref.Logits[:12]); mx > maxTol || rms > rmsTol {
		t.Errorf("after reset: max|Δ| %.3g, rms %.3g", mx, rms)
	}
}
