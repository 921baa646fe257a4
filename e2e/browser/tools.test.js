// Browser tests of the studio's prompt helpers (enhance prompt, describe
// image), the models page, reordering the queue, parameters from a dropped
// PNG, and the image viewer's zoom and pan —
// Debian's chromium driven by playwright-core against mica serve on
// synthetic models (see harness.js for what they need).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  api,
  browserPath,
  dropFile,
  openBrowser,
  pngWithText,
  serve,
  shots,
  skipReason,
  sseText,
  synthModels,
  visionModel,
  visionPNG,
  visionProj,
  waitJob,
} from './harness.js';

const skip = skipReason(visionModel, visionProj, visionPNG);
let dir, main, url, browser, context, page;
const pageErrors = [];

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, name + '.png') });
}

const prompt = () => page.getByRole('textbox', { name: 'Prompt', exact: true });
const num = (label) => page.getByRole('spinbutton', { name: label, exact: true });
// What a text field shows of a model's answer: trimmed, and its line breaks
// as LF (a field's value turns CR and CRLF into LF; the synthetic models'
// random words may contain a CR).
const shown = (s) => s.trim().replace(/\r\n?/g, '\n');

// captureAnswers passes chat completions through the test, which keeps
// each answer's bytes (playwright's own copy of a streamed body may come
// decoded in the wrong charset). Returns the parsed JSON answers so far.
async function captureAnswers() {
  const answers = [];
  await page.route('**/v1/chat/completions', async (route) => {
    const res = await route.fetch();
    const body = await res.body();
    answers.push(JSON.parse(sseText(body.toString('utf8'))));
    await route.fulfill({ response: res, body });
  });
  return answers;
}

// studio opens the studio with its settings at their defaults.
async function studio(base = url) {
  await page.goto(base + '/ui/studio');
  await page.evaluate(() => localStorage.removeItem('mica.studio'));
  await page.reload();
  await prompt().waitFor();
}

before(async () => {
  if (skip) return;
  assert.ok(existsSync(browserPath), `chromium not found at ${browserPath}: install it (apt-get install chromium) or set CHROMIUM`);
  dir = mkdtempSync(path.join(tmpdir(), 'mica-ui-tools-'));
  synthModels(path.join(dir, 'models'));
  main = await serve(path.join(dir, 'models'), path.join(dir, 'data'));
  url = main.url;
  ({ browser, context, page } = await openBrowser(pageErrors));
});

afterEach(() => assert.deepEqual(pageErrors.splice(0), [], 'errors in the page'));

after(async () => {
  if (browser) await browser.close();
  if (main) await main.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('studio: a PNG with A1111 parameters dropped on the prompt fills every field', { skip }, async () => {
  await studio();
  // A drop is only delivered where dragover was refused to the browser's
  // own handling (else chromium would open the file): check that first.
  const taken = await page.evaluate(() => {
    const t = new DataTransfer();
    t.items.add(new File(['x'], 'a.png', { type: 'image/png' }));
    const ev = new DragEvent('dragover', { dataTransfer: t, bubbles: true, cancelable: true });
    return !document.querySelector('.params textarea').dispatchEvent(ev);
  });
  assert.equal(taken, true, 'dragover of a file on the prompt is not taken: a real drop would open the file');
  const txt2img = 'a lighthouse on a cliff, (dramatic sky:1.2)\nNegative prompt: lowres, watermark\n' +
    'Steps: 13, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 4242, Size: 80x72, Model: sd-test, ' +
    'Clip skip: 2, Batch size: 2, Denoising strength: 0.35, Hires upscale: 1.5, Hires steps: 3';
  const info = page.waitForResponse((r) => r.url().endsWith('/sdapi/v1/png-info'));
  await dropFile(page, '.params textarea', pngWithText('parameters', txt2img));
  assert.equal((await info).status(), 200);
  await page.locator('.notice').filter({ hasText: 'Settings filled from the picture.' }).waitFor();
  assert.equal(await prompt().inputValue(), 'a lighthouse on a cliff, (dramatic sky:1.2)');
  assert.equal(await page.getByLabel('Negative prompt').inputValue(), 'lowres, watermark');
  assert.equal(await page.getByLabel('Sampler').inputValue(), 'DPM++ 2M');
  assert.equal(await page.getByLabel('Schedule').inputValue(), 'karras');
  for (const [label, want] of [['Steps', '13'], ['CFG scale', '5.5'], ['Seed', '4242'], ['Width', '80'], ['Height', '72'], ['Clip skip', '2'], ['Batch size', '2']]) {
    assert.equal(await num(label).inputValue(), want, label);
  }
  assert.equal(await page.locator('.grid label').filter({ hasText: /^Model/ }).locator('select').inputValue(), 'sd-test');
  await page.locator('summary').filter({ hasText: 'Hires fix' }).click();
  assert.equal(await page.getByRole('checkbox', { name: 'Upscale and refine' }).isChecked(), true);
  assert.equal(await num('Upscale by').inputValue(), '1.5');
  assert.equal(await num('Hires steps (0: same)').inputValue(), '3');
  assert.equal(await num('Hires denoising').inputValue(), '0.35');
  // An img2img / inpainting infotext: denoising and mask blur.
  const inpaint = 'a cat\nNegative prompt: dog\nSteps: 9, Sampler: Euler, CFG scale: 4, Seed: 7, Size: 64x64, Denoising strength: 0.42, Mask blur: 6';
  await dropFile(page, '.params textarea', pngWithText('parameters', inpaint));
  await page.waitForFunction(() => document.querySelector('.params textarea').value === 'a cat');
  await page.getByRole('tab', { name: 'Inpaint' }).click();
  assert.equal(await num('Denoising strength').inputValue(), '0.42');
  assert.equal(await num('Mask blur').inputValue(), '6');
  assert.equal(await num('Steps').inputValue(), '9');
  // A PNG without parameters says so.
  await dropFile(page, '.params textarea', pngWithText('Software', 'paint'));
  await page.locator('.notice.error').filter({ hasText: 'carries no generation parameters' }).waitFor();
});

test('enhance prompt: the model\'s JSON fills the fields; undo and redo', { skip }, async () => {
  await studio();
  await prompt().fill('a fox');
  await page.getByLabel('Negative prompt').fill('blurry');
  const enhance = page.getByRole('button', { name: 'Enhance prompt' });
  await page.waitForFunction(() => !document.querySelector('.assist button')?.disabled);
  const answers = await captureAnswers();
  const res = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
  await enhance.click();
  const r = await res;
  assert.equal(r.status(), 200);
  const req = r.request().postDataJSON();
  assert.equal(req.model, 'tiny');
  assert.equal(req.stream, true);
  assert.equal(req.response_format.type, 'json_schema');
  assert.equal(req.response_format.json_schema.strict, true);
  assert.deepEqual(Object.keys(req.response_format.json_schema.schema.properties).sort(), ['negative_prompt', 'prompt', 'style_notes']);
  assert.match(req.messages.at(-1).content, /Prompt: a fox\nNegative prompt: blurry/);
  // The synthetic model writes random words, but mica holds them to the
  // schema: the answer is JSON with the fields, and they fill the studio.
  const answer = answers[0];
  await page.unroute('**/v1/chat/completions');
  await page.getByRole('button', { name: 'Undo' }).waitFor();
  assert.equal(await prompt().inputValue(), shown(answer.prompt));
  assert.equal(await page.getByLabel('Negative prompt').inputValue(), shown(answer.negative_prompt));
  await shot('studio-enhance');
  await page.getByRole('button', { name: 'Undo' }).click();
  assert.equal(await prompt().inputValue(), 'a fox');
  assert.equal(await page.getByLabel('Negative prompt').inputValue(), 'blurry');
  await page.getByRole('button', { name: 'Redo' }).click();
  assert.equal(await prompt().inputValue(), shown(answer.prompt));
});

test('enhance prompt: progress, Stop and Esc; no language model is said plainly', { skip }, async () => {
  await studio();
  await prompt().fill('a quiet harbour');
  // Hold the answer back, so the request stays in flight.
  const held = [];
  await page.route('**/v1/chat/completions', (route) => { held.push(route); });
  for (const how of ['button', 'Escape']) {
    await page.getByRole('button', { name: 'Enhance prompt' }).click();
    await page.locator('.assist [role=status]').filter({ hasText: 'Rewriting the prompt' }).waitFor();
    if (how === 'button') await page.locator('.assist').getByRole('button', { name: 'Stop' }).click();
    else await page.keyboard.press('Escape');
    await page.locator('.notice').filter({ hasText: 'Stopped: the prompt is as it was.' }).last().waitFor();
    await page.getByRole('button', { name: 'Enhance prompt' }).waitFor();
    assert.equal(await prompt().inputValue(), 'a quiet harbour');
  }
  assert.equal(held.length, 2);
  await page.unroute('**/v1/chat/completions');
  for (const r of held) await r.abort().catch(() => {});
  // A server with no language model.
  await page.route('**/v1/models', (route) => route.fulfill({ json: { object: 'list', data: [] } }));
  await page.reload();
  await page.locator('.assist .hint').filter({ hasText: 'need a language model' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Enhance prompt' }).isDisabled(), true);
  assert.match(await page.getByRole('button', { name: 'Enhance prompt' }).getAttribute('title'), /No language model/);
  await page.unroute('**/v1/models');
});

test('describe image: disabled, with the reason, when no model takes images', { skip }, async () => {
  await studio();
  const describe = page.getByRole('button', { name: 'Describe image' });
  assert.equal(await describe.isDisabled(), true);
  await page.getByRole('tab', { name: 'Image to image' }).click();
  await dropFile(page, '.drop', readFileSync(visionPNG));
  await page.locator('.drop img').waitFor();
  await page.locator('.assist .hint').filter({ hasText: 'No model here takes images' }).waitFor();
  assert.equal(await describe.isDisabled(), true);
  assert.match(await describe.getAttribute('title'), /mmproj/);
});

test('models page: the server\'s models, loaded and unloaded for real', { skip }, async () => {
  await page.goto(url + '/ui/models');
  await page.locator('table.models').waitFor();
  const row = (n) => page.locator(`tr[data-model="${n}"]`);
  await row('tiny').waitFor();
  assert.match(await row('sd-test').innerText(), /Image/);
  const loaded = async () => (await api(url, '/mica/v1/models')).models.find((m) => m.name === 'sd-test').loaded;
  if (await loaded()) {
    await page.getByRole('button', { name: 'Unload sd-test' }).click();
    await page.locator('tr[data-model="sd-test"][data-loaded="false"]').waitFor();
  }
  await page.getByRole('button', { name: 'Load sd-test' }).click();
  await page.locator('tr[data-model="sd-test"][data-loaded="true"]').waitFor();
  assert.equal(await loaded(), true);
  assert.doesNotMatch(await page.locator('.memory').innerText(), /Memory in use: 0 B/);
  await page.getByRole('button', { name: 'Unload sd-test' }).click();
  await page.locator('tr[data-model="sd-test"][data-loaded="false"]').waitFor();
  assert.equal(await loaded(), false);
});

test('models page: lists, loads and unloads (the API scripted)', { skip }, async () => {
  const gib = 1024 ** 3;
  const state = {
    models: [
      { name: 'tiny', kind: 'llm', loaded: true, size_bytes: 31 * 1024 ** 2, memory_bytes: 40 * 1024 ** 2, expires_at: new Date(Date.now() + 300e3).toISOString(), vision: false },
      { name: 'eyes', kind: 'llm', loaded: false, size_bytes: 2 * gib, memory_bytes: 0, vision: true },
      { name: 'sd-test', kind: 'image', loaded: false, size_bytes: 42 * 1024 ** 2, memory_bytes: 0, vision: false },
      { name: 'huge', kind: 'image', loaded: false, size_bytes: 7 * gib, memory_bytes: 0, vision: false },
    ],
    memory: { budget_bytes: 8 * gib, used_bytes: 40 * 1024 ** 2 },
  };
  const calls = [];
  await page.route('**/mica/v1/models**', (route) => {
    const req = route.request();
    const u = new URL(req.url());
    if (req.method() === 'GET' && u.pathname === '/mica/v1/models') return route.fulfill({ json: state });
    const m = u.pathname.match(/^\/mica\/v1\/models\/([^/]+)\/(load|unload)$/);
    if (!m || req.method() !== 'POST') return route.fulfill({ status: 404, json: { error: { message: 'no such endpoint' } } });
    const [name, what] = [decodeURIComponent(m[1]), m[2]];
    calls.push(`${what} ${name} ${u.searchParams.get('kind')}`);
    if (name === 'huge') return route.fulfill({ status: 507, json: { error: { message: 'huge needs 7.1 GiB but only 7.9 GiB is free after the loaded models' } } });
    const mod = state.models.find((x) => x.name === name);
    mod.loaded = what === 'load';
    mod.memory_bytes = mod.loaded ? 50 * 1024 ** 2 : 0;
    if (!mod.loaded) delete mod.expires_at;
    state.memory.used_bytes = state.models.reduce((s, x) => s + x.memory_bytes, 0);
    return route.fulfill({ json: mod });
  });
  await page.goto(url + '/ui/models');
  const row = (n) => page.locator(`tr[data-model="${n}"]`);
  await row('tiny').waitFor();
  assert.deepEqual(await page.locator('tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.model)), ['eyes', 'tiny', 'huge', 'sd-test']);
  assert.match(await row('tiny').innerText(), /Language\s+Loaded\s+unloads in 5 min\s+31\.0 MB\s+40\.0 MB/);
  assert.match(await row('eyes').innerText(), /vision/);
  assert.match(await page.locator('.memory').innerText(), /Memory in use: 40\.0 MB of 8\.0 GB/);
  await shot('models');
  await page.getByRole('button', { name: 'Load sd-test' }).click();
  await page.locator('tr[data-model="sd-test"][data-loaded="true"]').waitFor();
  assert.match(await row('sd-test').innerText(), /Image\s+Loaded/);
  assert.match(await page.locator('.memory').innerText(), /Memory in use: 90\.0 MB/);
  await page.getByRole('button', { name: 'Unload tiny' }).click();
  await page.locator('tr[data-model="tiny"][data-loaded="false"]').waitFor();
  await page.getByRole('button', { name: 'Load huge' }).click();
  await page.locator('.notice.error').filter({ hasText: 'huge needs 7.1 GiB' }).waitFor();
  assert.equal(await row('huge').getAttribute('data-loaded'), 'false');
  assert.deepEqual(calls, ['load sd-test image', 'unload tiny llm', 'load huge image']);
  await page.unroute('**/mica/v1/models**');
});

// job submits a small txt2img job through the API and waits for it.
async function job(base, prompt) {
  const j = await api(base, '/mica/v1/jobs', { method: 'POST', body: JSON.stringify({ kind: 'txt2img', params: { prompt, steps: 2, width: 64, height: 64, seed: 3 } }) });
  return waitJob(base, j.id);
}

test('image viewer: zoom with buttons and wheel, pan by dragging, reset', { skip }, async () => {
  await job(url, 'a small test picture');
  await page.goto(url + '/ui/gallery');
  await page.locator('.grid-images .thumb').first().click();
  const img = page.locator('.viewer-stage img');
  await img.waitFor();
  const transform = () => img.evaluate((e) => e.style.transform);
  assert.equal(await transform(), 'translate(0px, 0px) scale(1)');
  const w0 = (await img.boundingBox()).width;
  await page.getByRole('button', { name: 'Zoom in' }).click();
  assert.equal(await transform(), 'translate(0px, 0px) scale(1.5)');
  const w1 = (await img.boundingBox()).width;
  assert.ok(Math.abs(w1 / w0 - 1.5) < 0.01, `the picture grew ${w1 / w0}×, want 1.5×`); // layout rounding only
  const stage = await page.locator('.viewer-stage').boundingBox();
  const cx = stage.x + stage.width / 2;
  const cy = stage.y + stage.height / 2;
  await page.mouse.move(cx, cy);
  await page.mouse.wheel(0, -100);
  await page.waitForFunction(() => document.querySelector('.viewer-stage img').style.transform.endsWith('scale(1.8)'));
  await page.mouse.wheel(0, 100);
  await page.waitForFunction(() => document.querySelector('.viewer-stage img').style.transform.endsWith('scale(1.5)'));
  await page.mouse.down();
  await page.mouse.move(cx + 60, cy + 40, { steps: 6 });
  await page.mouse.up();
  assert.equal(await transform(), 'translate(60px, 40px) scale(1.5)');
  const box = await img.boundingBox();
  assert.ok(Math.abs(box.x + box.width / 2 - (cx + 60)) < 2 && Math.abs(box.y + box.height / 2 - (cy + 40)) < 2, 'the picture did not follow the drag');
  await shot('gallery-zoom');
  await page.getByRole('button', { name: 'Zoom out' }).click();
  assert.equal(await transform(), 'translate(60px, 40px) scale(1)');
  await page.locator('.viewer-stage').dblclick();
  assert.equal(await transform(), 'translate(0px, 0px) scale(1)');
  await page.getByRole('button', { name: 'Zoom in' }).click();
  await page.getByRole('button', { name: 'Fit' }).click();
  assert.equal(await transform(), 'translate(0px, 0px) scale(1)');
  await page.keyboard.press('Escape');
  await img.waitFor({ state: 'detached' });
});

test('queue: drag a waiting job to reorder it; arrow keys and buttons too', { skip }, async () => {
  await studio();
  await prompt().fill('a long job');
  await num('Steps').fill('150');
  await num('Width').fill('128');
  await num('Height').fill('128');
  const ids = [];
  for (let i = 0; i < 4; i++) {
    const sub = page.waitForResponse((r) => r.url().endsWith('/mica/v1/jobs') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    ids.push((await (await sub).json()).id);
  }
  const [a, b, c, d] = ids;
  const li = (id) => page.locator(`.queue li[data-job="${id}"]`);
  await page.locator(`.queue li[data-job="${a}"][data-state="running"]`).waitFor();
  for (const id of [b, c, d]) await page.locator(`.queue li[data-job="${id}"][data-state="queued"]`).waitFor();
  const shown = () => page.locator('.queue li[data-state="queued"]').evaluateAll((rs) => rs.map((r) => r.dataset.job));
  // The server's order: the listing gives each queued job its position.
  const serverOrder = async () => (await api(url, '/mica/v1/jobs?state=queued')).jobs
    .sort((x, y) => x.position - y.position).map((j) => j.id);
  assert.deepEqual(await serverOrder(), [b, c, d]);
  // A second open page: it reads the positions from the listing (no request
  // per job) and follows every reorder from the server's events.
  const other = await context.newPage();
  const perJob = [];
  other.on('request', (r) => { if (/\/mica\/v1\/jobs\/[^/?]+$/.test(new URL(r.url()).pathname)) perJob.push(r.url()); });
  await other.goto(url + '/ui/studio');
  const otherOrder = (want) => other.waitForFunction((w) => [...document.querySelectorAll('.queue li[data-state="queued"]')].map((r) => r.dataset.job).join() === w, want.join());
  await otherOrder([b, c, d]);
  assert.deepEqual(perJob, [], 'the queue was read one job at a time');
  // Drag d's handle above b.
  const h = await li(d).locator('.handle').boundingBox();
  const tb = await li(b).boundingBox();
  await page.mouse.move(h.x + h.width / 2, h.y + h.height / 2);
  await page.mouse.down();
  await page.mouse.move(h.x + h.width / 2, tb.y + 3, { steps: 10 });
  assert.match(await li(b).getAttribute('class'), /drop-before/);
  assert.match(await li(d).getAttribute('class'), /dragging/);
  await shot('studio-queue-drag');
  const reorder = page.waitForRequest((r) => r.url().endsWith('/mica/v1/jobs/reorder'));
  await page.mouse.up();
  assert.deepEqual((await reorder).postDataJSON().ids, [d, b, c]);
  await page.waitForFunction((want) => [...document.querySelectorAll('.queue li[data-state="queued"]')].map((r) => r.dataset.job).join() === want, [d, b, c].join());
  assert.deepEqual(await serverOrder(), [d, b, c]);
  await otherOrder([d, b, c]);
  // The keyboard: the handle takes ↑ ↓ Home End and keeps the focus.
  await li(c).locator('.handle').focus();
  await page.keyboard.press('ArrowUp');
  await page.waitForFunction((want) => [...document.querySelectorAll('.queue li[data-state="queued"]')].map((r) => r.dataset.job).join() === want, [d, c, b].join());
  assert.equal(await page.evaluate(() => document.activeElement?.closest('li')?.dataset.job), c, 'the moved job\'s handle lost the focus');
  await page.keyboard.press('Home');
  await page.waitForFunction((want) => [...document.querySelectorAll('.queue li[data-state="queued"]')].map((r) => r.dataset.job).join() === want, [c, d, b].join());
  // The buttons.
  await li(c).getByRole('button', { name: 'Move down' }).click();
  await page.waitForFunction((want) => [...document.querySelectorAll('.queue li[data-state="queued"]')].map((r) => r.dataset.job).join() === want, [d, c, b].join());
  assert.deepEqual(await shown(), [d, c, b]);
  assert.deepEqual(await serverOrder(), [d, c, b]);
  assert.equal(await li(d).getByRole('button', { name: 'Move up' }).isDisabled(), true);
  // A priority change elsewhere (the API) reaches the other page too.
  await api(url, `/mica/v1/jobs/${b}/priority`, { method: 'POST', body: '{"priority":3}' });
  await otherOrder([b, d, c]);
  await other.close();
  for (const id of [b, c, d, a]) await fetch(`${url}/mica/v1/jobs/${id}/cancel`, { method: 'POST', body: '{}' });
  for (const id of ids) await waitJob(url, id, ['cancelled', 'interrupted']);
});

test('describe image: a model with vision writes the prompt from the input image and from the gallery', { skip }, async () => {
  const models = path.join(dir, 'models-vision');
  mkdirSync(models);
  copyFileSync(visionModel, path.join(models, 'tiny-vision.gguf'));
  copyFileSync(visionProj, path.join(models, 'mmproj-tiny-vision.gguf'));
  copyFileSync(path.join(dir, 'models', 'sd-test.safetensors'), path.join(models, 'sd-test.safetensors'));
  for (const f of ['tiny-vision.gguf', 'mmproj-tiny-vision.gguf']) chmodSync(path.join(models, f), 0o644);
  const other = await serve(models, path.join(dir, 'data-vision'));
  try {
    await studio(other.url);
    await page.getByRole('tab', { name: 'Image to image' }).click();
    const png = readFileSync(visionPNG);
    await dropFile(page, '.drop', png);
    await page.locator('.drop img').waitFor();
    const describe = page.getByRole('button', { name: 'Describe image' });
    await page.waitForFunction(() => [...document.querySelectorAll('.assist button')].some((b) => b.textContent === 'Describe image' && !b.disabled));
    const answers = await captureAnswers();
    let res = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
    await describe.click();
    let r = await res;
    assert.equal(r.status(), 200);
    let req = r.request().postDataJSON();
    assert.equal(req.model, 'tiny-vision');
    assert.equal(req.response_format.type, 'json_schema');
    assert.equal(req.messages[0].content[1].image_url.url, 'data:image/png;base64,' + png.toString('base64'));
    await page.waitForFunction((want) => document.querySelector('.params textarea').value === want, shown(answers[0].prompt));
    // From the gallery: the picture goes to the model, the prompt to the studio.
    const j = await job(other.url, 'for the gallery');
    await page.goto(other.url + '/ui/gallery');
    await page.locator('.grid-images .thumb').first().click();
    res = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
    await page.getByRole('button', { name: 'Describe as prompt' }).click();
    await page.waitForURL('**/ui/studio');
    r = await res;
    req = r.request().postDataJSON();
    const pic = Buffer.from(await (await fetch(other.url + j.images[0])).arrayBuffer());
    assert.equal(req.messages[0].content[1].image_url.url, 'data:image/png;base64,' + pic.toString('base64'));
    await page.waitForFunction((want) => document.querySelector('.params textarea').value === want, shown(answers[1].prompt));
  } finally {
    await page.unroute('**/v1/chat/completions');
    await other.stop();
  }
});
