package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"mica/internal/format/gguf"
	"mica/internal/tokenizer"
)

// newDevTokenizeCmd is `mica dev tokenize`: text to token ids.
func newDevTokenizeCmd() *cobra.Command {
	var special, bos bool
	cmd := &cobra.Command{
		Use:   "tokenize MODEL_OR_TOKENIZER_JSON [--special] TEXT",
		Short: "Print the token ids of a text as a JSON array",
		Long: `Tokenize TEXT with the vocabulary of a GGUF model (its tokenizer.ggml.* keys,
tokenized as llama.cpp does) or of a Hugging Face tokenizer.json (a path ending
in .json or .json.gz), and print the ids as a JSON array. With TEXT "-" or left
out, the text is read from stdin (all of it, newlines included).

Special tokens written in the text ("<start_of_turn>") are recognised only
with --special; otherwise they are tokenized as ordinary characters. No BOS is
added unless --bos.`,
		Example: `  mica dev tokenize gemma-3-1b-it.gguf "Hello, world!"
  mica dev tokenize tokenizer.json.gz --special "<start_of_turn>user"
  echo -n "text" | mica dev tokenize model.gguf`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := loadTokenizer(args[0])
			if err != nil {
				return err
			}
			var text string
			if len(args) == 2 && args[1] != "-" {
				text = args[1]
			} else {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("reading the text from stdin: %w", err)
				}
				text = string(b)
			}
			ids, err := tok.Encode(text, tokenizer.EncodeOptions{ParseSpecial: special, AddBOS: bos})
			if err != nil {
				return err
			}
			if ids == nil {
				ids = []int32{}
			}
			b, _ := json.Marshal(ids)
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		},
	}
	cmd.Flags().BoolVar(&special, "special", false, "recognise special-token strings in TEXT")
	cmd.Flags().BoolVar(&bos, "bos", false, "put the BOS token first")
	return cmd
}

// loadTokenizer reads a tokenizer.json[.gz] or a GGUF file's vocabulary.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	lower := strings.ToLower(path)
	if strings.HasSuffix(lower, ".json") || strings.HasSuffix(lower, ".json.gz") {
		return tokenizer.LoadHFJSON(path)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w (give a GGUF model or a tokenizer.json[.gz])", err)
	}
	defer f.Close()
	return tokenizer.FromGGUF(f)
}
