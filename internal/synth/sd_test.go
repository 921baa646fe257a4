package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mica/internal/format/safetensors"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

// refTensor is one entry of shared/reference/{sd,sdxl}/tensors.json.
type refTensor struct {
	Name      string   `json:"name"`
	Shape     []int    `json:"shape"`
	Kind      string   `json:"kind"`
	Offset    *float64 `json:"offset"`
	Scale     *float64 `json:"scale"`
	SHA32     string   `json:"sha256_f32"`
	SHA16     string   `json:"sha256_f16"`
	Symmetric bool     `json:"symmetric"`
}

func loadRefTensors(t *testing.T, dir string) []refTensor {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "reference", dir, "tensors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []refTensor
	if err := json.Unmarshal(b, &ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

var refKinds = map[string]byte{"w": KindWeight, "b": KindBias, "n": KindNorm, "pos": KindPos}

// The enumeration from the architecture equals the reference tensor list:
// names, shapes, order, kinds, offsets, scales and the symmetric flag.
func TestSDTensorsMatchReference(t *testing.T) {
	for _, c := range []struct {
		dir    string
		config SDConfig
		params int64
	}{
		{"sd", SD15Config(), 1_066_235_307}, // 1,066,235,384 with the 77 position ids
		{"sdxl", SDXLConfig(), 3_468_837_868},
	} {
		ref := loadRefTensors(t, c.dir)
		got := SDTensors(c.config)
		if len(got) != len(ref) {
			t.Errorf("%s: %d tensors, reference has %d", c.dir, len(got), len(ref))
		}
		var params int64
		for i := range min(len(got), len(ref)) {
			g, r := got[i], ref[i]
			if g.Name != r.Name || !reflect.DeepEqual(append([]int{}, g.Shape...), append([]int{}, r.Shape...)) ||
				g.Kind != refKinds[r.Kind] || g.Symmetric != r.Symmetric {
				t.Fatalf("%s: tensor %d: got %s %v %c sym=%v, want %s %v %s sym=%v",
					c.dir, i, g.Name, g.Shape, g.Kind, g.Symmetric, r.Name, r.Shape, r.Kind, r.Symmetric)
			}
			if g.Kind == KindPos {
				if r.Offset != nil || r.Scale != nil {
					t.Errorf("%s: %s: reference gives an offset or scale", c.dir, r.Name)
				}
				continue
			}
			params += g.Elements()
			wantOff := 0.0
			if g.Kind == KindNorm {
				wantOff = 1
			}
			if r.Offset == nil || *r.Offset != wantOff || r.Scale == nil || *r.Scale != SDScale {
				t.Errorf("%s: %s: reference offset/scale %v/%v, recipe %v/%v", c.dir, r.Name, r.Offset, r.Scale, wantOff, SDScale)
			}
		}
		if params != c.params {
			t.Errorf("%s: %d float parameters, README says %d", c.dir, params, c.params)
		}
	}
}

// Every tensor of up to 2M elements hashes to the reference SHA-256, as
// F32 and as F16 (exact: the recipe is integer arithmetic plus correctly
// rounded float64 → float32 → F16 conversions). The rest (large convs and
// embeddings) are covered by the whole-file check under MICA_LONG=1. That
// is about a billion values (seconds on two cores), so by default the test
// checks every tensor up to 64K values and one tensor of each larger
// (kind, shape); MICA_LONG=1 checks them all.
func TestSDTensorHashes(t *testing.T) {
	start := time.Now()
	var checked, elems int64
	for _, dir := range []string{"sd", "sdxl"} {
		config := SD15Config()
		if dir == "sdxl" {
			config = SDXLConfig()
		}
		ref := loadRefTensors(t, dir)
		got := SDTensors(config)
		if len(got) != len(ref) {
			t.Fatalf("%s: %d tensors, want %d", dir, len(got), len(ref))
		}
		var todo []int
		seen := map[string]bool{}
		for i, g := range got {
			class := fmt.Sprint(g.Kind, g.Shape, g.Symmetric)
			if os.Getenv("MICA_LONG") == "" && g.Elements() > 1<<16 && seen[class] {
				continue
			}
			seen[class] = true
			if g.Elements() <= 2_000_000 {
				todo = append(todo, i)
				elems += g.Elements()
			}
		}
		checked += int64(len(todo))
		work := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad []string
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				valBuf := make([]float32, 2_000_000)
				buf32, buf16 := make([]byte, 4*len(valBuf)), make([]byte, 2*len(valBuf))
				for i := range work {
					g, r := got[i], ref[i]
					var b32, b16 []byte
					if g.Kind == KindPos { // I64 in both files
						b32, _ = SDEncode(g, 0, tensor.F32, 0, g.Elements())
						b16 = b32
					} else { // one generation, both encodings (the writer's code)
						vals := valBuf[:g.Elements()]
						SDFill(g, 0, 0, vals)
						b32, b16 = buf32[:4*len(vals)], buf16[:2*len(vals)]
						encodeFloats(tensor.F32, vals, b32)
						encodeFloats(tensor.F16, vals, b16)
					}
					s32, s16 := sha256.Sum256(b32), sha256.Sum256(b16)
					if hex.EncodeToString(s32[:]) != r.SHA32 || hex.EncodeToString(s16[:]) != r.SHA16 {
						mu.Lock()
						bad = append(bad, g.Name)
						mu.Unlock()
					}
				}
			}()
		}
		for _, i := range todo {
			work <- i
		}
		close(work)
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("%s: %d tensors hash differently, first %s", dir, len(bad), bad[0])
		}
	}
	t.Logf("%d tensors, %d values, F32 and F16, in %v", checked, elems, time.Since(start).Round(time.Millisecond))
}

func f32bits(t SDTensor, i int64) uint32 {
	b, _ := SDEncode(t, 0, tensor.F32, i, 1)
	return binary.LittleEndian.Uint32(b)
}

func f16bits(t SDTensor, i int64) uint16 {
	b, _ := SDEncode(t, 0, tensor.F16, i, 1)
	return binary.LittleEndian.Uint16(b)
}

// The worked examples of both READMEs.
func TestSDWorkedExamples(t *testing.T) {
	w := SDTensor{Name: "model.diffusion_model.input_blocks.0.0.weight", Shape: []int{320, 4, 3, 3}, Kind: KindWeight}
	if h := fnv1a64(w.Name); h != 0x8c8ab0aac9d49768 {
		t.Errorf("FNV-1a %#x", h)
	}
	gamma := uint64(golden)
	if z := mix64(fnv1a64(w.Name) + gamma); z != 0xa9a5d1413f7769f0 {
		t.Errorf("mixed z %#x", z)
	}
	if z := mix64(fnv1a64(w.Name) + 2*gamma); z != 0x0359f602e5ffd05c {
		t.Errorf("mixed z(1) %#x", z)
	}
	n := SDTensor{Name: "first_stage_model.decoder.up.1.block.0.norm1.weight", Shape: []int{256}, Kind: KindNorm}
	tp := SDTensor{Name: "conditioner.embedders.1.model.text_projection", Shape: []int{1280, 1280}, Kind: KindWeight, Symmetric: true}
	ls := SDTensor{Name: "conditioner.embedders.1.model.logit_scale", Shape: []int{}, Kind: KindWeight}
	le := SDTensor{Name: "model.diffusion_model.label_emb.0.0.weight", Shape: []int{1280, 2816}, Kind: KindWeight}
	if h := fnv1a64(n.Name); h != 0x1d3c391d99ef614a {
		t.Errorf("FNV-1a %#x", h)
	}
	if h := fnv1a64(tp.Name); h != 0x3aad838d50b588c3 {
		t.Errorf("FNV-1a %#x", h)
	}
	if h := fnv1a64(le.Name); h != 0x4b807f1379df99f8 {
		t.Errorf("FNV-1a %#x", h)
	}
	for _, c := range []struct {
		t   SDTensor
		i   int64
		f32 uint32
		f16 uint16
	}{
		{w, 0, 0x3c38ab08, 0x21c5},
		{w, 1, 0xbd0a2cad, 0xa851},
		{n, 0, 0x3f782836, 0x3bc1},
		{n, 1, 0x3f844f30, 0x3c22},
		{tp, 0, 0x3c3a7483, 0x21d4},
		{tp, 1, 0xbcf934e5, 0xa7ca},
		{tp, 1280, 0xbcf934e5, 0xa7ca}, // (1, 0) mirrors (0, 1)
		{ls, 0, 0xbb08d1a1, 0x9847},
		{le, 0, 0xbc685bc0, 0xa343},
		{le, 1, 0x3c9df10d, 0x24f0},
	} {
		if g := f32bits(c.t, c.i); g != c.f32 {
			t.Errorf("%s[%d]: F32 %#08x, want %#08x", c.t.Name, c.i, g, c.f32)
		}
		if g := f16bits(c.t, c.i); g != c.f16 {
			t.Errorf("%s[%d]: F16 %#04x, want %#04x", c.t.Name, c.i, g, c.f16)
		}
	}
	if v := math.Float32frombits(f32bits(w, 0)); v != 0.011271245777606964 {
		t.Errorf("value %v", v)
	}
	// Element (i, j) of the symmetric tensor equals (j, i) everywhere.
	vals := make([]float32, 1280*1280)
	SDFill(tp, 0, 0, vals)
	for i := 0; i < 1280; i += 7 {
		for j := 0; j < 1280; j += 3 {
			if vals[i*1280+j] != vals[j*1280+i] {
				t.Fatalf("text_projection (%d,%d) != (%d,%d)", i, j, j, i)
			}
		}
	}
	// Position ids are I64 0..76.
	b, _ := SDEncode(SDTensor{Name: "p", Shape: []int{1, 77}, Kind: KindPos}, 0, tensor.F16, 0, 77)
	for i := range 77 {
		if v := binary.LittleEndian.Uint64(b[8*i:]); v != uint64(i) {
			t.Fatalf("position_ids[%d] = %d", i, v)
		}
	}
}

// Header sizes, starts and whole-file sizes as the READMEs give them.
func TestSDHeaders(t *testing.T) {
	for _, c := range []struct {
		preset string
		typ    tensor.DType
		header int
		size   int64
		start  string
	}{
		{"sd15-recipe", tensor.F32, 155560, 4_265_097_412, `{"__metadata__":{"format":"pt","note":"sdref recipe v1: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SD1.5 shapes"},"model.diffusion_model.time_embed.0.weight":{"dtype":"F32","shape":[1280,320],"data_offsets":[0,1638400]}`},
		{"sd15-recipe", tensor.F16, 155240, 2_132_626_478, `{"__metadata__":{"format":"pt","note":"sdref recipe v1: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SD1.5 shapes"},"model.diffusion_model.time_embed.0.weight":{"dtype":"F16","shape":[1280,320],"data_offsets":[0,819200]}`},
		{"sdxl-recipe", tensor.F16, 364768, 6_938_041_128, `{"__metadata__":{"format":"pt","note":"sdref recipe v1: FNV-1a-64(name) + splitmix64(i+1), uniform std 0.02; SDXL base shapes"},`},
	} {
		l, err := PlanSD(SDOptions{Preset: c.preset, Type: c.typ})
		if err != nil {
			t.Fatal(err)
		}
		h := l.Header
		if n := binary.LittleEndian.Uint64(h); n != uint64(c.header) || len(h) != 8+c.header {
			t.Errorf("%s %s: header length %d (%d bytes), want %d", c.preset, c.typ, n, len(h), c.header)
		}
		if !strings.HasPrefix(string(h[8:]), c.start) {
			t.Errorf("%s %s: header starts %.200s", c.preset, c.typ, h[8:])
		}
		if trimmed := strings.TrimRight(string(h[8:]), " "); !json.Valid([]byte(trimmed)) || !strings.HasSuffix(trimmed, "}") {
			t.Errorf("%s %s: header is not JSON padded with spaces", c.preset, c.typ)
		}
		if l.Bytes != c.size {
			t.Errorf("%s %s: %d bytes, want %d", c.preset, c.typ, l.Bytes, c.size)
		}
	}
	if !bytes.Contains(mustPlan(t, "sdxl-recipe").Header, []byte(`"conditioner.embedders.1.model.logit_scale":{"dtype":"F16","shape":[],"data_offsets":[`)) {
		t.Error("logit_scale is not a [] scalar")
	}
	if !bytes.Contains(mustPlan(t, "sdxl-recipe").Header, []byte(`"conditioner.embedders.0.transformer.text_model.embeddings.position_ids":{"dtype":"I64","shape":[1,77],`)) {
		t.Error("position_ids is not I64 [1,77]")
	}
}

func mustPlan(t *testing.T, preset string) *SDLayout {
	t.Helper()
	l, err := PlanSD(SDOptions{Preset: preset, Type: tensor.F16})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The tiny presets have the sizes other packages rely on.
func TestSDTestShapes(t *testing.T) {
	shapes := func(c SDConfig) map[string][]int {
		m := map[string][]int{}
		for _, x := range SDTensors(c) {
			m[x.Name] = x.Shape
		}
		return m
	}
	sd := shapes(SDTestConfig())
	for name, want := range map[string][]int{
		"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight":      {49408, 128},
		"cond_stage_model.transformer.text_model.embeddings.position_embedding.weight":   {77, 128},
		"cond_stage_model.transformer.text_model.encoder.layers.2.mlp.fc1.weight":        {512, 128},
		"model.diffusion_model.time_embed.0.weight":                                      {128, 32},
		"model.diffusion_model.input_blocks.0.0.weight":                                  {32, 4, 3, 3},
		"model.diffusion_model.input_blocks.7.1.proj_in.weight":                          {128, 128, 1, 1},
		"model.diffusion_model.input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight":  {128, 128},
		"model.diffusion_model.input_blocks.11.0.out_layers.3.weight":                    {128, 128, 3, 3},
		"model.diffusion_model.middle_block.1.transformer_blocks.0.ff.net.0.proj.weight": {1024, 128},
		"model.diffusion_model.output_blocks.11.1.proj_out.weight":                       {32, 32, 1, 1},
		"model.diffusion_model.out.2.weight":                                             {4, 32, 3, 3},
		"first_stage_model.encoder.conv_out.weight":                                      {8, 128, 3, 3},
		"first_stage_model.decoder.mid.attn_1.q.weight":                                  {128, 128, 1, 1},
		"first_stage_model.decoder.up.0.block.2.conv2.weight":                            {32, 32, 3, 3},
	} {
		if got, ok := sd[name]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("sd-test %s: %v, want %v", name, got, want)
		}
	}
	if _, ok := sd["model.diffusion_model.input_blocks.12.0.in_layers.0.weight"]; ok {
		t.Error("sd-test has input_blocks.12")
	}
	xl := shapes(SDXLTestConfig())
	for name, want := range map[string][]int{
		"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": {49408, 64},
		"conditioner.embedders.0.transformer.text_model.embeddings.position_ids":           {1, 77},
		"conditioner.embedders.0.transformer.text_model.encoder.layers.2.mlp.fc2.weight":   {64, 256},
		"conditioner.embedders.1.model.transformer.resblocks.2.attn.in_proj_weight":        {384, 128},
		"conditioner.embedders.1.model.transformer.resblocks.2.mlp.c_fc.weight":            {512, 128},
		"conditioner.embedders.1.model.text_projection":                                    {128, 128},
		"conditioner.embedders.1.model.logit_scale":                                        {},
		"model.diffusion_model.label_emb.0.0.weight":                                       {128, 128 + 6*256},
		"model.diffusion_model.input_blocks.4.1.proj_in.weight":                            {64, 64},
		"model.diffusion_model.input_blocks.7.1.transformer_blocks.1.attn2.to_v.weight":    {128, 192},
		"model.diffusion_model.middle_block.1.transformer_blocks.1.norm3.weight":           {128},
		"model.diffusion_model.output_blocks.2.2.conv.weight":                              {128, 128, 3, 3},
		"model.diffusion_model.output_blocks.8.0.skip_connection.weight":                   {32, 64, 1, 1},
		"first_stage_model.decoder.conv_in.weight":                                         {128, 4, 3, 3},
	} {
		if got, ok := xl[name]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("sdxl-test %s: %v, want %v", name, got, want)
		}
	}
	for name := range xl {
		if strings.HasPrefix(name, "model.diffusion_model.input_blocks.1.1.") || strings.Contains(name, "output_blocks.9.") {
			t.Errorf("sdxl-test has %s", name)
		}
	}
	ref := shapes(SDXLRefinerTestConfig())
	for name, want := range map[string][]int{
		"conditioner.embedders.0.model.token_embedding.weight":                          {49408, 128},
		"conditioner.embedders.0.model.transformer.resblocks.2.attn.in_proj_weight":     {384, 128},
		"conditioner.embedders.0.model.text_projection":                                 {128, 128},
		"model.diffusion_model.label_emb.0.0.weight":                                    {128, 128 + 5*256},
		"model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight": {64, 128},
		"model.diffusion_model.input_blocks.11.0.out_layers.3.weight":                   {128, 128, 3, 3},
		"model.diffusion_model.middle_block.1.transformer_blocks.1.attn2.to_v.weight":   {128, 128},
		"model.diffusion_model.output_blocks.2.1.conv.weight":                           {128, 128, 3, 3},
		"model.diffusion_model.output_blocks.5.2.conv.weight":                           {128, 128, 3, 3},
		"model.diffusion_model.output_blocks.11.0.skip_connection.weight":               {32, 64, 1, 1},
	} {
		if got, ok := ref[name]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("sdxl-refiner-test %s: %v, want %v", name, got, want)
		}
	}
	for name := range ref {
		if strings.HasPrefix(name, "conditioner.embedders.1.") || strings.Contains(name, ".transformer.text_model.") ||
			strings.HasPrefix(name, "model.diffusion_model.input_blocks.1.1.") || strings.HasPrefix(name, "model.diffusion_model.input_blocks.10.1.") {
			t.Errorf("sdxl-refiner-test has %s", name)
		}
	}
	// The real refiner: 1858 tensors; the UNet's 2,259,526,660 parameters
	// plus bigG's 694,659,841 and the VAE's 83,653,863 are 6,075,680,728
	// bytes in F16, 301,202 bytes (about 160 per tensor: its JSON header)
	// short of the published sd_xl_refiner_1.0.safetensors, 6,075,981,930
	// bytes: consistent with these shapes, though not a proof of them.
	var unetParams int64
	full := SDTensors(SDXLRefinerConfig())
	for _, x := range full {
		if strings.HasPrefix(x.Name, "model.diffusion_model.") {
			unetParams += x.Elements()
		}
	}
	if len(full) != 1858 || unetParams != 2259526660 {
		t.Errorf("sdxl-refiner: %d tensors, UNet %d parameters", len(full), unetParams)
	}
	inp := shapes(sd15Inpaint())
	if got := inp["model.diffusion_model.input_blocks.0.0.weight"]; !reflect.DeepEqual(got, []int{320, 9, 3, 3}) {
		t.Errorf("inpainting input conv %v", got)
	}
	if len(inp) != 1131 {
		t.Errorf("inpainting: %d tensors", len(inp))
	}
	for _, c := range []SDConfig{SD15Config(), SDXLConfig(), SDTestConfig(), SDXLTestConfig(), sd15Inpaint(), SDXLRefinerConfig(), SDXLRefinerTestConfig()} {
		if err := c.Check(); err != nil {
			t.Error(err)
		}
	}
}

// sd-test and sdxl-test write quickly and read back through the
// safetensors reader, every tensor equal to the recipe.
func TestWriteSDTiny(t *testing.T) {
	for _, c := range []struct {
		preset string
		typ    tensor.DType
		seed   uint64
	}{{"sd-test", tensor.F16, 0}, {"sdxl-test", tensor.F32, 0}, {"sd-test", tensor.BF16, 3}, {"sdxl-refiner-test", tensor.F16, 0}} {
		path := filepath.Join(t.TempDir(), c.preset+".safetensors")
		start := time.Now()
		var last, total int64
		l, err := WriteSD(path, SDOptions{Preset: c.preset, Type: c.typ, Seed: c.seed, Threads: 2,
			Progress: func(d, tot int64) { last, total = d, tot }})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("%s %s: %d tensors, %d parameters, %d bytes in %v", c.preset, c.typ, len(l.Tensors), l.Params, l.Bytes, took.Round(time.Millisecond))
		if last != total || total != l.Bytes-int64(len(l.Header)) {
			t.Errorf("progress ended at %d of %d (data %d)", last, total, l.Bytes-int64(len(l.Header)))
		}
		st, err := os.Stat(path)
		if err != nil || st.Size() != l.Bytes {
			t.Fatalf("file: %v, %v; layout says %d bytes", st, err, l.Bytes)
		}
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Tensors) != len(l.Tensors) || f.Metadata["format"] != "pt" || !strings.Contains(f.Metadata["note"], c.preset) {
			t.Errorf("%d tensors, metadata %v", len(f.Tensors), f.Metadata)
		}
		if c.seed != 0 && !strings.Contains(f.Metadata["note"], "seed 3") {
			t.Errorf("note %q does not name the seed", f.Metadata["note"])
		}
		for _, x := range l.Tensors {
			ti, ok := f.Tensor(x.Name)
			if !ok {
				t.Fatalf("%s missing", x.Name)
			}
			raw, err := f.RawTensorData(x.Name)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := SDEncode(x, c.seed, c.typ, 0, x.Elements())
			if ti.DType != SDStoredType(x, c.typ) || !bytes.Equal(raw, want) {
				t.Fatalf("%s: %s, data differs", x.Name, ti.RawDType)
			}
		}
		f.Close()
	}
}

// A seed changes every tensor; the same seed and any thread count give the
// same bytes; the recipe presets refuse a seed.
func TestSDSeedsAndThreads(t *testing.T) {
	x := SDTensor{Name: "model.diffusion_model.out.2.bias", Shape: []int{4}, Kind: KindBias}
	a, _ := SDEncode(x, 0, tensor.F32, 0, 4)
	b, _ := SDEncode(x, 7, tensor.F32, 0, 4)
	if bytes.Equal(a, b) {
		t.Error("seed 7 gives the recipe values")
	}
	dir := t.TempDir()
	var files [][]byte
	for _, threads := range []int{1, 3} {
		p := filepath.Join(dir, "t.safetensors")
		if _, err := WriteSD(p, SDOptions{Preset: "sdxl-test", Type: tensor.F16, Seed: 9, Threads: threads}); err != nil {
			t.Fatal(err)
		}
		d, _ := os.ReadFile(p)
		files = append(files, d)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("1 and 3 threads give different files")
	}
	for _, c := range []struct {
		o    SDOptions
		want string
	}{
		{SDOptions{Preset: "sd15-recipe", Type: tensor.F16, Seed: 2}, "sd15"},
		{SDOptions{Preset: "sd99", Type: tensor.F16}, "sd-test"},
		{SDOptions{Preset: "sd-test", Type: tensor.Q8_0}, "f16"},
		{SDOptions{Config: &SDConfig{Name: "x"}, Type: tensor.F16}, "positive"},
	} {
		if _, err := PlanSD(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.o, err, c.want)
		}
	}
	if _, err := WriteSD(filepath.Join(dir, "no", "such", "dir.safetensors"), SDOptions{Preset: "sd-test", Type: tensor.F16}); err == nil {
		t.Error("wrote into a missing folder")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left %d files behind", len(ents))
	}
}

// The reference checkpoints, whole files, bit for bit (MICA_LONG=1: writes
// 2.1 + 4.3 + 6.9 GB).
func TestSDRecipeFilesLong(t *testing.T) {
	if os.Getenv("MICA_LONG") == "" {
		t.Skip("MICA_LONG=1 writes the full reference checkpoints")
	}
	dir := t.TempDir()
	for _, c := range []struct {
		preset string
		typ    tensor.DType
		sha    string
	}{
		{"sd15-recipe", tensor.F16, "4bfc2ff598b0e57f50c557625f9051d154cf2da86501a972183e35cf4ec825ae"},
		{"sd15-recipe", tensor.F32, "df629d3a9a00756c0a92fe154accc02c7dc70105ab00995924cd738daf6839db"},
		{"sdxl-recipe", tensor.F16, "6cebe8fa59ce314cb7c235161fce8234be01649b3a97261c7011e039d54081b8"},
	} {
		if only := os.Getenv("MICA_SD_RECIPE"); only != "" && only != c.preset+"-"+strings.ToLower(c.typ.String()) {
			continue
		}
		path := filepath.Join(dir, c.preset+".safetensors")
		start := time.Now()
		if _, err := WriteSD(path, SDOptions{Preset: c.preset, Type: c.typ, Threads: runtime.NumCPU()}); err != nil {
			t.Fatal(err)
		}
		wrote := time.Since(start)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		os.Remove(path)
		got := hex.EncodeToString(h.Sum(nil))
		t.Logf("%s %s: written in %v, hashed in %v", c.preset, c.typ, wrote.Round(time.Millisecond), (time.Since(start) - wrote).Round(time.Millisecond))
		if got != c.sha {
			t.Errorf("%s %s: SHA-256 %s, want %s", c.preset, c.typ, got, c.sha)
		}
	}
}

// toF16's fast path agrees with quant.FP32ToFP16 on every float32 whose
// top 20 bits are tested with the low 12 bits at the rounding edges.
func TestToF16(t *testing.T) {
	for hi := uint32(0); hi < 1<<20; hi++ {
		for _, lo := range []uint32{0, 1, 0x7ff, 0x800, 0x801, 0xfff} {
			w := hi<<12 | lo
			f := math.Float32frombits(w)
			if a, b := toF16(f), quant.FP32ToFP16(f); a != b && !math.IsNaN(float64(f)) {
				t.Fatalf("%#08x: toF16 %#04x, quant %#04x", w, a, b)
			}
		}
	}
}

// A refiner-shaped config (bigG only) must have the refiner's ADM width.
func TestSDRefinerCheck(t *testing.T) {
	c := SDXLRefinerTestConfig()
	c.UNet.ADMInChannels = 128 + 6*256
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "want pooled 128 + 5·256") {
		t.Errorf("base ADM on a refiner: %v", err)
	}
	c = SDXLRefinerTestConfig()
	c.OpenCLIP = nil
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "no text encoder") {
		t.Errorf("no encoders: %v", err)
	}
}
