package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"mica/internal/compute/cpu"
	"mica/internal/models/gemma"
	"mica/internal/tensor"
)

func newDevLogitsCmd() *cobra.Command {
	var tokenList string
	var threads int
	var kvType string
	var mm mediaFlags
	cmd := &cobra.Command{
		Use:   "logits MODEL --tokens 2,17,5 | --mmproj FILE --image IMAGE --prompt TEXT",
		Short: "Print the logits a Gemma GGUF model computes for a token sequence",
		Long: `Run the token ids through the model in one batch from position 0 and print
JSON {"tokens": [...], "logits": [[...], ...]}: one full row of logits after
every position (final softcap applied where the model has one). This is the
form llama.cpp-derived reference logits take, for parity checks.

With --mmproj, --image and --prompt instead of --tokens, TEXT is laid out as
llama.cpp's mtmd does: each <__media__> in it becomes the projector's
begin-of-image marker, the image's embeddings and the end-of-image marker
(BOS first, special tokens recognised); the text, image and text chunks are
decoded in turn (the image bidirectionally) and the logits after the last
prompt position are printed as {"logits": [...]}. Give --image once per
marker, in order.`,
		Example: `  mica dev logits gemma3-270m.gguf --tokens 2,17,5 --threads 2 | jq '.logits[0][:5]'
  mica dev logits gemma3-4b.gguf --mmproj mmproj-gemma3-4b.gguf --image cat.png --prompt "Describe <__media__>"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kv, err := tensor.ParseDType(kvType)
			if err != nil || (kv != tensor.F16 && kv != tensor.F32) {
				return fmt.Errorf("--kv %q: use f16 or f32", kvType)
			}
			if mm.mmproj != "" || len(mm.images) > 0 || mm.prompt != "" {
				if tokenList != "" {
					return fmt.Errorf("give --tokens, or --mmproj/--image/--prompt, not both")
				}
				return mm.logits(cmd, args[0], threads, kv)
			}
			tokens, err := parseTokenList(tokenList)
			if err != nil {
				return err
			}
			be := cpu.New(threads)
			defer be.Close()
			m, err := gemma.Open(args[0], be)
			if err != nil {
				return err
			}
			defer m.Close()
			seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: len(tokens), KV: kv})
			if err != nil {
				return err
			}
			defer seq.Free()
			rows, err := m.Forward([]*gemma.Sequence{seq}, [][]int32{tokens})
			if err != nil {
				return err
			}
			return writeLogitsJSON(cmd.OutOrStdout(), tokens, rows[0], m.Config.NVocab)
		},
	}
	cmd.Flags().StringVar(&tokenList, "tokens", "", "comma-separated token ids (required without --prompt)")
	cmd.Flags().IntVarP(&threads, "threads", "t", 0, "threads (0: all cores)")
	cmd.Flags().StringVar(&kvType, "kv", "f16", "KV cache type: f16 (llama.cpp's default) or f32")
	mm.register(cmd)
	return cmd
}

func parseTokenList(s string) ([]int32, error) {
	var out []int32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--tokens: %q is not a token id", f)
		}
		out = append(out, int32(v))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--tokens: give at least one token id, e.g. --tokens 2,17,5")
	}
	return out, nil
}

// writeLogitsJSON streams the JSON (rows of 262144 floats are large) with
// the shortest representation that round-trips each float32.
func writeLogitsJSON(w interface{ Write([]byte) (int, error) }, tokens []int32, logits []float32, vocab int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tj, _ := json.Marshal(tokens)
	fmt.Fprintf(bw, `{"tokens":%s,"logits":[`, tj)
	buf := make([]byte, 0, 32)
	for i := 0; i < len(logits)/vocab; i++ {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('[')
		for j, v := range logits[i*vocab : (i+1)*vocab] {
			if j > 0 {
				bw.WriteByte(',')
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("logit %d of position %d is %v", j, i, v)
			}
			buf = strconv.AppendFloat(buf[:0], float64(v), 'g', -1, 32)
			bw.Write(buf)
		}
		bw.WriteByte(']')
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
