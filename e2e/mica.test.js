// End-to-end tests: mica serve on a synthetic random-weight Gemma 4 model,
// driven by the official openai and ollama JavaScript clients.
//
// Needs a mica binary (MICA_BIN, default ../mica: `go build -o mica ./cmd/mica`)
// and the shared test data (MICA_SHARED, default ../../shared). Run with
// `npm ci && npm test` in this folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = process.env.MICA_BIN ?? path.resolve(here, '../mica');
const shared = process.env.MICA_SHARED ?? path.resolve(here, '../../shared');
const vocab = path.join(shared, 'testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf');
const template = path.join(shared, 'testdata/chat-templates/google-gemma-4-31B-it.jinja');
const missing = [bin, vocab, template].filter((p) => !existsSync(p));
const skip = missing.length > 0 ? `missing ${missing.join(', ')}` : false;

// Gemma 4's markup must never reach content or reasoning.
const markers = ['<|turn>', '<turn|>', '<|think|>', '<|channel>', '<channel|>', '<|tool>', '<tool|>',
  '<|tool_call>', '<tool_call|>', '<|tool_response>', '<tool_response|>', '<|"|>'];
function noMarkers(s, what) {
  for (const m of markers) assert.ok(!(s ?? '').includes(m), `${what} ${JSON.stringify(s)} contains ${m}`);
}
// Bans end-of-turn tokens (<eos>, <turn|>, <|tool_response>, <|tool_call>)
// so that a generation runs on until stopped.
const banEnd = { 1: -100, 106: -100, 50: -100, 48: -100 };

let dir, server, url, openai, ollama;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'mica-e2e-'));
  const synth = spawnSync(bin, ['dev', 'synth', 'gemma4-test', '-o', path.join(dir, 'tiny.gguf'),
    '--vocab', vocab, '--chat-template', template, '--dtype', 'f16', '--seed', '5'], { encoding: 'utf8' });
  assert.equal(synth.status, 0, `mica dev synth failed: ${synth.stderr}`);
  server = spawn(bin, ['serve', '--models', dir, '--data', path.join(dir, 'data'), '--addr', '127.0.0.1:0', '--ctx', '1024', '--threads', '2'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  server.stderr.on('data', (d) => { log += d; });
  url = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`mica serve exited (${code}): ${log}`)));
  });
  openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  ollama = new Ollama({ host: url });
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.on('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const user = (content) => [{ role: 'user', content }];

test('openai: models.list', { skip }, async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['tiny']);
});

test('openai: chat, non-streamed and streamed agree (greedy)', { skip }, async () => {
  const req = { model: 'tiny', messages: user('Hello there'), temperature: 0, max_tokens: 8 };
  const full = await openai.chat.completions.create(req);
  const msg = full.choices[0].message;
  assert.equal(msg.role, 'assistant');
  assert.equal(typeof msg.content, 'string');
  assert.ok(['stop', 'length'].includes(full.choices[0].finish_reason));
  assert.ok(full.usage.prompt_tokens > 5 && full.usage.completion_tokens <= 8);

  const stream = await openai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let content = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      content += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(content, msg.content);
  assert.equal(finish, full.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, full.usage.completion_tokens);
});

test('openai: thinking stays out of content', { skip }, async () => {
  const stream = await openai.chat.completions.create({ model: 'tiny', messages: user('Think about it.'),
    reasoning_effort: 'high', max_tokens: 16, seed: 3, logit_bias: { 100: 8 }, stream: true });
  let content = '';
  let reasoning = '';
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      content += c.delta.content ?? '';
      reasoning += c.delta.reasoning_content ?? '';
    }
  }
  noMarkers(content, 'content');
  noMarkers(reasoning, 'reasoning');
});

test('openai: tool-call round trip is accepted', { skip }, async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const res = await openai.chat.completions.create({ model: 'tiny', max_tokens: 4, temperature: 0, tools,
    messages: [...user('Weather in Paris?'),
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' }] });
  assert.ok(['stop', 'length', 'tool_calls'].includes(res.choices[0].finish_reason));
  for (const tc of res.choices[0].message.tool_calls ?? []) {
    assert.match(tc.id, /^call_/);
    JSON.parse(tc.function.arguments);
  }
});

test('openai: n choices share the prompt; streamed deltas carry their index', { skip }, async () => {
  const req = { model: 'tiny', messages: user('Tell me a story'), n: 3, seed: 7, temperature: 1.2, max_tokens: 6,
    logit_bias: banEnd };
  const full = await openai.chat.completions.create(req);
  assert.deepEqual(full.choices.map((c) => c.index), [0, 1, 2]);
  // Choice i is what n = 1 gives with seed + i.
  let generated = 0;
  for (const [i, c] of full.choices.entries()) {
    const one = await openai.chat.completions.create({ ...req, n: 1, seed: 7 + i });
    assert.equal(c.message.content, one.choices[0].message.content, `choice ${i}`);
    assert.equal(full.usage.prompt_tokens, one.usage.prompt_tokens); // the prompt counted once
    generated += one.usage.completion_tokens;
  }
  assert.equal(full.usage.completion_tokens, generated);
  const stream = await openai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  const content = ['', '', ''];
  const finish = [null, null, null];
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      content[c.index] += c.delta.content ?? '';
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  assert.deepEqual(content, full.choices.map((c) => c.message.content));
  assert.deepEqual(finish, full.choices.map((c) => c.finish_reason));
  assert.equal(usage.completion_tokens, full.usage.completion_tokens);
});

test('openai: legacy completions', { skip }, async () => {
  const res = await openai.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
  assert.equal(res.object, 'text_completion');
  assert.equal(typeof res.choices[0].text, 'string');
});

test('openai: errors are typed and name the field', { skip }, async () => {
  await assert.rejects(openai.chat.completions.create({ model: 'tiny', messages: user('x'), n: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'n' && /more than the 8 choices/.test(e.message));
  await assert.rejects(openai.chat.completions.create({ model: 'nope', messages: user('x') }),
    (e) => e instanceof OpenAI.NotFoundError && /not found/.test(e.message));
  await assert.rejects(openai.chat.completions.create({ model: 'tiny', max_tokens: -5, messages: user('x') }),
    (e) => e.status === 400 && e.param === 'max_tokens');
  await assert.rejects(openai.chat.completions.create({ model: 'tiny',
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }] }] }),
  (e) => e.status === 400 && /cannot read images: it has no vision projector/.test(e.message));
  await assert.rejects(openai.chat.completions.create({ model: 'tiny', messages: user('word '.repeat(1500)) }),
    (e) => e.status === 400 && /context/.test(e.message));
});

async function waitIdle(ms) {
  const start = Date.now();
  for (;;) {
    const h = await (await fetch(`${url}/health`)).json();
    if (!h.busy) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`engine still busy ${ms} ms after the client left`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('openai: aborting a stream stops the generation', { skip }, async () => {
  const ac = new AbortController();
  const stream = await openai.chat.completions.create({ model: 'tiny', messages: user('Go on'), max_tokens: 900,
    logit_bias: banEnd, stream: true }, { signal: ac.signal });
  let n = 0;
  // The client ends the iteration quietly (or with an abort error).
  await (async () => {
    for await (const chunk of stream) if (++n === 3) ac.abort();
  })().catch((e) => assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', e));
  assert.ok(n < 900);
  // 900 tokens take about 3.5 s on the tiny model: idle within 1 s means
  // the generation was stopped.
  await waitIdle(1000);
});

test('ollama: list, show, ps, version', { skip }, async () => {
  const { models } = await ollama.list();
  assert.deepEqual(models.map((m) => m.name), ['tiny']);
  assert.equal(models[0].details.family, 'gemma4');
  const show = await ollama.show({ model: 'tiny' });
  assert.ok(show.capabilities.includes('thinking'));
  assert.equal(typeof (await ollama.version()).version, 'string');
  await ollama.generate({ model: 'tiny', prompt: 'hi', options: { num_predict: 1 } });
  const ps = await ollama.ps();
  assert.equal(ps.models[0].name, 'tiny');
});

test('ollama: chat stream and non-stream agree (greedy), thinking separate', { skip }, async () => {
  const req = { model: 'tiny', messages: user('Hello'), options: { temperature: 0, num_predict: 8 } };
  const full = await ollama.chat(req);
  assert.ok(full.done);
  let content = '';
  let last;
  for await (const part of await ollama.chat({ ...req, stream: true })) {
    content += part.message.content;
    last = part;
  }
  assert.equal(content, full.message.content);
  assert.ok(last.done && last.eval_count === full.eval_count);

  const think = await ollama.chat({ ...req, think: true, options: { num_predict: 16, seed: 2 } });
  noMarkers(think.message.content, 'content');
  noMarkers(think.message.thinking, 'thinking');
});

test('ollama: generate', { skip }, async () => {
  const res = await ollama.generate({ model: 'tiny', prompt: 'Why?', system: 'Be short.', options: { num_predict: 4 } });
  assert.ok(res.done && typeof res.response === 'string');
  let n = 0;
  for await (const part of await ollama.generate({ model: 'tiny', prompt: 'Once', raw: true, stream: true, options: { num_predict: 3 } })) {
    n++;
    if (part.done) assert.ok(part.eval_count <= 3);
  }
  assert.ok(n >= 1);
});

test('ollama: errors', { skip }, async () => {
  await assert.rejects(ollama.chat({ model: 'nope', messages: user('x') }),
    (e) => e.status_code === 404 && /not found/.test(e.error));
  await assert.rejects(ollama.chat({ model: 'tiny', messages: user('x'), format: 'xml' }),
    (e) => e.status_code === 400 && /format/.test(e.error));
  await assert.rejects(ollama.chat({ model: 'tiny', messages: user('x'), format: { type: 'object', not: {} } }),
    (e) => e.status_code === 400 && /"not"/.test(e.error));
});

test('ollama: aborting a stream stops the generation', { skip }, async () => {
  const stream = await ollama.chat({ model: 'tiny', messages: user('Go on'), stream: true,
    options: { num_predict: 900 } });
  let n = 0;
  await assert.rejects((async () => {
    for await (const part of stream) if (++n === 3) stream.abort();
  })());
  await waitIdle(1000);
});

test('20 concurrent clients, both dialects, are all answered', { skip }, async () => {
  const jobs = [];
  for (let i = 0; i < 20; i++) {
    if (i % 2 === 0) {
      jobs.push(openai.chat.completions.create({ model: 'tiny', messages: user(`client ${i}`), max_tokens: 3, seed: i })
        .then((r) => assert.ok(r.choices[0].finish_reason)));
    } else {
      jobs.push(ollama.chat({ model: 'tiny', messages: user(`client ${i}`), options: { num_predict: 3, seed: i } })
        .then((r) => assert.ok(r.done)));
    }
  }
  await Promise.all(jobs);
});

// Structured output: whatever a random-weight model samples, the answer must
// be valid under the schema — checked here by an independent validator (Ajv).
const personSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 },
  },
  required: ['name', 'age'],
  additionalProperties: false,
};

test('openai: json_schema answers validate (Ajv), several seeds', { skip }, async () => {
  const { default: Ajv } = await import('ajv');
  const validate = new Ajv().compile(personSchema);
  for (const seed of [1, 2, 3]) {
    const res = await openai.chat.completions.create({ model: 'tiny', messages: user('A person, as JSON.'),
      temperature: 1, seed, max_tokens: 200,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: personSchema, strict: true } } });
    const text = res.choices[0].message.content;
    assert.equal(res.choices[0].finish_reason, 'stop', `seed ${seed}: ${text}`);
    const value = JSON.parse(text);
    assert.ok(validate(value), `seed ${seed}: ${text}: ${JSON.stringify(validate.errors)}`);
  }
});

test('ollama: format schema answers validate (Ajv)', { skip }, async () => {
  const { default: Ajv } = await import('ajv');
  const validate = new Ajv().compile(personSchema);
  const res = await ollama.chat({ model: 'tiny', messages: user('A person, as JSON.'), format: personSchema,
    options: { seed: 7, temperature: 1, num_predict: 200 } });
  const value = JSON.parse(res.message.content);
  assert.ok(validate(value), `${res.message.content}: ${JSON.stringify(validate.errors)}`);
});

// Images: a second server on the tiny reference Gemma 4 model with its
// projector beside it (mmproj-vision.gguf), and a model without one.
const visionRef = path.join(shared, 'reference/vision');
const visionFiles = {
  'vision.gguf': path.join(shared, 'reference/gemma/gemma4-tiny-f32.gguf'),
  'mmproj-vision.gguf': path.join(visionRef, 'mmproj-gemma4-tiny-f32.gguf'),
  'textonly.gguf': path.join(shared, 'reference/gemma/gemma3-tiny-f32.gguf'),
};
const visionSkip = skip || (Object.values(visionFiles).some((p) => !existsSync(p)) ? 'missing the vision reference files' : false);

async function withVisionServer(fn) {
  const vdir = mkdtempSync(path.join(tmpdir(), 'mica-e2e-vision-'));
  for (const [name, target] of Object.entries(visionFiles)) symlinkSync(target, path.join(vdir, name));
  const srv = spawn(bin, ['serve', '--models', vdir, '--addr', '127.0.0.1:0', '--ctx', '1024', '--threads', '2'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  srv.stderr.on('data', (d) => { log += d; });
  try {
    const base = await new Promise((resolve, reject) => {
      let out = '';
      srv.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on (http:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      srv.on('exit', (code) => reject(new Error(`mica serve exited (${code}): ${log}`)));
    });
    await fn(new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 }), new Ollama({ host: base }));
  } finally {
    if (srv.exitCode === null) {
      const exited = new Promise((r) => srv.on('exit', r));
      srv.kill('SIGTERM');
      await exited;
    }
    rmSync(vdir, { recursive: true, force: true });
  }
}

test('images: openai image_url and ollama images agree (greedy); bad images are 400s', { skip: visionSkip }, async () => {
  const png = readFileSync(path.join(visionRef, 'dev-512x384.png'));
  const dataURL = `data:image/png;base64,${png.toString('base64')}`;
  await withVisionServer(async (oa, ol) => {
    const ids = [];
    for await (const m of oa.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['textonly', 'vision'], 'the projector is not a model');
    assert.ok((await ol.show({ model: 'vision' })).capabilities.includes('vision'));

    const content = [{ type: 'text', text: 'What is in' }, { type: 'image_url', image_url: { url: dataURL } },
      { type: 'text', text: 'this picture?' }];
    const req = { model: 'vision', messages: user(content), temperature: 0, max_tokens: 6 };
    const full = await oa.chat.completions.create(req);
    assert.ok(full.usage.prompt_tokens > 88, `an image is 88 positions: ${full.usage.prompt_tokens}`);
    let streamed = '';
    for await (const c of await oa.chat.completions.create({ ...req, stream: true })) streamed += c.choices[0]?.delta?.content ?? '';
    assert.equal(streamed, full.choices[0].message.content);

    // Ollama puts a message's images before its text: ask the same way.
    const first = [{ type: 'image_url', image_url: { url: dataURL } }, { type: 'text', text: 'Describe it.' }];
    const a = await oa.chat.completions.create({ ...req, messages: user(first) });
    const b = await ol.chat({ model: 'vision', messages: [{ role: 'user', content: 'Describe it.', images: [new Uint8Array(png)] }],
      options: { temperature: 0, num_predict: 6 } });
    assert.equal(b.message.content, a.choices[0].message.content);

    await assert.rejects(oa.chat.completions.create({ ...req, messages: user([{ type: 'image_url',
      image_url: { url: `data:image/png;base64,${png.subarray(0, 500).toString('base64')}` } }]) }),
    (e) => e.status === 400 && /image 1/.test(e.message));
    await assert.rejects(ol.chat({ model: 'vision', messages: [{ role: 'user', content: 'x', images: ['bm90IGFuIGltYWdl'] }] }),
      (e) => e.status_code === 400 && /unsupported image format/.test(e.error));
    await assert.rejects(ol.generate({ model: 'textonly', prompt: 'x', images: [new Uint8Array(png)] }),
      (e) => e.status_code === 400 && /cannot read images/.test(e.error));
    // Other requests go on.
    const ok = await ol.generate({ model: 'vision', prompt: 'What is this?', images: [new Uint8Array(png)], options: { num_predict: 2 } });
    assert.ok(ok.done);
  });
});

test('images: detail and image_tokens set the image token budget (Gemma 4); bad budgets are 400s naming the field', { skip: visionSkip }, async () => {
  const png = readFileSync(path.join(visionRef, 'dev-512x384.png'));
  const url = `data:image/png;base64,${png.toString('base64')}`;
  await withVisionServer(async (oa, ol) => {
    const ask = async (imageURL, extra = {}) => {
      const res = await oa.chat.completions.create({ model: 'vision', max_tokens: 1, temperature: 0, ...extra,
        messages: user([{ type: 'image_url', image_url: imageURL }, { type: 'text', text: 'What is this?' }]) });
      return res.usage.prompt_tokens;
    };
    // 512×384 takes 88 tokens by default (11×8 tokens of 48×48 pixels);
    // "low" caps it at 70; "high" allows up to 1120, which this small image
    // does not need.
    const auto = await ask({ url, detail: 'auto' });
    const low = await ask({ url, detail: 'low' });
    const high = await ask({ url, detail: 'high' });
    assert.equal(await ask({ url }), auto);
    assert.ok(auto - low >= 18, `low ${low} positions, auto ${auto}: want at most 70 image tokens`);
    assert.equal(high, auto);
    // mica's extension: image_tokens in the body or in the image part.
    const forty = await ask({ url }, { image_tokens: 40 });
    assert.ok(forty <= auto - 48, `image_tokens 40: ${forty} positions, auto ${auto}`);
    assert.equal(await ask({ url, image_tokens: 40 }), forty);
    await assert.rejects(ask({ url }, { image_tokens: 5000 }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'image_tokens' && /1…1120/.test(e.message));
    await assert.rejects(ask({ url, image_tokens: 0 }),
      (e) => e.status === 400 && e.param === 'messages[0].content[0].image_url.image_tokens');
    await assert.rejects(ask({ url, detail: 'ultra' }),
      (e) => e.status === 400 && e.param === 'messages[0].content[0].image_url.detail');
    // Ollama: options.image_tokens.
    const o = await ol.chat({ model: 'vision', messages: [{ role: 'user', content: 'What is this?', images: [new Uint8Array(png)] }],
      options: { temperature: 0, num_predict: 1, image_tokens: 40 } });
    assert.equal(o.prompt_eval_count, forty);
    await assert.rejects(ol.chat({ model: 'vision', messages: [{ role: 'user', content: 'x', images: [new Uint8Array(png)] }],
      options: { image_tokens: 2000 } }), (e) => e.status_code === 400 && /options\.image_tokens/.test(e.error));
  });
});
