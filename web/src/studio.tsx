// The image studio: txt2img, img2img and inpainting submitted as jobs to
// /mica/v1/jobs; progress, previews and results arrive as server events.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { getJSON, postJSON, type Job, type SDModel, type Sampler, type Scheduler } from './api';
import { defaults, formatInfotext, parseInfotext, type Params } from './infotext';
import { requestParams, type Mode } from './request';
import { Icon, dice, recycle } from './icons';
import { DropZone, Img, MaskEditor, Viewer, downloadImage, readDataURL, imageFrom, urlToDataURL } from './images';
import { DescribeButton, PromptTools, assistBusy, stopAssist } from './prompttools';
import { Queue } from './queue';
import { Value, fail, jobs, load, notify, previewURL, save, useValue, watchJobs } from './store';

export type { Mode };

// What the studio edits; the gallery writes here to recall settings.
export const studio = new Value<Params>(load('mica.studio', defaults));
export const studioMode = new Value<Mode>('txt2img');
export const studioImage = new Value<string>('');
studio.subscribe((p) => save('mica.studio', p));

// Jobs this page submitted, newest last.
const mine = new Value<string[]>([]);

export function applyInfotext(text: string, schedulers: Scheduler[] = []) {
  const p = parseInfotext(text);
  if (p.scheduler) {
    const s = schedulers.find((x) => x.label === p.scheduler || x.name === p.scheduler || x.aliases.includes(p.scheduler!));
    if (s) p.scheduler = s.name;
  }
  studio.set({ ...studio.get(), ...p });
}

function Num(props: { label: string; value: number; min?: number; max?: number; step?: number; onChange: (v: number) => void; slider?: boolean }) {
  return (
    <label class="num">
      <span>{props.label}</span>
      <span class="num-in">
        {props.slider && (
          <input type="range" min={props.min} max={props.max} step={props.step} value={props.value} tabIndex={-1} aria-hidden="true"
            onInput={(e) => props.onChange(Number(e.currentTarget.value))} />
        )}
        <input type="number" min={props.min} max={props.max} step={props.step} value={props.value} aria-label={props.label}
          onInput={(e) => { const v = e.currentTarget.valueAsNumber; if (!Number.isNaN(v)) props.onChange(v); }} />
      </span>
    </label>
  );
}

function eta(s: number): string {
  if (!(s > 0)) return '';
  if (s < 60) return `${Math.ceil(s)} s left`;
  return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s left`;
}

function ProgressView({ j }: { j: Job }) {
  const pct = Math.round((j.progress.progress || 0) * 100);
  const prev = previewURL(j);
  return (
    <div class="progress-view" data-state={j.state}>
      <div class="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
        <div class="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      <div class="row small">
        <span>
          {j.state === 'queued'
            ? `Waiting in the queue${j.position !== undefined ? ` (#${j.position + 1})` : ''}`
            : j.progress.textinfo || (j.progress.sampling_steps > 0 ? `Step ${j.progress.sampling_step} of ${j.progress.sampling_steps}` : 'Starting…')}
        </span>
        <span class="grow" />
        <span class="eta">{j.state === 'running' ? [`${pct}%`, eta(j.progress.eta_relative)].filter(Boolean).join(' · ') : ''}</span>
      </div>
      {prev && <Img class="preview" src={prev} alt="preview of the image being made" />}
    </div>
  );
}

export function Studio() {
  const p = useValue(studio);
  const mode = useValue(studioMode);
  const image = useValue(studioImage);
  const all = useValue(jobs);
  const myIDs = useValue(mine);
  const [mask, setMask] = useState('');
  const [samplers, setSamplers] = useState<Sampler[]>([]);
  const [schedulers, setSchedulers] = useState<Scheduler[]>([]);
  const [models, setModels] = useState<SDModel[]>([]);
  const [viewing, setViewing] = useState('');
  const [infoText, setInfoText] = useState('');
  const set = (q: Partial<Params>) => studio.set({ ...studio.get(), ...q });

  useEffect(() => {
    watchJobs();
    getJSON<Sampler[]>('/sdapi/v1/samplers').then(setSamplers).catch(fail);
    getJSON<Scheduler[]>('/sdapi/v1/schedulers').then(setSchedulers).catch(() => {});
    getJSON<SDModel[]>('/sdapi/v1/sd-models').then(setModels).catch(() => {});
  }, []);
  useEffect(() => setMask(''), [image]);

  // The job the studio shows: this page's running one, else its newest.
  const myJobs = myIDs.map((id) => all.get(id)).filter((j): j is Job => !!j);
  const current = myJobs.find((j) => j.state === 'running') ?? myJobs[myJobs.length - 1];
  const lastDone = useMemo(
    () => [...myIDs].reverse().map((id) => all.get(id)).find((j) => j && j.images.length > 0),
    [all, myIDs],
  );
  const queue = useMemo(
    () => [...all.values()].filter((j) => j.state === 'queued' || j.state === 'running')
      .sort((a, b) => (a.state === 'running' ? -1 : b.state === 'running' ? 1 : (a.position ?? 0) - (b.position ?? 0) || a.created.localeCompare(b.created))),
    [all],
  );

  // generate reads the newest fields from the stores, not this render's
  // copies: a shortcut may fire before the page has re-rendered.
  const maskNow = useRef('');
  maskNow.current = mask;
  async function generate() {
    const p = studio.get();
    const mode = studioMode.get();
    const image = studioImage.get();
    const mask = maskNow.current;
    if (mode !== 'txt2img' && !image) {
      notify('Drop or paste an image first (or use “Send to img2img” in the gallery).', 'error');
      return;
    }
    if (mode === 'inpaint' && !mask) {
      notify('Paint a mask over the part to repaint first.', 'error');
      return;
    }
    try {
      const j = await postJSON<Job>('/mica/v1/jobs', { kind: mode === 'txt2img' ? 'txt2img' : 'img2img', params: requestParams(p, mode, image, mask) });
      const m = new Map(jobs.get());
      m.set(j.id, { ...m.get(j.id), ...j });
      jobs.set(m);
      mine.set([...mine.get(), j.id]);
    } catch (e) {
      fail(e);
    }
  }
  async function cancel(id: string) {
    try {
      await postJSON(`/mica/v1/jobs/${id}/cancel`, {});
    } catch (e) {
      fail(e);
    }
  }
  const lastSeed = (): number | undefined => {
    const info = lastDone?.info;
    return info?.all_seeds?.[0] ?? info?.seed;
  };
  async function fromPNG(f: File) {
    try {
      const r = await postJSON<{ info: string }>('/sdapi/v1/png-info', { image: await readDataURL(f) });
      if (!r.info) throw new Error(`${f.name || 'That picture'} carries no generation parameters.`);
      applyInfotext(r.info, schedulers);
      notify('Settings filled from the picture.');
    } catch (e) {
      fail(e);
    }
  }

  // Shortcuts: the listener is added once and calls this render's handler.
  const onKey = useRef<(e: KeyboardEvent) => void>(() => {});
  onKey.current = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      generate();
    } else if (e.key === 'Escape' && assistBusy() && !viewing) {
      e.preventDefault();
      stopAssist();
    } else if (e.key === 'Escape' && current && (current.state === 'running' || current.state === 'queued') && !viewing) {
      e.preventDefault();
      cancel(current.id);
    }
  };
  useEffect(() => {
    const f = (e: KeyboardEvent) => onKey.current(e);
    addEventListener('keydown', f);
    return () => removeEventListener('keydown', f);
  }, []);

  const results = lastDone?.images ?? [];
  return (
    <div class="studio">
      <form class="params" onSubmit={(e) => { e.preventDefault(); generate(); }}>
        <div class="modes" role="tablist">
          {(['txt2img', 'img2img', 'inpaint'] as Mode[]).map((m) => (
            <button type="button" role="tab" aria-selected={mode === m} class={mode === m ? 'tab on' : 'tab'} onClick={() => studioMode.set(m)}>
              {m === 'txt2img' ? 'Text to image' : m === 'img2img' ? 'Image to image' : 'Inpaint'}
            </button>
          ))}
        </div>
        <label class="full"
          onDragOver={(e) => { if (e.dataTransfer?.types.includes('Files')) e.preventDefault(); }}
          onDrop={(e) => {
            const f = imageFrom(e.dataTransfer);
            if (!f && !e.dataTransfer?.types.includes('Files')) return; // dropped text goes into the prompt
            e.preventDefault();
            if (f) fromPNG(f);
            else notify('Drop a PNG or JPEG made by mica, A1111 or SD.Next here to read its settings.', 'error');
          }}>
          Prompt
          <textarea rows={4} value={p.prompt} placeholder="What to draw (drop a PNG here to read its settings)" onInput={(e) => set({ prompt: e.currentTarget.value })} />
        </label>
        <label class="full">
          Negative prompt
          <textarea rows={2} value={p.negative} placeholder="What to avoid" onInput={(e) => set({ negative: e.currentTarget.value })} />
        </label>
        <PromptTools image={mode !== 'txt2img' ? image : ''} />
        {mode !== 'txt2img' && (
          <div class="full">
            {mode === 'inpaint' && image ? (
              <>
                <MaskEditor image={image} onMask={setMask} />
                <button type="button" class="link" onClick={() => studioImage.set('')}>Use another image</button>
              </>
            ) : (
              <DropZone image={image} onImage={(d) => studioImage.set(d)} onError={fail} label="Drop, paste or choose the input image" />
            )}
          </div>
        )}
        <div class="grid">
          <label>
            Sampler
            <select value={p.sampler} onChange={(e) => set({ sampler: e.currentTarget.value })}>
              {samplers.length === 0 && <option>{p.sampler}</option>}
              {samplers.map((s) => <option value={s.name}>{s.name}</option>)}
            </select>
          </label>
          <label>
            Schedule
            <select value={p.scheduler} onChange={(e) => set({ scheduler: e.currentTarget.value })}>
              {schedulers.length === 0 && <option>{p.scheduler}</option>}
              {schedulers.map((s) => <option value={s.name}>{s.label}</option>)}
            </select>
          </label>
          <Num label="Steps" value={p.steps} min={1} max={150} step={1} slider onChange={(v) => set({ steps: v })} />
          <Num label="CFG scale" value={p.cfg} min={1} max={30} step={0.5} slider onChange={(v) => set({ cfg: v })} />
          <Num label="Width" value={p.width} min={64} max={2048} step={8} onChange={(v) => set({ width: v })} />
          <Num label="Height" value={p.height} min={64} max={2048} step={8} onChange={(v) => set({ height: v })} />
          <label class="num">
            <span>Seed</span>
            <span class="num-in">
              <input type="number" value={p.seed} step={1} aria-label="Seed" onInput={(e) => { const v = e.currentTarget.valueAsNumber; if (!Number.isNaN(v)) set({ seed: v }); }} />
              <button type="button" class="icon" title="Random seed (-1)" aria-label="Random seed" onClick={() => set({ seed: -1 })}><Icon d={dice} /></button>
              <button type="button" class="icon" title="Reuse the last image's seed" aria-label="Reuse last seed"
                disabled={lastSeed() === undefined} onClick={() => { const s = lastSeed(); if (s !== undefined) set({ seed: s }); }}><Icon d={recycle} /></button>
            </span>
          </label>
          <Num label="Clip skip" value={p.clipSkip} min={1} max={12} step={1} onChange={(v) => set({ clipSkip: v })} />
          <Num label="Batch size" value={p.batch} min={1} max={8} step={1} onChange={(v) => set({ batch: v })} />
          <Num label="Batch count" value={p.iterations} min={1} max={100} step={1} onChange={(v) => set({ iterations: v })} />
          <label>
            Model
            <select value={p.model} onChange={(e) => set({ model: e.currentTarget.value })}>
              <option value="">(server default)</option>
              {models.map((m) => <option value={m.model_name}>{m.model_name}</option>)}
              {p.model && !models.some((m) => m.model_name === p.model) && <option value={p.model}>{p.model} (not found)</option>}
            </select>
          </label>
          {mode !== 'txt2img' && <Num label="Denoising strength" value={p.denoise} min={0} max={1} step={0.01} slider onChange={(v) => set({ denoise: v })} />}
          {mode === 'inpaint' && <Num label="Mask blur" value={p.maskBlur} min={0} max={64} step={1} onChange={(v) => set({ maskBlur: v })} />}
          {mode === 'inpaint' && (
            <label>
              Masked content
              <select value={p.inpaintFill} onChange={(e) => set({ inpaintFill: Number(e.currentTarget.value) })}>
                <option value={0}>fill</option>
                <option value={1}>original</option>
                <option value={2}>latent noise</option>
                <option value={3}>latent nothing</option>
              </select>
            </label>
          )}
        </div>
        {mode === 'txt2img' && (
          <details class="full">
            <summary>Hires fix {p.hires ? '(on)' : ''}</summary>
            <div class="grid">
              <label class="switch"><input type="checkbox" checked={p.hires} onChange={(e) => set({ hires: e.currentTarget.checked })} /> Upscale and refine</label>
              <Num label="Upscale by" value={p.hrScale} min={1} max={4} step={0.05} onChange={(v) => set({ hrScale: v })} />
              <Num label="Hires steps (0: same)" value={p.hrSteps} min={0} max={150} step={1} onChange={(v) => set({ hrSteps: v })} />
              <Num label="Hires denoising" value={p.hrDenoise} min={0} max={1} step={0.01} onChange={(v) => set({ hrDenoise: v })} />
            </div>
          </details>
        )}
        <details class="full refiner" open={!!p.refiner}>
          <summary>Refiner {p.refiner ? `(${p.refiner})` : ''}</summary>
          <div class="grid">
            <label>
              Refiner
              <select value={p.refiner} aria-label="Refiner" onChange={(e) => set({ refiner: e.currentTarget.value })}>
                <option value="">None</option>
                {models.map((m) => <option value={m.model_name}>{m.model_name}</option>)}
                {p.refiner && !models.some((m) => m.model_name === p.refiner) && <option value={p.refiner}>{p.refiner} (not found)</option>}
              </select>
            </label>
            <Num label="Switch at" value={p.refinerSwitch} min={0.01} max={1} step={0.01} slider onChange={(v) => set({ refinerSwitch: v })} />
          </div>
          <p class="hint small">An SDXL refiner finishes the last part of the sampling{mode === 'txt2img' && p.hires ? ' (here: of the hires pass)' : ''}: at {p.refinerSwitch} the model does the first {Math.round(p.refinerSwitch * 100)}% of the steps.</p>
        </details>
        <details class="full">
          <summary>Paste parameters</summary>
          <textarea rows={4} value={infoText} aria-label="Infotext to apply" placeholder="Paste an A1111 infotext (the PNG “parameters”)" onInput={(e) => setInfoText(e.currentTarget.value)} />
          <div class="row">
            <button type="button" onClick={() => { applyInfotext(infoText, schedulers); notify('Settings filled from the text.'); }} disabled={!infoText.trim()}>Apply</button>
            <button type="button" onClick={() => navigator.clipboard?.writeText(formatInfotext(p))}>Copy current as infotext</button>
            <button type="button" onClick={() => studio.set({ ...defaults, model: p.model })}>Reset</button>
          </div>
        </details>
        <div class="actions">
          <button type="submit" class="primary big">Generate</button>
          {current && (current.state === 'running' || current.state === 'queued') && (
            <button type="button" class="danger" onClick={() => cancel(current.id)}>Stop</button>
          )}
        </div>
      </form>

      <section class="output">
        {current && (current.state === 'queued' || current.state === 'running') && <ProgressView j={current} />}
        {current && current.state === 'failed' && <p class="error-text" role="alert">The generation failed: {current.error || 'no reason given'}</p>}
        {current && (current.state === 'cancelled' || current.state === 'interrupted') && <p class="hint">The last job was {current.state}.</p>}
        {results.length > 0 ? (
          <div class="results">
            {results.map((src) => (
              <button type="button" class="thumb" onClick={() => setViewing(src)}>
                <Img src={src} alt="generated image" loading="lazy" />
              </button>
            ))}
          </div>
        ) : (
          !current && <div class="empty"><h2>Images appear here</h2><p class="hint">Write a prompt and press Generate (<kbd>Ctrl</kbd>+<kbd>Enter</kbd>).</p></div>
        )}
        {queue.length > 0 && <Queue queue={queue} onCancel={cancel} />}
      </section>
      {viewing && (
        <Viewer src={viewing} onClose={() => setViewing('')}>
          <div class="row">
            <button type="button" onClick={() => downloadImage(viewing).catch(fail)}>Download</button>
            <DescribeButton image={viewing} after={() => setViewing('')} />
            <button type="button" onClick={() => urlToDataURL(viewing).then((d) => { studioImage.set(d); studioMode.set('img2img'); setViewing(''); }, fail)}>Send to img2img</button>
            <button type="button" onClick={() => urlToDataURL(viewing).then((d) => { studioImage.set(d); studioMode.set('inpaint'); setViewing(''); }, fail)}>Send to inpaint</button>
          </div>
        </Viewer>
      )}
    </div>
  );
}
