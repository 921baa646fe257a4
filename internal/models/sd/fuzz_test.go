package sd

import (
	"strings"
	"testing"
)

// FuzzDiffusersNames: the name mapping takes any tensor name a folder
// holds without panicking, and maps only names of the diffusers layout.
func FuzzDiffusersNames(f *testing.F) {
	for _, s := range []string{"conv_in.weight", "down_blocks.0.resnets.1.conv1.weight", "up_blocks.2.upsamplers.0.conv.bias",
		"mid_block.attentions.0.proj_in.weight", "mid_block.resnets.9.norm1.weight", "decoder.up_blocks.0.resnets.2.conv_shortcut.weight",
		"encoder.mid_block.attentions.0.query.weight", "down_blocks.99999999999999999999.resnets.0.x", "mid_block.", "."} {
		f.Add(s)
	}
	u := &unetNames{perLevel: 3, midAttn: true, upAttn: map[int]bool{1: true}}
	f.Fuzz(func(t *testing.T, name string) {
		if got, ok := u.ldm(name); ok && strings.Contains(got, "..") && !strings.Contains(name, "..") {
			t.Errorf("%q mapped to %q", name, got)
		}
		diffusersVAEName(name)
	})
}
