// mica's browser UI: chat and image studio in one page. It talks to mica
// only through the public HTTP APIs.
import { render } from 'preact';
import { useState } from 'preact/hooks';
import './style.css';
import { apiKey, setApiKey } from './api';
import { Chat } from './chat';
import { Gallery } from './gallery';
import { Models } from './models';
import { Studio } from './studio';
import { dismiss, navigate, notices, route, save, loadRaw, useValue } from './store';

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
  const t = loadRaw<Theme | null>('mica.theme', null);
  if (t === 'light' || t === 'dark') return t;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function applyTheme(t: Theme) {
  document.documentElement.dataset.theme = t;
}

function Settings({ onClose }: { onClose: () => void }) {
  const [key, setKey] = useState(apiKey());
  return (
    <div class="dialog-back" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <form
        class="dialog"
        aria-label="Settings"
        onSubmit={(e) => {
          e.preventDefault();
          setApiKey(key.trim());
          onClose();
        }}
      >
        <h2>Settings</h2>
        <label>
          API key
          <input type="password" value={key} autocomplete="off" placeholder="only when mica serve asks for one"
            onInput={(e) => setKey(e.currentTarget.value)} />
        </label>
        <p class="hint">Kept in this browser only. Sent as <code>Authorization: Bearer …</code> with every request.</p>
        <p class="hint">Shortcuts: <kbd>Ctrl</kbd>/<kbd>⌘</kbd>+<kbd>Enter</kbd> sends or generates, <kbd>Esc</kbd> stops.</p>
        <div class="row end">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary">Save</button>
        </div>
      </form>
    </div>
  );
}

function App() {
  const path = useValue(route);
  const list = useValue(notices);
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [settings, setSettings] = useState(false);
  applyTheme(theme);
  const page = path.startsWith('/ui/studio') ? 'studio' : path.startsWith('/ui/gallery') ? 'gallery' : path.startsWith('/ui/models') ? 'models' : 'chat';
  const tab = (p: string, label: string) => (
    <a href={'/ui/' + p} class={page === p ? 'tab on' : 'tab'} aria-current={page === p ? 'page' : undefined}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey) return;
        e.preventDefault();
        navigate('/ui/' + p);
      }}>
      {label}
    </a>
  );
  return (
    <div class="app">
      <header class="top">
        <span class="brand">mica</span>
        <nav>
          {tab('chat', 'Chat')}
          {tab('studio', 'Images')}
          {tab('gallery', 'Gallery')}
          {tab('models', 'Models')}
        </nav>
        <span class="grow" />
        <button type="button" class="icon" title={theme === 'dark' ? 'Light theme' : 'Dark theme'} aria-label="Toggle theme"
          onClick={() => {
            const t = theme === 'dark' ? 'light' : 'dark';
            save('mica.theme', t);
            setTheme(t);
          }}>
          {theme === 'dark' ? '☀' : '☾'}
        </button>
        <button type="button" class="icon" title="Settings" aria-label="Settings" onClick={() => setSettings(true)}>⚙</button>
      </header>
      <main>
        {page === 'chat' && <Chat />}
        {page === 'studio' && <Studio />}
        {page === 'gallery' && <Gallery />}
        {page === 'models' && <Models />}
      </main>
      <div class="notices" role="status" aria-live="polite">
        {list.map((n) => (
          <div class={'notice ' + n.kind} key={n.id}>
            <span>{n.text}</span>
            <button type="button" class="icon" aria-label="Dismiss" onClick={() => dismiss(n.id)}>×</button>
          </div>
        ))}
      </div>
      {settings && <Settings onClose={() => setSettings(false)} />}
    </div>
  );
}

if (!location.pathname.startsWith('/ui/')) history.replaceState(null, '', '/ui/chat');
route.set(location.pathname);
render(<App />, document.getElementById('app')!);
