package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/models/gemma"
	"mica/internal/tensor"
)

// LLMOptions select what `mica bench llm` measures.
type LLMOptions struct {
	Path    string
	Prompt  int // prefill tokens per repetition (pp); 0 skips prefill
	Gen     int // decode steps per repetition (tg); 0 skips decode
	Threads int // 0: all cores
	Reps    int // repetitions of each test (0: 3)
	// Seed draws the random token ids.
	Seed     uint64
	Progress func(what string)
}

// Rate is one test's speed over repetitions.
type Rate struct {
	Name    string    `json:"name"` // "pp512", "tg128"
	Tokens  int       `json:"tokens"`
	Mean    float64   `json:"tokens_per_sec"`
	Stddev  float64   `json:"stddev"` // sample standard deviation (n-1)
	Samples []float64 `json:"samples"`
}

// LLMReport is the result; the JSON names are stable.
type LLMReport struct {
	Model     string `json:"model"`
	Name      string `json:"name"`
	Arch      string `json:"arch"`
	Type      string `json:"type"` // the type holding most weight bytes
	FileBytes int64  `json:"file_bytes"`
	Params    int64  `json:"params"`
	Backend   string `json:"backend"`
	Threads   int    `json:"threads"`
	CPU       string `json:"cpu"`
	// OpenSeconds: parsing the header and binding the weights (mapped,
	// not read). LoadSeconds adds the first forward pass on one token,
	// which touches every weight it uses: the time to the first token of a
	// cold start.
	OpenSeconds float64 `json:"open_seconds"`
	LoadSeconds float64 `json:"load_seconds"`
	PP          *Rate   `json:"pp,omitempty"`
	TG          *Rate   `json:"tg,omitempty"`
	// Resident memory after the run, and its peak (VmRSS, VmHWM of
	// /proc/self/status; 0 elsewhere).
	RSSBytes      int64  `json:"rss_bytes"`
	OpenRSSBytes  int64  `json:"open_rss_bytes"` // resident right after opening: weights are mapped, not read
	PeakRSSBytes  int64  `json:"peak_rss_bytes"`
	GoVersion     string `json:"go"`
	MeasuredAtUTC string `json:"measured_at"`
}

// LLM measures a Gemma GGUF model like llama-bench: prefill of Prompt random
// tokens into an empty cache (ppN) and Gen single-token decode steps from an
// empty cache (tgN), each after one warm-up run and repeated Reps times, on
// the raw forward pass (no sampling).
func LLM(ctx context.Context, o LLMOptions) (*LLMReport, error) {
	if o.Prompt < 0 || o.Gen < 0 || o.Reps < 0 || o.Threads < 0 {
		return nil, fmt.Errorf("bench llm: prompt %d, gen %d, reps %d, threads %d must not be negative", o.Prompt, o.Gen, o.Reps, o.Threads)
	}
	if o.Prompt == 0 && o.Gen == 0 {
		return nil, errors.New("bench llm: nothing to measure (prompt and gen are both 0)")
	}
	if o.Reps == 0 {
		o.Reps = 3
	}
	say := func(s string) {
		if o.Progress != nil {
			o.Progress(s)
		}
	}
	r := &LLMReport{Model: o.Path, CPU: cpuModel(), GoVersion: runtime.Version()}
	if st, err := os.Stat(o.Path); err == nil {
		r.FileBytes = st.Size()
	}

	say("opening " + o.Path)
	be := cpu.New(o.Threads)
	defer be.Close()
	r.Backend, r.Threads = be.Name(), be.Threads()
	t0 := time.Now()
	f, err := gguf.Open(o.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := gemma.Load(f, be)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	r.OpenSeconds = time.Since(t0).Seconds()
	r.OpenRSSBytes, _ = ProcMemory()
	c := m.Config
	r.Name, r.Arch = c.Name, c.Arch
	r.Type, r.Params = weightType(f)

	seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: max(o.Prompt, o.Gen, 1), KV: tensor.F16})
	if err != nil {
		return nil, err
	}
	defer seq.Free()
	rng := rand.New(rand.NewPCG(o.Seed, 0x62656e63686c6c6d))
	randomTokens := func(n int) []int32 {
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(rng.IntN(c.NVocab))
		}
		return ids
	}

	say("first token")
	if _, err := m.ForwardLast([]*gemma.Sequence{seq}, [][]int32{randomTokens(1)}); err != nil {
		return nil, err
	}
	r.LoadSeconds = time.Since(t0).Seconds()

	// prefill feeds n tokens into an empty cache in one call (the model
	// splits it into steps of gemma.DefaultStep, as llama.cpp's ubatch).
	prefill := func(n int) (float64, error) {
		if err := seq.Truncate(0); err != nil {
			return 0, err
		}
		ids := randomTokens(n)
		t := time.Now()
		_, err := m.ForwardLast([]*gemma.Sequence{seq}, [][]int32{ids})
		return time.Since(t).Seconds(), err
	}
	decode := func(n int) (float64, error) {
		if err := seq.Truncate(0); err != nil {
			return 0, err
		}
		ids := randomTokens(n)
		// one logits buffer for every step, as the server's decode loop
		// keeps (a fresh megabyte a token would be garbage to collect)
		seqs, in := []*gemma.Sequence{seq}, []gemma.Input{{}}
		var buf []float32
		t := time.Now()
		for i := range ids {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			in[0].Tokens = ids[i : i+1]
			var err error
			if _, buf, err = m.ForwardLastInto(seqs, in, buf); err != nil {
				return 0, err
			}
		}
		return time.Since(t).Seconds(), nil
	}
	measure := func(name string, n int, run func(int) (float64, error)) (*Rate, error) {
		say(name + " warm-up")
		if _, err := run(n); err != nil {
			return nil, err
		}
		rate := &Rate{Name: name, Tokens: n}
		for i := range o.Reps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			say(fmt.Sprintf("%s %d/%d", name, i+1, o.Reps))
			secs, err := run(n)
			if err != nil {
				return nil, err
			}
			rate.Samples = append(rate.Samples, float64(n)/secs)
		}
		rate.Mean, rate.Stddev = MeanStd(rate.Samples)
		return rate, nil
	}
	if o.Prompt > 0 {
		if r.PP, err = measure(fmt.Sprintf("pp%d", o.Prompt), o.Prompt, prefill); err != nil {
			return nil, err
		}
	}
	if o.Gen > 0 {
		if r.TG, err = measure(fmt.Sprintf("tg%d", o.Gen), o.Gen, decode); err != nil {
			return nil, err
		}
	}
	r.RSSBytes, r.PeakRSSBytes = ProcMemory()
	r.MeasuredAtUTC = time.Now().UTC().Format(time.RFC3339)
	return r, nil
}

// MeanStd returns the mean and the sample standard deviation (0 for one
// sample), as llama-bench reports them.
func MeanStd(x []float64) (float64, float64) {
	if len(x) == 0 {
		return 0, 0
	}
	var s float64
	for _, v := range x {
		s += v
	}
	mean := s / float64(len(x))
	if len(x) < 2 {
		return mean, 0
	}
	var q float64
	for _, v := range x {
		q += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(q / float64(len(x)-1))
}

// weightType names the tensor type holding the most bytes, and counts the
// parameters.
func weightType(f *gguf.File) (string, int64) {
	bytes := map[tensor.DType]int64{}
	var params int64
	for _, t := range f.Tensors {
		bytes[t.Type] += t.Size
		params += t.Elements()
	}
	best, n := tensor.DType(0), int64(-1)
	for dt, b := range bytes {
		if b > n || b == n && dt < best {
			best, n = dt, b
		}
	}
	return best.String(), params
}

// ProcMemory reads VmRSS and VmHWM (bytes) from /proc/self/status.
func ProcMemory() (rss, hwm int64) {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	return rss, hwm
}
