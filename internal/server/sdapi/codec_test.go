package sdapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var lim = Limits{MaxImageBytes: 1 << 20, MaxSteps: 150, MaxBatch: 16, MaxPixels: 2048 * 2048}

// A body shaped like what the A1111 web UI's API clients send (many
// fields the server does not use, nulls, numbers as floats).
const a1111Body = `{
  "prompt": "a photo of a cat", "negative_prompt": "blurry", "styles": [],
  "seed": 42, "subseed": -1, "subseed_strength": 0, "seed_resize_from_h": -1, "seed_resize_from_w": -1,
  "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2, "n_iter": 1, "steps": 25,
  "cfg_scale": 7.5, "width": 512, "height": 768, "restore_faces": false, "tiling": false,
  "do_not_save_samples": false, "do_not_save_grid": false, "eta": null, "denoising_strength": null,
  "s_min_uncond": 0, "s_churn": 0, "s_tmax": null, "s_tmin": 0, "s_noise": 1,
  "override_settings": {"sd_model_checkpoint": "sd15", "CLIP_stop_at_last_layers": 2},
  "override_settings_restore_afterwards": true, "refiner_checkpoint": null, "refiner_switch_at": null,
  "disable_extra_networks": false, "comments": {}, "enable_hr": false, "firstphase_width": 0,
  "firstphase_height": 0, "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 0,
  "hr_resize_x": 0, "hr_resize_y": 0, "hr_checkpoint_name": null, "hr_sampler_name": null,
  "hr_prompt": "", "hr_negative_prompt": "", "sampler_index": "Euler", "script_name": null,
  "script_args": [], "send_images": true, "save_images": false, "alwayson_scripts": {}, "infotext": null
}`

func TestDecodeA1111Body(t *testing.T) {
	r, err := Decode([]byte(a1111Body), false, lim)
	if err != nil {
		t.Fatal(err)
	}
	if r.Prompt != "a photo of a cat" || r.Negative != "blurry" || r.Seed != 42 || r.Steps != 25 || r.CFG != 7.5 ||
		r.Width != 512 || r.Height != 768 || r.BatchSize != 2 || r.Sampler != "DPM++ 2M" || r.Scheduler != "Karras" ||
		r.Model != "sd15" || r.ClipSkip != 2 || !r.SendImages || r.DenoiseGiven {
		t.Fatalf("decoded %+v", r)
	}
	if _, ok := r.Echo["alwayson_scripts"]; !ok {
		t.Fatal("parameters echo lost a field")
	}
}

func TestDecodeSDNextBody(t *testing.T) {
	body := `{"prompt":"x","sampler_name":"Euler a","schedulers_sigma":"karras","hr_denoising_strength":0.4,
	  "enable_hr":true,"hr_scale":1.5,"detailer_enabled":false,"vae_type":"Full","steps":"30"}`
	r, err := Decode([]byte(body), false, lim)
	if err != nil {
		t.Fatal(err)
	}
	if r.Scheduler != "karras" || r.HRDenoise != 0.4 || !r.EnableHR || r.HRScale != 1.5 || r.Steps != 30 {
		t.Fatalf("decoded %+v", r)
	}
}

func TestDecodeImg2Img(t *testing.T) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG fake"))
	body := `{"prompt":"x","init_images":["data:image/png;base64,` + png + `"],"mask":"` + png + `",
	  "inpaint_full_res":1,"inpainting_fill":2,"inpainting_mask_invert":1,"mask_blur":8}`
	r, err := Decode([]byte(body), true, lim)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.InitImages) != 1 || string(r.InitImages[0]) != "\x89PNG fake" || string(r.Mask) != "\x89PNG fake" ||
		!r.InpaintFullRes || r.InpaintFill != 2 || !r.MaskInvert || r.MaskBlur != 8 || r.Denoise != DefaultDenoise {
		t.Fatalf("decoded %+v", r)
	}
}

func TestDecodeErrorsAreFastAPIShaped(t *testing.T) {
	cases := []struct {
		body    string
		img2img bool
		fields  []string
	}{
		{`{"steps":"many","width":true,"cfg_scale":[1]}`, false, []string{"steps", "cfg_scale"}},
		{`{"steps":-3}`, false, []string{"steps"}},
		{`{"steps":10.5}`, false, []string{"steps"}},
		{`{"batch_size":100}`, false, []string{"batch_size"}},
		{`{"width":100000,"height":100000}`, false, []string{"width"}},
		{`{"prompt":"x"}`, true, []string{"init_images"}},
		{`{"init_images":["!!!not base64"]}`, true, []string{"init_images[0]"}},
		{`{"init_images":"abc"}`, true, []string{"init_images"}},
		{`{"prompt":5}`, false, []string{"prompt"}},
		{`[1,2]`, false, nil},
		{`{"denoising_strength":3,"init_images":["aGk="]}`, true, []string{"denoising_strength"}},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.body), c.img2img, lim)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: want a validation error, got %v", c.body, err)
		}
		b, _ := json.Marshal(ve)
		if !strings.HasPrefix(string(b), `{"detail":[{"loc":["body"`) {
			t.Fatalf("%s: body %s is not FastAPI-shaped", c.body, b)
		}
		for _, f := range c.fields {
			found := false
			for _, d := range ve.Detail {
				if d.Loc[len(d.Loc)-1] == f {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no error for field %s in %s", c.body, f, b)
			}
		}
	}
}

func TestEncodeResponseInfoIsAString(t *testing.T) {
	r, err := Decode([]byte(`{"prompt":"p","seed":3}`), false, lim)
	if err != nil {
		t.Fatal(err)
	}
	info := NewInfo(r, time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	info.AllSeeds, info.Seed, info.Infotexts = []int64{3}, 3, []string{"p\nSteps: 20"}
	b, err := EncodeResponse(r, [][]byte{[]byte("png")}, info)
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Images     []string
		Parameters map[string]any
		Info       string
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Images) != 1 || resp.Images[0] != base64.StdEncoding.EncodeToString([]byte("png")) || resp.Parameters["prompt"] != "p" {
		t.Fatalf("response %s", b)
	}
	var in map[string]any
	if err := json.Unmarshal([]byte(resp.Info), &in); err != nil {
		t.Fatalf("info is not JSON text: %v", err)
	}
	if in["seed"].(float64) != 3 || in["job_timestamp"] != "20261127120000" || in["infotexts"].([]any)[0] != "p\nSteps: 20" {
		t.Fatalf("info %s", resp.Info)
	}
}

func TestProgressOf(t *testing.T) {
	p, eta := ProgressOf(State{JobCount: 2, JobNo: 1, SamplingStep: 5, SamplingSteps: 20}, 10*time.Second)
	if p != 0.63 || eta < 5.9 || eta > 6.1 { // (20+5)/40 = 0.625 → 0.63; 10/0.625−10 = 6
		t.Fatalf("progress %v eta %v", p, eta)
	}
	if p, eta := ProgressOf(State{}, time.Second); p != 0 || eta != 0 {
		t.Fatal("idle progress must be zero")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(a1111Body), false)
	f.Add([]byte(`{"init_images":["aGk="],"mask":"aGk="}`), true)
	f.Fuzz(func(t *testing.T, body []byte, img2img bool) {
		r, err := Decode(body, img2img, lim)
		if err == nil && (r.Steps < 1 || r.BatchSize < 1) {
			t.Fatalf("accepted invalid request %+v", r)
		}
	})
}

// TestUnsupportedFields: SD.Next features mica cannot honour are refused
// by name (422) when set, and accepted at their defaults, as clients send
// them on every request.
func TestUnsupportedFields(t *testing.T) {
	defaults := `{"prompt":"x","detailer_enabled":false,"ip_adapter":[],"control_units":null,"face":{},"extra":{},
	  "hdr_mode":0,"hdr_clamp":false,"hdr_boundary":4,"grading_gamma":1.0,"grading_color_temp":6500,"grading_lut_file":"",
	  "vae_type":"Full","cfg_end":1,"cfg_rescale":0,"refiner_start":0,"tiling":false,"restore_faces":false,
	  "script_name":"None","alwayson_scripts":{},"hr_checkpoint_name":"Use same checkpoint","detailer_steps":10}`
	if _, err := Decode([]byte(defaults), false, lim); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for field, val := range map[string]string{
		"detailer_enabled": "true", "ip_adapter": `[{"adapter":"Base","images":["x"]}]`,
		"control_units": `[{"model":"canny"}]`, "face": `{"mode":"FaceID"}`, "hdr_mode": "1",
		"grading_gamma": "1.2", "grading_color_temp": "5000", "vae_type": `"Tiny"`, "cfg_rescale": "0.7",
		"tiling": "true", "restore_faces": "true", "alwayson_scripts": `{"ADetailer":{"args":[]}}`,
		"script_name": `"x/y/z plot"`, "hidiffusion": "true", "init_control": `["abc"]`,
	} {
		_, err := Decode([]byte(`{"prompt":"x","`+field+`":`+val+`}`), false, lim)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Detail) != 1 || ve.Detail[0].Loc[1] != field ||
			ve.Detail[0].Type != "value_error.unsupported" || !strings.Contains(ve.Detail[0].Msg, "not supported") {
			t.Errorf("%s=%s: %v", field, val, err)
		}
	}
}

// TestRefinerFields: A1111's refiner_checkpoint and refiner_switch_at are
// read ("None" and null mean none); SD.Next's refiner pass (refiner_start,
// override_settings.sd_model_refiner) is refused by name.
func TestRefinerFields(t *testing.T) {
	r, err := Decode([]byte(`{"prompt":"x","refiner_checkpoint":"xl-refiner.safetensors [0123456789]","refiner_switch_at":0.6,"refiner_steps":20}`), false, lim)
	if err != nil {
		t.Fatal(err)
	}
	if r.RefinerCheckpoint != "xl-refiner.safetensors [0123456789]" || r.RefinerSwitchAt != 0.6 {
		t.Errorf("refiner %q at %v", r.RefinerCheckpoint, r.RefinerSwitchAt)
	}
	for _, none := range []string{`"None"`, `""`, `null`, `" none "`} {
		r, err := Decode([]byte(`{"prompt":"x","refiner_checkpoint":`+none+`,"refiner_switch_at":7}`), false, lim)
		if err != nil || r.RefinerCheckpoint != "" {
			t.Errorf("refiner_checkpoint %s: %q, %v", none, r.RefinerCheckpoint, err)
		}
	}
	for body, field := range map[string]string{
		`{"refiner_checkpoint":"r","refiner_switch_at":1.5}`:      "refiner_switch_at",
		`{"refiner_checkpoint":"r","refiner_switch_at":-0.2}`:     "refiner_switch_at",
		`{"refiner_checkpoint":3}`:                                "refiner_checkpoint",
		`{"refiner_start":0.8}`:                                   "refiner_start",
		`{"override_settings":{"sd_model_refiner":"xl-refiner"}}`: "override_settings",
	} {
		_, err := Decode([]byte(body), false, lim)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Detail) != 1 || ve.Detail[0].Loc[1] != field {
			t.Errorf("%s: %v, want a 422 naming %s", body, err, field)
		} else if field == "refiner_start" && !strings.Contains(ve.Detail[0].Msg, "refiner_checkpoint") {
			t.Errorf("%s: %s does not point to refiner_checkpoint", body, ve.Detail[0].Msg)
		}
	}
}
