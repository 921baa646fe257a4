import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VNode } from 'preact';
import { blocks, inline, safeHref } from '../src/markdown';

// text flattens rendered inline nodes back to their visible text.
function text(nodes: unknown): string {
  if (nodes == null || typeof nodes === 'boolean') return '';
  if (typeof nodes === 'string' || typeof nodes === 'number') return String(nodes);
  if (Array.isArray(nodes)) return nodes.map(text).join('');
  const v = nodes as VNode<{ children?: unknown }>;
  return v.type === 'br' ? '\n' : text(v.props.children);
}

function types(nodes: unknown[]): string[] {
  return nodes.map((n) => (typeof n === 'string' ? 'text' : String((n as VNode).type)));
}

test('blocks: code fences, headings, lists, quotes, tables, rules', () => {
  const b = blocks('# Title\n\nSome *text*\nmore\n\n```py\nx = 1\n```\n- a\n- b\n  continued\n1. one\n2. two\n> quoted\n\n---\n| a | b |\n|---|:-:|\n| 1 | 2 |\n');
  assert.deepEqual(b.map((x) => x.t), ['h', 'p', 'code', 'list', 'list', 'quote', 'hr', 'table']);
  assert.deepEqual(b[2], { t: 'code', lang: 'py', text: 'x = 1' });
  assert.deepEqual(b[3], { t: 'list', ordered: false, start: 1, items: ['a', 'b continued'] });
  assert.deepEqual(b[7], { t: 'table', head: ['a', 'b'], rows: [['1', '2']] });
});

test('blocks: an unclosed fence (a streaming answer) runs to the end', () => {
  assert.deepEqual(blocks('intro\n```js\nlet a = 1;\nlet b'), [
    { t: 'p', text: 'intro' },
    { t: 'code', lang: 'js', text: 'let a = 1;\nlet b' },
  ]);
});

test('inline: emphasis, code and links become elements', () => {
  const n = inline('a **b** *c* `d` ~~e~~ [f](https://x.test/) https://y.test/p.');
  assert.deepEqual(types(n), ['text', 'strong', 'text', 'em', 'text', 'code', 'text', 'del', 'text', 'a', 'text', 'a', 'text']);
  assert.equal(text(n), 'a b c d e f https://y.test/p.');
  assert.equal((n[9] as VNode<{ href: string }>).props.href, 'https://x.test/');
  assert.equal((n[11] as VNode<{ href: string }>).props.href, 'https://y.test/p');
});

test('inline: raw HTML stays text and unsafe links are not links', () => {
  const html = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
  assert.deepEqual(inline(html), [html]);
  for (const bad of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'vbscript:x', ' JAVASCRIPT:alert(1)']) {
    const n = inline(`[click](${bad})`);
    assert.ok(n.every((x) => typeof x === 'string'), `${bad} became a link`);
    assert.equal(safeHref(bad), null);
  }
  assert.equal(safeHref('mailto:a@b.test'), 'mailto:a@b.test');
});

test('inline: pathological input ends (no catastrophic backtracking)', () => {
  const t0 = Date.now();
  inline('*'.repeat(5000) + '_'.repeat(5000) + '`'.repeat(5000) + '['.repeat(5000));
  blocks('- '.repeat(5000) + '\n' + '|'.repeat(5000) + '\n' + '> '.repeat(5000));
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});
