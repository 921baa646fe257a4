import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expiresWords, formatBytes, model, modelsAnswer } from '../src/modelinfo';

test('modelsAnswer: the contract shape, sorted, missing fields tolerated', () => {
  const a = modelsAnswer({
    models: [
      { name: 'sd-test', kind: 'image', loaded: false, size_bytes: 42e6, memory_bytes: 0, vision: false },
      { name: 'gemma', kind: 'llm', loaded: true, size_bytes: 3e9, memory_bytes: 3.2e9, expires_at: '2026-11-27T15:00:00Z', vision: true },
      { name: 'alpha', kind: 'llm' },
      { kind: 'llm' },
      null,
    ],
    memory: { budget_bytes: 8e9, used_bytes: 3.2e9 },
  });
  assert.deepEqual(a.models.map((m) => m.name), ['alpha', 'gemma', 'sd-test']);
  assert.deepEqual(a.models[0], { name: 'alpha', kind: 'llm', loaded: false, size_bytes: 0, memory_bytes: 0, vision: false });
  assert.equal(a.models[1].expires_at, '2026-11-27T15:00:00Z');
  assert.deepEqual(a.memory, { budget_bytes: 8e9, used_bytes: 3.2e9 });
  assert.deepEqual(modelsAnswer(null), { models: [], memory: { budget_bytes: 0, used_bytes: 0 } });
  assert.deepEqual(modelsAnswer({ memory: { budget_bytes: 9, used_bytes: 1, rss_bytes: 5, total_bytes: 16 } }).memory,
    { budget_bytes: 9, used_bytes: 1, rss_bytes: 5, total_bytes: 16 });
  assert.equal(model({ name: 'x', size_bytes: -1, memory_bytes: 'big' })?.size_bytes, 0);
});

test('formatBytes: powers of 1024', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(NaN), '0 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(42 * 1024 * 1024), '42.0 MB');
  assert.equal(formatBytes(300 * 1024 * 1024), '300 MB');
  assert.equal(formatBytes(3.5 * 1024 ** 3), '3.5 GB');
});

test('expiresWords: when a loaded model goes', () => {
  const now = Date.parse('2026-11-27T15:00:00Z');
  assert.equal(expiresWords(undefined, now), '');
  assert.equal(expiresWords('not a time', now), '');
  assert.equal(expiresWords('2026-11-27T14:59:00Z', now), 'unloading now');
  assert.equal(expiresWords('2026-11-27T15:00:30Z', now), 'unloads in 30 s');
  assert.equal(expiresWords('2026-11-27T15:05:00Z', now), 'unloads in 5 min');
  assert.equal(expiresWords('2026-11-27T18:00:00Z', now), 'unloads in 3 h');
});
