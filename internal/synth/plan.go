package synth

import (
	"fmt"
	"math"
	"strings"

	"mica/internal/format/gguf"
	"mica/internal/tensor"
)

// Options say what Write produces.
type Options struct {
	Preset string
	// Type is the type of the weight matrices (F32, F16, BF16 or a
	// quantized type); 1-D tensors are always F32, as llama.cpp keeps them.
	Type tensor.DType
	// Pure disables llama-quantize's special rule for the tied embedding
	// (Q6_K, or Q8_0 when the row length is not a multiple of the K-quant
	// block); K-quant rows that are not whole 256-blocks still fall back.
	Pure bool
	Seed uint64
	// Vocab supplies the tokenizer keys; required by Write, optional for
	// Plan (header inspection).
	Vocab *Vocab
	// ChatTemplate overrides the vocabulary's tokenizer.chat_template.
	ChatTemplate string
	// Threads generating and quantizing in parallel (0: 1).
	Threads int
	// Blocks picks how quantized tensors are made (see BlockMode).
	Blocks BlockMode
	// Progress, when set, is called with bytes of tensor data written so far
	// and the total.
	Progress func(done, total int64)
}

// BlockMode chooses how quantized weights are produced.
type BlockMode int

const (
	// BlocksAuto is BlocksExact for presets under 2 billion parameters and
	// BlocksPool above.
	BlocksAuto BlockMode = iota
	// BlocksExact quantizes every generated value with llama.cpp's
	// reference quantizers (K-quants run at about 13 MB/s per thread).
	BlocksExact
	// BlocksPool quantizes a pool of 16384 random blocks once per file and
	// builds each tensor from blocks drawn from it at random: every block is
	// a valid, exactly quantized random block, at the speed of a copy.
	BlocksPool
)

// ParseBlockMode reads "auto", "exact" or "pool".
func ParseBlockMode(s string) (BlockMode, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return BlocksAuto, nil
	case "exact":
		return BlocksExact, nil
	case "pool":
		return BlocksPool, nil
	}
	return 0, fmt.Errorf("synth: block mode %q: want auto, exact or pool", s)
}

// distribution is how a tensor's values are drawn.
type distribution int

const (
	distMatrix     distribution = iota // N(0, 0.02²)
	distNorm                           // scale·(1 + N(0, 0.1²))
	distLayerScale                     // uniform in [0.3, 1)
	distRopeFreqs                      // 1 for rotated pairs, 1e30 for the rest
)

// Value parameters (the same as ../shared/reference/gemma's random models).
const (
	matrixSD = 0.02
	normSD   = 0.1
)

type tensorSpec struct {
	dist  distribution
	scale float32 // distNorm: multiplier
	rot   int     // distRopeFreqs: entries that are 1
}

// Layout is a file's header: metadata, tensor table and how each tensor's
// values are drawn.
type Layout struct {
	Preset   *Preset
	Meta     []gguf.KV
	Tensors  []gguf.TensorInfo
	Params   int64 // elements of all tensors
	Bytes    int64 // tensor data bytes (without alignment padding)
	Warnings []string
	specs    []tensorSpec
	pool     bool
}

// fileType is general.file_type (llama_ftype) for a matrix type.
var fileType = map[tensor.DType]uint32{
	tensor.F32: 0, tensor.F16: 1, tensor.Q4_0: 2, tensor.Q4_1: 3, tensor.Q8_0: 7, tensor.Q5_0: 8,
	tensor.Q5_1: 9, tensor.Q2_K: 10, tensor.Q3_K: 11, tensor.Q4_K: 14, tensor.Q5_K: 16,
	tensor.Q6_K: 18, tensor.IQ4_NL: 25, tensor.IQ4_XS: 30, tensor.BF16: 32,
}

// Plan builds the header of a synthetic file without generating any data.
func Plan(o Options) (*Layout, error) {
	p, err := LookupPreset(o.Preset)
	if err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	if _, ok := fileType[o.Type]; !ok {
		return nil, fmt.Errorf("synth: weight type %s is not supported (choose %s)", o.Type, strings.Join(Types(), ", "))
	}
	l := &Layout{Preset: p}
	l.addTensors(p, o)
	for i := range l.Tensors {
		l.Params += l.Tensors[i].Elements()
		n, _ := l.Tensors[i].Type.RowBytes(l.Tensors[i].Elements())
		l.Bytes += n
	}
	switch o.Blocks {
	case BlocksPool:
		l.pool = true
	case BlocksAuto:
		l.pool = l.Params > 2e9
	}
	if err := l.addMeta(p, o); err != nil {
		return nil, err
	}
	return l, nil
}

// Types lists the accepted weight types.
func Types() []string {
	var out []string
	for _, t := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1,
		tensor.Q5_0, tensor.Q5_1, tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_NL, tensor.IQ4_XS} {
		out = append(out, strings.ToLower(t.String()))
	}
	return out
}

// kQuantFallback is llama-quantize's replacement for a K-quant (or IQ4_XS)
// tensor whose rows are not whole 256-element super-blocks.
var kQuantFallback = map[tensor.DType]tensor.DType{
	tensor.Q2_K: tensor.IQ4_NL, tensor.Q3_K: tensor.IQ4_NL, tensor.IQ4_XS: tensor.IQ4_NL,
	tensor.Q4_K: tensor.Q5_0, tensor.Q5_K: tensor.Q5_1, tensor.Q6_K: tensor.Q8_0,
}

// matrixType is the type of a 2-D weight with row length ne0, following
// llama-quantize (no importance matrix): the tied embedding (which is also
// the output projection) becomes Q6_K, or Q8_0 when ne0 is not a multiple
// of the chosen type's block; unless pure. Then K-quants whose rows are not
// whole super-blocks fall back to a 32-block type, and to F16 when even
// that does not fit.
func matrixType(want tensor.DType, ne0 int64, tiedEmbd, pure bool) tensor.DType {
	if !want.Quantized() {
		return want
	}
	t := want
	if tiedEmbd && !pure {
		if ne0%int64(want.BlockSize()) != 0 {
			t = tensor.Q8_0
		} else if want != tensor.Q8_0 {
			t = tensor.Q6_K
		}
	}
	if fb, ok := kQuantFallback[t]; ok && ne0%tensor.QK_K != 0 {
		t = fb
	}
	if ne0%int64(t.BlockSize()) != 0 {
		t = tensor.F16
	}
	return t
}

func (l *Layout) add(name string, typ tensor.DType, s tensorSpec, shape ...int64) {
	l.Tensors = append(l.Tensors, gguf.TensorInfo{Name: name, Type: typ, Shape: shape})
	l.specs = append(l.specs, s)
}

func (l *Layout) addTensors(p *Preset, o Options) {
	d := int64(p.NEmbd)
	mat := func(name string, in, out int64) {
		l.add(name, matrixType(o.Type, in, false, o.Pure), tensorSpec{dist: distMatrix}, in, out)
	}
	norm := func(name string, n int64, scale float32) {
		l.add(name, tensor.F32, tensorSpec{dist: distNorm, scale: scale}, n)
	}
	if p.Arch == ArchGemma4 && p.PartialRotary > 0 {
		n, rot := p.ropeFreqs()
		l.add("rope_freqs.weight", tensor.F32, tensorSpec{dist: distRopeFreqs, rot: rot}, int64(n))
	}
	l.add("token_embd.weight", matrixType(o.Type, d, true, o.Pure), tensorSpec{dist: distMatrix}, d, int64(p.NVocab))
	norm("output_norm.weight", d, 1)
	if p.PLE > 0 {
		lp := int64(p.NLayer * p.PLE)
		mat("per_layer_token_embd.weight", lp, int64(p.NVocab))
		mat("per_layer_model_proj.weight", d, lp)
		norm("per_layer_proj_norm.weight", int64(p.PLE), 1)
	}
	for il := 0; il < p.NLayer; il++ {
		b := fmt.Sprintf("blk.%d.", il)
		hd := int64(p.LayerHeadDim(il))
		q, kv := int64(p.NHead)*hd, int64(p.LayerKVHeads(il))*hd
		qkScale := float32(1)
		if p.Arch == ArchGemma4 {
			// Trained Gemma 4 carries the attention scaling in these
			// weights (attention scale 1): without it random weights
			// saturate the softmax.
			qkScale = float32(math.Pow(float64(hd), -0.25))
		}
		norm(b+"attn_norm.weight", d, 1)
		mat(b+"attn_q.weight", d, q)
		if p.OwnsKV(il) {
			mat(b+"attn_k.weight", d, kv)
			if p.HasV(il) {
				mat(b+"attn_v.weight", d, kv)
			}
			norm(b+"attn_k_norm.weight", hd, qkScale)
		}
		mat(b+"attn_output.weight", q, d)
		norm(b+"attn_q_norm.weight", hd, qkScale)
		norm(b+"post_attention_norm.weight", d, 1)
		norm(b+"ffn_norm.weight", d, 1)
		ff := int64(p.LayerFF(il))
		mat(b+"ffn_gate.weight", d, ff)
		mat(b+"ffn_up.weight", d, ff)
		mat(b+"ffn_down.weight", ff, d)
		norm(b+"post_ffw_norm.weight", d, 1)
		if p.Arch == ArchGemma4 {
			l.add(b+"layer_output_scale.weight", tensor.F32, tensorSpec{dist: distLayerScale}, 1)
		}
		if p.PLE > 0 {
			mat(b+"inp_gate.weight", d, int64(p.PLE))
			mat(b+"proj.weight", int64(p.PLE), d)
			norm(b+"post_norm.weight", d, 1)
		}
	}
}

func (l *Layout) addMeta(p *Preset, o Options) error {
	a := func(k string) string { return p.Arch + "." + k }
	quantized := false
	for _, t := range l.Tensors {
		quantized = quantized || t.Type.Quantized()
	}
	desc := fmt.Sprintf("Random weights with the shapes of %s (mica dev synth %s, seed %d): not a trained model; the vocabulary is derived from another file.",
		p.Description, p.Name, o.Seed)
	m := []gguf.KV{
		gguf.String("general.architecture", p.Arch),
		gguf.String("general.type", "model"),
		gguf.String("general.name", fmt.Sprintf("random-%s-seed%d", p.Name, o.Seed)),
		gguf.String("general.description", desc),
		gguf.String("general.size_label", p.SizeLabel),
		gguf.Uint32("general.file_type", fileType[o.Type]),
	}
	if quantized {
		m = append(m, gguf.Uint32("general.quantization_version", 2))
	}
	m = append(m,
		gguf.Uint32(a("context_length"), uint32(p.Context)),
		gguf.Uint32(a("embedding_length"), uint32(p.NEmbd)),
		gguf.Uint32(a("block_count"), uint32(p.NLayer)),
		gguf.Uint32(a("attention.head_count"), uint32(p.NHead)),
		gguf.Float32(a("attention.layer_norm_rms_epsilon"), p.Eps),
		gguf.Float32(a("rope.freq_base"), p.RopeBase),
		gguf.Uint32(a("attention.sliding_window"), uint32(p.Window)),
	)
	switch p.Arch {
	case ArchGemma3:
		m = append(m,
			gguf.Uint32(a("feed_forward_length"), uint32(p.FF)),
			gguf.Uint32(a("attention.head_count_kv"), uint32(p.NHeadKV)),
			gguf.Uint32(a("attention.key_length"), uint32(p.HeadDim)),
			gguf.Uint32(a("attention.value_length"), uint32(p.HeadDim)),
			gguf.Uint32(a("attention.sliding_window_pattern"), uint32(p.SlidingPeriod)),
			gguf.Float32(a("rope.freq_base_swa"), p.RopeBaseSWA),
		)
	case ArchGemma4:
		ff := make([]int32, p.NLayer)
		kv := make([]int32, p.NLayer)
		swa := make([]bool, p.NLayer)
		for il := range ff {
			ff[il], kv[il], swa[il] = int32(p.LayerFF(il)), int32(p.LayerKVHeads(il)), p.Sliding(il)
		}
		m = append(m,
			gguf.Int32s(a("feed_forward_length"), ff),
			gguf.Int32s(a("attention.head_count_kv"), kv),
			gguf.Uint32(a("attention.shared_kv_layers"), uint32(p.SharedKV)),
			gguf.Uint32(a("embedding_length_per_layer_input"), uint32(p.PLE)),
			gguf.Bools(a("attention.sliding_window_pattern"), swa),
			gguf.Uint32(a("attention.key_length"), uint32(p.HeadDim)),
			gguf.Uint32(a("attention.value_length"), uint32(p.HeadDim)),
			gguf.Uint32(a("attention.key_length_swa"), uint32(p.HeadDimSWA)),
			gguf.Uint32(a("attention.value_length_swa"), uint32(p.HeadDimSWA)),
			gguf.Uint32(a("rope.dimension_count"), uint32(p.HeadDim)),
			gguf.Uint32(a("rope.dimension_count_swa"), uint32(p.HeadDimSWA)),
			gguf.Float32(a("rope.freq_base_swa"), p.RopeBaseSWA),
			gguf.Float32(a("final_logit_softcapping"), p.Softcap),
		)
	}
	weights := fmt.Sprintf("matrices N(0, %g²); norms 1+N(0, %g²)", matrixSD, normSD)
	if p.Arch == ArchGemma3 {
		weights += " (stored with the +1 baked in, as the converter does)"
	} else {
		weights += " (raw); q/k norms scaled by head_dim^-1/4; layer_output_scale uniform in [0.3, 1)"
	}
	if l.pool {
		weights += "; quantized blocks drawn from a pool of exactly quantized random blocks"
	}
	notes := []gguf.KV{
		gguf.String("mica.synth.preset", p.Name),
		gguf.Uint64("mica.synth.seed", o.Seed),
		gguf.String("mica.synth.weights", weights),
	}
	if o.Vocab != nil {
		tmpl := o.ChatTemplate
		if tmpl == "" {
			tmpl = o.Vocab.ChatTemplate
			if tmpl != "" && !templateFits(p.Arch, tmpl) {
				l.Warnings = append(l.Warnings, fmt.Sprintf("the chat template of %s is not a %s template: not copied (pass --chat-template FILE)", o.Vocab.Source, p.Arch))
				tmpl = ""
			}
		} else if !templateFits(p.Arch, tmpl) {
			return fmt.Errorf("synth: the chat template given is not a %s template (it lacks %s)", p.Arch, templateMarker[p.Arch])
		}
		if tmpl == "" {
			l.Warnings = append(l.Warnings, "no chat template: the file has no tokenizer.chat_template (pass --chat-template FILE)")
		}
		tok, vn, err := tokenizerMeta(p, o.Vocab, tmpl)
		if err != nil {
			return err
		}
		m = append(m, tok...)
		notes = append(notes, vn...)
	}
	l.Meta = append(m, notes...)
	return nil
}

// templateMarker is a string every chat template of the family contains.
var templateMarker = map[string]string{ArchGemma3: "<start_of_turn>", ArchGemma4: "<|turn>"}

func templateFits(arch, tmpl string) bool { return strings.Contains(tmpl, templateMarker[arch]) }
