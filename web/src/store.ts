// Shared state: a tiny observable value, the router, saved settings, and
// the live job list fed by the server's event stream.
import { useEffect, useState } from 'preact/hooks';
import { SSEParser, getJSON, send, type Job, type JobEvent } from './api';

export class Value<T> {
  private subs = new Set<(v: T) => void>();
  constructor(private v: T) {}
  get(): T {
    return this.v;
  }
  set(v: T) {
    this.v = v;
    for (const f of this.subs) f(v);
  }
  subscribe(f: (v: T) => void): () => void {
    this.subs.add(f);
    return () => this.subs.delete(f);
  }
}

export function useValue<T>(v: Value<T>): T {
  const [, force] = useState(0);
  useEffect(() => v.subscribe(() => force((n) => n + 1)), [v]);
  return v.get();
}

// Saved settings (localStorage; a failure to save is not fatal).
export function load<T>(key: string, fallback: T): T {
  try {
    const s = localStorage.getItem(key);
    return s ? { ...fallback, ...JSON.parse(s) } : fallback;
  } catch {
    return fallback;
  }
}
export function loadRaw<T>(key: string, fallback: T): T {
  try {
    const s = localStorage.getItem(key);
    return s ? (JSON.parse(s) as T) : fallback;
  } catch {
    return fallback;
  }
}
export function save(key: string, v: unknown) {
  try {
    localStorage.setItem(key, JSON.stringify(v));
  } catch {
    /* full or disabled: settings last for this page only */
  }
}

// The router: the UI's pages are real paths (/ui/chat, /ui/studio,
// /ui/gallery), which the server answers with the same page.
export const route = new Value(location.pathname);
export function navigate(path: string) {
  if (path !== location.pathname) history.pushState(null, '', path);
  route.set(path);
}
addEventListener('popstate', () => route.set(location.pathname));

// Messages for the person: errors in words and short notices.
export interface Notice {
  id: number;
  text: string;
  kind: 'error' | 'info';
}
export const notices = new Value<Notice[]>([]);
let noticeID = 0;
export function notify(text: string, kind: Notice['kind'] = 'info') {
  const n = { id: ++noticeID, text, kind };
  notices.set([...notices.get(), n]);
  setTimeout(() => dismiss(n.id), kind === 'error' ? 12000 : 4000);
}
export function dismiss(id: number) {
  notices.set(notices.get().filter((n) => n.id !== id));
}
export function fail(e: unknown) {
  if (e instanceof DOMException && e.name === 'AbortError') return;
  notify(e instanceof Error ? e.message : String(e), 'error');
}

// Jobs: what the server says about image jobs, kept current by
// /mica/v1/events (Server-Sent Events; no polling).
export const jobs = new Value<Map<string, Job>>(new Map());
export const eventsUp = new Value(true);
let watching = false;

function put(j: Job) {
  const m = new Map(jobs.get());
  m.set(j.id, j);
  jobs.set(m);
}

// refresh reads one job again (a queued job's answer has its position).
export async function refresh(id: string) {
  try {
    put(await getJSON<Job>(`/mica/v1/jobs/${id}`));
  } catch {
    /* deleted meanwhile */
  }
}

export async function loadQueue() {
  try {
    const r = await getJSON<{ jobs: Job[] }>('/mica/v1/jobs?state=queued,running&limit=100');
    const m = new Map(jobs.get());
    for (const j of r.jobs) m.set(j.id, j);
    jobs.set(m);
    // The list has no positions in the queue; each job's own answer has.
    for (const j of r.jobs.filter((j) => j.state === 'queued').slice(0, 50)) refresh(j.id);
  } catch {
    /* the image API may be off; the studio says so when used */
  }
}

// watchJobs follows /mica/v1/events. It reads the stream with fetch, not
// EventSource, so the API key goes along; it reconnects after a failure.
export function watchJobs() {
  if (watching) return;
  watching = true;
  (async () => {
    for (let wait = 1000; ; wait = Math.min(wait * 2, 15000)) {
      try {
        const r = await send('/mica/v1/events', { headers: { Accept: 'text/event-stream' } });
        eventsUp.set(true);
        wait = 1000;
        loadQueue();
        const reader = r.body!.getReader();
        const dec = new TextDecoder();
        const p = new SSEParser();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (const ev of p.push(dec.decode(value, { stream: true }))) on(ev.data);
        }
      } catch {
        /* the image API is off or the server went away: try again */
      }
      eventsUp.set(false);
      await new Promise((res) => setTimeout(res, wait));
    }
  })();
  function on(data: string) {
    let ev: JobEvent;
    try {
      ev = JSON.parse(data);
    } catch {
      return;
    }
    const old = jobs.get().get(ev.job);
    if (ev.type === 'deleted') {
      const m = new Map(jobs.get());
      m.delete(ev.job);
      jobs.set(m);
      return;
    }
    const j: Job = old
      ? { ...old, state: ev.state, progress: ev.progress }
      : { id: ev.job, kind: '', model: ev.model, state: ev.state, priority: 0, created: new Date().toISOString(), progress: ev.progress, images: [] };
    if (ev.error) j.error = ev.error;
    if (ev.images) j.images = ev.images;
    put(j);
    if (ev.type === 'queued' && !old) refresh(ev.job);
    if (['finished', 'failed', 'cancelled', 'interrupted'].includes(ev.type)) refresh(ev.job);
  }
}

export function previewURL(j: Job): string | null {
  return j.state === 'running' && j.progress.previews > 0 ? `/mica/v1/jobs/${j.id}/preview?n=${j.progress.previews}` : null;
}
