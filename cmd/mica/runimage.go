package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"mica/internal/format/imagefile"
	"mica/internal/llm/engine"
	"mica/internal/models/gemma/chat"
	"mica/internal/models/vision"
)

// runWithImages answers one prompt about images through the engine's
// generation loop, as the server does: the model's projector (--mmproj, or
// the one beside the model) is paired with the model, the images go first
// in the user's turn (or where <__media__> marks them in a --raw prompt),
// and the answer streams through the chat output parser (thinking on
// stderr with --think).
func runWithImages(cmd *cobra.Command, e *engine.Engine, modelPath string, f *runFlags, prompt string, out *answerWriter) (engine.Result, error) {
	mmproj := f.mmproj
	if mmproj == "" {
		var err error
		if mmproj, err = vision.FindProjector(modelPath); err != nil {
			return engine.Result{}, err
		}
		if mmproj == "" {
			return engine.Result{}, fmt.Errorf("%s: no vision projector found beside the model (an mmproj GGUF such as mmproj-NAME.gguf): give --mmproj FILE", modelPath)
		}
	}
	if err := e.OpenVision(mmproj); err != nil {
		return engine.Result{}, err
	}
	images := make([]engine.Image, len(f.images))
	for i, path := range f.images {
		data, err := os.ReadFile(path)
		if err != nil {
			return engine.Result{}, err
		}
		// Decoded here too, so that a bad file is named in the error.
		if _, err := imagefile.Decode(data, imagefile.Options{IgnoreOrientation: f.ignoreOrientation}); err != nil {
			return engine.Result{}, fmt.Errorf("%s: %w", path, err)
		}
		images[i] = engine.Image{Data: data, MinTokens: f.imageFlags.minTokens, MaxTokens: f.imageFlags.maxTokens, IgnoreOrientation: f.ignoreOrientation}
	}
	if f.raw {
		if n := strings.Count(prompt, vision.MediaMarker); n > 0 && n != len(images) {
			return engine.Result{}, fmt.Errorf("the prompt marks %d image(s) with %s but %d --image given", n, vision.MediaMarker, len(images))
		}
		return e.Complete(cmd.Context(), engine.CompletionRequest{Prompt: prompt, Images: images,
			Sampling: f.sampling(), MaxTokens: f.maxTokens, Stop: f.stop}, out.event)
	}
	parts := make([]chat.Part, 0, len(images)+1)
	for range images {
		parts = append(parts, chat.Part{Type: "image"})
	}
	parts = append(parts, chat.Part{Type: "text", Text: prompt})
	return e.Chat(cmd.Context(), engine.ChatRequest{Messages: []chat.Message{{Role: "user", Content: chat.Parts(parts...)}},
		Images: images, System: f.system, Think: f.think, Sampling: f.sampling(), MaxTokens: f.maxTokens, Stop: f.stop}, out.event)
}
