// The studio's queue: the running job and those waiting, with cancel and
// reorder — drag a waiting job by its handle (mouse or touch), press the
// arrow keys on the handle, or use the move buttons. The order is the
// server's: every change goes to /mica/v1/jobs/reorder.
import { useRef, useState } from 'preact/hooks';
import { postJSON, type Job } from './api';
import { dropIndex, moveItem } from './queueorder';
import { fail, jobs } from './store';

// reorder asks the server for this order of the waiting jobs and shows it
// at once; the server's "reordered" event (store.ts), which every open page
// gets, then brings the positions it gave them.
export async function reorder(ids: string[]) {
  await postJSON('/mica/v1/jobs/reorder', { ids });
  const m = new Map(jobs.get());
  const first = Math.min(...ids.map((x) => m.get(x)?.position ?? 0));
  ids.forEach((x, k) => {
    const j = m.get(x);
    if (j) m.set(x, { ...j, position: first + k });
  });
  jobs.set(m);
}

interface Drag {
  id: string;
  y0: number;
  dy: number;
  to: number;
}

export function Queue({ queue, onCancel }: { queue: Job[]; onCancel: (id: string) => void }) {
  const waiting = queue.filter((j) => j.state === 'queued').map((j) => j.id);
  const [drag, setDrag] = useState<Drag | null>(null);
  const list = useRef<HTMLUListElement>(null);

  // move reorders; with keep, the job's handle has the focus afterwards
  // (moving a row in the page may take the focus away from it).
  async function move(id: string, to: number, keep = false) {
    const from = waiting.indexOf(id);
    if (from < 0 || to < 0 || to >= waiting.length || to === from) return;
    try {
      await reorder(moveItem(waiting, from, to));
      if (keep) setTimeout(() => list.current?.querySelector<HTMLElement>(`li[data-job="${id}"] .handle`)?.focus(), 0);
    } catch (e) {
      fail(e);
    }
  }
  const target = (y: number, id: string) => {
    const rows = [...(list.current?.querySelectorAll<HTMLElement>('li[data-state="queued"]') ?? [])].filter((r) => r.dataset.job !== id);
    return dropIndex(y, rows.map((r) => r.getBoundingClientRect()));
  };
  // While dragging: the waiting job the dragged one would land before.
  const others = drag ? waiting.filter((x) => x !== drag.id) : [];
  const before = drag ? others[drag.to] ?? '' : '';
  const afterLast = drag && drag.to >= others.length ? others[others.length - 1] : '';

  return (
    <div class="queue">
      <h3>Queue</h3>
      <ul ref={list}>
        {queue.map((j) => {
          const i = waiting.indexOf(j.id);
          const dragging = drag?.id === j.id;
          const cls = [dragging ? 'dragging' : '', before === j.id ? 'drop-before' : '', afterLast === j.id ? 'drop-after' : ''].filter(Boolean).join(' ');
          return (
            <li key={j.id} data-job={j.id} data-state={j.state} class={cls || undefined}
              style={dragging ? { transform: `translateY(${drag.dy}px)` } : undefined}>
              {j.state === 'queued' ? (
                <button type="button" class="icon handle" aria-label={`Reorder job ${j.id.slice(-6)}: drag, or press the up and down arrow keys`}
                  title="Drag to reorder (or focus and press ↑ ↓)"
                  onPointerDown={(e) => {
                    if (e.button !== 0) return;
                    e.preventDefault();
                    e.currentTarget.setPointerCapture(e.pointerId);
                    setDrag({ id: j.id, y0: e.clientY, dy: 0, to: i });
                  }}
                  onPointerMove={(e) => {
                    if (drag?.id === j.id) setDrag({ ...drag, dy: e.clientY - drag.y0, to: target(e.clientY, j.id) });
                  }}
                  onPointerUp={() => {
                    if (drag?.id !== j.id) return;
                    setDrag(null);
                    move(j.id, drag.to);
                  }}
                  onPointerCancel={() => setDrag(null)}
                  onKeyDown={(e) => {
                    const to = e.key === 'ArrowUp' ? i - 1 : e.key === 'ArrowDown' ? i + 1 : e.key === 'Home' ? 0 : e.key === 'End' ? waiting.length - 1 : -2;
                    if (to === -2) return;
                    e.preventDefault();
                    move(j.id, to, true);
                  }}>⠿</button>
              ) : (
                <span class="handle-space" />
              )}
              <span class="state">{j.state}</span>
              <span class="grow">{j.kind || 'job'} · {j.model} · {j.id.slice(-6)}</span>
              {j.state === 'running' && <span class="small">{Math.round(j.progress.progress * 100)}%</span>}
              {j.state === 'queued' && (
                <>
                  <button type="button" class="icon" title="Move up" aria-label="Move up" disabled={i === 0} onClick={() => move(j.id, i - 1)}>↑</button>
                  <button type="button" class="icon" title="Move down" aria-label="Move down" disabled={i === waiting.length - 1} onClick={() => move(j.id, i + 1)}>↓</button>
                </>
              )}
              <button type="button" class="link" onClick={() => onCancel(j.id)}>Cancel</button>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
