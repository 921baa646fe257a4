import { test } from 'node:test';
import assert from 'node:assert/strict';
import { askJSON, describeRequest, describeWith, enhanceRequest, parseAnswer, pickVision, promptSchema } from '../src/llm';

test('enhanceRequest: a streamed, strict json_schema request with the prompt', () => {
  const r = enhanceRequest('tiny', '  a fox  ', 'blurry') as any;
  assert.equal(r.model, 'tiny');
  assert.equal(r.stream, true);
  assert.equal(r.response_format.type, 'json_schema');
  assert.equal(r.response_format.json_schema.strict, true);
  assert.equal(r.response_format.json_schema.name, 'sd_prompt');
  const s = r.response_format.json_schema.schema;
  assert.deepEqual(Object.keys(s.properties).sort(), ['negative_prompt', 'prompt', 'style_notes']);
  assert.deepEqual(s.required, ['prompt', 'negative_prompt']);
  assert.equal(s.additionalProperties, false);
  // Every string is bounded (mica's grammar takes at most 1024), so a
  // model cannot write forever.
  for (const p of Object.values(promptSchema.properties)) assert.ok(p.maxLength > 0 && p.maxLength <= 1024);
  assert.equal(r.messages[r.messages.length - 1].content, 'Prompt: a fox\nNegative prompt: blurry');
  assert.equal((enhanceRequest('m', 'x', '  ') as any).messages[1].content, 'Prompt: x');
});

test('describeRequest: the picture goes as an image_url part', () => {
  const r = describeRequest('eye', 'data:image/png;base64,AAAA') as any;
  const parts = r.messages[0].content;
  assert.equal(parts[0].type, 'text');
  assert.deepEqual(parts[1], { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } });
  assert.deepEqual(r.response_format.json_schema.schema.required, ['prompt']);
});

test('parseAnswer: fields, and errors in words', () => {
  assert.deepEqual(parseAnswer('{"negative_prompt":" lowres ","prompt":" a fox, snow ","style_notes":"cold light"}'),
    { prompt: 'a fox, snow', negative: 'lowres', notes: 'cold light' });
  assert.deepEqual(parseAnswer('{"prompt":"x","style_notes":"  "}'), { prompt: 'x' });
  assert.throws(() => parseAnswer('{"prompt":"a fo', 'length'), /ran out of room/);
  assert.throws(() => parseAnswer('nonsense'), /not the JSON asked for: nonsense/);
  assert.throws(() => parseAnswer(''), /\(empty\)/);
  assert.throws(() => parseAnswer('[1]'), /other than a JSON object/);
  assert.throws(() => parseAnswer('{"prompt":"  "}'), /no prompt/);
  assert.throws(() => parseAnswer('{"prompt":3}'), /no prompt/);
});

test('pickVision: the chosen model when it sees, else the first that does', () => {
  assert.equal(pickVision(['a', 'b', 'c'], { a: false, b: true, c: true }, 'c'), 'c');
  assert.equal(pickVision(['a', 'b', 'c'], { a: false, b: true, c: true }, 'a'), 'b');
  assert.equal(pickVision(['a', 'b'], { a: false }, 'a'), '');
  assert.equal(pickVision([], {}, ''), '');
});

// sse answers fetch with the given Server-Sent Events, cut into small
// pieces, and records the request.
// A status other than 200 sends events[0] as the plain body.
function sse(events: unknown[], status = 200) {
  const text = status !== 200 ? String(events[0]) : events.map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join('');
  const sent: { url: string; body: any }[] = [];
  globalThis.fetch = (async (url: string, init: RequestInit) => {
    sent.push({ url, body: JSON.parse(String(init.body)) });
    const bytes = new TextEncoder().encode(text);
    let i = 0;
    const body = new ReadableStream({
      pull(c) {
        if (i >= bytes.length) return c.close();
        c.enqueue(bytes.slice(i, i + 7));
        i += 7;
      },
    });
    return new Response(body, { status, headers: { 'Content-Type': 'text/event-stream' } });
  }) as typeof fetch;
  return sent;
}

const delta = (content: string, finish: string | null = null) => ({ choices: [{ index: 0, delta: { content }, finish_reason: finish }] });

test('askJSON: the streamed pieces make the answer; progress as they come', async () => {
  const sent = sse([delta('{"negative_prompt":"dark",'), delta('"prompt":"a fox'), delta(' in snow"}', 'stop'), '[DONE]']);
  const seen: string[] = [];
  const a = await askJSON(enhanceRequest('tiny', 'fox', ''), new AbortController().signal, (t) => seen.push(t));
  assert.deepEqual(a, { prompt: 'a fox in snow', negative: 'dark' });
  assert.equal(sent[0].url, '/v1/chat/completions');
  assert.equal(sent[0].body.response_format.type, 'json_schema');
  assert.deepEqual(seen.slice(0, 3), ['{"negative_prompt":"dark",', '{"negative_prompt":"dark","prompt":"a fox', '{"negative_prompt":"dark","prompt":"a fox in snow"}']);
});

test('askJSON: cut off, an error event, an HTTP error', async () => {
  sse([delta('{"prompt":"a fox', 'length'), '[DONE]']);
  await assert.rejects(askJSON({}, new AbortController().signal, () => {}), /ran out of room/);
  sse([{ error: { message: 'the model failed to load' } }]);
  await assert.rejects(askJSON({}, new AbortController().signal, () => {}), /the model failed to load/);
  sse(['{"error":{"message":"model \\"x\\" not found"}}'], 404);
  await assert.rejects(askJSON({}, new AbortController().signal, () => {}), /Not found: model "x" not found/);
});

test('describeWith: the model to use, or why there is none', () => {
  assert.match(describeWith({ models: null, vision: {}, error: '' }, '').why, /Asking/);
  assert.match(describeWith({ models: [], vision: {}, error: '' }, '').why, /No language model/);
  assert.deepEqual(describeWith({ models: ['a', 'b'], vision: { a: false, b: true }, error: '' }, 'a'), { model: 'b', why: '' });
  assert.match(describeWith({ models: ['a', 'b'], vision: { a: false }, error: '' }, 'a').why, /Checking/);
  assert.match(describeWith({ models: ['a', 'b'], vision: { a: false, b: false }, error: '' }, 'a').why, /No model here takes images.*mmproj/);
});
