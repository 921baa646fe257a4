package clip

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/models/sd/param"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

// ckptTensor is one entry of the references' tensors.json.
type ckptTensor struct {
	Name      string  `json:"name"`
	Shape     []int   `json:"shape"`
	Kind      string  `json:"kind"`
	Offset    float64 `json:"offset"`
	Scale     float64 `json:"scale"`
	Symmetric bool    `json:"symmetric"`
}

func readCheckpointList(t testing.TB, model string) []ckptTensor {
	t.Helper()
	raw, err := os.ReadFile(testenv.Shared(t, "reference", model, "tensors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []ckptTensor
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	return list
}

// shapeSource serves a checkpoint's shapes with zero tensors (all wrapping
// one shared zero buffer, so a real-size encoder costs no memory) and
// records what was asked for.
type shapeSource struct {
	b      compute.Backend
	shapes map[string][]int
	asked  map[string][]int
	zeros  []byte
	param.Errors
}

func newShapeSource(b compute.Backend, list []ckptTensor) *shapeSource {
	s := &shapeSource{b: b, shapes: map[string][]int{}, asked: map[string][]int{}}
	for _, e := range list {
		s.shapes[e.Name] = e.Shape
	}
	return s
}

func (s *shapeSource) Shape(name string) ([]int, bool) {
	sh, ok := s.shapes[name]
	return sh, ok
}

func (s *shapeSource) Tensor(name string, role param.Role, shape ...int) *compute.Tensor {
	sh, ok := s.shapes[name]
	if !ok {
		s.Add("tensor %s is missing", name)
		return nil
	}
	if !s.CheckShape(name, sh, shape) {
		return nil
	}
	s.asked[name] = shape
	dt := tensor.F16
	if role == param.Norm || role == param.Bias {
		dt = tensor.F32
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	size, _ := dt.RowBytes(int64(n))
	if int(size) > len(s.zeros) {
		s.zeros = make([]byte, size)
	}
	x, err := s.b.Wrap(dt, s.zeros[:size], shape...)
	if err != nil {
		s.Add("tensor %s: %v", name, err)
	}
	return x
}

// TestRealCheckpointShapes detects the configurations of SD 1.5's and
// SDXL's text encoders from the reference checkpoints' tensor lists and
// checks that Load binds exactly the tensors those checkpoints hold under
// each encoder's prefix, with their shapes, apart from the two it ignores
// (position_ids and logit_scale).
func TestRealCheckpointShapes(t *testing.T) {
	vitL := Config{Flavor: OpenAI, Vocab: 49408, Positions: 77, Hidden: 768, Heads: 12, Layers: 12, MLP: 3072,
		Act: compute.QuickGELU, Eps: 1e-5}
	bigG := Config{Flavor: OpenCLIP, Vocab: 49408, Positions: 77, Hidden: 1280, Heads: 20, Layers: 32, MLP: 5120,
		Act: compute.GELU, Eps: 1e-5, ProjDim: 1280}
	cases := []struct {
		model, owner, prefix string
		want                 Config
	}{
		{"sd", "cond_stage_model.", "cond_stage_model.transformer.text_model.", vitL},
		{"sdxl", "conditioner.embedders.0.", "conditioner.embedders.0.transformer.text_model.", vitL},
		{"sdxl", "conditioner.embedders.1.", "conditioner.embedders.1.model.", bigG},
	}
	b := cpu.New(1)
	defer b.Close()
	for _, tc := range cases {
		list := readCheckpointList(t, tc.model)
		src := newShapeSource(b, list)
		c, err := DetectConfig(src, tc.prefix)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.model, tc.prefix, err)
		}
		if c != tc.want {
			t.Errorf("%s %s: detected %+v, want %+v", tc.model, tc.prefix, c, tc.want)
		}
		m, err := Load(src, tc.prefix, c)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.model, tc.prefix, err)
		}
		m.Close()
		var want, got []string
		for _, e := range list {
			if strings.HasPrefix(e.Name, tc.owner) && !strings.HasSuffix(e.Name, "position_ids") && !strings.HasSuffix(e.Name, "logit_scale") {
				want = append(want, e.Name)
				if !reflect.DeepEqual(src.asked[e.Name], e.Shape) {
					t.Errorf("%s: bound with shape %v, the checkpoint has %v", e.Name, src.asked[e.Name], e.Shape)
				}
			}
		}
		for n := range src.asked {
			got = append(got, n)
		}
		sort.Strings(want)
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: Load bound %d tensors, the checkpoint has %d under %s", tc.model, tc.prefix, len(got), len(want), tc.owner)
		}
	}
}

func TestDetectConfigErrors(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	list := readCheckpointList(t, "sdxl")
	src := newShapeSource(b, list)
	if _, err := DetectConfig(src, "conditioner.embedders.2.model."); err == nil || !strings.Contains(err.Error(), "no text encoder") {
		t.Errorf("missing encoder: %v", err)
	}
	p := "conditioner.embedders.1.model."
	src.shapes[p+"text_projection"] = []int{1024, 1280}
	if _, err := DetectConfig(src, p); err == nil || !strings.Contains(err.Error(), "text_projection") {
		t.Errorf("mis-shaped projection: %v", err)
	}
	src.shapes[p+"positional_embedding"] = []int{77, 1024}
	if _, err := DetectConfig(src, p); err == nil || !strings.Contains(err.Error(), "positional_embedding") {
		t.Errorf("mis-shaped positions: %v", err)
	}
}

// FuzzDetectConfig feeds DetectConfig arbitrary shapes for the names it
// reads: it must return a valid config or an error, never panic.
func FuzzDetectConfig(f *testing.F) {
	f.Add([]byte{3, 0xc1, 0x03, 0x00, 0x03, 1, 77, 0x03, 3, 0x00, 0x0c, 0x03, 0x00, 2}, true)
	f.Add([]byte{0, 1, 2, 3, 4, 5}, false)
	f.Fuzz(func(t *testing.T, data []byte, openclip bool) {
		flavor := OpenAI
		if openclip {
			flavor = OpenCLIP
		}
		n := namesFor(flavor, "p.")
		probe := []string{n.tokenEmb, n.posEmb, n.layer(0) + n.ln1 + ".weight", n.layer(1) + n.ln1 + ".weight",
			n.layer(0) + n.fc1 + ".weight", n.proj}
		shapes := map[string][]int{}
		for _, name := range probe {
			if len(data) == 0 {
				break
			}
			rank := int(data[0] % 4)
			data = data[1:]
			sh := []int{}
			for range rank {
				if len(data) < 2 {
					break
				}
				sh = append(sh, int(int16(uint16(data[0])|uint16(data[1])<<8)))
				data = data[2:]
			}
			if rank > 0 {
				shapes[name] = sh
			}
		}
		src := &shapeSource{shapes: shapes}
		c, err := DetectConfig(src, "p.")
		if err != nil {
			return
		}
		if err := c.validate(); err != nil || c.Heads*64 != c.Hidden || c.Layers < 1 {
			t.Fatalf("DetectConfig returned %+v (%v) without an error", c, err)
		}
	})
}
