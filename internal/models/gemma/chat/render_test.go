package chat

import (
	"bufio"
	"encoding/json"
	"errors"
	"mica/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sharedDir(t *testing.T) string { return testenv.Shared(t) }

type renderCase struct {
	Name        string          `json:"name"`
	Input       json.RawMessage `json:"input"`
	Gemma4      *string         `json:"gemma4"`
	Gemma4Error string          `json:"gemma4_error"`
	Gemma3      *string         `json:"gemma3"`
	Gemma3Error string          `json:"gemma3_error"`
}

func readCases(t *testing.T, path string) []renderCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []renderCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c renderCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return cases
}

func checkCases(t *testing.T, cases []renderCase) {
	for _, c := range cases {
		vars, err := ParseVars(c.Input)
		if err != nil {
			// Only inputs the templates cannot render either may fail here.
			if c.Gemma4 != nil || c.Gemma3 != nil {
				t.Errorf("%s: ParseVars: %v", c.Name, err)
			}
			continue
		}
		for _, fam := range []struct {
			name string
			want *string
			err  string
		}{{"gemma4", c.Gemma4, c.Gemma4Error}, {"gemma3", c.Gemma3, c.Gemma3Error}} {
			got, err := RenderVars(fam.name, vars)
			if viaJSON, jerr := RenderJSON(fam.name, c.Input); viaJSON != got || (jerr == nil) != (err == nil) {
				t.Errorf("%s/%s: RenderJSON disagrees with RenderVars", c.Name, fam.name)
			}
			switch {
			case fam.want == nil && err == nil:
				t.Errorf("%s/%s: rendered %q, want an error like %q", c.Name, fam.name, got, fam.err)
			case fam.want == nil:
				// A message the template raises itself must be ours too.
				msg := strings.TrimPrefix(fam.err, "TemplateError: ")
				if msg != fam.err && !strings.Contains(err.Error(), msg) {
					t.Errorf("%s/%s: error %q, want it to say %q", c.Name, fam.name, err, msg)
				}
				if msg != fam.err && !errors.Is(err, ErrTemplate) {
					t.Errorf("%s/%s: error %q does not wrap ErrTemplate", c.Name, fam.name, err)
				}
			case err != nil:
				t.Errorf("%s/%s: %v", c.Name, fam.name, err)
			case got != *fam.want:
				t.Errorf("%s/%s:\n got %q\nwant %q", c.Name, fam.name, got, *fam.want)
			}
		}
	}
}

// TestReferenceCases renders every case of shared/testdata/chat-templates/cases.jsonl
// (rendered by the official templates with Jinja2) and compares byte for byte.
func TestReferenceCases(t *testing.T) {
	dir := sharedDir(t)
	cases := readCases(t, filepath.Join(dir, "testdata", "chat-templates", "cases.jsonl"))
	checkCases(t, cases)
	t.Logf("%d reference cases", len(cases))
}

// TestExtraCases renders testdata/extra-cases.jsonl: edge cases and random
// conversations and schemas, rendered by the same templates in the same
// Jinja2 environment by testdata/gen_extra_cases.py.
func TestExtraCases(t *testing.T) {
	cases := readCases(t, filepath.Join("testdata", "extra-cases.jsonl"))
	checkCases(t, cases)
	t.Logf("%d extra cases", len(cases))
}

// FuzzRenderJSON feeds arbitrary JSON variables to both formats: they must
// return a prompt or an error, never panic.
func FuzzRenderJSON(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true}`))
	f.Add([]byte(`{"messages":[{"role":"system","content":[{"type":"text","text":"s"}]},{"role":"assistant","tool_calls":[{"id":1,"function":{"name":"f","arguments":{"a":[1.5e300,{"B":null}]}}}]},{"role":"tool","tool_call_id":1.0,"content":[{"type":"text","text":"r"}]}],"tools":[{"function":{"name":"f","parameters":{"properties":{"p":{"type":"array","items":{"type":["a"],"properties":{"x":{"type":"object"}}}}}}}}],"enable_thinking":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fam := range Families {
			out, err := RenderJSON(fam, data)
			if err != nil && out != "" {
				t.Fatalf("%s: output %q with error %v", fam, out, err)
			}
		}
	})
}
