package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"mica/internal/diffusion/prompt"
	"mica/internal/imagegen"
	cliptok "mica/internal/tokenizer/clip"
)

func newDevClipTokenizeCmd() *cobra.Command {
	var tokPath string
	var chunks, asJSON bool
	cmd := &cobra.Command{
		Use:   "clip-tokenize TEXT",
		Short: "Print the CLIP token ids of a prompt (as Stable Diffusion's text encoders see them)",
		Long: `Tokenize TEXT with OpenAI's CLIP BPE tokenizer (the one SD 1.x and SDXL use)
and print the ids without start/end tokens. With --chunks, parse A1111's
prompt syntax ((word:1.2), [word], BREAK) and print the 77-token chunks the
text encoder receives, with each token's weight.`,
		Example: `  mica dev clip-tokenize --tokenizer bpe_simple_vocab_16e6.txt.gz "a photo of a cat"
  mica dev clip-tokenize --tokenizer tokenizer/ --chunks "a (red:1.3) apple BREAK on a table"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokPath == "" {
				return fmt.Errorf("give the tokenizer with --tokenizer (bpe_simple_vocab_16e6.txt(.gz), or a folder with vocab.json and merges.txt) or set MICA_CLIP_TOKENIZER")
			}
			tok, err := loadCLIPTokenizer(tokPath)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !chunks {
				ids := tok.Encode(args[0])
				if asJSON {
					return json.NewEncoder(w).Encode(map[string]any{"ids": ids})
				}
				for i, id := range ids {
					if i > 0 {
						fmt.Fprint(w, " ")
					}
					fmt.Fprint(w, id)
				}
				fmt.Fprintln(w)
				return nil
			}
			cs := prompt.Tokenize(tok, args[0])
			if asJSON {
				type chunk struct {
					IDs     []int32   `json:"ids"`
					Weights []float32 `json:"weights"`
				}
				var out []chunk
				for _, c := range cs {
					out = append(out, chunk{IDs: c.IDs[:], Weights: c.Weights[:]})
				}
				return json.NewEncoder(w).Encode(map[string]any{"chunks": out})
			}
			for i, c := range cs {
				fmt.Fprintf(w, "chunk %d:\n", i+1)
				for j, id := range c.IDs {
					fmt.Fprintf(w, "  %2d %6d %-16q %.4g\n", j, id, tok.Decode([]int32{id}), c.Weights[j])
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tokPath, "tokenizer", os.Getenv("MICA_CLIP_TOKENIZER"), "CLIP tokenizer file or folder (env MICA_CLIP_TOKENIZER)")
	cmd.Flags().BoolVar(&chunks, "chunks", false, "parse A1111 prompt syntax and print the 77-token chunks with weights")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func loadCLIPTokenizer(p string) (*cliptok.Tokenizer, error) {
	return imagegen.LoadTokenizer(p)
}
