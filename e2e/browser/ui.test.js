// Browser end-to-end tests of mica's UI: Debian's chromium, driven by
// playwright-core (no browser downloads), against `mica serve` on a
// synthetic Gemma model and a synthetic Stable Diffusion checkpoint.
//
// What they need (a mica binary, the shared test data, chromium) is in
// harness.js. A missing chromium fails the run: these tests never skip for
// want of a browser. MICA_SCREENSHOTS=DIR saves a screenshot of each main
// view there (docs/screenshots when refreshing the README's pictures).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  browserPath,
  openBrowser,
  serve,
  shots,
  skipReason,
  synthModels,
  visionModel,
  visionPNG,
  visionProj,
} from './harness.js';

const skip = skipReason(visionModel, visionProj, visionPNG);

let dir, server, url, browser, context, page;
const pageErrors = [];

async function api(p, init) {
  const r = await fetch(url + p, init);
  assert.ok(r.ok, `${p}: HTTP ${r.status} ${await r.clone().text()}`);
  return r.json();
}

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, name + '.png') });
}

// submitted waits for the UI's next job submission and returns the job.
function submitted() {
  return page
    .waitForResponse((r) => r.url().endsWith('/mica/v1/jobs') && r.request().method() === 'POST')
    .then(async (r) => ({ job: await r.json(), request: r.request().postDataJSON(), status: r.status() }));
}

async function waitJob(id, states = ['finished'], ms = 60000) {
  const end = Date.now() + ms;
  for (;;) {
    const j = await api(`/mica/v1/jobs/${id}`);
    if (states.includes(j.state)) return j;
    if (['finished', 'failed', 'cancelled', 'interrupted'].includes(j.state)) {
      assert.fail(`job ${id} ended ${j.state} (${j.error ?? ''}), want ${states}`);
    }
    if (Date.now() > end) assert.fail(`job ${id} still ${j.state} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// setNumber types into the number field with the given label.
async function setNumber(label, v) {
  const f = page.getByRole('spinbutton', { name: label, exact: true });
  await f.fill(String(v));
}

// dropImage drops a PNG file (base64) on the studio's drop zone.
async function dropImage(b64) {
  const dt = await page.evaluateHandle((data) => {
    const bin = atob(data);
    const u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    const t = new DataTransfer();
    t.items.add(new File([u], 'input.png', { type: 'image/png' }));
    return t;
  }, b64);
  await page.dispatchEvent('.drop', 'drop', { dataTransfer: dt });
}

// startServer runs mica serve on the test's models and data folder and
// sets url.
async function startServer() {
  server = await serve(path.join(dir, 'models'), path.join(dir, 'data'));
  url = server.url;
}

async function stopServer() {
  if (server) await server.stop();
}

before(async () => {
  if (skip) return;
  assert.ok(existsSync(browserPath), `chromium not found at ${browserPath}: install it (apt-get install chromium) or set CHROMIUM`);
  dir = mkdtempSync(path.join(tmpdir(), 'mica-ui-'));
  synthModels(path.join(dir, 'models'));
  await startServer();
  ({ browser, context, page } = await openBrowser(pageErrors));
});

// No test may leave an uncaught error in the page.
afterEach(() => assert.deepEqual(pageErrors.splice(0), [], 'errors in the page'));

after(async () => {
  if (browser) await browser.close();
  await stopServer();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the page loads from mica serve, fast and without errors', { skip }, async (t) => {
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const t0 = Date.now();
  await page.goto(url + '/');
  await page.getByRole('button', { name: 'Send' }).waitFor();
  const ms = Date.now() - t0;
  t.diagnostic(`interactive after ${ms} ms`);
  assert.ok(ms < 3000, `interactive after ${ms} ms`); // the issue wants < 1 s; 3 s leaves room for a loaded CI machine
  assert.equal(new URL(page.url()).pathname, '/ui/chat');
  assert.deepEqual(errors, []);
});

test('chat: a streamed round trip, kept after a reload', { skip }, async () => {
  await page.goto(url + '/ui/chat');
  await page.getByLabel('Model').selectOption('tiny');
  await page.getByRole('button', { name: 'Options', exact: true }).click();
  await setNumber('Max tokens', 12);
  const chatReq = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.getByLabel('Message').fill('Hello there');
  await page.getByLabel('Message').press('Control+Enter');
  const req = (await chatReq).postDataJSON();
  assert.equal(req.stream, true);
  assert.equal(req.model, 'tiny');
  assert.equal(req.max_tokens, 12);
  await page.getByRole('button', { name: 'Regenerate' }).waitFor();
  const answer = await page.locator('.msg.assistant .md').innerText();
  assert.ok(answer.trim().length > 0, 'the answer is empty');
  await shot('chat');
  // Kept on the server: in its list, with the messages, and shown again
  // after a reload (and in a browser with no local storage of it).
  const list = await api('/mica/v1/conversations');
  const saved = list.conversations.find((c) => c.title === 'Hello there');
  assert.ok(saved, `conversation not on the server: ${JSON.stringify(list)}`);
  const full = await api(`/mica/v1/conversations/${saved.id}`);
  assert.equal(full.messages.length, 2);
  assert.equal(full.messages[0].content, 'Hello there');
  assert.equal(full.messages[1].role, 'assistant');
  assert.ok(full.messages[1].content.length > 0, 'the saved answer is empty');
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  await page.locator('.convs li').filter({ hasText: 'Hello there' }).first().click();
  await page.locator('.msg.user').filter({ hasText: 'Hello there' }).waitFor();
  await page.locator('.msg.assistant .md').waitFor();
});

test('chat: thinking apart and collapsible, tool calls shown, Markdown safe', { skip }, async () => {
  // The synthetic model's words are random; a scripted stream in mica's SSE
  // shape checks what the page does with thinking, tools and Markdown.
  const chunk = (delta) => `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
  const body = chunk({ role: 'assistant' }) + chunk({ reasoning_content: 'The user greets me. ' }) +
    chunk({ reasoning_content: 'I should greet back.' }) +
    chunk({ content: 'Hello **there**!\n\n```go\nfunc main() {}\n```\n\n<img src=x onerror="window.pwned=1">' }) +
    chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":' } }] }) +
    chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }) + 'data: [DONE]\n\n';
  await page.route('**/v1/chat/completions', (route) => route.fulfill({ status: 200, contentType: 'text/event-stream', body }));
  await page.goto(url + '/ui/chat');
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByRole('checkbox', { name: 'Think' }).check();
  const chatReq = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.getByLabel('Message').fill('Hi, think first');
  await page.getByRole('button', { name: 'Send' }).click();
  assert.equal((await chatReq).postDataJSON().reasoning_effort, 'high');
  const msg = page.locator('.msg.assistant').last();
  await msg.getByRole('button', { name: 'Regenerate' }).waitFor();
  const thinking = msg.locator('details.thinking');
  assert.equal(await thinking.evaluate((d) => d.open), false, 'thinking should fold away once the answer is there');
  await thinking.locator('summary').click();
  assert.equal(await thinking.locator('.thinking-body').innerText(), 'The user greets me. I should greet back.');
  assert.ok(!(await msg.locator('.md').innerText()).includes('greet back'), 'thinking leaked into the answer');
  assert.equal(await msg.locator('.md strong').innerText(), 'there');
  await msg.locator('.md .code .tok-k').first().waitFor();
  assert.equal(await msg.locator('.md img').count(), 0, 'raw HTML from the model became markup');
  assert.ok((await msg.locator('.md').innerText()).includes('<img src=x'));
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  await msg.locator('.tool-card[data-tool="get_weather"]').waitFor();
  assert.ok((await msg.locator('.tool-card').innerText()).includes('{"city":"Paris"}'));
  await shot('chat-thinking');
  // Image attachments: disabled, and the control says why.
  const attach = page.getByRole('button', { name: 'Attach an image' });
  assert.equal(await attach.isDisabled(), true);
  assert.match(await attach.getAttribute('title'), /text-only/);
  await page.unroute('**/v1/chat/completions');
  await page.getByRole('checkbox', { name: 'Think' }).uncheck();
});

test('chat: Esc stops a streaming answer', { skip }, async () => {
  // Ban the end-of-turn tokens so the answer runs until stopped.
  await page.route('**/v1/chat/completions', (route) => {
    const body = route.request().postDataJSON();
    route.continue({ postData: JSON.stringify({ ...body, max_tokens: 600, logit_bias: { 1: -100, 106: -100, 50: -100, 48: -100 } }) });
  });
  await page.goto(url + '/ui/chat');
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByLabel('Message').fill('Tell me a long story');
  await page.getByLabel('Message').press('Enter');
  const stop = page.getByRole('button', { name: 'Stop' });
  await stop.waitFor();
  await page.waitForFunction(() => ([...document.querySelectorAll('.msg.assistant')].pop()?.querySelector('.md')?.textContent ?? '').length > 0);
  await page.keyboard.press('Escape');
  await page.locator('.msg.assistant').last().getByText('Stopped.').waitFor();
  await page.getByRole('button', { name: 'Send' }).waitFor();
  await page.unroute('**/v1/chat/completions');
});

let firstJob;

test('chat: images for a model with vision, attached, shown and sent', { skip }, async () => {
  // A model of its own folder: a second mmproj file in the main folder
  // would be "the only mmproj beside" tiny too.
  const models = path.join(dir, 'models-vision');
  mkdirSync(models);
  copyFileSync(visionModel, path.join(models, 'tiny-vision.gguf'));
  copyFileSync(visionProj, path.join(models, 'mmproj-tiny-vision.gguf')); // the sibling rule: mmproj-NAME.gguf
  for (const f of ['tiny-vision.gguf', 'mmproj-tiny-vision.gguf']) chmodSync(path.join(models, f), 0o644);
  const other = await serve(models, path.join(dir, 'data-vision'));
  try {
    const show = await (await fetch(other.url + '/api/show', { method: 'POST', body: JSON.stringify({ model: 'tiny-vision' }) })).json();
    assert.ok(show.capabilities?.includes('vision'), `tiny-vision has no vision: ${JSON.stringify(show)}`);
    await page.goto(other.url + '/ui/chat');
    await page.getByLabel('Model').selectOption('tiny-vision');
    await page.getByRole('button', { name: 'Options', exact: true }).click();
    await setNumber('Max tokens', 8);
    const attach = page.getByRole('button', { name: 'Attach an image' });
    await page.waitForFunction(() => !document.querySelector('button[aria-label="Attach an image"]').disabled);
    const png = readFileSync(visionPNG);
    // The file picker.
    const chooser = page.waitForEvent('filechooser');
    await attach.click();
    await (await chooser).setFiles({ name: 'dev.png', mimeType: 'image/png', buffer: png });
    await page.locator('.attached img').first().waitFor();
    // A drop on the input, and a file that is not a picture.
    const dt = await page.evaluateHandle((data) => {
      const t = new DataTransfer();
      t.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], 'second.png', { type: 'image/png' }));
      t.items.add(new File(['just words'], 'notes.txt', { type: 'text/plain' }));
      return t;
    }, png.toString('base64'));
    await page.dispatchEvent('form.composer', 'drop', { dataTransfer: dt });
    await page.locator('.notice.error').filter({ hasText: 'notes.txt is not a PNG, JPEG, GIF or WebP picture.' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('.attached img').length === 2);
    // Remove one again.
    await page.getByRole('button', { name: 'Remove image 2' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.attached img').length === 1);
    await shot('chat-image-attached');
    const chatRes = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
    await page.getByLabel('Message').fill('What is in this picture?');
    await page.getByLabel('Message').press('Enter');
    const res = await chatRes;
    assert.equal(res.status(), 200);
    const req = res.request().postDataJSON();
    assert.equal(req.model, 'tiny-vision');
    const parts = req.messages[req.messages.length - 1].content;
    assert.equal(parts.length, 2);
    assert.deepEqual(parts[0], { type: 'text', text: 'What is in this picture?' });
    assert.equal(parts[1].type, 'image_url');
    assert.equal(parts[1].image_url.url, 'data:image/png;base64,' + png.toString('base64'));
    // The answer arrives, without an error; the picture is in the sent
    // message and the composer is empty again.
    const answer = page.locator('.msg.assistant').last();
    await answer.getByRole('button', { name: 'Regenerate' }).waitFor();
    assert.equal(await answer.locator('.error-text').count(), 0, 'the answer shows an error');
    assert.ok((await answer.locator('.md').innerText()).trim().length > 0, 'the answer is empty');
    const thumb = page.locator('.msg.user .thumbs img');
    assert.equal(await thumb.count(), 1);
    assert.ok(await thumb.evaluate((i) => i.complete && i.naturalWidth === 512), 'the sent picture does not show');
    assert.equal(await page.locator('.attached').count(), 0);
    await shot('chat-image');
    // Kept with the conversation on the server.
    let full;
    for (let i = 0; i < 50 && full?.messages?.length !== 2; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100)); // the page saves once the answer is done
      const list = await (await fetch(other.url + '/mica/v1/conversations')).json();
      const saved = list.conversations.find((c) => c.title === 'What is in this picture?');
      if (saved) full = await (await fetch(`${other.url}/mica/v1/conversations/${saved.id}`)).json();
    }
    assert.equal(full?.messages?.length, 2, `conversation not saved on the server: ${JSON.stringify(full)}`);
    assert.deepEqual(full.messages[0].images, [parts[1].image_url.url]);
  } finally {
    await other.stop();
  }
  // The main server's model has no vision: the control is disabled and
  // says why.
  await page.goto(url + '/ui/chat');
  await page.getByLabel('Model').selectOption('tiny');
  const attach = page.getByRole('button', { name: 'Attach an image' });
  await page.waitForFunction(() => /text-only/.test(document.querySelector('button[aria-label="Attach an image"]').title));
  assert.equal(await attach.isDisabled(), true);
  assert.match(await attach.getAttribute('title'), /tiny is text-only/);
});

test('images: txt2img job with live progress and a preview', { skip }, async () => {
  await page.goto(url + '/ui/studio');
  await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('a red fox in the snow');
  await page.getByLabel('Negative prompt').fill('blurry');
  await setNumber('Steps', 20);
  await setNumber('Width', 96);
  await setNumber('Height', 96);
  await setNumber('Seed', 1234);
  await page.getByLabel('Sampler').selectOption('Euler');
  const sub = submitted();
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const { job, request, status } = await sub;
  assert.equal(status, 202);
  assert.equal(request.kind, 'txt2img');
  assert.equal(request.params.steps, 20);
  assert.equal(request.params.sampler_name, 'Euler');
  // Progress moves and a preview shows while the job runs.
  await page.waitForFunction(() => Number(document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow')) > 0, null, { timeout: 30000 });
  await page.waitForFunction(() => { const i = document.querySelector('img.preview'); return i && i.complete && i.naturalWidth > 0; }, null, { timeout: 30000 });
  assert.match(await page.locator('.eta').innerText(), /%/);
  await shot('studio-progress');
  firstJob = await waitJob(job.id);
  await page.locator('.results img').first().waitFor();
  assert.equal(await page.locator('.results img').first().getAttribute('src'), firstJob.images[0]);
  await shot('studio');
});

test('gallery: "use these settings" recalls the parameters', { skip }, async () => {
  await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('something else');
  await setNumber('Steps', 7);
  await page.getByRole('link', { name: 'Gallery' }).click();
  await page.locator('.grid-images .thumb').first().click();
  await page.locator('.infotext').waitFor();
  assert.match(await page.locator('.infotext').innerText(), /a red fox in the snow/);
  await shot('gallery-viewer');
  await page.getByRole('button', { name: 'Close viewer' }).click();
  await shot('gallery');
  await page.locator('.grid-images .thumb').first().click();
  await page.getByRole('button', { name: 'Use these settings' }).click();
  await page.waitForURL('**/ui/studio');
  assert.equal(await page.getByRole('textbox', { name: 'Prompt', exact: true }).inputValue(), 'a red fox in the snow');
  assert.equal(await page.getByLabel('Negative prompt').inputValue(), 'blurry');
  assert.equal(await page.getByRole('spinbutton', { name: 'Steps', exact: true }).inputValue(), '20');
  assert.equal(await page.getByRole('spinbutton', { name: 'Seed', exact: true }).inputValue(), '1234');
  assert.equal(await page.getByRole('spinbutton', { name: 'Width', exact: true }).inputValue(), '96');
  assert.equal(await page.getByLabel('Sampler').inputValue(), 'Euler');
});

async function outputPNG() {
  const r = await fetch(url + firstJob.images[0]);
  return Buffer.from(await r.arrayBuffer()).toString('base64');
}

test('images: img2img from a dropped file', { skip }, async () => {
  assert.ok(firstJob, 'needs the txt2img test');
  await page.goto(url + '/ui/studio');
  await page.getByRole('tab', { name: 'Image to image' }).click();
  await setNumber('Steps', 6);
  await dropImage(await outputPNG());
  await page.locator('.drop img').waitFor();
  const sub = submitted();
  await page.keyboard.press('Control+Enter');
  const { job, request } = await sub;
  assert.equal(request.kind, 'img2img');
  assert.match(request.params.init_images[0], /^data:image\/png;base64,/);
  assert.equal(request.params.denoising_strength, 0.75);
  await waitJob(job.id);
  await shot('studio-img2img');
});

test('images: inpainting with a painted mask', { skip }, async () => {
  await page.getByRole('tab', { name: 'Inpaint' }).click();
  await page.getByLabel('Brush size').evaluate((el) => { el.value = '40'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  const canvas = page.locator('.mask-stage canvas');
  await canvas.waitFor();
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.6, { steps: 8 });
  await page.mouse.up();
  // Erase the start of the stroke again.
  await page.getByRole('checkbox', { name: 'Erase' }).check();
  const box2 = await canvas.boundingBox(); // checking may have scrolled the page
  await page.mouse.move(box2.x + box2.width * 0.25, box2.y + box2.height * 0.25);
  await page.mouse.down();
  await page.mouse.move(box2.x + box2.width * 0.36, box2.y + box2.height * 0.36, { steps: 4 });
  await page.mouse.up();
  await page.getByRole('checkbox', { name: 'Erase' }).uncheck();
  await shot('studio-inpaint');
  const sub = submitted();
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const { job, request } = await sub;
  assert.equal(request.kind, 'img2img');
  assert.match(request.params.mask, /^data:image\/png;base64,/);
  // The mask has white where it was painted and black elsewhere.
  const px = await page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const at = (x, y) => g.getImageData(Math.floor(x * img.width), Math.floor(y * img.height), 1, 1).data[0];
    return { size: [img.width, img.height], painted: at(0.5, 0.45), erased: at(0.31, 0.31), corner: at(0.05, 0.95) };
  }, request.params.mask);
  assert.deepEqual(px.size, [96, 96]);
  assert.equal(px.painted, 255);
  assert.equal(px.erased, 0, 'the erased part of the stroke is still in the mask');
  assert.equal(px.corner, 0);
  await waitJob(job.id);
});

test('images: a queued job is cancelled from the queue', { skip }, async () => {
  await page.getByRole('tab', { name: 'Text to image' }).click();
  await setNumber('Steps', 150);
  await setNumber('Width', 128);
  await setNumber('Height', 128);
  let sub = submitted();
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const first = (await sub).job;
  sub = submitted();
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const second = (await sub).job;
  const row = page.locator(`.queue li[data-job="${second.id}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-state'), 'queued');
  await shot('studio-queue');
  await row.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await waitJob(second.id, ['cancelled'])).state, 'cancelled');
  await row.waitFor({ state: 'detached' });
  // Esc stops the running one.
  await page.locator(`.queue li[data-job="${first.id}"]`).waitFor();
  await page.keyboard.press('Escape');
  await waitJob(first.id, ['cancelled', 'interrupted']);
});

test('errors: a bad request is shown in words', { skip }, async () => {
  await setNumber('Steps', 9999);
  const sub = submitted();
  await page.keyboard.press('Control+Enter');
  assert.equal((await sub).status, 422);
  const notice = page.locator('.notice.error');
  await notice.waitFor();
  assert.match(await notice.innerText(), /Some settings are not valid: steps: steps must be between 1 and 150/);
  await shot('error');
  await setNumber('Steps', 20);
});

test('themes and a phone-sized screen', { skip }, async () => {
  await page.goto(url + '/ui/chat');
  await page.getByRole('button', { name: 'Toggle theme' }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  await shot('chat-dark');
  await page.goto(url + '/ui/studio');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark', 'the theme is remembered');
  await shot('studio-dark');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(url + '/ui/chat');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the chat is ${overflow}px wider than a phone screen`);
  await shot('chat-phone');
  await page.getByRole('button', { name: 'Toggle theme' }).click();
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('conversations and images survive a restart of mica serve', { skip }, async () => {
  await stopServer();
  await startServer(); // a new port: a new origin, so nothing comes from the browser's storage
  await page.goto(url + '/ui/chat');
  await page.locator('.convs li').filter({ hasText: 'Hello there' }).first().click();
  await page.locator('.msg.user').filter({ hasText: 'Hello there' }).waitFor();
  await page.goto(url + '/ui/gallery');
  await page.locator('.grid-images .thumb').first().waitFor();
});

test('with an API key: the page asks for it, then chat and images work', { skip }, async () => {
  const key = 'ui-test-key-123456';
  const keyed = await serve(path.join(dir, 'models'), path.join(dir, 'data-keyed'), ['--api-key', key]);
  try {
    const kurl = keyed.url;
    await page.goto(kurl + '/ui/chat'); // the page itself needs no key
    await page.locator('.notice.error').filter({ hasText: 'API key' }).first().waitFor();
    await page.getByRole('button', { name: 'Settings', exact: true }).click();
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.reload();
    await page.getByLabel('Model').selectOption('tiny');
    await page.getByLabel('Message').fill('Hello with a key');
    await page.getByLabel('Message').press('Enter');
    await page.locator('.msg.assistant').getByRole('button', { name: 'Regenerate' }).waitFor();
    await page.goto(kurl + '/ui/studio');
    await setNumber('Steps', 4);
    await setNumber('Width', 64);
    await setNumber('Height', 64);
    const sub = submitted();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    assert.equal((await sub).status, 202);
    // The result arrives by the event stream (read with the key) and the
    // picture is fetched with the key into a blob: URL.
    await page.waitForFunction(() => { const i = document.querySelector('.results img'); return i && i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }, null, { timeout: 30000 });
    // Downloads carry the key too (a bare <a href download> could not):
    // from the result's viewer and from the gallery's.
    const auth = { headers: { Authorization: 'Bearer ' + key } };
    const src = (await (await fetch(kurl + '/mica/v1/history?limit=1', auth)).json()).images[0].image;
    assert.equal((await fetch(kurl + src)).status, 401, 'the picture is served without the key');
    const want = Buffer.from(await (await fetch(kurl + src, auth)).arrayBuffer());
    for (const where of ['studio', 'gallery']) {
      if (where === 'gallery') await page.goto(kurl + '/ui/gallery');
      await page.locator(where === 'studio' ? '.results .thumb' : '.grid-images .thumb').first().click();
      const dl = page.waitForEvent('download');
      await page.locator('.viewer').getByRole('button', { name: 'Download' }).click();
      const d = await dl;
      assert.equal(d.suggestedFilename(), src.split('/').pop());
      const got = readFileSync(await d.path());
      assert.ok(got.equals(want), `${where}: the downloaded file is not the picture (${got.length} bytes)`);
      await page.getByRole('button', { name: 'Close viewer' }).click();
    }
  } finally {
    await page.evaluate(() => localStorage.removeItem('mica.apiKey'));
    await keyed.stop();
  }
});
