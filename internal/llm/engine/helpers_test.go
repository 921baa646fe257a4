package engine

import (
	"mica/internal/testenv"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unicode/utf8"

	"mica/internal/compute/cpu"
	"mica/internal/synth"
	"mica/internal/tensor"
)

func sharedDir(t testing.TB) string { return testenv.Shared(t) }

// openEngine opens a model file on a fresh CPU backend.
func openEngine(t testing.TB, path string, threads int, o Options) *Engine {
	t.Helper()
	be := cpu.New(threads)
	e, err := Open(path, be, o)
	if err != nil {
		be.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		be.Close()
	})
	return e
}

func refModel(t testing.TB, name string) string {
	return filepath.Join(sharedDir(t), "reference/gemma", name)
}

var (
	synthOnce  sync.Once
	synthDir   string
	synthErr   error
	synthFiles = map[string]string{}
)

// synthModel returns a tiny synthetic model with the real 262k vocabulary
// (gemma3-test or gemma4-test), written once per test run.
func synthModel(t testing.TB, preset string) string {
	t.Helper()
	sh := sharedDir(t)
	synthOnce.Do(func() {
		synthDir, synthErr = os.MkdirTemp("", "mica-engine-test")
		if synthErr != nil {
			return
		}
		var v *synth.Vocab
		v, synthErr = synth.LoadVocab(filepath.Join(sh, "testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf"))
		if synthErr != nil {
			return
		}
		for _, p := range []string{"gemma3-test", "gemma4-test"} {
			path := filepath.Join(synthDir, p+".gguf")
			if _, synthErr = synth.Write(path, synth.Options{Preset: p, Type: tensor.F16, Seed: 7, Vocab: v, Threads: 2}); synthErr != nil {
				return
			}
			synthFiles[p] = path
		}
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthFiles[preset]
}

func TestMain(m *testing.M) {
	code := m.Run()
	if synthDir != "" {
		os.RemoveAll(synthDir)
	}
	os.Exit(code)
}

// collector records events and checks each is whole UTF-8.
type collector struct {
	t        testing.TB
	events   []Event
	content  string
	thinking string
}

func (c *collector) add(ev Event) {
	if !utf8.ValidString(ev.Text) {
		c.t.Errorf("event text %q is not valid UTF-8", ev.Text)
	}
	c.events = append(c.events, ev)
	switch ev.Kind {
	case ContentEvent:
		c.content += ev.Text
	case ThinkingEvent:
		c.thinking += ev.Text
	}
}

// argmax returns the highest logit's index (ties: lowest), and the gap to
// the runner-up.
func argmax(row []float32) (int32, float32) {
	best, second := 0, -1
	for i, v := range row {
		if v > row[best] {
			second, best = best, i
		} else if i != best && (second < 0 || v > row[second]) {
			second = i
		}
	}
	if second < 0 {
		return int32(best), 0
	}
	return int32(best), row[best] - row[second]
}
