// Package sdapi is the codec of the A1111 / SD.Next image API
// (/sdapi/v1/txt2img, img2img and friends): it decodes request bodies in
// either dialect's field names into one Request, with FastAPI-style
// validation errors ({"detail": [{"loc", "msg", "type"}]}, HTTP 422), and
// encodes responses the way those servers do ({images, parameters, info}
// with info a JSON string). It knows nothing of HTTP serving or models.
package sdapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Request is a decoded txt2img or img2img request.
type Request struct {
	Img2Img bool

	Prompt, Negative string
	Styles           []string
	Seed, Subseed    int64
	SubseedStrength  float64
	Width, Height    int // 0: the model's native size
	Steps            int
	CFG              float64
	ClipSkip         int
	Sampler          string
	Scheduler        string
	BatchSize        int
	NIter            int

	EnableHR       bool
	HRScale        float64
	HRUpscaler     string
	HRResizeX      int
	HRResizeY      int
	HRSteps        int
	HRDenoise      float64 // 0: not given
	Denoise        float64 // denoising_strength; 0: not given
	DenoiseGiven   bool
	InitImages     [][]byte // decoded image file bytes
	Mask           []byte
	MaskBlur       int
	InpaintFullRes bool
	Padding        int
	MaskInvert     bool
	InpaintFill    int // 0 fill, 1 original, 2 latent noise, 3 latent nothing
	ResizeMode     int

	// RefinerCheckpoint is A1111's refiner_checkpoint: a checkpoint name or
	// title ("name.safetensors [hash]"); "" when none ("None" and null
	// mean none). RefinerSwitchAt is refiner_switch_at, 0 when not given
	// (the pipeline's default, 0.8, as A1111's UI).
	RefinerCheckpoint string
	RefinerSwitchAt   float64

	Model            string // override_settings.sd_model_checkpoint
	OverrideSettings map[string]any
	SendImages       bool
	SaveImages       bool
	RNG              string // override_settings.randn_source ("GPU"/"CPU")

	// Echo is the request as received (long strings elided), for the
	// response's "parameters".
	Echo map[string]any
}

// Defaults are what a field not sent means (A1111's API defaults where
// they are sensible for a local tool).
const (
	DefaultSteps    = 20
	DefaultCFG      = 7.0
	DefaultSampler  = "Euler a"
	DefaultDenoise  = 0.75
	DefaultMaskBlur = 4
)

// ValidationError is a FastAPI-style 422 body.
type ValidationError struct {
	Detail []FieldError `json:"detail"`
}

// FieldError names one bad field.
type FieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

func (e *ValidationError) Error() string {
	var parts []string
	for _, d := range e.Detail {
		parts = append(parts, fmt.Sprintf("%v: %s", d.Loc[len(d.Loc)-1], d.Msg))
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// fields decodes a JSON object field by field, collecting type errors.
type fields struct {
	raw  map[string]json.RawMessage
	errs []FieldError
}

func (f *fields) bad(name, msg, typ string) {
	f.errs = append(f.errs, FieldError{Loc: []any{"body", name}, Msg: msg, Type: typ})
}

func (f *fields) has(name string) bool {
	v, ok := f.raw[name]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func (f *fields) str(name string, dst *string) {
	if !f.has(name) {
		return
	}
	if err := json.Unmarshal(f.raw[name], dst); err != nil {
		f.bad(name, "str type expected", "type_error.str")
	}
}

func (f *fields) number(name string) (float64, bool) {
	if !f.has(name) {
		return 0, false
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(f.raw[name]))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		f.bad(name, "value is not a valid number", "type_error.float")
		return 0, false
	}
	switch x := v.(type) {
	case json.Number:
		n, err := x.Float64()
		if err != nil {
			f.bad(name, "value is not a valid number", "type_error.float")
			return 0, false
		}
		return n, true
	case string: // pydantic coerces numeric strings
		var n float64
		if _, err := fmt.Sscan(strings.TrimSpace(x), &n); err != nil {
			f.bad(name, "value is not a valid number", "type_error.float")
			return 0, false
		}
		return n, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	f.bad(name, "value is not a valid number", "type_error.float")
	return 0, false
}

func (f *fields) integer(name string, dst *int) {
	if n, ok := f.number(name); ok {
		if n != math.Trunc(n) || math.Abs(n) > 1<<31 {
			f.bad(name, "value is not a valid integer", "type_error.integer")
			return
		}
		*dst = int(n)
	}
}

func (f *fields) int64(name string, dst *int64) {
	if n, ok := f.number(name); ok {
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			f.bad(name, "value is not a valid integer", "type_error.integer")
			return
		}
		*dst = int64(n)
	}
}

func (f *fields) float(name string, dst *float64) bool {
	if n, ok := f.number(name); ok {
		*dst = n
		return true
	}
	return false
}

func (f *fields) boolean(name string, dst *bool) {
	if !f.has(name) {
		return
	}
	var v any
	if err := json.Unmarshal(f.raw[name], &v); err != nil {
		f.bad(name, "value could not be parsed to a boolean", "type_error.bool")
		return
	}
	switch x := v.(type) {
	case bool:
		*dst = x
	case float64:
		*dst = x != 0
	case string:
		switch strings.ToLower(x) {
		case "true", "1", "yes", "on":
			*dst = true
		case "false", "0", "no", "off":
			*dst = false
		default:
			f.bad(name, "value could not be parsed to a boolean", "type_error.bool")
		}
	default:
		f.bad(name, "value could not be parsed to a boolean", "type_error.bool")
	}
}

func (f *fields) strings(name string, dst *[]string) {
	if !f.has(name) {
		return
	}
	if err := json.Unmarshal(f.raw[name], dst); err != nil {
		f.bad(name, "value is not a valid list of strings", "type_error.list")
	}
}

// image decodes a base64 image field: raw base64 or a data: URL.
func (f *fields) image(name string, s string, limit int) []byte {
	if i := strings.Index(s, ";base64,"); strings.HasPrefix(s, "data:") && i >= 0 {
		s = s[i+len(";base64,"):]
	}
	s = strings.TrimSpace(s)
	if len(s) > limit*4/3+4 {
		f.bad(name, fmt.Sprintf("image is larger than the %d-byte limit", limit), "value_error.size")
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err != nil {
			f.bad(name, "invalid base64 image data", "value_error.base64")
			return nil
		}
	}
	if len(b) == 0 {
		f.bad(name, "empty image", "value_error.image")
		return nil
	}
	return b
}

// Limits bound a request.
type Limits struct {
	MaxImageBytes int // per decoded image
	MaxSteps      int
	MaxBatch      int
	MaxPixels     int
}

// Decode parses a txt2img (img2img false) or img2img body. Unknown fields
// are ignored, as both servers do; wrong types, impossible values and
// features mica cannot honour set to anything but their default
// (unsupported.go: SD.Next's detailer, ControlNet, IP-Adapter, …) are a
// *ValidationError.
func Decode(body []byte, img2img bool, lim Limits) (*Request, error) {
	f := &fields{}
	if err := json.Unmarshal(body, &f.raw); err != nil {
		return nil, &ValidationError{Detail: []FieldError{{Loc: []any{"body"}, Msg: "body is not a JSON object: " + err.Error(), Type: "value_error.jsondecode"}}}
	}
	r := &Request{Img2Img: img2img, Seed: -1, Subseed: -1, Steps: DefaultSteps, CFG: DefaultCFG, Sampler: DefaultSampler,
		BatchSize: 1, NIter: 1, HRScale: 2, MaskBlur: DefaultMaskBlur, SendImages: true, InpaintFill: 1, InpaintFullRes: false}
	f.str("prompt", &r.Prompt)
	f.str("negative_prompt", &r.Negative)
	f.strings("styles", &r.Styles)
	f.int64("seed", &r.Seed)
	f.int64("subseed", &r.Subseed)
	f.float("subseed_strength", &r.SubseedStrength)
	f.integer("width", &r.Width)
	f.integer("height", &r.Height)
	f.integer("steps", &r.Steps)
	f.float("cfg_scale", &r.CFG)
	f.integer("clip_skip", &r.ClipSkip)
	f.str("sampler_name", &r.Sampler)
	if !f.has("sampler_name") {
		f.str("sampler_index", &r.Sampler)
	}
	f.str("scheduler", &r.Scheduler)
	if r.Scheduler == "" {
		f.str("schedulers_sigma", &r.Scheduler) // SD.Next
	}
	f.integer("batch_size", &r.BatchSize)
	f.integer("n_iter", &r.NIter)
	f.boolean("enable_hr", &r.EnableHR)
	f.float("hr_scale", &r.HRScale)
	f.str("hr_upscaler", &r.HRUpscaler)
	f.integer("hr_resize_x", &r.HRResizeX)
	f.integer("hr_resize_y", &r.HRResizeY)
	f.integer("hr_second_pass_steps", &r.HRSteps)
	f.float("hr_denoising_strength", &r.HRDenoise) // SD.Next
	r.DenoiseGiven = f.float("denoising_strength", &r.Denoise)
	f.str("refiner_checkpoint", &r.RefinerCheckpoint)
	if n := strings.TrimSpace(r.RefinerCheckpoint); n == "" || strings.EqualFold(n, "none") {
		r.RefinerCheckpoint = ""
	}
	f.float("refiner_switch_at", &r.RefinerSwitchAt)
	f.boolean("send_images", &r.SendImages)
	f.boolean("save_images", &r.SaveImages)
	if f.has("override_settings") {
		if err := json.Unmarshal(f.raw["override_settings"], &r.OverrideSettings); err != nil {
			f.bad("override_settings", "value is not a valid dict", "type_error.dict")
		}
	}
	if s, ok := r.OverrideSettings["sd_model_checkpoint"].(string); ok {
		r.Model = s
	}
	if v, ok := r.OverrideSettings["sd_model_refiner"]; ok && !isOff(v, "") {
		f.bad("override_settings", "sd_model_refiner (SD.Next's refiner pass) is not supported by mica: use A1111's refiner_checkpoint and refiner_switch_at", "value_error.unsupported")
	}
	if s, ok := r.OverrideSettings["randn_source"].(string); ok {
		r.RNG = s
	}
	if v, ok := r.OverrideSettings["CLIP_stop_at_last_layers"].(float64); ok && r.ClipSkip == 0 {
		r.ClipSkip = int(v)
	}
	if img2img {
		var imgs []string
		if f.has("init_images") {
			if err := json.Unmarshal(f.raw["init_images"], &imgs); err != nil {
				f.bad("init_images", "value is not a valid list of base64 strings", "type_error.list")
			}
		}
		for i, s := range imgs {
			if b := f.image(fmt.Sprintf("init_images[%d]", i), s, lim.MaxImageBytes); b != nil {
				r.InitImages = append(r.InitImages, b)
			}
		}
		if len(imgs) == 0 && f.has("init_images") || !f.has("init_images") {
			f.bad("init_images", "field required: img2img needs at least one init image", "value_error.missing")
		}
		var mask string
		f.str("mask", &mask)
		if mask != "" {
			r.Mask = f.image("mask", mask, lim.MaxImageBytes)
		}
		f.integer("mask_blur", &r.MaskBlur)
		f.boolean("inpaint_full_res", &r.InpaintFullRes)
		f.integer("inpaint_full_res_padding", &r.Padding)
		var inv int
		f.integer("inpainting_mask_invert", &inv)
		r.MaskInvert = inv != 0
		f.integer("inpainting_fill", &r.InpaintFill)
		f.integer("resize_mode", &r.ResizeMode)
		if !r.DenoiseGiven {
			r.Denoise = DefaultDenoise
		}
	}
	r.validate(f, lim)
	f.checkUnsupported()
	if len(f.errs) > 0 {
		return nil, &ValidationError{Detail: f.errs}
	}
	r.Echo = echo(f.raw)
	return r, nil
}

func (r *Request) validate(f *fields, lim Limits) {
	if r.Steps < 1 || (lim.MaxSteps > 0 && r.Steps > lim.MaxSteps) {
		f.bad("steps", fmt.Sprintf("steps must be between 1 and %d", lim.MaxSteps), "value_error.number.not_in_range")
	}
	if r.Width < 0 || r.Height < 0 || r.Width > 16384 || r.Height > 16384 {
		f.bad("width", "width and height must be between 64 and 16384", "value_error.number.not_in_range")
	} else if lim.MaxPixels > 0 && r.Width*r.Height > lim.MaxPixels {
		f.bad("width", fmt.Sprintf("%dx%d is over the %d-pixel limit", r.Width, r.Height, lim.MaxPixels), "value_error.number.not_in_range")
	}
	if r.CFG < 0 || r.CFG > 100 {
		f.bad("cfg_scale", "cfg_scale must be between 0 and 100", "value_error.number.not_in_range")
	}
	if r.BatchSize < 1 || r.NIter < 1 || (lim.MaxBatch > 0 && r.BatchSize*r.NIter > lim.MaxBatch) {
		f.bad("batch_size", fmt.Sprintf("batch_size × n_iter must be between 1 and %d", lim.MaxBatch), "value_error.number.not_in_range")
	}
	if r.SubseedStrength < 0 || r.SubseedStrength > 1 {
		f.bad("subseed_strength", "subseed_strength must be between 0 and 1", "value_error.number.not_in_range")
	}
	if r.ClipSkip < 0 || r.ClipSkip > 12 {
		f.bad("clip_skip", "clip_skip must be between 1 and 12", "value_error.number.not_in_range")
	}
	if r.Img2Img && (r.Denoise < 0 || r.Denoise > 1) {
		f.bad("denoising_strength", "denoising_strength must be between 0 and 1", "value_error.number.not_in_range")
	}
	if r.MaskBlur < 0 || r.MaskBlur > 64 {
		f.bad("mask_blur", "mask_blur must be between 0 and 64", "value_error.number.not_in_range")
	}
	if r.InpaintFill < 0 || r.InpaintFill > 3 {
		f.bad("inpainting_fill", "inpainting_fill must be 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)", "value_error.number.not_in_range")
	}
	if r.EnableHR && (r.HRScale < 1 || r.HRScale > 8) && r.HRResizeX == 0 {
		f.bad("hr_scale", "hr_scale must be between 1 and 8", "value_error.number.not_in_range")
	}
	if r.RefinerCheckpoint != "" && r.RefinerSwitchAt != 0 && !(r.RefinerSwitchAt > 0 && r.RefinerSwitchAt <= 1) {
		f.bad("refiner_switch_at", "refiner_switch_at must be in (0, 1]: the fraction of the sampling done before the refiner takes over", "value_error.number.not_in_range")
	}
	if r.HRSteps < 0 || (lim.MaxSteps > 0 && r.HRSteps > lim.MaxSteps) {
		f.bad("hr_second_pass_steps", fmt.Sprintf("hr_second_pass_steps must be between 0 and %d", lim.MaxSteps), "value_error.number.not_in_range")
	}
}

// echo is the request as received, with base64 images and long strings
// shortened, for the response's "parameters" (as the servers elide them).
func echo(raw map[string]json.RawMessage) map[string]any {
	out := map[string]any{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v any
		if json.Unmarshal(raw[k], &v) != nil {
			continue
		}
		out[k] = elide(v)
	}
	return out
}

func elide(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) > 256 {
			return x[:64] + fmt.Sprintf("… (%d chars)", len(x))
		}
	case []any:
		for i := range x {
			x[i] = elide(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = elide(x[k])
		}
	}
	return v
}
