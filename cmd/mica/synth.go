package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/models/vision"
	"mica/internal/synth"
	"mica/internal/tensor"
)

// newDevSynthCmd is `mica dev synth`: random-weight Gemma GGUF files with
// real shapes and the real vocabulary, and Stable Diffusion safetensors
// checkpoints (the reference recipe, or tiny ones for tests).
func newDevSynthCmd() *cobra.Command {
	var (
		out, typeName, vocabPath, tmplPath, blocks string
		seed                                       uint64
		pure, quiet                                bool
		threads                                    int
	)
	cmd := &cobra.Command{
		Use:   "synth PRESET -o FILE [--dtype TYPE] [--seed N] [--vocab FILE]",
		Short: "Write a random-weight Gemma GGUF or Stable Diffusion checkpoint with real shapes",
		Long: `Write a GGUF file with random weights and the tensor names, shapes and
metadata keys llama.cpp's converter writes for a real Gemma model, for
benchmarks and tests. The same preset, seed, type and vocabulary always give
the same bytes. The file is streamed to disk tensor by tensor.

Presets: ` + strings.Join(synth.Presets(), ", ") + `
(gemma3-test and gemma4-test are tiny models for tests of everything above
the model.)

The vocabulary is the real one, read from the file --vocab names (default
$` + synth.EnvVocab + `): a GGUF file with tokenizer.ggml.* keys, or a Hugging
Face tokenizer.json[.gz] (tokenizer_config.json beside it supplies the chat
template). gemma3 files get the SentencePiece ("llama") tokenizer as the
converter writes it, with scores derived from the BPE merge order when the
source has none; gemma4 files get the "gemma4" BPE tokenizer with Gemma 4's
special tokens placed at their ids (recorded under mica.synth.*).

--dtype sets the type of the weight matrices; norms stay F32. As with
llama-quantize, the tied embedding becomes Q6_K (Q8_0 when its rows are not
whole K-quant blocks) unless --pure, and K-quant matrices whose rows are not
whole 256-blocks fall back to Q5_0/Q5_1/Q8_0/IQ4_NL.

Types: ` + strings.Join(synth.Types(), ", ") + `

Stable Diffusion presets: ` + strings.Join(synth.SDPresets(), ", ") + `
write single-file .safetensors checkpoints (A1111/LDM names) with every value
from the reference recipe (FNV-1a-64 of the tensor name, SplitMix64 of the
index, uniform with standard deviation 0.02; norm weights around 1), in
--dtype f32, f16 or bf16 (position_ids are I64). sd15-recipe and sdxl-recipe
reproduce the SD 1.5 and SDXL reference recipe checkpoints bit for bit and
take no seed. sd15 and sdxl are the same shapes: seed 0 (their default) gives the
recipe values, any other --seed changes every tensor's hash basis
(FNV-1a-64(name) XOR SplitMix64-mix(seed)). sd15-inpaint has a 9-channel UNet
input. sdxl-refiner has the SDXL refiner's shapes (a 384-channel UNet with
attention at the middle levels, only the OpenCLIP bigG text encoder, aesthetic-
score conditioning). sd-test, sdxl-test and sdxl-refiner-test are tiny
checkpoints with the SD 1.x, SDXL and refiner structure and names, for fast
tests of everything above the model.

Vision presets: gemma3-siglip-mmproj (Gemma 3's SigLIP-400M tower at 896 px
with its projector into a 5376-wide text model, as in Gemma 3 27B) and
gemma4-31b-mmproj (Gemma 4 31B's vision tower and projector) write mmproj
GGUF files as llama.cpp's converter does, random weights, F16 (--dtype f32
for F32).`,
		Example: `  mica dev synth gemma3-270m -o g3-270m-q8_0.gguf --dtype q8_0 --vocab gemma3-vocab.gguf
  mica dev synth gemma4-test -o tiny.gguf --vocab tokenizer.json.gz --chat-template gemma4.jinja
  MICA_VOCAB=vocab.gguf mica dev synth gemma4-31b -o 31b-q4_0.gguf --dtype q4_0
  mica dev synth sd15-recipe -o sd15-recipe-f16.safetensors --dtype f16
  mica dev synth sd-test -o sd-test.safetensors
  mica dev synth gemma3-siglip-mmproj -o mmproj-siglip.gguf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("no output file: pass -o FILE")
			}
			if synth.IsSDPreset(args[0]) {
				return runSDSynth(cmd, args[0], out, typeName, threads, quiet)
			}
			if mk, ok := visionPresets[args[0]]; ok {
				c := mk()
				if cmd.Flags().Changed("dtype") {
					switch strings.ToLower(typeName) {
					case "f32":
						c.FileType = 0
					case "f16":
						c.FileType = 1
					default:
						return fmt.Errorf("--dtype %q: vision files are f32 or f16", typeName)
					}
				}
				start := time.Now()
				if err := vision.WriteSynth(out, c, seed); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %s (%d layers, width %d, projection %d) in %s\n", out, args[0], c.Layers, c.Width, c.ProjDim, time.Since(start).Round(time.Millisecond))
				return nil
			}
			if _, err := synth.LookupPreset(args[0]); err != nil {
				return fmt.Errorf("unknown preset %q: Gemma presets %s; Stable Diffusion presets %s; vision presets %s",
					args[0], strings.Join(synth.Presets(), ", "), strings.Join(synth.SDPresets(), ", "), strings.Join(visionPresetNames(), ", "))
			}
			typ, err := tensor.ParseDType(typeName)
			if err != nil {
				return fmt.Errorf("--dtype %q: choose one of %s", typeName, strings.Join(synth.Types(), ", "))
			}
			mode, err := synth.ParseBlockMode(blocks)
			if err != nil {
				return err
			}
			if vocabPath == "" {
				vocabPath = os.Getenv(synth.EnvVocab)
			}
			if vocabPath == "" {
				return synth.ErrNoVocab
			}
			o := synth.Options{Preset: args[0], Type: typ, Pure: pure, Seed: seed, Threads: threads, Blocks: mode}
			if _, err := synth.Plan(o); err != nil { // check the preset and type before reading 16 MB of vocabulary
				return err
			}
			st := newStatus(cmd.ErrOrStderr())
			st.Say("reading vocabulary " + vocabPath)
			if o.Vocab, err = synth.LoadVocab(vocabPath); err != nil {
				st.Clear()
				return err
			}
			if tmplPath != "" {
				if o.ChatTemplate, err = synth.ReadChatTemplate(tmplPath); err != nil {
					st.Clear()
					return err
				}
			}
			st.Clear()
			start := time.Now()
			var bar *progress
			o.Progress = func(done, total int64) {
				if quiet {
					return
				}
				if bar == nil {
					bar = newProgress(cmd.ErrOrStderr(), "writing "+args[0], total)
				}
				bar.Set(done)
			}
			l, err := synth.Write(out, o)
			if bar != nil {
				bar.Done()
			}
			if err != nil {
				return err
			}
			for _, w := range l.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %d tensors, %.3g parameters, %.2f GB, in %.1fs\n",
				out, args[0], len(l.Tensors), float64(l.Params), float64(l.Bytes)/1e9, time.Since(start).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "output file: GGUF (Gemma) or .safetensors (Stable Diffusion) (required)")
	f.StringVar(&typeName, "dtype", "f16", "weight matrix type: "+strings.Join(synth.Types(), ", ")+" (Stable Diffusion: f32, f16, bf16)")
	f.Uint64Var(&seed, "seed", 1, "random seed (Stable Diffusion presets default to 0, the recipe)")
	f.StringVar(&vocabPath, "vocab", "", "vocabulary: GGUF with tokenizer.ggml.* keys or tokenizer.json[.gz] (default $"+synth.EnvVocab+")")
	f.StringVar(&tmplPath, "chat-template", "", "chat template (Jinja file or tokenizer_config.json); default: the vocabulary's")
	f.BoolVar(&pure, "pure", false, "no special type for the tied embedding (llama-quantize --pure)")
	f.IntVar(&threads, "threads", runtime.NumCPU(), "threads generating and quantizing")
	f.StringVar(&blocks, "blocks", "auto", "quantized weights: exact (quantize every value), pool (blocks drawn from a pool of exactly quantized random blocks; fast), auto (pool above 2B parameters)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// runSDSynth writes a Stable Diffusion checkpoint. The Gemma-only flags are
// refused rather than ignored; the seed defaults to 0 (the recipe).
func runSDSynth(cmd *cobra.Command, preset, out, typeName string, threads int, quiet bool) error {
	for _, name := range []string{"vocab", "chat-template", "pure", "blocks"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s applies to the Gemma presets, not to %s", name, preset)
		}
	}
	var seed uint64
	if cmd.Flags().Changed("seed") {
		seed, _ = cmd.Flags().GetUint64("seed")
	}
	typ, err := tensor.ParseDType(typeName)
	if err != nil || (typ != tensor.F32 && typ != tensor.F16 && typ != tensor.BF16) {
		return fmt.Errorf("--dtype %q: Stable Diffusion checkpoints are f32, f16 or bf16", typeName)
	}
	o := synth.SDOptions{Preset: preset, Type: typ, Seed: seed, Threads: threads}
	start := time.Now()
	var bar *progress
	o.Progress = func(done, total int64) {
		if quiet {
			return
		}
		if bar == nil {
			bar = newProgress(cmd.ErrOrStderr(), "writing "+preset, total)
		}
		bar.Set(done)
	}
	l, err := synth.WriteSD(out, o)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %s, %d tensors, %.4g parameters, %.2f GB, in %.1fs\n",
		out, preset, typ, len(l.Tensors), float64(l.Params), float64(l.Bytes)/1e9, time.Since(start).Seconds())
	return nil
}

// visionPresets are the real vision towers' shapes (mmproj files).
var visionPresets = map[string]func() *vision.Config{
	"gemma3-siglip-mmproj": func() *vision.Config { return vision.SigLIP400MConfig(5376) },
	"gemma4-31b-mmproj":    func() *vision.Config { return vision.Gemma4VisionConfig31B(5376) },
}

func visionPresetNames() []string { return []string{"gemma3-siglip-mmproj", "gemma4-31b-mmproj"} }
