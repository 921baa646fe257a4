// What the browser tests share: where mica, the test data and chromium are,
// synthetic models, starting `mica serve`, and test pictures.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const bin = process.env.MICA_BIN ? path.resolve(process.env.MICA_BIN) : path.resolve(here, '../../mica');
export const shared = process.env.MICA_SHARED ?? path.resolve(here, '../../../shared');
export const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const vocab = path.join(shared, 'testdata/gemma3-tokenizer/gemma3-vocab-gemma4bpe.gguf');
export const template = path.join(shared, 'testdata/chat-templates/google-gemma-4-31B-it.jinja');
export const clipVocab = path.join(shared, 'testdata/clip/bpe_simple_vocab_16e6.txt.gz');
export const visionModel = path.join(shared, 'reference/gemma/gemma3-tiny-f32.gguf');
export const visionProj = path.join(shared, 'reference/vision/mmproj-gemma3-tiny-f32.gguf');
export const visionPNG = path.join(shared, 'reference/vision/dev-512x384.png');
export const shots = process.env.MICA_SCREENSHOTS ? path.resolve(process.env.MICA_SCREENSHOTS) : '';

// skipReason is why the tests cannot run here (false when they can).
export function skipReason(...more) {
  const missing = [bin, vocab, template, clipVocab, ...more].filter((p) => !existsSync(p));
  return missing.length > 0 ? `missing ${missing.join(', ')}` : false;
}

// synthModels writes the tiny Gemma (tiny.gguf) and SD (sd-test) models.
export function synthModels(models) {
  mkdirSync(models, { recursive: true });
  let r = spawnSync(bin, ['dev', 'synth', 'gemma4-test', '-o', path.join(models, 'tiny.gguf'),
    '--vocab', vocab, '--chat-template', template, '--dtype', 'f16', '--seed', '5'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mica dev synth gemma4-test failed: ${r.stderr}`);
  r = spawnSync(bin, ['dev', 'synth', 'sd-test', '-o', path.join(models, 'sd-test.safetensors')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mica dev synth sd-test failed: ${r.stderr}`);
}

// synthSDXL writes the tiny SDXL base (xl) and refiner (xl-refiner) models.
export function synthSDXL(models) {
  mkdirSync(models, { recursive: true });
  for (const [preset, name] of [['sdxl-test', 'xl'], ['sdxl-refiner-test', 'xl-refiner']]) {
    const r = spawnSync(bin, ['dev', 'synth', preset, '-o', path.join(models, name + '.safetensors')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `mica dev synth ${preset} failed: ${r.stderr}`);
  }
}

// serve runs mica serve on a models and a data folder and returns its URL
// and a stop function.
export async function serve(models, data, extra = []) {
  const p = spawn(bin, ['serve', '--models', models, '--data', data, '--addr', '127.0.0.1:0', '--ctx', '1024', '--threads', '2',
    '--clip-tokenizer', clipVocab, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  p.stderr.on('data', (d) => { log += d; });
  const stop = async () => {
    if (p.exitCode !== null) return;
    const exited = new Promise((r) => p.on('exit', r));
    p.kill('SIGTERM');
    await exited;
  };
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      p.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on (http:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      p.on('exit', (code) => reject(new Error(`mica serve exited (${code}): ${log}`)));
    });
    return { url, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

// api fetches JSON from a server and fails the test on an HTTP error.
export async function api(base, p, init) {
  const r = await fetch(base + p, init);
  assert.ok(r.ok, `${p}: HTTP ${r.status} ${await r.clone().text()}`);
  return r.json();
}

// waitJob polls a job (the test's side; the page uses events) until it is
// in one of states.
export async function waitJob(base, id, states = ['finished'], ms = 60000) {
  const end = Date.now() + ms;
  for (;;) {
    const j = await api(base, `/mica/v1/jobs/${id}`);
    if (states.includes(j.state)) return j;
    if (['finished', 'failed', 'cancelled', 'interrupted'].includes(j.state)) assert.fail(`job ${id} ended ${j.state} (${j.error ?? ''}), want ${states}`);
    if (Date.now() > end) assert.fail(`job ${id} still ${j.state} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

// pngWithText is a small grey RGB PNG carrying text (Latin-1) in a tEXt
// chunk under key, as A1111 stores its "parameters".
export function pngWithText(key, text, w = 16, h = 16) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc(h * (1 + 3 * w), 0x80);
  for (let y = 0; y < h; y++) raw[y * (1 + 3 * w)] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('tEXt', Buffer.from(`${key}\0${text}`, 'latin1')),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// dropFile drops a file (a Buffer) on the element selector matches, as a
// person dragging it from the desktop would.
export async function dropFile(page, selector, buf, name = 'input.png', type = 'image/png') {
  const dt = await page.evaluateHandle(([data, name, type]) => {
    const t = new DataTransfer();
    t.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, { type }));
    return t;
  }, [buf.toString('base64'), name, type]);
  await page.dispatchEvent(selector, 'drop', { dataTransfer: dt });
}

// sseText is the content a chat completion streamed (its SSE body).
export function sseText(body) {
  let text = '';
  for (const line of body.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    for (const c of JSON.parse(line.slice(6)).choices ?? []) text += c.delta?.content ?? '';
  }
  return text;
}

// openBrowser starts headless chromium with one 1280×800 light page whose
// uncaught errors are appended to pageErrors.
export async function openBrowser(pageErrors) {
  const browser = await chromium.launch({ executablePath: browserPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  return { browser, context, page };
}
