// A small Markdown renderer for model output. It builds virtual DOM nodes,
// never HTML strings, so nothing a model writes can become markup: raw
// HTML shows as text and links are limited to http(s) and mailto.
import type { ComponentChildren } from 'preact';
import { highlight } from './highlight';

type Block =
  | { t: 'code'; lang: string; text: string }
  | { t: 'h'; level: number; text: string }
  | { t: 'p'; text: string }
  | { t: 'quote'; lines: string[] }
  | { t: 'list'; ordered: boolean; start: number; items: string[] }
  | { t: 'hr' }
  | { t: 'table'; head: string[]; rows: string[][] };

const fence = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const heading = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const bullet = /^ {0,3}[-*+]\s+(.*)$/;
const ordered = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;
const rule = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const tableSep = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function cells(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|')) s = s.slice(0, -1);
  return s.split('|').map((c) => c.trim());
}

// blocks splits text into block elements. An unclosed code fence (a
// streaming answer) runs to the end.
export function blocks(src: string): Block[] {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const out: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m: RegExpMatchArray | null;
    if (line.trim() === '') {
      i++;
    } else if ((m = line.match(fence))) {
      const close = m[1];
      const body: string[] = [];
      i++;
      while (i < lines.length && !(lines[i].trim().startsWith(close) && lines[i].trim().replace(/[`~]/g, '') === '')) {
        body.push(lines[i]);
        i++;
      }
      i++;
      out.push({ t: 'code', lang: m[2].toLowerCase(), text: body.join('\n') });
    } else if ((m = line.match(heading))) {
      out.push({ t: 'h', level: m[1].length, text: m[2] });
      i++;
    } else if (rule.test(line)) {
      out.push({ t: 'hr' });
      i++;
    } else if (line.trimStart().startsWith('>')) {
      const q: string[] = [];
      while (i < lines.length && lines[i].trimStart().startsWith('>')) {
        q.push(lines[i].trimStart().slice(1).replace(/^ /, ''));
        i++;
      }
      out.push({ t: 'quote', lines: q });
    } else if (bullet.test(line) || ordered.test(line)) {
      const isOrdered = !bullet.test(line);
      const start = isOrdered ? parseInt(line.match(ordered)![1], 10) : 1;
      const items: string[] = [];
      while (i < lines.length) {
        const l = lines[i];
        const b = isOrdered ? l.match(ordered) : l.match(bullet);
        if (b) {
          items.push(isOrdered ? b[2] : b[1]);
        } else if (l.trim() !== '' && /^\s{2,}/.test(l) && items.length > 0) {
          items[items.length - 1] += ' ' + l.trim();
        } else {
          break;
        }
        i++;
      }
      out.push({ t: 'list', ordered: isOrdered, start, items });
    } else if (line.includes('|') && i + 1 < lines.length && tableSep.test(lines[i + 1])) {
      const head = cells(line);
      i += 2;
      const rows: string[][] = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') {
        rows.push(cells(lines[i]));
        i++;
      }
      out.push({ t: 'table', head, rows });
    } else {
      const para: string[] = [];
      while (
        i < lines.length &&
        lines[i].trim() !== '' &&
        !fence.test(lines[i]) &&
        !heading.test(lines[i]) &&
        !lines[i].trimStart().startsWith('>') &&
        !(para.length > 0 && (bullet.test(lines[i]) || ordered.test(lines[i])))
      ) {
        para.push(lines[i]);
        i++;
      }
      out.push({ t: 'p', text: para.join('\n') });
    }
  }
  return out;
}

// safeHref allows only web and mail links; anything else is not a link.
export function safeHref(url: string): string | null {
  const u = url.trim();
  if (/^(https?:\/\/|mailto:)/i.test(u)) return u;
  return null;
}

const word = /[\p{L}\p{N}_]/u;

// inline renders emphasis, code spans, links and line breaks. It scans once
// and looks for each closing delimiter with indexOf, remembering which ones
// do not occur again, so no input makes it slow.
export function inline(text: string): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  const absent = new Set<string>();
  let buf = '';
  let i = 0;
  const flush = () => {
    if (buf) out.push(buf);
    buf = '';
  };
  const find = (d: string, from: number): number => {
    if (absent.has(d)) return -1;
    const j = text.indexOf(d, from);
    if (j < 0) absent.add(d);
    return j;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      flush();
      out.push(<br />);
      i++;
    } else if (c === '`') {
      let n = 1;
      while (text[i + n] === '`') n++;
      const d = '`'.repeat(n);
      const j = find(d, i + n);
      if (j > i + n) {
        flush();
        const code = text.slice(i + n, j);
        out.push(<code>{code.trim() || code}</code>);
        i = j + n;
      } else {
        buf += d;
        i += n;
      }
    } else if ((c === '*' || c === '_' || c === '~') && !(c === '_' && i > 0 && word.test(text[i - 1]))) {
      const d = c + c;
      let j = text[i + 1] === c ? find(d, i + 2) : -1;
      if (j > i + 2) {
        flush();
        const inner = inline(text.slice(i + 2, j));
        out.push(c === '~' ? <del>{inner}</del> : <strong>{inner}</strong>);
        i = j + 2;
        continue;
      }
      j = c !== '~' && text[i + 1] !== undefined && !/\s/.test(text[i + 1]) && text[i + 1] !== c ? find(c, i + 1) : -1;
      if (j > i + 1 && !(c === '_' && word.test(text[j + 1] ?? ''))) {
        flush();
        out.push(<em>{inline(text.slice(i + 1, j))}</em>);
        i = j + 1;
      } else {
        buf += c;
        i++;
      }
    } else if (c === '[') {
      const j = find('](', i + 1);
      const k = j > i ? text.indexOf(')', j + 2) : -1;
      const label = j > i ? text.slice(i + 1, j) : '';
      const href = k > j ? safeHref(text.slice(j + 2, k)) : null;
      if (href && label && !label.includes('[') && !/\s/.test(text.slice(j + 2, k))) {
        flush();
        out.push(<a href={href} target="_blank" rel="noopener noreferrer">{inline(label)}</a>);
        i = k + 1;
      } else {
        buf += c;
        i++;
      }
    } else if (c === 'h' && (i === 0 || !word.test(text[i - 1])) && /^https?:\/\/[^\s<>()]/.test(text.slice(i, i + 9))) {
      let j = i;
      while (j < text.length && !/[\s<>()]/.test(text[j])) j++;
      while (j > i && /[.,;:!?'"]/.test(text[j - 1])) j--;
      flush();
      const url = text.slice(i, j);
      out.push(<a href={url} target="_blank" rel="noopener noreferrer">{url}</a>);
      i = j;
    } else {
      buf += c;
      i++;
    }
  }
  flush();
  return out;
}

function CodeBlock({ lang, text }: { lang: string; text: string }) {
  const copy = () => navigator.clipboard?.writeText(text);
  return (
    <div class="code">
      <div class="code-bar">
        <span>{lang || 'text'}</span>
        <button type="button" class="link" onClick={copy}>Copy</button>
      </div>
      <pre><code>{highlight(text, lang)}</code></pre>
    </div>
  );
}

export function Markdown({ text }: { text: string }) {
  return (
    <div class="md">
      {blocks(text).map((b) => {
        switch (b.t) {
          case 'code':
            return <CodeBlock lang={b.lang} text={b.text} />;
          case 'h': {
            const H = `h${Math.min(b.level + 2, 6)}` as 'h3';
            return <H>{inline(b.text)}</H>;
          }
          case 'hr':
            return <hr />;
          case 'quote':
            return <blockquote><Markdown text={b.lines.join('\n')} /></blockquote>;
          case 'list':
            return b.ordered ? (
              <ol start={b.start}>{b.items.map((it) => <li>{inline(it)}</li>)}</ol>
            ) : (
              <ul>{b.items.map((it) => <li>{inline(it)}</li>)}</ul>
            );
          case 'table':
            return (
              <div class="table-wrap">
                <table>
                  <thead><tr>{b.head.map((c) => <th>{inline(c)}</th>)}</tr></thead>
                  <tbody>{b.rows.map((r) => <tr>{r.map((c) => <td>{inline(c)}</td>)}</tr>)}</tbody>
                </table>
              </div>
            );
          default:
            return <p>{inline(b.text)}</p>;
        }
      })}
    </div>
  );
}
