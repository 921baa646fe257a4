// Where chat and images meet: a language model rewrites the studio's prompt
// ("enhance") or describes a picture as one ("describe"), answering JSON
// that follows a schema; the answer fills the fields, and one click undoes
// it. The state lives here, not in a component, so the gallery can start a
// description and the studio show its progress.
import { useEffect, useState } from 'preact/hooks';
import { askJSON, chatModels, describeRequest, describeWith, enhanceRequest, hasVision, type LLMs } from './llm';
import { urlToDataURL } from './images';
import { studio } from './studio';
import { Value, fail, loadRaw, notify, save, useValue } from './store';

interface AssistState {
  busy: '' | 'enhance' | 'describe';
  // text is the answer so far, while busy.
  text: string;
  // notes are the model's style notes on the last rewrite.
  notes: string;
  // undo holds the fields as they were before the last answer (or, after
  // an undo, the answer, so the same button brings it back).
  undo: { prompt: string; negative: string; redo: boolean } | null;
}

export const assist = new Value<AssistState>({ busy: '', text: '', notes: '', undo: null });
export const assistModel = new Value<string>(loadRaw('mica.assistModel', ''));
assistModel.subscribe((m) => save('mica.assistModel', m));
let abort: AbortController | null = null;

function patch(q: Partial<AssistState>) {
  assist.set({ ...assist.get(), ...q });
}

export function assistBusy(): boolean {
  return abort !== null;
}

export function stopAssist() {
  abort?.abort();
}

async function run(kind: 'enhance' | 'describe', req: () => Promise<Record<string, unknown>>, model: string) {
  if (abort) return;
  const ac = new AbortController();
  abort = ac;
  patch({ busy: kind, text: '' });
  try {
    const a = await askJSON(await req(), ac.signal, (text) => patch({ text }));
    const p = studio.get();
    patch({ undo: { prompt: p.prompt, negative: p.negative, redo: false }, notes: a.notes ?? '' });
    studio.set({ ...p, prompt: a.prompt, negative: a.negative ?? p.negative });
    notify(kind === 'enhance' ? `${model} rewrote the prompt (Undo brings the old one back).` : `${model} described the picture as a prompt.`);
  } catch (e) {
    if (ac.signal.aborted) notify('Stopped: the prompt is as it was.');
    else fail(e);
  } finally {
    abort = null;
    patch({ busy: '', text: '' });
  }
}

// enhance asks model to rewrite the studio's prompt and negative prompt.
export function enhance(model: string) {
  const p = studio.get();
  return run('enhance', async () => enhanceRequest(model, p.prompt, p.negative), model);
}

// describe asks model (one with vision) for a prompt that would draw the
// picture: a data: URL, or an image URL of mica's (fetched with the key).
export function describe(model: string, image: string) {
  return run('describe', async () => describeRequest(model, image.startsWith('data:') ? image : await urlToDataURL(image)), model);
}

// undo swaps the fields with what the last answer replaced.
export function undo() {
  const u = assist.get().undo;
  if (!u) return;
  const p = studio.get();
  studio.set({ ...p, prompt: u.prompt, negative: u.negative });
  patch({ undo: { prompt: p.prompt, negative: p.negative, redo: !u.redo } });
}

// useLLMs lists the language models and which of them take images.
export function useLLMs(): LLMs {
  const [s, setS] = useState<LLMs>({ models: null, vision: {}, error: '' });
  useEffect(() => {
    let live = true;
    chatModels().then(
      (models) => {
        if (!live) return;
        setS((x) => ({ ...x, models }));
        if (!models.includes(assistModel.get())) {
          const chat = loadRaw('mica.chatModel', '');
          assistModel.set(models.includes(chat) ? chat : models[0] ?? '');
        }
        for (const m of models) {
          hasVision(m).then(
            (v) => live && setS((x) => ({ ...x, vision: { ...x.vision, [m]: v } })),
            () => live && setS((x) => ({ ...x, vision: { ...x.vision, [m]: false } })),
          );
        }
      },
      (e) => live && setS({ models: [], vision: {}, error: e instanceof Error ? e.message : String(e) }),
    );
    return () => {
      live = false;
    };
  }, []);
  return s;
}

// PromptTools is the studio's row of prompt helpers. image is the picture
// "Describe image" uses ('' for none).
export function PromptTools({ image }: { image: string }) {
  const s = useValue(assist);
  const model = useValue(assistModel);
  const p = useValue(studio);
  const l = useLLMs();
  const none = l.models !== null && l.models.length === 0;
  const enhanceWhy = l.models === null ? 'Asking mica for its language models…'
    : none ? 'No language model: put a GGUF model in the models folder of mica serve.'
    : !p.prompt.trim() ? 'Write a prompt first: the model rewrites it.' : '';
  const d = describeWith(l, model);
  const describeWhy = d.why || (image ? '' : 'Choose an input image first (Image to image), or open a picture in the gallery.');
  return (
    <div class="assist full" role="group" aria-label="Prompt helpers">
      <div class="row">
        <select aria-label="Language model for prompts" value={model} disabled={none || !!s.busy} onChange={(e) => assistModel.set(e.currentTarget.value)}>
          {none && <option value="">no language model</option>}
          {(l.models ?? []).map((m) => <option value={m}>{m}{l.vision[m] ? ' (vision)' : ''}</option>)}
        </select>
        {s.busy ? (
          <>
            <span class="small grow" role="status">{s.busy === 'enhance' ? 'Rewriting the prompt' : 'Describing the picture'}… {s.text ? `${s.text.length} characters` : 'waiting for the model'}</span>
            <button type="button" class="danger" onClick={stopAssist}>Stop</button>
          </>
        ) : (
          <>
            <button type="button" disabled={!!enhanceWhy} title={enhanceWhy || `Let ${model} rewrite the prompt and negative prompt`} onClick={() => enhance(model)}>Enhance prompt</button>
            <button type="button" disabled={!!describeWhy} title={describeWhy || `Let ${d.model} describe the input image as a prompt`} onClick={() => describe(d.model, image)}>Describe image</button>
            {s.undo && <button type="button" class="link" onClick={undo}>{s.undo.redo ? 'Redo' : 'Undo'}</button>}
          </>
        )}
      </div>
      {none && <p class="hint">{l.error ? `No language model: ${l.error}` : 'Enhance prompt and Describe image need a language model: put a GGUF model in the models folder of mica serve.'}</p>}
      {image && !none && !s.busy && d.why && !d.why.endsWith('…') && <p class="hint">Describe image: {d.why}</p>}
      {s.notes && <p class="hint">Style notes: {s.notes}</p>}
    </div>
  );
}

// DescribeButton describes a picture (of the gallery, or a result) into the
// studio's prompt; after runs once the description has started.
export function DescribeButton({ image, after }: { image: string; after?: () => void }) {
  const s = useValue(assist);
  const d = describeWith(useLLMs(), useValue(assistModel));
  return (
    <>
      <button type="button" disabled={!!d.why || !!s.busy} title={d.why || `Let ${d.model} describe this picture as a prompt`}
        onClick={() => {
          describe(d.model, image);
          after?.();
        }}>
        Describe as prompt
      </button>
      {d.why && !d.why.endsWith('…') && <p class="hint">Describe as prompt: {d.why}</p>}
    </>
  );
}
