package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"mica/internal/compute"
	"mica/internal/compute/cpu"
	"mica/internal/format/gguf"
	"mica/internal/format/imagefile"
	"mica/internal/models/gemma"
	"mica/internal/models/vision"
	"mica/internal/tensor"
	"mica/internal/tokenizer"
)

// imageFlags are the image options shared by image-embed and logits.
type imageFlags struct {
	minTokens, maxTokens int
	ignoreOrientation    bool
}

func (f *imageFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.minTokens, "image-min-tokens", 0, "Gemma 4: fewest image tokens (0: the projector's default, 40)")
	cmd.Flags().IntVar(&f.maxTokens, "image-max-tokens", 0, "Gemma 4: most image tokens (0: the projector's default, 280)")
	cmd.Flags().BoolVar(&f.ignoreOrientation, "ignore-exif-orientation", false, "keep JPEG pixels as stored (llama.cpp does not apply EXIF orientation)")
}

// encodeImageFile decodes, preprocesses and encodes one image file.
func (f *imageFlags) encodeImageFile(p *vision.Projector, path string) (*vision.Input, []float32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	img, err := imagefile.Decode(data, imagefile.Options{IgnoreOrientation: f.ignoreOrientation})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	in, err := p.Preprocess(img, vision.PreprocessOptions{MinTokens: f.minTokens, MaxTokens: f.maxTokens})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	emb, err := p.Encode(in)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, emb, nil
}

// openProjector loads an mmproj file on be.
func openProjector(path string, be compute.Backend) (*vision.Projector, error) {
	return vision.Open(path, be)
}

// newDevImageEmbedCmd is `mica dev image-embed`: an image's embeddings.
func newDevImageEmbedCmd() *cobra.Command {
	var threads int
	var imf imageFlags
	cmd := &cobra.Command{
		Use:   "image-embed MMPROJ IMAGE",
		Short: "Print the embeddings a vision projector computes for an image",
		Long: `Decode IMAGE (PNG, JPEG, GIF's first frame or WebP), preprocess it exactly as
llama.cpp's mtmd does for the projector in MMPROJ (a Gemma 3 or Gemma 4 mmproj
GGUF), run the vision tower and projector, and print JSON
{"n_tokens": N, "n_embd": D, "embeddings": [[...], ...]}: N rows of D values,
token order row-major over the image's token grid (what mtmd_encode_chunk
returns, for parity checks).`,
		Example: `  mica dev image-embed mmproj-gemma3.gguf photo.jpg | jq '.n_tokens'`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			be := cpu.New(threads)
			defer be.Close()
			p, err := openProjector(args[0], be)
			if err != nil {
				return err
			}
			defer p.Close()
			in, emb, err := imf.encodeImageFile(p, args[1])
			if err != nil {
				return err
			}
			return writeEmbeddingsJSON(cmd.OutOrStdout(), emb, in.Tokens(), p.Config.ProjDim)
		},
	}
	cmd.Flags().IntVarP(&threads, "threads", "t", 0, "threads (0: all cores)")
	imf.register(cmd)
	return cmd
}

func writeEmbeddingsJSON(w interface{ Write([]byte) (int, error) }, emb []float32, n, d int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, `{"n_tokens":%d,"n_embd":%d,"embeddings":[`, n, d)
	buf := make([]byte, 0, 32)
	for i := 0; i < n; i++ {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('[')
		for j, v := range emb[i*d : (i+1)*d] {
			if j > 0 {
				bw.WriteByte(',')
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("embedding %d of token %d is %v", j, i, v)
			}
			buf = strconv.AppendFloat(buf[:0], float64(v), 'g', -1, 32)
			bw.Write(buf)
		}
		bw.WriteByte(']')
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// mediaFlags are `mica dev logits`' image options.
type mediaFlags struct {
	mmproj string
	images []string
	prompt string
	imageFlags
}

func (f *mediaFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.mmproj, "mmproj", "", "vision projector (mmproj GGUF) paired with MODEL")
	cmd.Flags().StringArrayVar(&f.images, "image", nil, "image file for a <__media__> marker of --prompt (repeat in order)")
	cmd.Flags().StringVar(&f.prompt, "prompt", "", "prompt text; <__media__> marks each image's place")
	f.imageFlags.register(cmd)
}

// logits prints the logits after a prompt with images.
func (f *mediaFlags) logits(cmd *cobra.Command, modelPath string, threads int, kv tensor.DType) error {
	if f.mmproj == "" || f.prompt == "" {
		return fmt.Errorf("with images, give --mmproj FILE, --image IMAGE and --prompt TEXT")
	}
	be := cpu.New(threads)
	defer be.Close()
	gf, err := gguf.Open(modelPath)
	if err != nil {
		return err
	}
	defer gf.Close()
	m, err := gemma.Load(gf, be)
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := tokenizer.FromGGUF(gf)
	if err != nil {
		return err
	}
	p, err := openProjector(f.mmproj, be)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.CheckPair(string(m.Config.Arch), m.Config.NEmbd); err != nil {
		return err
	}
	chunks, nimg, err := p.Config.PromptChunks(tok, f.prompt, true)
	if err != nil {
		return err
	}
	if nimg != len(f.images) {
		return fmt.Errorf("--prompt marks %d image(s) with %s but %d --image given", nimg, vision.MediaMarker, len(f.images))
	}
	var runs []gemma.Input
	n := 0
	for _, c := range chunks {
		if c.Image < 0 {
			runs = append(runs, gemma.Input{Tokens: c.Tokens})
			n += len(c.Tokens)
			continue
		}
		in, emb, err := f.encodeImageFile(p, f.images[c.Image])
		if err != nil {
			return err
		}
		runs = append(runs, gemma.Input{Embd: emb, NonCausal: true})
		n += in.Tokens()
	}
	seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: n, KV: kv})
	if err != nil {
		return err
	}
	defer seq.Free()
	logits, err := m.Prefill(seq, runs)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
	bw.WriteString(`{"logits":[`)
	buf := make([]byte, 0, 32)
	for j, v := range logits {
		if j > 0 {
			bw.WriteByte(',')
		}
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("logit %d is %v", j, v)
		}
		buf = strconv.AppendFloat(buf[:0], float64(v), 'g', -1, 32)
		bw.Write(buf)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
