package sdapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// unsupported lists fields of SD.Next (and a few of A1111) that change
// the picture in ways mica cannot do, with the value that means "off"
// (SD.Next's and A1111's defaults). Clients send many of them on every
// request, so a field is refused only when set to something else: then
// the request fails with 422 naming it, rather than silently giving a
// different picture. Fields that only tune a feature that is off (the
// detailer's steps while detailer_enabled is false) are not listed.
var unsupported = []struct {
	name, feature string
	off           any // nil: only null, false, 0, "", [] and {} are off
}{
	{"detailer_enabled", "SD.Next's detailer", false},
	{"ip_adapter", "SD.Next's IP-Adapter", nil},
	{"control_units", "SD.Next's ControlNet units", nil},
	{"init_control", "SD.Next's control images", nil},
	{"face", "SD.Next's face modes (FaceID, FaceSwap, PhotoMaker, InstantID)", nil},
	{"extra", "SD.Next's extra processing attributes", nil},
	{"hdr_mode", "SD.Next's HDR corrections", 0.0},
	{"hdr_brightness", "SD.Next's HDR corrections", 0.0},
	{"hdr_color", "SD.Next's HDR corrections", 0.0},
	{"hdr_sharpen", "SD.Next's HDR corrections", 0.0},
	{"hdr_clamp", "SD.Next's HDR corrections", false},
	{"hdr_maximize", "SD.Next's HDR corrections", false},
	{"hdr_tint_ratio", "SD.Next's HDR corrections", 0.0},
	{"grading_brightness", "SD.Next's color grading", 0.0},
	{"grading_contrast", "SD.Next's color grading", 0.0},
	{"grading_saturation", "SD.Next's color grading", 0.0},
	{"grading_hue", "SD.Next's color grading", 0.0},
	{"grading_gamma", "SD.Next's color grading", 1.0},
	{"grading_sharpness", "SD.Next's color grading", 0.0},
	{"grading_color_temp", "SD.Next's color grading", 6500.0},
	{"grading_shadows", "SD.Next's color grading", 0.0},
	{"grading_midtones", "SD.Next's color grading", 0.0},
	{"grading_highlights", "SD.Next's color grading", 0.0},
	{"grading_clahe_clip", "SD.Next's color grading", 0.0},
	{"grading_vignette", "SD.Next's color grading", 0.0},
	{"grading_grain", "SD.Next's color grading", 0.0},
	{"grading_lut_file", "SD.Next's color grading", ""},
	{"hidiffusion", "SD.Next's HiDiffusion", false},
	{"enhance_prompt", "SD.Next's prompt enhancer", false},
	{"vae_type", "SD.Next's VAE choice (only the full VAE is run)", "full"},
	{"cfg_end", "SD.Next's CFG end", 1.0},
	{"cfg_rescale", "CFG rescale", 0.0},
	{"guidance_rescale", "CFG rescale", 0.0},
	// SD.Next's refiner is a model chosen by a server option
	// (sd_model_refiner) run as a second pass of its own with refiner_steps
	// steps; it does not map onto A1111's switch within one schedule, which
	// mica does (refiner_checkpoint, refiner_switch_at). refiner_steps alone
	// only tunes that pass, which never runs without a refiner model.
	{"refiner_start", "SD.Next's refiner pass; use A1111's refiner_checkpoint and refiner_switch_at", 0.0},
	{"freeu_enabled", "FreeU", false},
	{"hypertile_unet_enabled", "HyperTile", false},
	{"hypertile_vae_enabled", "HyperTile", false},
	{"teacache_enabled", "TeaCache", false},
	{"tiling", "tiling (seamless textures)", false},
	{"restore_faces", "face restoration", false},
	{"script_name", "scripts", ""},
	{"alwayson_scripts", "always-on scripts (extensions)", nil},
	{"hr_checkpoint_name", "a separate hires checkpoint", ""},
}

// checkUnsupported adds a 422 error for each unsupported field set to a
// value other than its "off" one.
func (f *fields) checkUnsupported() {
	for _, u := range unsupported {
		raw, ok := f.raw[u.name]
		if !ok {
			continue
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&v) != nil || isOff(v, u.off) {
			continue // a malformed value of an ignored field: as absent
		}
		msg := fmt.Sprintf("%s is not supported by mica (%s): leave it out or at its default", u.name, u.feature)
		if u.off != nil {
			msg = fmt.Sprintf("%s is not supported by mica (%s): leave it out or set it to %v", u.name, u.feature, offText(u.off))
		}
		f.bad(u.name, msg, "value_error.unsupported")
	}
}

// isOff reports whether v (decoded with UseNumber) means the feature is
// off: null, the listed value, or an empty value when none is listed.
func isOff(v, off any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x && (off == nil || off == false || off == 0.0)
	case json.Number:
		n, err := x.Float64()
		if err != nil {
			return false
		}
		if o, ok := off.(float64); ok {
			return n == o
		}
		return n == 0 && (off == nil || off == false)
	case string:
		if o, ok := off.(string); ok {
			x = strings.TrimSpace(x)
			// "None" and A1111's UI label "Use same checkpoint" also mean unset.
			return strings.EqualFold(x, o) || (o == "" && (strings.EqualFold(x, "none") || strings.EqualFold(x, "use same checkpoint")))
		}
		return x == "" && off == nil
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func offText(off any) string {
	switch o := off.(type) {
	case string:
		if o == "" {
			return `""`
		}
		return fmt.Sprintf("%q", o)
	case float64:
		return fmt.Sprint(o)
	}
	return fmt.Sprint(off)
}
