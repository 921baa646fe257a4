package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"mica/internal/format/gguf"
	"mica/internal/format/safetensors"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

func newDevCmd() *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Inspection tools: tensors, dequantization, quantization",
		Long: `Tools for looking inside model files and checking mica against other
implementations. Their names and outputs are stable: scripts may rely on them.`,
	}
	dev.AddCommand(newDevTensorsCmd(), newDevDequantCmd(), newDevQuantizeCmd(), newDevChatFormatCmd(), newDevLogitsCmd(), newDevSynthCmd(), newDevTokenizeCmd(), newDevImageEmbedCmd(), newDevClipTokenizeCmd())
	return dev
}

// modelFile is a GGUF or safetensors file opened header-first.
type modelFile struct {
	format string // "gguf" or "safetensors"
	g      *gguf.File
	s      *safetensors.File
}

func openModelFile(path string) (*modelFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err == nil && string(magic[:]) == "GGUF" {
		g, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		return &modelFile{format: "gguf", g: g}, nil
	}
	if strings.HasSuffix(strings.ToLower(path), ".safetensors") || err == nil && magic[3] == 0 {
		s, err := safetensors.Open(path)
		if err != nil {
			return nil, err
		}
		return &modelFile{format: "safetensors", s: s}, nil
	}
	return nil, fmt.Errorf("%s: not a GGUF or safetensors file (GGUF files start with \"GGUF\"; safetensors files end in .safetensors)", path)
}

func (m *modelFile) Close() error {
	if m.g != nil {
		return m.g.Close()
	}
	return m.s.Close()
}

type tensorRow struct {
	Name   string  `json:"name"`
	Type   string  `json:"type"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
	Size   int64   `json:"size"`
}

func (m *modelFile) rows() []tensorRow {
	var out []tensorRow
	if m.g != nil {
		for _, t := range m.g.Tensors {
			out = append(out, tensorRow{t.Name, t.Type.String(), t.Shape, m.g.DataOffset + t.Offset, t.Size})
		}
		return out
	}
	for _, t := range m.s.Tensors {
		out = append(out, tensorRow{t.Name, t.RawDType, t.Shape, m.s.DataOffset + t.Begin, t.Size()})
	}
	return out
}

func newDevTensorsCmd() *cobra.Command {
	var asJSON, meta bool
	cmd := &cobra.Command{
		Use:   "tensors FILE",
		Short: "List every tensor of a GGUF or safetensors file",
		Long: `List every tensor of a GGUF or safetensors file: name, type, shape and the
absolute byte offset of its data in the file. Shapes are printed as the file
stores them: GGUF lists ne0 (the row length) first, safetensors lists the
outermost dimension first. Only the header is read.

With --meta, the metadata is printed too (GGUF key/values; the safetensors
__metadata__ map). In text form long arrays are abbreviated; --json prints
everything.`,
		Example: `  mica dev tensors model.gguf
  mica dev tensors --meta --json sd15.safetensors | jq '.tensors | length'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openModelFile(args[0])
			if err != nil {
				return err
			}
			defer m.Close()
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			if asJSON {
				return m.writeJSON(w, meta)
			}
			return m.writeText(w, meta)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	cmd.Flags().BoolVar(&meta, "meta", false, "also print the file's metadata")
	return cmd
}

func (m *modelFile) writeText(w io.Writer, meta bool) error {
	rows := m.rows()
	if m.g != nil {
		fmt.Fprintf(w, "%s: GGUF v%d, %d tensors, %d metadata keys, alignment %d\n", m.g.Path, m.g.Version, len(rows), len(m.g.Meta), m.g.Alignment)
		if meta {
			for _, kv := range m.g.Meta {
				fmt.Fprintf(w, "  %s (%s) = %s\n", kv.Key, kv.Value.TypeName(), fmt.Sprint(kv.Value))
			}
		}
	} else {
		fmt.Fprintf(w, "%s: safetensors, %d tensors\n", m.s.Path, len(rows))
		if meta {
			for k, v := range m.s.Metadata {
				fmt.Fprintf(w, "  %s = %q\n", k, v)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSHAPE\tOFFSET\tBYTES")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\n", r.Name, r.Type, r.Shape, r.Offset, r.Size)
	}
	return tw.Flush()
}

func (m *modelFile) writeJSON(w io.Writer, meta bool) error {
	out := map[string]any{"file": "", "format": m.format, "tensors": m.rows()}
	if m.g != nil {
		out["file"], out["version"], out["alignment"] = m.g.Path, m.g.Version, m.g.Alignment
		if meta {
			md := make([]map[string]any, 0, len(m.g.Meta))
			for _, kv := range m.g.Meta {
				md = append(md, map[string]any{"key": kv.Key, "type": kv.Value.TypeName(), "value": valueJSON(kv.Value)})
			}
			out["meta"] = md
		}
	} else {
		out["file"] = m.s.Path
		if meta {
			out["meta"] = m.s.Metadata
		}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

// valueJSON converts a GGUF value to something encoding/json prints
// faithfully (non-finite floats become strings).
func valueJSON(v gguf.Value) any {
	fl := func(f float64) any {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Sprint(f)
		}
		return f
	}
	if !v.IsArray() {
		switch v.Type() {
		case gguf.TypeString:
			s, _ := v.String()
			return s
		case gguf.TypeBool:
			b, _ := v.Bool()
			return b
		case gguf.TypeFloat32, gguf.TypeFloat64:
			f, _ := v.Float()
			return fl(f)
		case gguf.TypeUint64:
			u, _ := v.Uint64()
			return u
		}
		i, _ := v.Int()
		return i
	}
	if a, ok := v.Arrays(); ok {
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = valueJSON(e)
		}
		return out
	}
	if s, ok := v.Strings(); ok {
		return s
	}
	if b, ok := v.Bools(); ok {
		return b
	}
	if f, ok := v.Float32s(); ok {
		out := make([]any, len(f))
		for i, x := range f {
			out[i] = fl(float64(x))
		}
		return out
	}
	if f, ok := v.Float64s(); ok {
		out := make([]any, len(f))
		for i, x := range f {
			out[i] = fl(x)
		}
		return out
	}
	if u, ok := v.Uint64s(); ok {
		return u
	}
	i, _ := v.Ints()
	return i
}

func newDevDequantCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dequant FILE TENSOR",
		Short: "Write a tensor's values as little-endian F32 to stdout",
		Long: `Dequantize one tensor of a GGUF or safetensors file and write its values to
stdout as little-endian float32, in storage order (row by row). Every GGUF
weight type is supported; the values are bit-exact with llama.cpp's.`,
		Example: `  mica dev dequant model.gguf blk.0.attn_q.weight > q.f32
  mica dev dequant model.gguf token_embd.weight | od -f | head`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openModelFile(args[0])
			if err != nil {
				return err
			}
			defer m.Close()
			dt, n, data, err := m.tensor(args[1])
			if err != nil {
				return err
			}
			return writeDequantized(cmd.OutOrStdout(), dt, n, data)
		},
	}
}

// tensor returns a tensor's type, element count and bytes.
func (m *modelFile) tensor(name string) (tensor.DType, int64, []byte, error) {
	if m.g != nil {
		t, ok := m.g.Tensor(name)
		if !ok {
			return 0, 0, nil, fmt.Errorf("%s: no tensor %q (list them with 'mica dev tensors')", m.g.Path, name)
		}
		data, err := m.g.TensorData(name)
		return t.Type, t.Elements(), data, err
	}
	t, ok := m.s.Tensor(name)
	if !ok {
		return 0, 0, nil, fmt.Errorf("%s: no tensor %q (list them with 'mica dev tensors')", m.s.Path, name)
	}
	data, err := m.s.TensorData(name)
	return t.DType, t.Elements(), data, err
}

// writeDequantized converts data in chunks of whole blocks and streams them.
func writeDequantized(w io.Writer, dt tensor.DType, n int64, data []byte) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	bs := int64(dt.BlockSize())
	if bs == 0 {
		return fmt.Errorf("unknown data type %s", dt)
	}
	chunk := (int64(1<<16) / bs) * bs
	if chunk == 0 {
		chunk = bs
	}
	vals := make([]float32, chunk)
	out := make([]byte, 4*chunk)
	for done := int64(0); done < n; done += chunk {
		k := min(chunk, n-done)
		from, _ := dt.RowBytes(done)
		size, ok := dt.RowBytes(k)
		if !ok || from+size > int64(len(data)) {
			return fmt.Errorf("tensor data is shorter than its %d %s elements", n, dt)
		}
		if err := quant.Dequantize(dt, data[from:from+size], vals[:k]); err != nil {
			return err
		}
		for i, v := range vals[:k] {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		if _, err := bw.Write(out[:4*k]); err != nil {
			return err
		}
	}
	return bw.Flush()
}
