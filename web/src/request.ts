// The studio's fields → the A1111 request body of an image job (what
// /mica/v1/jobs and /sdapi/v1/txt2img|img2img take).
import type { Params } from './infotext';

export type Mode = 'txt2img' | 'img2img' | 'inpaint';

// requestParams is the A1111 request for the fields.
export function requestParams(p: Params, mode: Mode, image: string, mask: string): Record<string, unknown> {
  const r: Record<string, unknown> = {
    prompt: p.prompt,
    negative_prompt: p.negative,
    sampler_name: p.sampler,
    scheduler: p.scheduler,
    steps: p.steps,
    cfg_scale: p.cfg,
    width: p.width,
    height: p.height,
    seed: p.seed,
    batch_size: p.batch,
    n_iter: p.iterations,
  };
  if (p.clipSkip > 1) r.clip_skip = p.clipSkip;
  if (p.model) r.override_settings = { sd_model_checkpoint: p.model };
  if (mode === 'txt2img' && p.hires) {
    Object.assign(r, { enable_hr: true, hr_scale: p.hrScale, hr_second_pass_steps: p.hrSteps, hr_denoising_strength: p.hrDenoise });
  }
  if (p.refiner) {
    // A1111's refiner: the checkpoint takes over for the steps after the
    // switch point (with a hires fix, in the hires pass).
    r.refiner_checkpoint = p.refiner;
    r.refiner_switch_at = p.refinerSwitch;
  }
  if (mode !== 'txt2img') {
    r.init_images = [image];
    r.denoising_strength = p.denoise;
  }
  if (mode === 'inpaint') {
    r.mask = mask;
    r.mask_blur = p.maskBlur;
    r.inpainting_fill = p.inpaintFill;
  }
  return r;
}
