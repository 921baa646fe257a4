package sdapi

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// Response is txt2img's and img2img's answer.
type Response struct {
	Images     []string       `json:"images"`
	Parameters map[string]any `json:"parameters"`
	Info       string         `json:"info"` // a JSON document in a string, as A1111 sends it
}

// Info is what A1111 puts (as JSON text) in a response's "info".
type Info struct {
	Prompt                string         `json:"prompt"`
	AllPrompts            []string       `json:"all_prompts"`
	NegativePrompt        string         `json:"negative_prompt"`
	AllNegativePrompts    []string       `json:"all_negative_prompts"`
	Seed                  int64          `json:"seed"`
	AllSeeds              []int64        `json:"all_seeds"`
	Subseed               int64          `json:"subseed"`
	AllSubseeds           []int64        `json:"all_subseeds"`
	SubseedStrength       float64        `json:"subseed_strength"`
	Width                 int            `json:"width"`
	Height                int            `json:"height"`
	SamplerName           string         `json:"sampler_name"`
	CFGScale              float64        `json:"cfg_scale"`
	Steps                 int            `json:"steps"`
	BatchSize             int            `json:"batch_size"`
	RestoreFaces          bool           `json:"restore_faces"`
	FaceRestorationModel  *string        `json:"face_restoration_model"`
	SDModelName           string         `json:"sd_model_name"`
	SDModelHash           string         `json:"sd_model_hash"`
	SDVAEName             *string        `json:"sd_vae_name"`
	SDVAEHash             *string        `json:"sd_vae_hash"`
	SeedResizeFromW       int            `json:"seed_resize_from_w"`
	SeedResizeFromH       int            `json:"seed_resize_from_h"`
	DenoisingStrength     *float64       `json:"denoising_strength"`
	ExtraGenerationParams map[string]any `json:"extra_generation_params"`
	IndexOfFirstImage     int            `json:"index_of_first_image"`
	Infotexts             []string       `json:"infotexts"`
	Styles                []string       `json:"styles"`
	JobTimestamp          string         `json:"job_timestamp"`
	ClipSkip              int            `json:"clip_skip"`
	IsUsingInpainting     bool           `json:"is_using_inpainting_conditioning"`
	Version               string         `json:"version"`
}

// NewInfo fills the fields every response has from the request; the
// caller adds seeds, infotexts and the model.
func NewInfo(r *Request, now time.Time) Info {
	in := Info{
		Prompt: r.Prompt, NegativePrompt: r.Negative, Subseed: r.Subseed, SubseedStrength: r.SubseedStrength,
		Width: r.Width, Height: r.Height, SamplerName: r.Sampler, CFGScale: r.CFG, Steps: r.Steps,
		BatchSize: r.BatchSize, SeedResizeFromW: -1, SeedResizeFromH: -1, ExtraGenerationParams: map[string]any{},
		Styles: append([]string{}, r.Styles...), JobTimestamp: now.Format("20060102150405"), ClipSkip: max(r.ClipSkip, 1),
	}
	if r.Img2Img {
		d := r.Denoise
		in.DenoisingStrength = &d
	}
	return in
}

// EncodeResponse builds the JSON answer from PNG files (already carrying
// their infotext chunk). With send_images false the list is empty.
func EncodeResponse(r *Request, pngs [][]byte, info Info) ([]byte, error) {
	resp := Response{Images: []string{}, Parameters: r.Echo}
	if resp.Parameters == nil {
		resp.Parameters = map[string]any{}
	}
	if r.SendImages {
		for _, p := range pngs {
			resp.Images = append(resp.Images, base64.StdEncoding.EncodeToString(p))
		}
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	resp.Info = string(b)
	return json.Marshal(resp)
}

// Progress is /sdapi/v1/progress's answer.
type Progress struct {
	ID           string  `json:"id,omitempty"`
	Progress     float64 `json:"progress"`
	EtaRelative  float64 `json:"eta_relative"`
	State        State   `json:"state"`
	CurrentImage *string `json:"current_image"`
	Textinfo     *string `json:"textinfo"`
}

// State is the "state" of a progress answer.
type State struct {
	Skipped       bool   `json:"skipped"`
	Interrupted   bool   `json:"interrupted"`
	Job           string `json:"job"`
	JobCount      int    `json:"job_count"`
	JobTimestamp  string `json:"job_timestamp"`
	JobNo         int    `json:"job_no"`
	SamplingStep  int    `json:"sampling_step"`
	SamplingSteps int    `json:"sampling_steps"`
}

// ProgressOf computes A1111's progress fraction and ETA: progress =
// (steps·job_no + step) / (steps·job_count), eta = elapsed/progress −
// elapsed, rounded to 0.01 as A1111 does.
func ProgressOf(s State, elapsed time.Duration) (progress, eta float64) {
	if s.JobCount == 0 || s.SamplingSteps == 0 {
		return 0, 0
	}
	p := float64(s.SamplingSteps*s.JobNo+s.SamplingStep) / float64(s.SamplingSteps*s.JobCount)
	p = min(p, 1)
	if p > 0 {
		eta = elapsed.Seconds()/p - elapsed.Seconds()
	}
	return float64(int(p*100+0.5)) / 100, eta
}

// Sampler is an entry of /sdapi/v1/samplers.
type Sampler struct {
	Name    string            `json:"name"`
	Aliases []string          `json:"aliases"`
	Options map[string]string `json:"options"`
}

// Scheduler is an entry of /sdapi/v1/schedulers (A1111's shape).
type Scheduler struct {
	Name           string   `json:"name"`
	Label          string   `json:"label"`
	Aliases        []string `json:"aliases"`
	DefaultRho     float64  `json:"default_rho"`
	NeedInnerModel bool     `json:"need_inner_model"`
}

// Model is an entry of /sdapi/v1/sd-models.
type Model struct {
	Title     string  `json:"title"`
	ModelName string  `json:"model_name"`
	Hash      *string `json:"hash"`
	SHA256    *string `json:"sha256"`
	Filename  string  `json:"filename"`
	Config    *string `json:"config"`
	Type      string  `json:"type,omitempty"`
}

// Upscaler is an entry of /sdapi/v1/upscalers.
type Upscaler struct {
	Name      string   `json:"name"`
	ModelName *string  `json:"model_name"`
	ModelPath *string  `json:"model_path"`
	ModelURL  *string  `json:"model_url"`
	Scale     *float64 `json:"scale"`
}

// PNGInfo is /sdapi/v1/png-info's answer.
type PNGInfo struct {
	Info       string            `json:"info"`
	Items      map[string]string `json:"items"`
	Parameters map[string]any    `json:"parameters"`
}
