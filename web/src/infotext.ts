// A1111's infotext (the PNG "parameters" text) → the studio's fields.
//
//   prompt (may span lines)
//   Negative prompt: … (may span lines)
//   Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, …

export interface Params {
  prompt: string;
  negative: string;
  sampler: string;
  scheduler: string;
  steps: number;
  cfg: number;
  width: number;
  height: number;
  seed: number;
  batch: number;
  iterations: number;
  model: string;
  denoise: number;
  maskBlur: number;
  inpaintFill: number;
  hires: boolean;
  hrScale: number;
  hrSteps: number;
  hrDenoise: number;
  clipSkip: number;
  // refiner is the SDXL refiner checkpoint's name ('' for none) and
  // refinerSwitch the fraction of the steps done before it takes over.
  refiner: string;
  refinerSwitch: number;
}

export const defaults: Params = {
  prompt: '',
  negative: '',
  sampler: 'Euler a',
  scheduler: 'automatic',
  steps: 20,
  cfg: 7,
  width: 512,
  height: 512,
  seed: -1,
  batch: 1,
  iterations: 1,
  model: '',
  denoise: 0.75,
  maskBlur: 4,
  inpaintFill: 1,
  hires: false,
  hrScale: 2,
  hrSteps: 0,
  hrDenoise: 0.5,
  clipSkip: 1,
  refiner: '',
  refinerSwitch: 0.8,
};

const pairRe = /\s*([\w][\w \-/]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)/g;

// pairs parses the last line's "Key: value, …" list (values may be quoted).
export function pairs(line: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of line.matchAll(pairRe)) {
    let v = m[2].trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) {
      try {
        v = JSON.parse(v);
      } catch {
        v = v.slice(1, -1);
      }
    }
    out.set(m[1].trim(), v);
  }
  return out;
}

function num(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

// parseInfotext reads the fields an infotext names; missing ones are left
// out, so the result can be spread over the current settings.
export function parseInfotext(text: string): Partial<Params> {
  const lines = text.replace(/\r\n?/g, '\n').trim().split('\n');
  const out: Partial<Params> = {};
  let kv = new Map<string, string>();
  const last = lines[lines.length - 1] ?? '';
  const lastPairs = pairs(last);
  if (lines.length > 0 && lastPairs.size >= 3 && lastPairs.has('Steps')) {
    kv = lastPairs;
    lines.pop();
  }
  const neg = lines.findIndex((l) => l.startsWith('Negative prompt:'));
  if (neg >= 0) {
    out.prompt = lines.slice(0, neg).join('\n').trim();
    out.negative = [lines[neg].slice('Negative prompt:'.length), ...lines.slice(neg + 1)].join('\n').trim();
  } else {
    out.prompt = lines.join('\n').trim();
  }
  const set = <K extends keyof Params>(k: K, v: Params[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('steps', num(kv.get('Steps')));
  set('sampler', kv.get('Sampler'));
  set('scheduler', kv.get('Schedule type'));
  set('cfg', num(kv.get('CFG scale')));
  set('seed', num(kv.get('Seed')));
  set('model', kv.get('Model'));
  set('denoise', num(kv.get('Denoising strength')));
  set('clipSkip', num(kv.get('Clip skip')));
  set('maskBlur', num(kv.get('Mask blur')));
  const size = kv.get('Size')?.match(/^(\d+)x(\d+)$/);
  if (size) {
    out.width = Number(size[1]);
    out.height = Number(size[2]);
  }
  if (kv.has('Hires upscale') || kv.has('Hires steps')) {
    out.hires = true;
    set('hrScale', num(kv.get('Hires upscale')));
    set('hrSteps', num(kv.get('Hires steps')));
    set('hrDenoise', num(kv.get('Denoising strength')));
    delete out.denoise;
  }
  if (kv.size > 0) {
    // A parameters line without "Refiner" was made without one: recalling
    // it turns the refiner off. A1111 writes the refiner as its short
    // title, "NAME [hash]"; the picker knows it by NAME.
    const r = kv.get('Refiner');
    out.refiner = r === undefined || /^none$/i.test(r.trim()) ? '' : refinerName(r);
    set('refinerSwitch', num(kv.get('Refiner switch at')));
  }
  const batch = num(kv.get('Batch size'));
  if (batch !== undefined) out.batch = batch;
  return out;
}

// refinerName is a checkpoint's name from its title ("NAME [hash]" or
// "NAME.safetensors [hash]").
export function refinerName(title: string): string {
  return title.trim().replace(/\s*\[[0-9a-fA-F]+\]$/, '').replace(/\.(safetensors|ckpt)$/i, '');
}

// formatInfotext writes fields back as an infotext (for copying).
export function formatInfotext(p: Params): string {
  const kv: string[] = [`Steps: ${p.steps}`, `Sampler: ${p.sampler}`];
  if (p.scheduler && p.scheduler !== 'automatic') kv.push(`Schedule type: ${p.scheduler}`);
  kv.push(`CFG scale: ${p.cfg}`, `Seed: ${p.seed}`, `Size: ${p.width}x${p.height}`);
  if (p.model) kv.push(`Model: ${p.model}`);
  if (p.clipSkip > 1) kv.push(`Clip skip: ${p.clipSkip}`);
  if (p.refiner) kv.push(`Refiner: ${p.refiner}`, `Refiner switch at: ${p.refinerSwitch}`);
  let s = p.prompt;
  if (p.negative) s += `\nNegative prompt: ${p.negative}`;
  return `${s}\n${kv.join(', ')}`;
}
