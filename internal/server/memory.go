package server

// The memory budget: how much the loaded models (LLMs and image models
// alike) may use together, and what one model needs. The residency
// (runner.go) loads and unloads models within it.
//
// A model's need is estimated from its file before it is loaded, so that a
// load that cannot fit never starts:
//
//   - LLM: the weights (the file, memory-mapped: every page is read by each
//     forward pass, so all of it becomes resident), the KV cache of every
//     sequence the engine may hold at once (Batch sequences of the configured
//     context; sliding-window layers keep only window+step positions), the
//     activations of one prefill chunk, the logits, and the tokenizer's
//     tables; plus the vision projector file when there is one.
//   - Image model: the checkpoint (mapped, plus F16 copies the dtype policy
//     makes) and the pipeline's buffers, taken as half the checkpoint's size
//     between 64 MiB and 1.5 GiB (measured: SD 1.5 F16, 2.1 GB, peaks at
//     3.1 GiB RSS at 512²; SDXL F16, 6.9 GB, at 7.5 GiB).
//
// Once a model is loaded its backend reports what it really holds (mapped
// weights plus the peak of its allocations); the larger of the two numbers
// is what the budget counts.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"mica/internal/llm/engine"
	"mica/internal/models/gemma"
)

// Reserve is what the default budget leaves to the rest of the machine.
const Reserve = 2 << 30

// NoBudget (Config.MemoryBudget) lets models load without a limit.
const NoBudget = -1

// MachineMemory returns the memory this process may use: the machine's
// (MemTotal of /proc/meminfo) or its cgroup's limit when smaller; 0 when
// unknown.
func MachineMemory() int64 {
	total := meminfo("MemTotal")
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}

// DefaultMemoryBudget is the budget when none is configured: the machine's
// memory less Reserve (half of it on machines under 4 GiB); NoBudget when
// the machine's memory cannot be read.
func DefaultMemoryBudget() int64 {
	total := MachineMemory()
	switch {
	case total <= 0:
		return NoBudget
	case total < 2*Reserve:
		return total / 2
	}
	return total - Reserve
}

// ParseMemorySize reads a memory size: a number of bytes with an optional
// unit (K, M, G, T, with or without "B" or "iB": all powers of 1024), a
// percentage of the machine's memory ("75%"), or "none" / "unlimited" /
// "off" for NoBudget. "" and "auto" mean the default (0).
func ParseMemorySize(s string) (int64, error) {
	v := strings.TrimSpace(strings.ToLower(s))
	switch v {
	case "", "auto", "default":
		return 0, nil
	case "none", "unlimited", "off", "-1":
		return NoBudget, nil
	}
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f > 0 && f <= 100) { // NaN fails too
			return 0, fmt.Errorf("memory size %q: a percentage must be in (0, 100]", s)
		}
		total := MachineMemory()
		if total <= 0 {
			return 0, fmt.Errorf("memory size %q: the machine's memory is unknown here; give bytes (e.g. 16GiB)", s)
		}
		return int64(float64(total) * f / 100), nil
	}
	num := strings.TrimRight(v, "kmgtib ")
	unit := strings.TrimSpace(v[len(num):])
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}[unit]
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if n := f * float64(mult); err != nil || mult == 0 || !(n >= 1 && n <= 1<<62) { // NaN fails too
		return 0, fmt.Errorf("memory size %q: want bytes with an optional unit (e.g. 16GiB, 12G, 8000M), a percentage of RAM (75%%), or none", s)
	}
	return int64(f * float64(mult)), nil
}

// meminfo reads one /proc/meminfo field in bytes (0 when unknown).
func meminfo(key string) int64 { return procField("/proc/meminfo", key) }

// processRSS is this process's resident memory (VmRSS), 0 when unknown.
func processRSS() int64 { return procField("/proc/self/status", "VmRSS") }

func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return n << 10
	}
	return 0
}

// gib formats bytes for messages ("1.25 GiB", "300 MiB").
func gib(n int64) string {
	if n >= 1<<30 {
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 0, 64) + " MiB"
}

// llmNeed estimates the memory of an LLM loaded with context ctx (0: the
// engine's default for the model) and batch sequences.
func llmNeed(m ModelInfo, ctx, batch int) int64 {
	need := m.Size
	if m.Projector != "" {
		if st, err := os.Stat(m.Projector); err == nil {
			need += st.Size() + 64<<20 // the vision tower's activations and embedding cache
		}
	}
	c := m.geometry
	if c == nil {
		// Not a model the engine knows the shape of: the weights and a
		// tenth more.
		return need + need/10
	}
	if ctx <= 0 {
		ctx = engine.DefaultContext
		if c.ContextLength > 0 {
			ctx = min(c.ContextLength, engine.DefaultContext)
		}
	}
	batch = max(batch, 1)
	step := min(gemma.DefaultStep, ctx)
	var kv, widest, heads int64
	for il, l := range c.Layers {
		heads = max(heads, int64(l.NHead*l.HeadDim))
		widest = max(widest, int64(l.FF))
		if !c.OwnsKV(il) {
			continue
		}
		rows := int64(ctx)
		if l.Sliding && c.Window > 0 {
			rows = min(rows, int64(c.Window+step-1))
		}
		kv += 2 * rows * int64(l.NHeadKV*l.HeadDim) * 2 // K and V, F16
	}
	widest = max(widest, int64(c.FFExpert*max(c.NExpertUsed, 1)))
	// Activations of one prefill chunk in F32: the residual stream and its
	// normed copies, Q/K/V/attention output, the FFN's gate, up and
	// product, per-layer embeddings.
	perToken := 8*int64(c.NEmbd) + 4*heads + 3*widest + int64(c.NLayer*c.EmbdPerLayer)
	act := int64(step) * perToken * 4
	logits := int64(batch) * int64(c.NVocab) * 4 * 2 // logits and the sampler's copy
	tables := int64(c.NVocab)*64 + 32<<20            // tokenizer, grammar vocabulary, Go runtime
	return need + int64(batch)*kv + act + logits + tables
}

// imageNeed estimates the memory of an image checkpoint of size bytes.
func imageNeed(size int64) int64 {
	return size + min(max(size/2, 64<<20), 1536<<20)
}

// pathSize is a file's size, or the sum of a folder's files (diffusers).
func pathSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if !st.IsDir() {
		return st.Size()
	}
	var n int64
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
