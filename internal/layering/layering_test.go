package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "mica"

// levels is ARCHITECTURE.md's table: a package may import packages of a lower
// level, or of the same level inside its own group (the first two path
// elements, e.g. internal/kernels). The longest matching prefix wins.
var levels = map[string]int{
	"api":                  0,
	"internal/tensor":      0,
	"internal/testenv":     0,
	"internal/atomicfile":  0,
	"internal/kernels":     1,
	"internal/compute":     2,
	"internal/nn":          3,
	"internal/format":      3,
	"internal/tokenizer":   3,
	"internal/models":      4,
	"internal/diffusion":   4,
	"internal/synth":       5,
	"internal/llm/kvcache": 5,
	"internal/llm/sample":  5,
	"internal/llm/grammar": 5,
	"internal/llm/engine":  6,
	"internal/imagegen":    6,
	"internal/modelstore":  6,
	"internal/bench":       6,
	"internal/residency":   7,
	"internal/jobs":        7,
	"internal/convstore":   7,
	"internal/server":      8,
	"internal/web":         8,
	"cmd":                  9,
	"internal/layering":    9,
}

// httpAllowed are the levels that may depend on net/http (the edge).
const httpFromLevel = 8

func level(rel string) (int, string, bool) {
	best := ""
	for p := range levels {
		if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return 0, "", false
	}
	return levels[best], best, true
}

func group(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) >= 2 && parts[0] == "internal" {
		return parts[0] + "/" + parts[1]
	}
	return parts[0]
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, errb.String())
	}
	var lines []string
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestImportsPointDown(t *testing.T) {
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module+"/")
		lv, _, ok := level(pkg)
		if !ok {
			t.Errorf("package %s has no level: place it in ARCHITECTURE.md's table and in this test", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			dl, _, ok := level(dep)
			if !ok {
				continue // reported on its own line
			}
			if dl > lv || (dl == lv && group(dep) != group(pkg)) {
				t.Errorf("%s (level %d) imports %s (level %d): imports must point down", pkg, lv, dep, dl)
			}
		}
	}
}

func TestEngineHasNoHTTP(t *testing.T) {
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...") {
		fields := strings.Fields(line)
		rel := strings.TrimPrefix(fields[0], module+"/")
		if lv, _, ok := level(rel); !ok || lv >= httpFromLevel {
			continue
		}
		for _, dep := range fields[1:] {
			if dep == "net/http" {
				t.Errorf("engine package %s depends on net/http", rel)
			}
		}
	}
}
