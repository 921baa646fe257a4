import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSEParser, errorWords } from '../src/api';

const stream = 'event: step\ndata: {"a":1}\n\n: ping\n\ndata: line1\ndata: line2\n\r\ndata: [DONE]\r\n\r\nevent: x\n\n';
const want = [
  { event: 'step', data: '{"a":1}' },
  { event: 'message', data: 'line1\nline2' },
  { event: 'message', data: '[DONE]' },
];

test('SSEParser: the same events however the stream is cut', () => {
  assert.deepEqual(new SSEParser().push(stream), want);
  for (let cut = 1; cut < stream.length; cut++) {
    const p = new SSEParser();
    assert.deepEqual([...p.push(stream.slice(0, cut)), ...p.push(stream.slice(cut))], want, `cut at ${cut}`);
  }
  const p = new SSEParser();
  const got = [...stream].flatMap((c) => p.push(c));
  assert.deepEqual(got, want);
});

test('errorWords: every error shape the APIs send', () => {
  assert.equal(errorWords(400, { error: { message: 'bad model', type: 'invalid_request_error' } }), 'The request was not understood: bad model');
  assert.equal(
    errorWords(422, { detail: [{ loc: ['body', 'steps'], msg: 'steps must be between 1 and 150', type: 'value_error' }] }),
    'Some settings are not valid: steps: steps must be between 1 and 150',
  );
  assert.equal(errorWords(404, { detail: 'sampler not found' }), 'Not found: sampler not found');
  assert.equal(errorWords(500, { error: 'Internal Server Error', detail: 'boom' }), 'mica failed on its side: boom');
  assert.equal(errorWords(404, { error: 'model "x" not found' }), 'Not found: model "x" not found');
  assert.equal(errorWords(401, ''), 'mica wants an API key: set it in Settings.');
  assert.equal(errorWords(418, 'teapot'), 'The request failed (HTTP 418): teapot');
});
