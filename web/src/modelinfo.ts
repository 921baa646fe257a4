// The shapes of mica's model management API (/mica/v1/models) and the words
// the models page shows for them. No JSX or page state: the node tests load it.

export interface ManagedModel {
  name: string;
  kind: 'llm' | 'image';
  loaded: boolean;
  size_bytes: number;
  memory_bytes: number;
  expires_at?: string;
  vision: boolean;
}

export interface ModelsAnswer {
  models: ManagedModel[];
  // rss_bytes (the server process's resident memory) and total_bytes (the
  // machine's) are extras a server may send.
  memory: { budget_bytes: number; used_bytes: number; rss_bytes?: number; total_bytes?: number };
}

function n(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

// model reads one model object, tolerating missing fields.
export function model(v: unknown): ManagedModel | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string' || !o.name) return null;
  const m: ManagedModel = {
    name: o.name,
    kind: o.kind === 'image' ? 'image' : 'llm',
    loaded: o.loaded === true,
    size_bytes: n(o.size_bytes),
    memory_bytes: n(o.memory_bytes),
    vision: o.vision === true,
  };
  if (typeof o.expires_at === 'string' && o.expires_at) m.expires_at = o.expires_at;
  return m;
}

// modelsAnswer reads GET /mica/v1/models; the list comes sorted: language
// models first, then by name.
export function modelsAnswer(v: unknown): ModelsAnswer {
  const o = (v && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  const list = Array.isArray(o.models) ? o.models.map(model).filter((m): m is ManagedModel => m !== null) : [];
  list.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === 'llm' ? -1 : 1));
  const mem = (o.memory && typeof o.memory === 'object' ? o.memory : {}) as Record<string, unknown>;
  const memory: ModelsAnswer['memory'] = { budget_bytes: n(mem.budget_bytes), used_bytes: n(mem.used_bytes) };
  if (n(mem.rss_bytes) > 0) memory.rss_bytes = n(mem.rss_bytes);
  if (n(mem.total_bytes) > 0) memory.total_bytes = n(mem.total_bytes);
  return { models: list, memory };
}

// formatBytes writes a size the way people read it (powers of 1024).
export function formatBytes(b: number): string {
  if (!(b > 0)) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${i === 0 ? b : b >= 100 ? Math.round(b) : b.toFixed(1)} ${units[i]}`;
}

// expiresWords says when a loaded model will be unloaded, seen from now
// (ms since the epoch): '' when it stays.
export function expiresWords(iso: string | undefined, now: number): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.round((t - now) / 1000);
  if (s <= 0) return 'unloading now';
  if (s < 60) return `unloads in ${s} s`;
  if (s < 3600) return `unloads in ${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `unloads in ${Math.round(s / 3600)} h`;
  return `unloads on ${new Date(t).toLocaleDateString()}`;
}
