package unet

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"mica/internal/models/sd/internal/nn"
	"mica/internal/testenv"
)

// checkpointShapes reads a reference tensors.json: name → shape.
func checkpointShapes(t *testing.T, folder string) map[string][]int {
	t.Helper()
	raw, err := os.ReadFile(testenv.Shared(t, "reference", folder, "tensors.json"))
	if err != nil {
		t.Skip(err)
	}
	var list []struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for _, e := range list {
		out[e.Name] = e.Shape
	}
	return out
}

// TestRealCheckpointShapes detects SD 1.5's and SDXL base's UNet
// configurations from their real tensor shapes and checks that Load asks
// for exactly the UNet tensors the checkpoints hold, no more, no fewer.
func TestRealCheckpointShapes(t *testing.T) {
	const prefix = "model.diffusion_model."
	for _, tc := range []struct {
		folder string
		family Family
		want   Config
	}{
		{"sd", SD1, Config{Family: SD1, InChannels: 4, OutChannels: 4, ModelChannels: 320, ChannelMult: []int{1, 2, 4, 4},
			NumResBlocks: 2, Depth: []int{1, 1, 1, 0}, MiddleDepth: 1, ContextDim: 768}},
		{"sdxl", SDXL, Config{Family: SDXL, InChannels: 4, OutChannels: 4, ModelChannels: 320, ChannelMult: []int{1, 2, 4},
			NumResBlocks: 2, Depth: []int{0, 2, 10}, MiddleDepth: 10, ContextDim: 2048, ADMDim: 2816, LinearProj: true}},
	} {
		t.Run(tc.folder, func(t *testing.T) {
			shapes := checkpointShapes(t, tc.folder)
			src := nn.NewShapeSource(shapes)
			cfg, err := DetectConfig(src, prefix, tc.family)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tc.want) {
				t.Fatalf("DetectConfig = %+v\nwant %+v", cfg, tc.want)
			}
			if _, err := Load(src, prefix, cfg); err != nil {
				t.Fatal(err)
			}
			if extra := src.Unasked(prefix); len(extra) > 0 {
				t.Errorf("%d checkpoint tensors not bound, e.g. %v", len(extra), extra[:min(5, len(extra))])
			}
			n := 0
			for k := range src.Asked {
				if strings.HasPrefix(k, prefix) {
					n++
				}
			}
			t.Logf("%d UNet tensors bound", n)
		})
	}
}

// TestLoadReportsEveryProblem: a checkpoint with a missing and a
// mis-shaped tensor gives one error naming both.
func TestLoadReportsEveryProblem(t *testing.T) {
	shapes := checkpointShapes(t, "sd")
	delete(shapes, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight")
	shapes["model.diffusion_model.output_blocks.3.0.skip_connection.weight"] = []int{1280, 2560, 3, 3}
	src := nn.NewShapeSource(shapes)
	_, err := Load(src, "model.diffusion_model.", Config{Family: SD1, InChannels: 4, OutChannels: 4, ModelChannels: 320,
		ChannelMult: []int{1, 2, 4, 4}, NumResBlocks: 2, Depth: []int{1, 1, 1, 0}, MiddleDepth: 1, ContextDim: 768})
	if err == nil {
		t.Fatal("Load accepted a broken checkpoint")
	}
	for _, want := range []string{"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight: missing", "output_blocks.3.0.skip_connection.weight has shape [1280 2560 3 3], want [1280 2560 1 1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
