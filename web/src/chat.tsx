// The chat: conversations with a model through /v1/chat/completions,
// streamed (Server-Sent Events), with thinking shown apart from the answer.
// Conversations are kept on the server (/mica/v1/conversations) when it has
// a data folder, else in this browser (localStorage).
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, getJSON, send as request, streamSSE } from './api';
import { admit, content, fitsTotal, imageTypes, readDataURL, tooMuchInTotal } from './attachments';
import { Icon, clip } from './icons';
import { chatModels, hasVision } from './llm';
import { Markdown } from './markdown';
import { fail, load, loadRaw, notify, save } from './store';

export interface ToolCall {
  id?: string;
  name: string;
  arguments: string;
}

export interface Msg {
  role: 'user' | 'assistant' | 'tool';
  content: string;
  // images are a user message's attached pictures, as data: URLs; they
  // are kept with the conversation.
  images?: string[];
  reasoning?: string;
  toolCalls?: ToolCall[];
  toolCallID?: string;
  think?: boolean;
  error?: string;
  stopped?: boolean;
}

export interface Conversation {
  id: string;
  title: string;
  model: string;
  messages: Msg[];
  updated: number;
  // loaded is false while only the server's summary is here.
  loaded?: boolean;
}

interface ServerConversation {
  id: string;
  title: string;
  model: string;
  updated: string;
  messages?: Msg[];
}

interface ChatSettings {
  system: string;
  temperature: number;
  topP: number;
  maxTokens: number;
  think: boolean;
}

const defaultSettings: ChatSettings = { system: '', temperature: 0.8, topP: 0.95, maxTokens: 1024, think: false };
const convKey = 'mica.conversations';

function newID(): string {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

function title(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 48 ? t.slice(0, 47) + '…' : t || 'New chat';
}

// requestMessages is the conversation in the OpenAI shape.
export function requestMessages(system: string, msgs: Msg[]): unknown[] {
  const out: unknown[] = [];
  if (system.trim()) out.push({ role: 'system', content: system });
  for (const m of msgs) {
    if (m.error && !m.content && !m.toolCalls) continue;
    if (m.role === 'tool') out.push({ role: 'tool', content: m.content, tool_call_id: m.toolCallID ?? '' });
    else if (m.role === 'assistant' && m.toolCalls?.length)
      out.push({
        role: 'assistant',
        content: m.content || null,
        tool_calls: m.toolCalls.map((t, i) => ({ id: t.id ?? `call_${i}`, type: 'function', function: { name: t.name, arguments: t.arguments } })),
      });
    else if (m.role === 'user') out.push({ role: 'user', content: content(m.content, m.images) });
    else out.push({ role: m.role, content: m.content });
  }
  return out;
}

// Thumbs shows pictures small; with onRemove each gets a remove button.
function Thumbs({ images, onRemove }: { images: string[]; onRemove?: (i: number) => void }) {
  return (
    <div class="thumbs">
      {images.map((u, i) => (
        <span class="thumb-img">
          <img src={u} alt={`Attached image ${i + 1}`} />
          {onRemove && <button type="button" class="icon" aria-label={`Remove image ${i + 1}`} title="Remove" onClick={() => onRemove(i)}>×</button>}
        </span>
      ))}
    </div>
  );
}

function Thinking({ text, live }: { text: string; live: boolean }) {
  return (
    <details class="thinking" open={live}>
      <summary>{live ? 'Thinking…' : 'Thoughts'}</summary>
      <div class="thinking-body">{text}</div>
    </details>
  );
}

function Message(props: {
  m: Msg;
  live: boolean;
  last: boolean;
  onRegenerate: () => void;
  onEdit: (text: string) => void;
}) {
  const { m, live } = props;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(m.content);
  if (m.role === 'tool') {
    return (
      <div class="msg tool" data-role="tool">
        <div class="tool-card"><b>Tool result</b><pre>{m.content}</pre></div>
      </div>
    );
  }
  if (m.role === 'user') {
    return (
      <div class="msg user" data-role="user">
        {editing ? (
          <form class="edit" onSubmit={(e) => { e.preventDefault(); setEditing(false); props.onEdit(draft); }}>
            <textarea value={draft} rows={3} onInput={(e) => setDraft(e.currentTarget.value)} />
            <div class="row end">
              <button type="button" onClick={() => setEditing(false)}>Cancel</button>
              <button type="submit" class="primary">Send</button>
            </div>
          </form>
        ) : (
          <>
            {m.images?.length ? <Thumbs images={m.images} /> : null}
            {m.content ? <div class="bubble">{m.content}</div> : null}
            <div class="msg-tools">
              <button type="button" class="link" onClick={() => { setDraft(m.content); setEditing(true); }}>Edit</button>
            </div>
          </>
        )}
      </div>
    );
  }
  return (
    <div class="msg assistant" data-role="assistant">
      {m.reasoning ? <Thinking text={m.reasoning} live={live && !m.content} /> : null}
      {m.toolCalls?.map((t) => (
        <div class="tool-card" data-tool={t.name}>
          <b>Tool call</b> <code>{t.name}</code>
          <pre>{t.arguments}</pre>
        </div>
      ))}
      {m.content ? <Markdown text={m.content} /> : live && !m.reasoning ? <span class="dots">…</span> : null}
      {m.error ? <p class="error-text">{m.error}</p> : null}
      {m.stopped ? <p class="hint">Stopped.</p> : null}
      {!live && props.last ? (
        <div class="msg-tools">
          <button type="button" class="link" onClick={props.onRegenerate}>Regenerate</button>
          <button type="button" class="link" onClick={() => navigator.clipboard?.writeText(m.content)}>Copy</button>
        </div>
      ) : null}
    </div>
  );
}

// saveInBrowser keeps the conversations in localStorage; when they do not
// fit with their images, it keeps them without the images.
function saveInBrowser(convs: Conversation[]) {
  try {
    localStorage.setItem(convKey, JSON.stringify(convs));
    return;
  } catch {
    /* over the quota: try without the pictures */
  }
  save(convKey, convs.map((c) => ({ ...c, messages: c.messages.map(({ images: _, ...m }) => m) })));
}

export function Chat() {
  const [models, setModels] = useState<string[]>([]);
  const [convs, setConvs] = useState<Conversation[]>(() => loadRaw<Conversation[]>(convKey, []));
  const [current, setCurrent] = useState<string>(() => convs[0]?.id ?? '');
  // Where conversations live: 'server' once the server answered the list.
  const [where, setWhere] = useState<'unknown' | 'server' | 'browser'>('unknown');
  const dirty = useRef(new Set<string>());
  const [settings, setSettings] = useState<ChatSettings>(() => load('mica.chat', defaultSettings));
  const [model, setModel] = useState<string>(() => loadRaw('mica.chatModel', ''));
  const [input, setInput] = useState('');
  const [attached, setAttached] = useState<string[]>([]);
  // vision says which models take images (from /api/show's capabilities).
  const [vision, setVision] = useState<Record<string, boolean>>({});
  const fileInput = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const [showSettings, setShowSettings] = useState(false);
  const [showList, setShowList] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const end = useRef<HTMLDivElement>(null);
  const conv = convs.find((c) => c.id === current);

  useEffect(() => {
    chatModels()
      .then((ids) => {
        setModels(ids);
        if (!ids.includes(model) && ids.length > 0) setModel(ids[0]);
      })
      .catch(fail);
  }, []);
  useEffect(() => save('mica.chat', settings), [settings]);
  useEffect(() => save('mica.chatModel', model), [model]);
  useEffect(() => {
    if (!model || model in vision) return;
    hasVision(model)
      .then((yes) => setVision((v) => ({ ...v, [model]: yes })))
      .catch(() => setVision((v) => ({ ...v, [model]: false })));
  }, [model]);
  useEffect(() => {
    getJSON<{ conversations: ServerConversation[] }>('/mica/v1/conversations')
      .then((r) => {
        const list = r.conversations.map((c) => ({ id: c.id, title: c.title, model: c.model, messages: [], updated: Date.parse(c.updated), loaded: false }));
        setConvs(list);
        setCurrent((cur) => (list.some((c) => c.id === cur) ? cur : list[0]?.id ?? ''));
        setWhere('server');
      })
      .catch(() => setWhere('browser'));
  }, []);
  // Load a conversation's messages when it is opened.
  useEffect(() => {
    const c = convs.find((x) => x.id === current);
    if (where !== 'server' || !c || c.loaded !== false) return;
    getJSON<ServerConversation>(`/mica/v1/conversations/${encodeURIComponent(c.id)}`)
      .then((r) => setConvs((cs) => cs.map((x) => (x.id === c.id ? { ...x, messages: r.messages ?? [], loaded: true } : x))))
      .catch(fail);
  }, [current, where]);
  // Save what changed once no answer is streaming.
  useEffect(() => {
    if (busy || where === 'unknown') return;
    if (where === 'browser') {
      saveInBrowser(convs);
      return;
    }
    for (const id of dirty.current) {
      const c = convs.find((x) => x.id === id);
      dirty.current.delete(id);
      if (!c) continue;
      request(`/mica/v1/conversations/${encodeURIComponent(id)}`, { method: 'PUT', json: { title: c.title, model: c.model, messages: c.messages } }).catch(fail);
    }
  }, [convs, busy, where]);
  useEffect(() => end.current?.scrollIntoView({ block: 'end' }), [conv?.messages]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape' && abort.current) {
        e.preventDefault();
        abort.current.abort();
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);

  function update(id: string, f: (c: Conversation) => Conversation) {
    dirty.current.add(id);
    setConvs((cs) => cs.map((c) => (c.id === id ? f(c) : c)));
  }

  async function run(id: string, history: Msg[]) {
    const ac = new AbortController();
    abort.current = ac;
    setBusy(true);
    const think = settings.think;
    const reply: Msg = { role: 'assistant', content: '', think };
    const setReply = (r: Msg) => update(id, (c) => ({ ...c, messages: [...history, { ...r }], updated: Date.now() }));
    setReply(reply);
    const req = {
      model,
      messages: requestMessages(settings.system, history),
      stream: true,
      temperature: settings.temperature,
      top_p: settings.topP,
      max_tokens: settings.maxTokens,
      reasoning_effort: think ? 'high' : 'none',
    };
    try {
      await streamSSE('/v1/chat/completions', req, ac.signal, (ev) => {
        if (ev.data === '[DONE]') return;
        let chunk: { error?: { message?: string }; choices?: { delta?: { content?: string; reasoning_content?: string; tool_calls?: { index?: number; id?: string; function?: { name?: string; arguments?: string } }[] } }[] };
        try {
          chunk = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (chunk.error) {
          reply.error = chunk.error.message ?? 'The model failed.';
        }
        for (const c of chunk.choices ?? []) {
          const d = c.delta ?? {};
          if (d.content) reply.content += d.content;
          if (d.reasoning_content) reply.reasoning = (reply.reasoning ?? '') + d.reasoning_content;
          for (const t of d.tool_calls ?? []) {
            const calls = (reply.toolCalls ??= []);
            const i = t.index ?? calls.length;
            calls[i] ??= { id: t.id, name: '', arguments: '' };
            if (t.id) calls[i].id = t.id;
            if (t.function?.name) calls[i].name += t.function.name;
            if (t.function?.arguments) calls[i].arguments += t.function.arguments;
          }
        }
        setReply(reply);
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') reply.stopped = true;
      else reply.error = e instanceof Error ? e.message : String(e);
      setReply(reply);
    } finally {
      abort.current = null;
      setBusy(false);
    }
  }

  // A conversation whose messages are still loading cannot be added to:
  // saving it would replace the server's copy with a short one.
  const loading = conv?.loaded === false;

  function send(text: string, base?: Msg[], images: string[] = attached) {
    if (busy || loading || (!text.trim() && images.length === 0)) return;
    if (!model) {
      fail(new Error('No chat model: put a GGUF model in the models folder of mica serve.'));
      return;
    }
    let id = current;
    let history = base ?? conv?.messages ?? [];
    if (!conv) {
      id = newID();
      history = [];
      const c: Conversation = { id, title: text.trim() ? title(text) : 'Image', model, messages: [], updated: Date.now() };
      setConvs((cs) => [c, ...cs]);
      setCurrent(id);
    }
    if (images.length > 0 && vision[model] === false) {
      fail(new Error(`${model} cannot take images: remove them or choose a model with vision.`));
      return;
    }
    if (images.length > 0 && !fitsTotal(history.flatMap((m) => m.images ?? []), images)) {
      fail(new Error(tooMuchInTotal));
      return;
    }
    const user: Msg = { role: 'user', content: text, think: settings.think };
    if (images.length > 0) user.images = images;
    const msgs: Msg[] = [...history, user];
    setInput('');
    if (images === attached) setAttached([]);
    run(id, msgs);
  }

  function regenerate() {
    if (!conv || busy || loading) return;
    const msgs = [...conv.messages];
    while (msgs.length > 0 && msgs[msgs.length - 1].role === 'assistant') msgs.pop();
    if (msgs.length > 0) run(conv.id, msgs);
  }

  function edit(index: number, text: string) {
    if (!conv || busy || loading) return;
    send(text, conv.messages.slice(0, index), conv.messages[index].images ?? []);
  }

  const canSee = vision[model] === true;

  // attach reads the files that may be attached (see attachments.ts for
  // the limits) and says why any others were not.
  async function attach(files: File[]) {
    if (files.length === 0) return;
    if (!canSee) {
      fail(new Error(`${model || 'This model'} cannot take images.`));
      return;
    }
    const { take, problems } = admit(files, attached.length);
    for (const p of problems) notify(p, 'error');
    try {
      const urls = await Promise.all(files.filter((_, i) => take[i]).map(readDataURL));
      if (urls.length > 0) setAttached((a) => [...a, ...urls]);
    } catch (e) {
      fail(e);
    }
  }

  function remove(id: string) {
    dirty.current.delete(id);
    if (where === 'server') {
      request(`/mica/v1/conversations/${encodeURIComponent(id)}`, { method: 'DELETE' }).catch((e) => {
        if (!(e instanceof ApiError && e.status === 404)) fail(e);
      });
    }
    setConvs((cs) => cs.filter((c) => c.id !== id));
    if (id === current) setCurrent('');
  }

  const num = (k: keyof ChatSettings, v: string) => setSettings({ ...settings, [k]: Number(v) });

  return (
    <div class="chat">
      <aside class={showList ? 'convs open' : 'convs'}>
        <button type="button" class="primary wide" onClick={() => { setCurrent(''); setShowList(false); }}>New chat</button>
        <ul>
          {convs.map((c) => (
            <li class={c.id === current ? 'on' : ''} key={c.id}>
              <button type="button" class="conv" onClick={() => { setCurrent(c.id); setShowList(false); }}>{c.title}</button>
              <button type="button" class="icon" aria-label={`Delete ${c.title}`} title="Delete" onClick={() => remove(c.id)}>×</button>
            </li>
          ))}
        </ul>
        <p class="hint">{where === 'server' ? 'Conversations are kept by mica serve.' : where === 'browser' ? 'Conversations are kept in this browser (mica serve has no data folder).' : ''}</p>
      </aside>
      <section class="thread">
        <div class="bar">
          <button type="button" class="icon narrow-only" aria-label="Conversations" onClick={() => setShowList(!showList)}>☰</button>
          <label class="inline">
            Model
            <select value={model} onChange={(e) => setModel(e.currentTarget.value)} aria-label="Model">
              {models.length === 0 && <option value="">no models</option>}
              {models.map((m) => <option value={m}>{m}</option>)}
            </select>
          </label>
          <label class="switch" title="Let the model think before it answers (applies to the next message)">
            <input type="checkbox" checked={settings.think} onChange={(e) => setSettings({ ...settings, think: e.currentTarget.checked })} />
            Think
          </label>
          <span class="grow" />
          <button type="button" onClick={() => setShowSettings(!showSettings)} aria-expanded={showSettings}>Options</button>
        </div>
        {showSettings && (
          <div class="chat-settings">
            <label class="full">
              System prompt
              <textarea rows={3} value={settings.system} placeholder="How the model should behave"
                onInput={(e) => setSettings({ ...settings, system: e.currentTarget.value })} />
            </label>
            <label>Temperature <input type="number" min={0} max={2} step={0.05} value={settings.temperature} onInput={(e) => num('temperature', e.currentTarget.value)} /></label>
            <label>Top P <input type="number" min={0} max={1} step={0.01} value={settings.topP} onInput={(e) => num('topP', e.currentTarget.value)} /></label>
            <label>Max tokens <input type="number" min={1} max={32768} step={1} value={settings.maxTokens} onInput={(e) => num('maxTokens', e.currentTarget.value)} /></label>
          </div>
        )}
        <div class="messages" aria-live="polite">
          {!conv || conv.messages.length === 0 ? (
            <div class="empty">
              <h2>Chat with {model || 'a model'}</h2>
              <p class="hint">Answers stream as they are written. <kbd>Ctrl</kbd>+<kbd>Enter</kbd> sends, <kbd>Esc</kbd> stops.</p>
            </div>
          ) : (
            conv.messages.map((m, i) => (
              <Message m={m} live={busy && i === conv.messages.length - 1} last={i === conv.messages.length - 1}
                onRegenerate={regenerate} onEdit={(t) => edit(i, t)} />
            ))
          )}
          <div ref={end} />
        </div>
        {attached.length > 0 && (
          <div class="attached">
            <Thumbs images={attached} onRemove={(i) => setAttached((a) => a.filter((_, j) => j !== i))} />
          </div>
        )}
        <form class="composer" onSubmit={(e) => { e.preventDefault(); send(input); }}
          onDragOver={(e) => { if (canSee && e.dataTransfer?.types.includes('Files')) e.preventDefault(); }}
          onDrop={(e) => {
            const files = [...(e.dataTransfer?.files ?? [])];
            if (files.length === 0) return;
            e.preventDefault();
            attach(files);
          }}>
          <input ref={fileInput} type="file" accept={imageTypes.join(',')} multiple hidden
            onChange={(e) => { attach([...(e.currentTarget.files ?? [])]); e.currentTarget.value = ''; }} />
          <button type="button" class="icon" disabled={!canSee || busy} aria-label="Attach an image"
            title={canSee ? 'Attach images (or paste or drop them here)'
              : model && !(model in vision) ? `Checking whether ${model} takes images…`
              : `${model || 'This model'} is text-only: a model takes images when its vision file (mmproj-NAME.gguf) lies beside it in the models folder.`}
            onClick={() => fileInput.current?.click()}><Icon d={clip} /></button>
          <textarea rows={2} value={input} placeholder="Message" aria-label="Message"
            onInput={(e) => setInput(e.currentTarget.value)}
            onPaste={(e) => {
              const files = [...(e.clipboardData?.files ?? [])];
              if (files.length === 0) return;
              e.preventDefault();
              attach(files);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || !e.shiftKey)) {
                e.preventDefault();
                send(input);
              }
            }} />
          {busy ? (
            <button type="button" class="danger" onClick={() => abort.current?.abort()}>Stop</button>
          ) : (
            <button type="submit" class="primary" disabled={(!input.trim() && attached.length === 0) || loading}>Send</button>
          )}
        </form>
      </section>
    </div>
  );
}
