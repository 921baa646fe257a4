// Code highlighting for answers: a small lexer that colours comments,
// strings, numbers and keywords of the common languages. Output is spans of
// text, never markup.
import type { ComponentChildren } from 'preact';

const keywords = new Set(
  (
    'as async await break case catch class const continue def default defer del do elif else enum except export ' +
    'extends false final finally fn for from func function go if impl import in interface is lambda let loop match ' +
    'mod mut new nil None not null or package pass pub raise return select self static struct super switch this ' +
    'throw true True False try type typeof use var void while with yield int float double char bool string'
  ).split(' '),
);

const hashComment = new Set(['python', 'py', 'sh', 'bash', 'shell', 'zsh', 'ruby', 'rb', 'yaml', 'yml', 'toml', 'r', 'perl', 'dockerfile', 'makefile']);

export function highlight(code: string, lang: string): ComponentChildren[] {
  if (code.length > 100_000 || ['', 'text', 'txt', 'plain', 'markdown', 'md'].includes(lang)) return [code];
  const hash = hashComment.has(lang);
  const re = new RegExp(
    [
      hash ? '#[^\\n]*' : '//[^\\n]*|/\\*[\\s\\S]*?(?:\\*/|$)',
      '"(?:\\\\.|[^"\\\\\\n])*"?',
      "'(?:\\\\.|[^'\\\\\\n])*'?",
      '`(?:\\\\.|[^`\\\\])*`?',
      '\\b\\d[\\d_]*(?:\\.\\d+)?(?:e[+-]?\\d+)?\\b|\\b0x[\\da-f]+\\b',
      '\\b[A-Za-z_]\\w*\\b',
    ].join('|'),
    'gi',
  );
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const m of code.matchAll(re)) {
    const s = m[0];
    const i = m.index ?? 0;
    let cls = '';
    const c = s[0];
    if (c === '/' || (hash && c === '#')) cls = 'tok-c';
    else if (c === '"' || c === "'" || c === '`') cls = 'tok-s';
    else if (c >= '0' && c <= '9') cls = 'tok-n';
    else if (keywords.has(s)) cls = 'tok-k';
    if (!cls) continue;
    if (i > last) out.push(code.slice(last, i));
    out.push(<span class={cls}>{s}</span>);
    last = i + s.length;
  }
  if (last < code.length) out.push(code.slice(last));
  return out;
}
