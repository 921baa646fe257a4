package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/atomicfile"
	"mica/internal/compute/cpu"
	"mica/internal/format/jpegexif"
	"mica/internal/format/pngtext"
	"mica/internal/imagegen"
	"mica/internal/server"
	"mica/internal/server/hub"
	"mica/internal/tensor"
)

// genFlags are the generation options shared by `mica gen` and `mica bench sd`.
type genFlags struct {
	model, tokenizer, quantize string
	threads                    int
	req                        imagegen.Request
	initPath, maskPath         string
	hiresScale                 float32
	hiresSteps                 int
	hiresDenoise               float32
	hiresUpscaler              string
	outpaint                   []int
	strengthSet                bool
	refiner                    string // --refiner (mica gen only)
	server, apiKey             string
}

func (g *genFlags) addModelFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&g.model, "model", "m", os.Getenv("MICA_SD_MODEL"), "checkpoint: a single-file .safetensors or a diffusers folder (env MICA_SD_MODEL)")
	f.StringVar(&g.tokenizer, "clip-tokenizer", os.Getenv("MICA_CLIP_TOKENIZER"), "CLIP tokenizer for single-file checkpoints: OpenAI's bpe_simple_vocab_16e6.txt(.gz) or a folder with vocab.json + merges.txt (env MICA_CLIP_TOKENIZER; default: fetched once from Hugging Face into ~/.local/share/mica/tokenizers/clip unless MICA_OFFLINE is set)")
	f.StringVar(&g.quantize, "quantize", "", "quantize the UNet at load: q8_0 or q4_0 (default: keep the file's types)")
	f.IntVarP(&g.threads, "threads", "t", 0, "threads (0: all cores)")
}

func (g *genFlags) addGenFlags(cmd *cobra.Command) {
	f, r := cmd.Flags(), &g.req
	f.StringVarP(&r.Negative, "negative", "n", "", "negative prompt")
	f.IntVarP(&r.Width, "width", "W", 0, "width in pixels, rounded down to a multiple of 8 (default: the model's native size)")
	f.IntVarP(&r.Height, "height", "H", 0, "height in pixels (default: the model's native size)")
	f.IntVar(&r.Steps, "steps", 20, "sampling steps")
	f.Float32Var(&r.CFG, "cfg", 7, "classifier-free guidance scale (1 disables the negative pass)")
	f.StringVar(&r.Sampler, "sampler", "Euler a", `sampler, A1111 style ("DPM++ 2M Karras", "Euler a") or short ("dpm++2m", "euler_a")`)
	f.StringVar(&r.Scheduler, "scheduler", "", "sigma schedule: discrete, karras, exponential, sgm_uniform, simple (default: the sampler's)")
	f.Int64Var(&r.Seed, "seed", -1, "seed (-1: random); image i of a batch uses seed+i")
	f.Int64Var(&r.Subseed, "subseed", -1, "variation seed")
	f.Float32Var(&r.SubseedStrength, "subseed-strength", 0, "variation strength (0: off)")
	f.StringVar(&r.RNG, "rng", "philox", "noise source: philox (A1111's default GPU seeds, same as torch CUDA) or cpu (torch's CPU generator)")
	f.IntVar(&r.ClipSkip, "clip-skip", 0, "stop CLIP this many layers from the end (0: model default: 1 for SD 1.x, 2 for SDXL)")
	f.IntVar(&r.BatchSize, "batch", 1, "images per batch")
	f.IntVar(&r.BatchCount, "batch-count", 1, "number of batches")
	f.StringVar(&g.initPath, "init-image", "", "img2img: the starting picture (PNG or JPEG)")
	f.Float32Var(&r.Strength, "strength", 0.75, "img2img denoising strength (0..1]")
	f.StringVar(&r.StepRule, "img2img-steps", "a1111", "img2img step rule: a1111 or sdcpp")
	f.StringVar(&g.maskPath, "mask", "", "inpainting mask (white: repaint), the init image's size")
	f.IntVar(&r.MaskBlur, "mask-blur", 4, "mask blur in pixels")
	f.StringVar(&r.InpaintFill, "inpaint-fill", "original", "what the masked area starts from: original, fill, noise, nothing")
	f.BoolVar(&r.InpaintFullRes, "only-masked", false, "inpaint only the masked region, at full resolution")
	f.IntVar(&r.Padding, "padding", 32, "pixels around the masked region with --only-masked")
	f.IntSliceVar(&g.outpaint, "outpaint", nil, "outpainting: pixels to add LEFT,RIGHT,TOP,BOTTOM (or one number for all sides) around --init-image")
	f.Float32Var(&g.hiresScale, "hires", 0, "hires fix: upscale factor of a second pass (e.g. 2; 0: off)")
	f.IntVar(&g.hiresSteps, "hires-steps", 0, "hires fix steps (0: same as --steps)")
	f.Float32Var(&g.hiresDenoise, "hires-denoise", 0.7, "hires fix denoising strength")
	f.StringVar(&g.hiresUpscaler, "hires-upscaler", "latent", "hires fix upscaler: latent, latent-nearest, image")
}

// request finishes the request from the flags (images read from files).
func (g *genFlags) request(prompt string) (imagegen.Request, error) {
	r := g.req
	r.Prompt = prompt
	g.strengthSet = g.req.Strength != 0.75
	if g.initPath == "" && g.req.Strength != 0.75 {
		return r, errors.New("--strength needs --init-image")
	}
	if g.initPath != "" {
		img, err := readImage(g.initPath)
		if err != nil {
			return r, err
		}
		r.Init = img
	} else {
		r.Strength = 0
	}
	if g.maskPath != "" {
		if r.Init == nil {
			return r, errors.New("--mask needs --init-image")
		}
		img, err := readImage(g.maskPath)
		if err != nil {
			return r, err
		}
		r.Mask = img
	}
	if len(g.outpaint) > 0 {
		if r.Init == nil {
			return r, errors.New("--outpaint needs --init-image")
		}
		o := g.outpaint
		switch len(o) {
		case 1:
			r.Outpaint = &imagegen.Outpaint{Left: o[0], Right: o[0], Top: o[0], Bottom: o[0]}
		case 4:
			r.Outpaint = &imagegen.Outpaint{Left: o[0], Right: o[1], Top: o[2], Bottom: o[3]}
		default:
			return r, errors.New("--outpaint takes LEFT,RIGHT,TOP,BOTTOM or one number")
		}
		if !g.strengthSet {
			r.Strength = 0
		}
	}
	if g.hiresScale > 0 {
		r.Hires = &imagegen.Hires{Scale: g.hiresScale, Steps: g.hiresSteps, Denoise: g.hiresDenoise, Upscaler: g.hiresUpscaler}
	}
	return r, nil
}

func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable PNG or JPEG picture: %w", path, err)
	}
	if cfg.Width*cfg.Height > 8192*8192 {
		return nil, fmt.Errorf("%s: %dx%d is too large (limit 8192x8192)", path, cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// options are the load options the flags ask for.
func (g *genFlags) options() (imagegen.Options, error) {
	var q tensor.DType
	switch strings.ToLower(g.quantize) {
	case "":
	case "q8_0":
		q = tensor.Q8_0
	case "q4_0":
		q = tensor.Q4_0
	default:
		return imagegen.Options{}, fmt.Errorf("--quantize %q: use q8_0 or q4_0", g.quantize)
	}
	return imagegen.Options{Tokenizer: g.tokenizer, TokenizerSearch: tokenizerSearch(), Quantize: q}, nil
}

func (g *genFlags) load(cmd *cobra.Command) (*imagegen.Model, *cpu.Backend, error) {
	if g.model == "" {
		return nil, nil, errors.New("no model: give --model FILE (a .safetensors checkpoint or a diffusers folder), or set MICA_SD_MODEL")
	}
	o, err := g.options()
	if err != nil {
		return nil, nil, err
	}
	b := cpu.New(g.threads)
	m, err := imagegen.Load(b, g.model, o)
	if errors.Is(err, imagegen.ErrNoTokenizer) && os.Getenv("MICA_OFFLINE") == "" && len(o.TokenizerSearch) > 0 {
		// As A1111 does: fetch the standard CLIP tokenizer once.
		fmt.Fprintf(cmd.ErrOrStderr(), "fetching the CLIP tokenizer (%s) into %s, once …\n", hub.CLIPRepo, o.TokenizerSearch[0])
		if ferr := hub.FetchCLIPTokenizer(cmd.Context(), nil, o.TokenizerSearch[0]); ferr != nil {
			b.Close()
			return nil, nil, ferr
		}
		m, err = imagegen.Load(b, g.model, o)
	}
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return m, b, nil
}

// tokenizerSearch is where a CLIP tokenizer is looked for when the
// checkpoint brings none: the user's model store.
func tokenizerSearch() []string {
	var out []string
	if d, err := os.UserHomeDir(); err == nil {
		out = append(out, filepath.Join(d, ".local", "share", "mica", "tokenizers", "clip"))
	}
	return out
}

func newGenCmd() *cobra.Command {
	var g genFlags
	var out string
	cmd := &cobra.Command{
		Use:   "gen PROMPT",
		Short: "Generate images with a Stable Diffusion 1.x or SDXL checkpoint",
		Long: `Generate pictures from a prompt (txt2img), from a picture (img2img, with
--init-image) or repaint part of one (inpainting, with --init-image and
--mask), with A1111's prompt syntax ((word:1.2), [word], BREAK), samplers
and seeds: the same seed, sampler and settings give A1111's picture. An
SDXL refiner (--refiner) can take over the last part of the sampling, as
A1111's refiner does.

The PNG carries A1111's "parameters" text (readable by A1111's PNG info and
by mica), which is also printed.`,
		Example: `  mica gen -m sd15.safetensors "a photo of a cat" -o cat.png
  mica gen -m sd15.safetensors "a lighthouse at night" --sampler "DPM++ 2M Karras" --steps 25 --seed 1234
  mica gen -m sd15.safetensors "oil painting" --init-image in.png --strength 0.5
  mica gen -m sd15.safetensors "a red hat" --init-image in.png --mask mask.png --only-masked
  mica gen -m sd15.safetensors "a wide beach" --init-image in.png --outpaint 128,128,0,0
  mica gen -m sd_xl_base_1.0.safetensors --refiner sd_xl_refiner_1.0.safetensors --refiner-switch-at 0.8 "a lighthouse"
  mica gen --server http://127.0.0.1:11435 -m sd15 "a photo of a cat"   (a job of the running server)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.server == "" && g.model != "" {
				// A model name that is not a file, with a server running
				// here: the picture becomes a job of its queue.
				if _, err := os.Stat(g.model); err != nil && localServerUp() {
					g.server = "http://" + server.DefaultAddr
				}
			}
			if cmd.Flags().Changed("refiner-switch-at") && g.refiner == "" {
				return errors.New("--refiner-switch-at needs --refiner")
			}
			if g.server != "" {
				return g.genRemote(cmd, args[0], out)
			}
			r, err := g.request(args[0])
			if err != nil {
				return err
			}
			st := newStatus(cmd.ErrOrStderr())
			st.Say("loading " + g.model)
			m, b, err := g.load(cmd)
			st.Clear()
			if err != nil {
				return err
			}
			defer b.Close()
			defer m.Close()
			if g.refiner != "" {
				// The refiner shares the backend (one worker pool); the
				// tokenizer the main model found is on disk by now.
				st.Say("loading refiner " + g.refiner)
				o, _ := g.options()
				rm, err := imagegen.Load(b, g.refiner, o)
				st.Clear()
				if err != nil {
					return fmt.Errorf("--refiner: %w", err)
				}
				defer rm.Close()
				r.Refiner = rm
			}
			var bar *progress
			last := ""
			res, err := m.Generate(cmd.Context(), r, imagegen.DefaultLimits(), func(p imagegen.Progress) imagegen.Action {
				label := fmt.Sprintf("image %d/%d %s", p.Image+1, p.Images, p.Pass)
				if r.Refiner != nil && p.Model == r.Refiner.Name {
					label += " (refiner)"
				}
				if label != last {
					if bar != nil {
						bar.Done()
					}
					bar, last = newProgress(cmd.ErrOrStderr(), label, int64(p.Steps)), label
					bar.unit = "it"
				}
				bar.Set(int64(p.Step))
				return imagegen.Continue
			})
			if bar != nil {
				bar.Done()
			}
			if res != nil {
				for _, n := range res.Notices {
					fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
				}
				for i, img := range res.Images {
					path := out
					if len(res.Images) > 1 {
						ext := filepath.Ext(out)
						path = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(out, ext), i+1, ext)
					}
					var buf bytes.Buffer
					var err error
					switch strings.ToLower(filepath.Ext(path)) {
					case ".jpg", ".jpeg":
						// A1111 keeps the infotext of JPEGs in EXIF UserComment.
						err = jpegexif.Encode(&buf, img.RGBA, 95, img.Infotext)
					default:
						err = pngtext.Encode(&buf, img.RGBA, []pngtext.KV{{Key: "parameters", Value: img.Infotext}})
					}
					if err != nil {
						return err
					}
					if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", path, img.Infotext)
				}
				t := res.Timings
				fmt.Fprintf(cmd.ErrOrStderr(), "text encoder %s, sampling %s (%d steps), VAE decode %s\n",
					t.Text.Round(time.Millisecond), t.Sampling.Round(time.Millisecond), t.Steps, t.Decode.Round(time.Millisecond))
			}
			return err
		},
	}
	g.addModelFlags(cmd)
	g.addGenFlags(cmd)
	cmd.Flags().StringVar(&g.refiner, "refiner", "", "SDXL refiner checkpoint (.safetensors or diffusers folder) that takes over the sampling at --refiner-switch-at, as A1111's refiner (with --hires: in the second pass)")
	cmd.Flags().Float32Var(&g.req.RefinerSwitchAt, "refiner-switch-at", 0.8, "fraction of the denoising done before the refiner takes over, in (0, 1] (A1111's rule: by the model timestep of each step's sigma)")
	cmd.Flags().StringVarP(&out, "output", "o", "out.png", "output file: .png, or .jpg (infotext in EXIF, as A1111); a batch adds -1, -2, … before the extension")
	cmd.Flags().StringVar(&g.server, "server", os.Getenv("MICA_SERVER"), "run the generation as a job of a running mica serve at this URL (env MICA_SERVER; default: the server at "+server.DefaultAddr+" when one runs and --model names no file); --model then names one of its models")
	cmd.Flags().StringVar(&g.apiKey, "api-key", os.Getenv("MICA_API_KEY"), "API key for --server (env MICA_API_KEY)")
	return cmd
}
