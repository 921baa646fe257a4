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

// refresh reads one job again (a new one's kind, an ended one's result).
export async function refresh(id: string) {
  try {
    put(await getJSON<Job>(`/mica/v1/jobs/${id}`));
  } catch {
    /* deleted meanwhile */
  }
}

// loadQueue reads the waiting and running jobs; the listing gives each
// waiting job its position in its model's queue.
export async function loadQueue() {
  try {
    const r = await getJSON<{ jobs: Job[] }>('/mica/v1/jobs?state=queued,running&limit=100');
    const m = new Map(jobs.get());
    for (const j of r.jobs) m.set(j.id, j);
    jobs.set(m);
  } catch {
    /* the image API may be off; the studio says so when used */
  }
}

// Queue positions (from 0, per model) come from the listing, then from the
// events: queued and reordered events carry the new positions of the jobs
// they moved; a job that leaves the queue (it starts, or is cancelled while
// waiting) moves every job after it up one place, which no event spells out.
type QueueEvent = JobEvent & { positions?: Record<string, number>; dropped?: number };

function applyPositions(m: Map<string, Job>, positions: Record<string, number>) {
  for (const [id, p] of Object.entries(positions)) {
    const j = m.get(id);
    if (j && j.state === 'queued' && j.position !== p) m.set(id, { ...j, position: p });
  }
}

// left moves up the waiting jobs behind one that left its model's queue.
function left(m: Map<string, Job>, gone: Job) {
  const at = gone.position;
  if (at === undefined) return;
  for (const [id, j] of m) {
    if (id !== gone.id && j.model === gone.model && j.state === 'queued' && j.position !== undefined && j.position > at) {
      m.set(id, { ...j, position: j.position - 1 });
    }
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
    let ev: QueueEvent;
    try {
      ev = JSON.parse(data);
    } catch {
      return;
    }
    if (ev.dropped) loadQueue(); // events were lost: positions may be stale
    if (ev.type === 'reordered') {
      // Another page (or this one) changed the order of a model's queue.
      if (ev.positions) {
        const m = new Map(jobs.get());
        applyPositions(m, ev.positions);
        jobs.set(m);
      }
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
    if (ev.state !== 'queued') delete j.position;
    const m = new Map(jobs.get());
    m.set(j.id, j);
    if (old?.state === 'queued' && ev.state !== 'queued') left(m, old);
    if (ev.positions) applyPositions(m, ev.positions);
    jobs.set(m);
    if (ev.type === 'queued' && !old) refresh(ev.job);
    if (['finished', 'failed', 'cancelled', 'interrupted'].includes(ev.type)) refresh(ev.job);
  }
}

export function previewURL(j: Job): string | null {
  return j.state === 'running' && j.progress.previews > 0 ? `/mica/v1/jobs/${j.id}/preview?n=${j.progress.previews}` : null;
}
