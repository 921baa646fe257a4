// The UI's only way to mica: its public HTTP APIs. Errors come back as
// ApiError with a sentence a person understands.

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

const keyName = 'mica.apiKey';

export function apiKey(): string {
  try {
    return localStorage.getItem(keyName) ?? '';
  } catch {
    return '';
  }
}

export function setApiKey(k: string) {
  localStorage.setItem(keyName, k);
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  if (json) h['Content-Type'] = 'application/json';
  const k = apiKey();
  if (k) h['Authorization'] = 'Bearer ' + k;
  return h;
}

// errorWords turns a server's error body (OpenAI, Ollama, FastAPI/A1111
// shapes) into one readable sentence.
export function errorWords(status: number, body: unknown): string {
  let msg = '';
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const e = b.error;
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
      msg = (e as { message: string }).message;
    } else if (Array.isArray(b.detail)) {
      msg = b.detail
        .map((d: { loc?: unknown[]; msg?: string }) => {
          const loc = (d.loc ?? []).filter((x) => x !== 'body').join('.');
          return loc ? `${loc}: ${d.msg ?? 'invalid'}` : d.msg ?? 'invalid';
        })
        .join('; ');
    } else if (typeof b.detail === 'string') {
      msg = b.detail;
    } else if (typeof e === 'string') {
      msg = e;
    }
  } else if (typeof body === 'string') {
    msg = body.trim();
  }
  const what: Record<number, string> = {
    400: 'The request was not understood',
    401: 'mica wants an API key: set it in Settings',
    403: 'The API key was refused: check it in Settings',
    404: 'Not found',
    413: 'That is too large to send',
    422: 'Some settings are not valid',
    429: 'mica is busy: too many requests are waiting, try again shortly',
    503: 'mica is not ready for this',
  };
  const lead = what[status] ?? (status >= 500 ? 'mica failed on its side' : `The request failed (HTTP ${status})`);
  return msg ? `${lead}: ${msg}` : `${lead}.`;
}

async function failure(r: Response): Promise<ApiError> {
  const text = await r.text().catch(() => '');
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return new ApiError(errorWords(r.status, body), r.status);
}

export function networkError(e: unknown): Error {
  if (e instanceof ApiError) return e;
  if (e instanceof DOMException && e.name === 'AbortError') return e;
  return new ApiError("Can't reach mica: is `mica serve` still running?", 0);
}

// send makes a request and returns the response, or throws an ApiError.
export async function send(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, ...rest } = init;
  let r: Response;
  try {
    r = await fetch(path, {
      ...rest,
      headers: { ...headers(json !== undefined), ...(rest.headers as Record<string, string> | undefined) },
      body: json !== undefined ? JSON.stringify(json) : rest.body,
    });
  } catch (e) {
    throw networkError(e);
  }
  if (!r.ok) throw await failure(r);
  return r;
}

export async function getJSON<T>(path: string): Promise<T> {
  return (await send(path)).json() as Promise<T>;
}

export async function postJSON<T>(path: string, json: unknown): Promise<T> {
  const r = await send(path, { method: 'POST', json });
  const t = await r.text();
  return (t ? JSON.parse(t) : null) as T;
}

// SSEParser splits a Server-Sent Events byte stream (already decoded to
// text) into events; push may be called with any chunking.
export class SSEParser {
  private buf = '';
  private event = '';
  private data: string[] = [];

  push(text: string): { event: string; data: string }[] {
    this.buf += text;
    const out: { event: string; data: string }[] = [];
    for (;;) {
      const i = this.buf.search(/\r\n|\r|\n/);
      if (i < 0) break;
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + (this.buf.startsWith('\r\n', i) ? 2 : 1));
      if (line === '') {
        if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
    }
    return out;
  }
}

// streamSSE posts json and calls onEvent for each event of the answer.
export async function streamSSE(
  path: string,
  json: unknown,
  signal: AbortSignal,
  onEvent: (ev: { event: string; data: string }) => void,
): Promise<void> {
  const r = await send(path, { method: 'POST', json, signal });
  if (!r.body) throw new ApiError('The answer had no body.', r.status);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  const p = new SSEParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const ev of p.push(dec.decode(value, { stream: true }))) onEvent(ev);
    }
    for (const ev of p.push(dec.decode() + '\n\n')) onEvent(ev);
  } catch (e) {
    throw networkError(e);
  }
}

// Shapes of the APIs the UI reads.
export interface Progress {
  progress: number;
  eta_relative: number;
  sampling_step: number;
  sampling_steps: number;
  job_no: number;
  job_count: number;
  textinfo?: string;
  previews: number;
}

export interface Job {
  id: string;
  kind: string;
  model: string;
  state: 'queued' | 'running' | 'finished' | 'failed' | 'cancelled' | 'interrupted';
  priority: number;
  position?: number;
  created: string;
  progress: Progress;
  error?: string;
  images: string[];
  info?: { seed?: number; all_seeds?: number[]; infotexts?: string[] } & Record<string, unknown>;
}

export interface JobEvent {
  type: string;
  job: string;
  model: string;
  state: Job['state'];
  progress: Progress;
  preview?: string;
  error?: string;
  images?: string[];
}

export interface Sampler {
  name: string;
  aliases: string[];
}
export interface Scheduler {
  name: string;
  label: string;
  aliases: string[];
}
export interface SDModel {
  title: string;
  model_name: string;
}
export interface HistoryEntry {
  image: string;
  job: string;
  infotext: string;
  created: string;
}
