// The models page: every model mica can run (language and image), which are
// loaded and how much memory each holds against the server's budget, with
// load and unload buttons — through /mica/v1/models.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getJSON, postJSON } from './api';
import { expiresWords, formatBytes, model, modelsAnswer, type ManagedModel, type ModelsAnswer } from './modelinfo';
import { fail, notify } from './store';

type Page = { state: 'loading' } | { state: 'unsupported' } | { state: 'error'; message: string } | { state: 'ok'; data: ModelsAnswer };

export function Models() {
  const [page, setPage] = useState<Page>({ state: 'loading' });
  const [busy, setBusy] = useState<Record<string, 'load' | 'unload'>>({});
  const [now, setNow] = useState(Date.now());

  async function refresh() {
    try {
      setPage({ state: 'ok', data: modelsAnswer(await getJSON<unknown>('/mica/v1/models')) });
    } catch (e) {
      // A server without the API answers 404 (or 405 for the path).
      if (e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 501)) setPage({ state: 'unsupported' });
      else if (e instanceof SyntaxError) setPage({ state: 'unsupported' });
      else setPage({ state: 'error', message: e instanceof Error ? e.message : String(e) });
    }
    setNow(Date.now());
  }
  useEffect(() => {
    refresh();
  }, []);
  // Loaded models with a time to live: look again when the first expires,
  // and keep the "unloads in" words current.
  const data = page.state === 'ok' ? page.data : null;
  useEffect(() => {
    if (!data) return;
    const next = Math.min(...data.models.filter((m) => m.loaded && m.expires_at).map((m) => Date.parse(m.expires_at!)).filter((t) => !Number.isNaN(t)));
    const tick = setInterval(() => setNow(Date.now()), 15000);
    const t = Number.isFinite(next) ? setTimeout(refresh, Math.max(1000, next - Date.now() + 1000)) : 0;
    return () => {
      clearInterval(tick);
      if (t) clearTimeout(t);
    };
  }, [data]);

  async function act(m: ManagedModel, what: 'load' | 'unload') {
    setBusy((b) => ({ ...b, [m.name]: what }));
    try {
      const r = model(await postJSON<unknown>(`/mica/v1/models/${encodeURIComponent(m.name)}/${what}?kind=${m.kind}`, {}));
      if (r && data) setPage({ state: 'ok', data: { ...data, models: data.models.map((x) => (x.name === r.name && x.kind === r.kind ? r : x)) } });
      notify(what === 'load' ? `${m.name} is loaded.` : `${m.name} is unloaded.`);
      await refresh();
    } catch (e) {
      fail(e);
    } finally {
      setBusy((b) => {
        const { [m.name]: _, ...rest } = b;
        return rest;
      });
    }
  }

  return (
    <div class="models-page">
      <div class="row">
        <h2 class="grow">Models</h2>
        <button type="button" onClick={refresh}>Refresh</button>
      </div>
      {page.state === 'loading' && <p class="hint">Asking mica for its models…</p>}
      {page.state === 'unsupported' && (
        <div class="empty" role="alert">
          <h2>This server does not support model management</h2>
          <p class="hint">Its <code>mica serve</code> has no <code>/mica/v1/models</code>: update mica to see and load models here. Chat and Images list their models as before.</p>
        </div>
      )}
      {page.state === 'error' && <p class="error-text" role="alert">{page.message}</p>}
      {data && (
        <>
          <Memory {...data.memory} />
          {data.models.length === 0 ? (
            <div class="empty"><h2>No models</h2><p class="hint">Put GGUF language models and Stable Diffusion checkpoints in the models folder of mica serve.</p></div>
          ) : (
            <div class="table-wrap">
              <table class="models">
                <thead>
                  <tr><th>Model</th><th>Kind</th><th>State</th><th class="n">File</th><th class="n">Memory</th><th /></tr>
                </thead>
                <tbody>
                  {data.models.map((m) => (
                    <tr key={m.kind + ':' + m.name} data-model={m.name} data-loaded={String(m.loaded)}>
                      <td>{m.name}{m.vision && <span class="badge" title="Takes images">vision</span>}</td>
                      <td>{m.kind === 'llm' ? 'Language' : 'Image'}</td>
                      <td>{m.loaded ? <><b>Loaded</b> <span class="small">{expiresWords(m.expires_at, now)}</span></> : <span class="small">Not loaded</span>}</td>
                      <td class="n">{m.size_bytes ? formatBytes(m.size_bytes) : '—'}</td>
                      <td class="n">{m.loaded ? formatBytes(m.memory_bytes) : m.memory_bytes > 0 ? <span class="small" title="The memory it would take once loaded">≈ {formatBytes(m.memory_bytes)}</span> : '—'}</td>
                      <td class="n">
                        {busy[m.name] ? (
                          <span class="small">{busy[m.name] === 'load' ? 'Loading…' : 'Unloading…'}</span>
                        ) : m.loaded ? (
                          <button type="button" aria-label={`Unload ${m.name}`} onClick={() => act(m, 'unload')}>Unload</button>
                        ) : (
                          <button type="button" class="primary" aria-label={`Load ${m.name}`} onClick={() => act(m, 'load')}>Load</button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}

function Memory(m: ModelsAnswer['memory']) {
  const used = m.used_bytes;
  const budget = m.budget_bytes;
  const pct = budget > 0 ? Math.min(100, Math.round((used / budget) * 100)) : 0;
  return (
    <div class="memory">
      <div class="row small">
        <span>Memory in use: <b>{formatBytes(used)}</b>{budget > 0 ? ` of ${formatBytes(budget)}` : ''}</span>
        <span class="grow" />
        {m.rss_bytes !== undefined && <span title="The server process's resident memory">mica: {formatBytes(m.rss_bytes)}</span>}
        {m.total_bytes !== undefined && <span title="The machine's memory">machine: {formatBytes(m.total_bytes)}</span>}
        {budget > 0 && <span>{pct}%</span>}
      </div>
      {budget > 0 && (
        <div class="progress" role="progressbar" aria-label="Memory in use" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
          <div class="progress-fill" style={{ width: `${pct}%` }} />
        </div>
      )}
    </div>
  );
}
