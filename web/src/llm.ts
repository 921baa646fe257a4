// The language models the UI may ask: the chat models of /v1/models and
// whether each takes images (the capabilities of /api/show, as the chat
// decides it). No JSX and no page state here, so the node tests can load it.
import { getJSON, postJSON, streamSSE } from './api';

// chatModels lists the server's language models by id.
export async function chatModels(): Promise<string[]> {
  const r = await getJSON<{ data: { id: string }[] }>('/v1/models');
  return r.data.map((m) => m.id);
}

const visionAsked = new Map<string, Promise<boolean>>();

// hasVision says whether a model takes images. The answer is kept for the
// page's life; a failed question (say, a missing API key) is asked again.
export function hasVision(model: string): Promise<boolean> {
  let p = visionAsked.get(model);
  if (!p) {
    p = postJSON<{ capabilities?: string[] }>('/api/show', { model }).then((r) => (r?.capabilities ?? []).includes('vision'));
    p.catch(() => visionAsked.delete(model));
    visionAsked.set(model, p);
  }
  return p;
}

// pickVision is the model to describe a picture with: the chosen one when
// it takes images, else the first that does, else ''.
export function pickVision(models: string[], vision: Record<string, boolean>, chosen: string): string {
  if (vision[chosen]) return chosen;
  return models.find((m) => vision[m]) ?? '';
}

export interface LLMs {
  // models is null until the server answered.
  models: string[] | null;
  vision: Record<string, boolean>;
  error: string;
}

// describeWith says why describing is not possible now ('' when it is), and
// the model that would do it.
export function describeWith(l: LLMs, chosen: string): { model: string; why: string } {
  if (l.models === null) return { model: '', why: 'Asking mica for its language models…' };
  if (l.models.length === 0) return { model: '', why: 'No language model: put a GGUF model in the models folder of mica serve.' };
  const model = pickVision(l.models, l.vision, chosen);
  if (model) return { model, why: '' };
  if (l.models.some((m) => !(m in l.vision))) return { model: '', why: 'Checking which models take images…' };
  return { model: '', why: 'No model here takes images: a model does when its vision file (mmproj-NAME.gguf) lies beside it in the models folder.' };
}

// The answer a prompt helper asks for: JSON following promptSchema (keys
// come in sorted order, strings bounded so a model cannot ramble forever).
// max_tokens leaves room for every string at its longest, with a token per
// character and then some (byte tokens), plus the JSON around them: a reply
// cut by max_tokens is not JSON.
export const promptSchema = {
  type: 'object',
  properties: {
    prompt: { type: 'string', minLength: 1, maxLength: 300, description: 'the Stable Diffusion prompt' },
    negative_prompt: { type: 'string', maxLength: 150, description: 'what the picture must not show' },
    style_notes: { type: 'string', maxLength: 100, description: 'a short note on the style chosen, for the person' },
  },
  required: ['prompt', 'negative_prompt'],
  additionalProperties: false,
};

export const describeSchema = {
  type: 'object',
  properties: {
    prompt: { type: 'string', minLength: 1, maxLength: 300, description: 'a Stable Diffusion prompt that would draw this picture' },
  },
  required: ['prompt'],
  additionalProperties: false,
};

const enhanceInstructions =
  'You improve prompts for Stable Diffusion. Rewrite the prompt the user gives as a vivid, concrete list of ' +
  'comma-separated phrases: the subject first, then setting, lighting, composition, medium and style. Keep what ' +
  'the user asked for; do not invent a different subject. Write a negative prompt of things to avoid (keep and ' +
  'extend the user\'s own). Answer with JSON only.';

const describeInstructions =
  'Describe this picture as a Stable Diffusion prompt: comma-separated phrases naming the subject, setting, ' +
  'lighting, colours, composition, medium and style. Answer with JSON only.';

function jsonFormat(name: string, schema: object) {
  return { type: 'json_schema', json_schema: { name, strict: true, schema } };
}

// enhanceRequest is the chat completion that rewrites a prompt.
export function enhanceRequest(model: string, prompt: string, negative: string): Record<string, unknown> {
  let user = `Prompt: ${prompt.trim()}`;
  if (negative.trim()) user += `\nNegative prompt: ${negative.trim()}`;
  return {
    model,
    stream: true,
    temperature: 0.7,
    max_tokens: 1000,
    reasoning_effort: 'none',
    messages: [
      { role: 'system', content: enhanceInstructions },
      { role: 'user', content: user },
    ],
    response_format: jsonFormat('sd_prompt', promptSchema),
  };
}

// describeRequest is the chat completion that describes a picture (a data:
// URL) as a prompt.
export function describeRequest(model: string, image: string): Record<string, unknown> {
  return {
    model,
    stream: true,
    temperature: 0.4,
    max_tokens: 1000,
    reasoning_effort: 'none',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: describeInstructions },
          { type: 'image_url', image_url: { url: image } },
        ],
      },
    ],
    response_format: jsonFormat('sd_prompt_from_image', describeSchema),
  };
}

export interface PromptAnswer {
  prompt: string;
  negative?: string;
  notes?: string;
}

// parseAnswer reads the model's JSON answer; finish is the stream's
// finish_reason ('length' when max_tokens cut it off).
export function parseAnswer(text: string, finish = ''): PromptAnswer {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    if (finish === 'length') throw new Error('The model ran out of room before its answer was complete: try again.');
    throw new Error(`The model's answer is not the JSON asked for: ${text.slice(0, 80) || '(empty)'}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('The model answered something other than a JSON object.');
  const o = v as Record<string, unknown>;
  if (typeof o.prompt !== 'string' || !o.prompt.trim()) throw new Error('The model gave no prompt.');
  const out: PromptAnswer = { prompt: o.prompt.trim() };
  if (typeof o.negative_prompt === 'string') out.negative = o.negative_prompt.trim();
  if (typeof o.style_notes === 'string' && o.style_notes.trim()) out.notes = o.style_notes.trim();
  return out;
}

interface Chunk {
  error?: { message?: string };
  choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
}

// askJSON streams a chat completion and returns its parsed answer;
// onText gets the answer so far (for progress).
export async function askJSON(req: Record<string, unknown>, signal: AbortSignal, onText: (text: string) => void): Promise<PromptAnswer> {
  let text = '';
  let finish = '';
  let error = '';
  await streamSSE('/v1/chat/completions', req, signal, (ev) => {
    if (ev.data === '[DONE]') return;
    let c: Chunk;
    try {
      c = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (c.error) error = c.error.message ?? 'The model failed.';
    for (const ch of c.choices ?? []) {
      if (ch.delta?.content) text += ch.delta.content;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    onText(text);
  });
  if (error) throw new Error(error);
  return parseAnswer(text, finish);
}
