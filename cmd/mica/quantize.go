package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

func newDevQuantizeCmd() *cobra.Command {
	var typeName string
	var keep []string
	cmd := &cobra.Command{
		Use:   "quantize IN.gguf OUT.gguf --type TYPE",
		Short: "Quantize the weight matrices of a GGUF file",
		Long: `Write a copy of a GGUF file whose F32/F16/BF16 weight matrices are quantized
to TYPE with mica's quantizers, which are byte-identical to llama.cpp's
reference algorithms (no importance matrix). One-dimensional tensors (norms,
biases) and matrices whose rows are not a whole number of TYPE's blocks stay
as they are; so do tensors named with --keep. Metadata is copied unchanged
except general.file_type, which is removed (it would describe the old file).
The output is written under a temporary name and renamed when complete.

Types: ` + strings.Join(quantizableTypes(), ", "),
		Example: `  mica dev quantize model-f32.gguf model-q4_k.gguf --type q4_k
  mica dev quantize model-f32.gguf model-q8_0.gguf --type q8_0 --keep token_embd.weight`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := tensor.ParseDType(typeName)
			if err != nil || !quant.CanQuantize(to) {
				return fmt.Errorf("--type %q: choose one of %s", typeName, strings.Join(quantizableTypes(), ", "))
			}
			return quantizeFile(cmd, args[0], args[1], to, keep)
		},
	}
	cmd.Flags().StringVar(&typeName, "type", "", "target type, e.g. q4_k, q8_0 (required)")
	cmd.Flags().StringSliceVar(&keep, "keep", nil, "tensor names to leave unchanged")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

func quantizableTypes() []string {
	var out []string
	for _, t := range []tensor.DType{tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1,
		tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_NL, tensor.IQ4_XS} {
		if quant.CanQuantize(t) {
			out = append(out, strings.ToLower(t.String()))
		}
	}
	return out
}

func quantizeFile(cmd *cobra.Command, in, out string, to tensor.DType, keep []string) error {
	src, err := gguf.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	var meta []gguf.KV
	for _, kv := range src.Meta {
		if kv.Key != "general.file_type" && kv.Key != "general.alignment" {
			meta = append(meta, kv)
		}
	}
	infos := make([]gguf.TensorInfo, len(src.Tensors))
	for i, t := range src.Tensors {
		infos[i] = gguf.TensorInfo{Name: t.Name, Type: t.Type, Shape: t.Shape}
		float := t.Type == tensor.F32 || t.Type == tensor.F16 || t.Type == tensor.BF16
		if float && len(t.Shape) >= 2 && t.Shape[0]%int64(to.BlockSize()) == 0 && !kept[t.Name] {
			infos[i].Type = to
		}
	}
	w, err := gguf.Create(out, src.Version, src.Alignment, meta, infos)
	if err != nil {
		return err
	}
	start := time.Now()
	bar := newProgress(cmd.ErrOrStderr(), "quantizing", int64(len(infos)))
	for i, t := range src.Tensors {
		data, err := src.TensorData(t.Name)
		if err == nil && infos[i].Type != t.Type {
			data, err = convertTensor(t.Type, infos[i].Type, t.Elements(), data)
		}
		if err == nil {
			err = w.WriteTensor(t.Name, data)
		}
		if err != nil {
			w.Abort()
			return fmt.Errorf("%s: tensor %s: %w", in, t.Name, err)
		}
		bar.Set(int64(i + 1))
	}
	bar.Done()
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s) in %.1fs\n", out, to, time.Since(start).Seconds())
	return nil
}

// convertTensor dequantizes data of type from and quantizes it to type to.
func convertTensor(from, to tensor.DType, n int64, data []byte) ([]byte, error) {
	vals := make([]float32, n)
	if err := quant.Dequantize(from, data, vals); err != nil {
		return nil, err
	}
	size, ok := to.RowBytes(n)
	if !ok {
		return nil, fmt.Errorf("%d elements are not whole %s blocks", n, to)
	}
	out := make([]byte, size)
	return out, quant.Quantize(to, vals, out)
}
