package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"os"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/bench"
	"mica/internal/compute/cpu"
	"mica/internal/format/imagefile"
	"mica/internal/models/vision"
)

// visionBench is what `mica bench vision` measures.
type visionBench struct {
	MMProj            string    `json:"mmproj"`
	Projector         string    `json:"projector"`
	Image             string    `json:"image"` // the file, or "synthetic 896x896 gradient"
	CanvasWidth       int       `json:"canvas_width"`
	CanvasHeight      int       `json:"canvas_height"`
	Patches           int       `json:"patches"`
	Tokens            int       `json:"tokens"`
	EmbeddingWidth    int       `json:"n_embd"`
	Threads           int       `json:"threads"`
	Backend           string    `json:"backend"`
	Reps              int       `json:"reps"`
	LoadSeconds       float64   `json:"load_seconds"`
	PreprocessSeconds float64   `json:"preprocess_seconds"`
	EncodeSeconds     float64   `json:"encode_seconds"`        // mean over reps
	EncodeStddev      float64   `json:"encode_seconds_stddev"` // sample standard deviation
	EncodeSamples     []float64 `json:"encode_samples"`
	GFLOP             float64   `json:"gflop"` // per encode, see --help
	GFLOPs            float64   `json:"gflops"`
	PeakRSSBytes      int64     `json:"peak_rss_bytes"`
	RSSBytes          int64     `json:"rss_bytes"`
}

// newBenchVisionCmd is `mica bench vision`: one image's encode time on an
// mmproj's vision tower and projector.
func newBenchVisionCmd() *cobra.Command {
	var imagePath string
	var threads, reps int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "vision MMPROJ [--image FILE] [--threads 2] [--reps 3] [--json]",
		Short: "Encode time of one image on a vision tower and projector (mmproj)",
		Long: `Load MMPROJ (a Gemma 3 or Gemma 4 mmproj GGUF), preprocess one image as
llama.cpp's mtmd does (without --image: a synthetic 896×896 colour gradient)
and encode it --reps times after one warm-up encode, the figure llama.cpp's
mtmd prints as "image slice encoded in N ms".

Printed: the load time (header read, weights mapped and bound), the
preprocessing time (decode of --image included), encode seconds as the mean ±
the sample standard deviation, the image tokens out, GFLOP/s and the peak
resident memory (VmHWM).

GFLOP/s counts 2 FLOPs per multiply-add of the tower's matrix products and
attention, from the file's configuration, for N patches of side P, width E,
FFN width F, L blocks, T tokens out and projection width D:
  patch embedding  N·3·P²·E
  per block        N·4·E² (q, k, v, output) + N·2·E·F (Gemma 4: 3·E·F,
                   gated) + 2·N²·E (q·kᵀ and the weighted sum of v)
  projector        T·E·D
Norms, activations, softmax and pooling are not counted.`,
		Example: `  mica bench vision mmproj-gemma3-f16.gguf --threads 2
  mica bench vision mmproj.gguf --image photo.jpg --reps 5 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reps < 1 {
				return fmt.Errorf("--reps %d: want at least 1", reps)
			}
			out, err := benchVision(cmd, args[0], imagePath, threads, reps)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "mica bench vision: %s (%s), %s, %d threads\n", out.MMProj, out.Projector, out.Backend, out.Threads)
			fmt.Fprintf(w, "image       %s → canvas %dx%d, %d patches, %d tokens of width %d\n",
				out.Image, out.CanvasWidth, out.CanvasHeight, out.Patches, out.Tokens, out.EmbeddingWidth)
			fmt.Fprintf(w, "load        %.3f s\n", out.LoadSeconds)
			fmt.Fprintf(w, "preprocess  %.3f s\n", out.PreprocessSeconds)
			fmt.Fprintf(w, "encode      %.3f ± %.3f s (%d reps after a warm-up)\n", out.EncodeSeconds, out.EncodeStddev, out.Reps)
			fmt.Fprintf(w, "speed       %.1f GFLOP/s (%.1f GFLOP per encode)\n", out.GFLOPs, out.GFLOP)
			fmt.Fprintf(w, "memory      peak RSS %.1f MB (now %.1f MB)\n", float64(out.PeakRSSBytes)/1e6, float64(out.RSSBytes)/1e6)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&imagePath, "image", "", "image file (PNG, JPEG, GIF, WebP); default a synthetic 896×896 gradient")
	f.IntVarP(&threads, "threads", "t", 2, "threads (0: all cores)")
	f.IntVarP(&reps, "reps", "r", 3, "timed encodes after the warm-up")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// benchVision loads path, preprocesses the image and times the encodes.
func benchVision(cmd *cobra.Command, path, imagePath string, threads, reps int) (*visionBench, error) {
	st := newStatus(cmd.ErrOrStderr())
	defer st.Clear()
	be := cpu.New(threads)
	defer be.Close()
	st.Say("loading " + path)
	t0 := time.Now()
	p, err := vision.Open(path, be)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	load := time.Since(t0)

	st.Say("preprocessing")
	t1 := time.Now()
	var img image.Image
	name := "synthetic 896x896 gradient"
	if imagePath != "" {
		name = imagePath
		data, err := os.ReadFile(imagePath)
		if err != nil {
			return nil, err
		}
		if img, err = imagefile.Decode(data, imagefile.Options{}); err != nil {
			return nil, fmt.Errorf("%s: %w", imagePath, err)
		}
	} else {
		img = gradient(896, 896)
	}
	in, err := p.Preprocess(img, vision.PreprocessOptions{})
	if err != nil {
		return nil, err
	}
	prep := time.Since(t1)

	st.Say("warm-up encode")
	if _, err := p.Encode(in); err != nil {
		return nil, err
	}
	samples := make([]float64, reps)
	for i := range samples {
		st.Say(fmt.Sprintf("encode %d/%d", i+1, reps))
		t := time.Now()
		emb, err := p.Encode(in)
		if err != nil {
			return nil, err
		}
		samples[i] = time.Since(t).Seconds()
		if len(emb) != in.Tokens()*p.Config.ProjDim {
			return nil, fmt.Errorf("encode returned %d values, want %d×%d", len(emb), in.Tokens(), p.Config.ProjDim)
		}
	}
	mean, sd := bench.MeanStd(samples)
	rss, peak := bench.ProcMemory()
	flop := p.Config.EncodeFLOPs(in)
	out := &visionBench{MMProj: path, Projector: string(p.Config.Projector), Image: name,
		CanvasWidth: in.Width, CanvasHeight: in.Height, Patches: in.NX * in.NY, Tokens: in.Tokens(),
		EmbeddingWidth: p.Config.ProjDim, Threads: be.Threads(), Backend: be.Name(), Reps: reps,
		LoadSeconds: load.Seconds(), PreprocessSeconds: prep.Seconds(),
		EncodeSeconds: mean, EncodeStddev: sd, EncodeSamples: samples,
		GFLOP: flop / 1e9, PeakRSSBytes: peak, RSSBytes: rss}
	if mean > 0 {
		out.GFLOPs = flop / 1e9 / mean
	}
	return out, nil
}

// gradient is the default test picture: red across, green down, blue along
// the diagonal, so every patch differs.
func gradient(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetRGBA(x, y, color.RGBA{R: uint8(255 * x / max(w-1, 1)), G: uint8(255 * y / max(h-1, 1)),
				B: uint8(255 * (x + y) / max(w+h-2, 1)), A: 255})
		}
	}
	return m
}
