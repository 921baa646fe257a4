package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mica/internal/atomicfile"
	"mica/internal/format/pngtext"
	"mica/internal/server"
)

// genRemote runs a generation as a job of a running `mica serve` (so it
// shares the server's queue, loaded model and history), following its
// events for the progress bar, then saves the pictures.
func (g *genFlags) genRemote(cmd *cobra.Command, prompt, out string) error {
	base := strings.TrimRight(g.server, "/")
	r := g.req
	params := map[string]any{
		"prompt": prompt, "negative_prompt": r.Negative, "steps": r.Steps, "cfg_scale": r.CFG,
		"sampler_name": r.Sampler, "seed": r.Seed, "subseed": r.Subseed, "subseed_strength": r.SubseedStrength,
		"batch_size": r.BatchSize, "n_iter": r.BatchCount, "clip_skip": r.ClipSkip,
	}
	if r.Width > 0 {
		params["width"], params["height"] = r.Width, r.Height
	}
	if r.Scheduler != "" {
		params["scheduler"] = r.Scheduler
	}
	override := map[string]any{}
	if g.model != "" {
		name := filepath.Base(g.model)
		override["sd_model_checkpoint"] = strings.TrimSuffix(name, filepath.Ext(name))
	}
	if r.RNG == "cpu" {
		override["randn_source"] = "CPU"
	}
	params["override_settings"] = override
	kind := "txt2img"
	if g.initPath != "" {
		kind = "img2img"
		b, err := os.ReadFile(g.initPath)
		if err != nil {
			return err
		}
		params["init_images"] = []string{base64.StdEncoding.EncodeToString(b)}
		params["denoising_strength"] = r.Strength
		if g.maskPath != "" {
			m, err := os.ReadFile(g.maskPath)
			if err != nil {
				return err
			}
			params["mask"] = base64.StdEncoding.EncodeToString(m)
			params["mask_blur"] = r.MaskBlur
			params["inpaint_full_res"] = r.InpaintFullRes
			params["inpaint_full_res_padding"] = r.Padding
			params["inpainting_fill"] = map[string]int{"fill": 0, "original": 1, "noise": 2, "nothing": 3}[r.InpaintFill]
		}
	}
	if len(g.outpaint) > 0 {
		return fmt.Errorf("--outpaint is not available with --server yet")
	}
	if g.refiner != "" {
		name := filepath.Base(g.refiner)
		params["refiner_checkpoint"] = strings.TrimSuffix(name, filepath.Ext(name))
		params["refiner_switch_at"] = r.RefinerSwitchAt
	}
	if g.hiresScale > 0 {
		params["enable_hr"], params["hr_scale"], params["hr_second_pass_steps"] = true, g.hiresScale, g.hiresSteps
		params["hr_denoising_strength"] = g.hiresDenoise
		params["hr_upscaler"] = map[string]string{"latent": "Latent", "latent-nearest": "Latent (nearest)", "image": "Lanczos"}[g.hiresUpscaler]
	}
	body, _ := json.Marshal(map[string]any{"kind": kind, "params": params})
	var job struct {
		ID     string
		State  string
		Error  string
		Images []string
	}
	if err := g.call(cmd, http.MethodPost, base+"/mica/v1/jobs", body, &job); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "job %s queued on %s\n", job.ID, base)
	// Follow the job's events until it ends.
	req, _ := http.NewRequestWithContext(cmd.Context(), http.MethodGet, base+"/mica/v1/jobs/"+job.ID+"/events", nil)
	g.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var bar *progress
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e struct {
			Type     string
			Progress struct {
				Step  int `json:"sampling_step"`
				Steps int `json:"sampling_steps"`
				JobNo int `json:"job_no"`
				Count int `json:"job_count"`
			}
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Type != "step" {
			continue
		}
		label := fmt.Sprintf("image %d/%d", e.Progress.JobNo+1, max(e.Progress.Count, 1))
		if bar == nil || bar.label != label {
			if bar != nil {
				bar.Done()
			}
			bar = newProgress(cmd.ErrOrStderr(), label, int64(e.Progress.Steps))
			bar.unit = "it"
		}
		bar.Set(int64(e.Progress.Step))
	}
	resp.Body.Close()
	if bar != nil {
		bar.Done()
	}
	if err := cmd.Context().Err(); err != nil {
		g.call(cmd, http.MethodPost, base+"/mica/v1/jobs/"+job.ID+"/cancel", nil, nil)
		return err
	}
	if err := g.call(cmd, http.MethodGet, base+"/mica/v1/jobs/"+job.ID, nil, &job); err != nil {
		return err
	}
	if job.State != "finished" && job.State != "interrupted" {
		return fmt.Errorf("job %s %s: %s", job.ID, job.State, job.Error)
	}
	for i, u := range job.Images {
		var png []byte
		if err := g.call(cmd, http.MethodGet, base+u, nil, &png); err != nil {
			return err
		}
		path := out
		if len(job.Images) > 1 {
			ext := filepath.Ext(out)
			path = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(out, ext), i+1, ext)
		}
		if err := atomicfile.WriteFile(path, png); err != nil {
			return err
		}
		text, _ := pngtext.ReadText(bytes.NewReader(png))
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", path, text["parameters"])
	}
	return nil
}

// localServerUp reports whether a mica server answers at the default
// address (a quick /health probe).
func localServerUp() bool {
	c := &http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get("http://" + server.DefaultAddr + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (g *genFlags) authorize(req *http.Request) {
	if g.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+g.apiKey)
	}
}

// call does one request; out is a *[]byte for raw bodies or a JSON target.
func (g *genFlags) call(cmd *cobra.Command, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(cmd.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	g.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("mica server at %s: %w", g.server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Detail any }
		if json.Unmarshal(b, &e) == nil && e.Detail != nil {
			return fmt.Errorf("%s: %v", resp.Status, e.Detail)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	default:
		return json.Unmarshal(b, out)
	}
}
