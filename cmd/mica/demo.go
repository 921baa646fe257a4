package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/spf13/cobra"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

var demoTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q6_K, tensor.Q5_K, tensor.Q5_1,
	tensor.Q5_0, tensor.Q4_K, tensor.Q4_1, tensor.Q4_0, tensor.IQ4_XS, tensor.IQ4_NL, tensor.Q3_K, tensor.Q2_K}

func newDemoCmd() *cobra.Command {
	var out string
	var size, threads int
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Write a synthetic model in every weight type and run the engine on it",
		Long: `A tour of mica's engine on this machine, with nothing to download:

 1. makes a random weight matrix and quantizes it with mica's quantizers to
    every weight type (byte-identical to llama.cpp's), writing one GGUF file;
 2. opens the file the way models are opened: header first, weights
    memory-mapped, nothing copied;
 3. runs a matrix-vector product (one decode step of a linear layer) in each
    type on the CPU backend and compares it with the exact float64 product
    of the unquantized weights, printing the error and the speed.`,
		Example: `  mica demo
  mica demo --size 4096 --keep -o /tmp/demo.gguf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if size < 256 || size%256 != 0 || size > 16384 {
				return fmt.Errorf("--size %d: use a multiple of 256 between 256 and 16384", size)
			}
			if out == "" {
				dir, err := os.MkdirTemp("", "mica-demo-")
				if err != nil {
					return err
				}
				if !keep {
					defer os.RemoveAll(dir)
				}
				out = filepath.Join(dir, "demo.gguf")
			}
			return runDemo(cmd, out, size, threads)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write the GGUF file (default: a temporary file)")
	cmd.Flags().IntVar(&size, "size", 1024, "rows and columns of the weight matrix")
	cmd.Flags().IntVarP(&threads, "threads", "t", 0, "threads (0: all cores)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary file")
	return cmd
}

func runDemo(cmd *cobra.Command, path string, size, threads int) error {
	w := cmd.OutOrStdout()
	rng := rand.New(rand.NewPCG(2026, 11))
	weights := make([]float32, size*size)
	for i := range weights {
		weights[i] = float32(rng.NormFloat64() * 0.02)
	}
	b := cpu.New(threads)
	defer b.Close()
	pool := b.Pool()
	// 1. quantize and write
	start := time.Now()
	var infos []gguf.TensorInfo
	for _, t := range demoTypes {
		infos = append(infos, gguf.TensorInfo{Name: "demo." + t.String() + ".weight", Type: t, Shape: []int64{int64(size), int64(size)}})
	}
	meta := []gguf.KV{gguf.String("general.architecture", "mica-demo"), gguf.String("general.name", "mica demo: one matrix in every weight type")}
	fw, err := gguf.Create(path, 3, 32, meta, infos)
	if err != nil {
		return err
	}
	bar := newProgress(cmd.ErrOrStderr(), "quantizing", int64(len(demoTypes)))
	for i, t := range demoTypes {
		data, err := quantizeRows(pool, t, weights, size)
		if err != nil {
			fw.Abort()
			return err
		}
		if err := fw.WriteTensor(infos[i].Name, data); err != nil {
			fw.Abort()
			return err
		}
		bar.Set(int64(i + 1))
	}
	bar.Done()
	if err := fw.Close(); err != nil {
		return err
	}
	st, _ := os.Stat(path)
	fmt.Fprintf(w, "wrote %s: %d tensors of %d×%d, %.1f MB, in %.2fs\n", path, len(infos), size, size, float64(st.Size())/1e6, time.Since(start).Seconds())

	// 2. open header-first, memory-mapped
	start = time.Now()
	f, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(w, "opened in %.1f ms (header only; weights are memory-mapped); backend %s, %d threads\n\n",
		float64(time.Since(start).Microseconds())/1000, b.Name(), b.Threads())

	// 3. one matrix-vector product per type vs the exact product
	x := make([]float32, size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	exact := make([]float64, size)
	var norm float64
	for r := 0; r < size; r++ {
		var s float64
		for c, v := range weights[r*size : (r+1)*size] {
			s += float64(v) * float64(x[c])
		}
		exact[r] = s
		norm += s * s
	}
	norm = math.Sqrt(norm / float64(size))
	xt, err := b.Alloc(tensor.F32, 1, size)
	if err != nil {
		return err
	}
	if err := b.Write(xt, unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*size)); err != nil {
		return err
	}
	yt, err := b.Alloc(tensor.F32, 1, size)
	if err != nil {
		return err
	}
	y := make([]float32, size)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "type\tbits/weight\tMB\trel. RMS error\tmatvec µs\tGB/s\t")
	for _, info := range f.Tensors {
		data, err := f.TensorData(info.Name)
		if err != nil {
			return err
		}
		wt, err := b.Wrap(info.Type, data, size, size)
		if err != nil {
			return err
		}
		if err := compute.MatMul(wt, xt, yt); err != nil { // warm-up, pages in
			return err
		}
		runs, t0 := 0, time.Now()
		for runs < 3 || time.Since(t0) < 100*time.Millisecond {
			if err := compute.MatMul(wt, xt, yt); err != nil {
				return err
			}
			runs++
		}
		sec := time.Since(t0).Seconds() / float64(runs)
		if err := b.Read(yt, unsafe.Slice((*byte)(unsafe.Pointer(&y[0])), 4*size)); err != nil {
			return err
		}
		var e2 float64
		for r, v := range y {
			d := float64(v) - exact[r]
			e2 += d * d
		}
		rel := math.Sqrt(e2/float64(size)) / norm
		fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.2e\t%.0f\t%.1f\t\n", info.Type, float64(8*len(data))/float64(size*size),
			float64(len(data))/1e6, rel, sec*1e6, float64(len(data))/sec/1e9)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nError is against the exact product of the unquantized weights; quantized types")
	fmt.Fprintln(w, "also quantize the activations to 8 bits, as llama.cpp does.")
	return nil
}

// quantizeRows quantizes a rows×cols matrix (cols = rows here) to t, rows
// split over the pool's threads.
func quantizeRows(pool *cpu.Pool, t tensor.DType, vals []float32, cols int) ([]byte, error) {
	rows := len(vals) / cols
	rb, ok := t.RowBytes(int64(cols))
	if !ok {
		return nil, fmt.Errorf("%d columns are not whole %s blocks", cols, t)
	}
	data := make([]byte, int(rb)*rows)
	errs := make([]error, rows)
	pool.Parallel(rows, 1, func(s, e int) {
		for r := s; r < e; r++ {
			errs[r] = quant.Quantize(t, vals[r*cols:(r+1)*cols], data[r*int(rb):(r+1)*int(rb)])
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}
