package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"mica/internal/llm/engine"
	"mica/internal/llm/sample"
	"mica/internal/models/gemma"
	"mica/internal/models/gemma/chat"
	"mica/internal/models/vision"
)

// imagePlaceholders are the tokens the chat formats render for an image.
var imagePlaceholders = map[string]string{"gemma3": chat.Gemma3Image, "gemma4": chat.ImagePlaceholder}

// runWithImages answers one prompt about images. The engine's generation
// loop takes token prompts only, so this one-shot path prefills the mixed
// sequence itself (text, each image decoded bidirectionally, text) and
// samples with the same sampler: the answer is printed as the model writes
// it, without the chat output parser (a Gemma 4 --think answer shows its
// channel markup).
func runWithImages(cmd *cobra.Command, e *engine.Engine, modelPath string, f *runFlags, prompt string) error {
	m, tok := e.Model(), e.Tokenizer()
	mmproj := f.mmproj
	if mmproj == "" {
		var err error
		if mmproj, err = vision.FindProjector(modelPath); err != nil {
			return err
		}
		if mmproj == "" {
			return fmt.Errorf("%s: no vision projector found beside the model (an mmproj GGUF such as mmproj-NAME.gguf): give --mmproj FILE", modelPath)
		}
	}
	p, err := openProjector(mmproj, m.Backend())
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.CheckPair(string(m.Config.Arch), m.Config.NEmbd); err != nil {
		return err
	}
	var embs [][]float32
	for _, path := range f.images {
		_, emb, err := f.imageFlags.encodeImageFile(p, path)
		if err != nil {
			return err
		}
		embs = append(embs, emb)
	}

	var runs []gemma.Input
	if f.raw {
		// Plain text: <__media__> marks the images' places (all first when absent).
		if !strings.Contains(prompt, vision.MediaMarker) {
			prompt = strings.Repeat(vision.MediaMarker, len(embs)) + prompt
		}
		chunks, n, err := p.Config.PromptChunks(tok, prompt, tok.AddBOSByDefault())
		if err != nil {
			return err
		}
		if n != len(embs) {
			return fmt.Errorf("the prompt marks %d image(s) with %s but %d --image given", n, vision.MediaMarker, len(embs))
		}
		for _, c := range chunks {
			if c.Image < 0 {
				runs = append(runs, gemma.Input{Tokens: c.Tokens})
			} else {
				runs = append(runs, gemma.Input{Embd: embs[c.Image], NonCausal: true})
			}
		}
	} else {
		// Chat: the images come first in the user's turn, then the text.
		var parts []chat.Part
		for range embs {
			parts = append(parts, chat.Part{Type: "image"})
		}
		parts = append(parts, chat.Part{Type: "text", Text: prompt})
		ids, err := e.ChatPrompt(engine.ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Parts(parts...)}},
			System: f.system, Think: f.think})
		if err != nil {
			return err
		}
		ph, ok := tok.ID(imagePlaceholders[e.Family()])
		if !ok {
			return fmt.Errorf("the model's vocabulary has no %s token to place images with", imagePlaceholders[e.Family()])
		}
		if runs, err = p.Config.Runs(tok, ids, ph, embs); err != nil {
			return err
		}
	}

	n := 0
	for _, r := range runs {
		n += r.Len(m.Config.NEmbd)
	}
	capacity := n + f.maxTokens
	if f.maxTokens == 0 {
		capacity = max(e.Context(), n+1)
	}
	seq, err := m.NewSequence(gemma.SequenceOptions{Capacity: capacity})
	if err != nil {
		return err
	}
	defer seq.Free()
	logits, err := m.Prefill(seq, runs)
	if err != nil {
		return err
	}
	smp, err := sample.New(f.sampling(), m.Config.NVocab)
	if err != nil {
		return err
	}
	w := &stopWriter{out: cmd.OutOrStdout(), stops: f.stop}
	dec := tok.NewDecoder()
	for i := 0; f.maxTokens == 0 || i < f.maxTokens; i++ {
		id, err := smp.Sample(logits)
		if err != nil {
			return err
		}
		if tok.IsEOG(id) {
			break
		}
		if err := smp.Accept(id); err != nil {
			return err
		}
		if w.write(dec.Add(id)) || seq.Len() >= seq.Cap() {
			break
		}
		rows, err := m.ForwardLast([]*gemma.Sequence{seq}, [][]int32{{id}})
		if err != nil {
			return err
		}
		logits = rows[0]
	}
	w.write(dec.Flush())
	w.flush()
	fmt.Fprintln(w.out)
	return nil
}

// stopWriter prints an answer as it grows, holding back what could be the
// start of a stop string; write reports when a stop string appeared (the
// answer ends before it).
type stopWriter struct {
	out     io.Writer
	stops   []string
	pending string
	stopped bool
}

func (w *stopWriter) write(s string) bool {
	if w.stopped {
		return true
	}
	w.pending += s
	for _, st := range w.stops {
		if i := strings.Index(w.pending, st); st != "" && i >= 0 {
			w.pending = w.pending[:i]
			w.stopped = true
		}
	}
	if w.stopped {
		w.flush()
		return true
	}
	hold := 0
	for _, st := range w.stops {
		hold = max(hold, len(st)-1)
	}
	if n := len(w.pending) - hold; n > 0 {
		io.WriteString(w.out, w.pending[:n])
		w.pending = w.pending[n:]
	}
	return false
}

func (w *stopWriter) flush() {
	io.WriteString(w.out, w.pending)
	w.pending = ""
}
