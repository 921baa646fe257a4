// Browser test of the SDXL refiner in the studio: picked from the models,
// sent with the job, named in the result's infotext, recalled from the
// gallery and read from a dropped PNG — chromium driven by playwright-core
// against mica serve on tiny synthetic SDXL base and refiner checkpoints.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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
  synthSDXL,
  waitJob,
} from './harness.js';

const skip = skipReason();
let dir, main, url, browser, page;
const pageErrors = [];

const prompt = () => page.getByRole('textbox', { name: 'Prompt', exact: true });
const num = (label) => page.getByRole('spinbutton', { name: label, exact: true });
const modelSelect = () => page.locator('.grid label').filter({ hasText: /^Model/ }).locator('select');
const refinerSelect = () => page.getByRole('combobox', { name: 'Refiner', exact: true });

// studio opens the studio with its settings at their defaults.
async function studio() {
  await page.goto(url + '/ui/studio');
  await page.evaluate(() => localStorage.removeItem('mica.studio'));
  await page.reload();
  await prompt().waitFor();
  // The pickers are filled from /sdapi/v1/sd-models.
  await page.waitForFunction(() => [...document.querySelectorAll('details.refiner option')].some((o) => o.value === 'xl-refiner'));
}

before(async () => {
  if (skip) return;
  assert.ok(existsSync(browserPath), `chromium not found at ${browserPath}: install it (apt-get install chromium) or set CHROMIUM`);
  dir = mkdtempSync(path.join(tmpdir(), 'mica-ui-refiner-'));
  synthSDXL(path.join(dir, 'models'));
  main = await serve(path.join(dir, 'models'), path.join(dir, 'data'));
  url = main.url;
  ({ browser, page } = await openBrowser(pageErrors));
});

afterEach(() => assert.deepEqual(pageErrors.splice(0), [], 'errors in the page'));

after(async () => {
  if (browser) await browser.close();
  if (main) await main.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('studio: txt2img with the SDXL refiner; its infotext names it; the gallery recalls it', { skip }, async () => {
  await studio();
  // Off by default: the picker says None and nothing is sent.
  await page.locator('summary').filter({ hasText: 'Refiner' }).click();
  assert.equal(await refinerSelect().inputValue(), '');
  assert.equal(await num('Switch at').inputValue(), '0.8');
  const options = await refinerSelect().locator('option').evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
  assert.deepEqual(options, [['', 'None'], ['xl', 'xl'], ['xl-refiner', 'xl-refiner']]);

  await prompt().fill('a lighthouse at dusk');
  await modelSelect().selectOption('xl');
  await refinerSelect().selectOption('xl-refiner');
  await num('Switch at').fill('0.5');
  await num('Steps').fill('4');
  await num('Width').fill('64');
  await num('Height').fill('64');
  await num('Seed').fill('11');
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.locator('details.refiner').screenshot({ path: path.join(shots, 'studio-refiner.png') });
  }
  const sub = page.waitForResponse((r) => r.url().endsWith('/mica/v1/jobs') && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const res = await sub;
  assert.ok(res.ok(), await res.text());
  const params = res.request().postDataJSON().params;
  assert.equal(params.refiner_checkpoint, 'xl-refiner');
  assert.equal(params.refiner_switch_at, 0.5);
  assert.deepEqual(params.override_settings, { sd_model_checkpoint: 'xl' });
  const j = await waitJob(url, (await res.json()).id, ['finished'], 120000);
  await page.locator('.results .thumb').first().waitFor();

  // The result's infotext, as the gallery shows it.
  await page.goto(url + '/ui/gallery');
  await page.locator('.grid-images .thumb').first().click();
  const info = page.locator('pre.infotext');
  await info.waitFor();
  const text = await info.innerText();
  assert.match(text, /Model: xl,/);
  assert.match(text, /Refiner: xl-refiner( \[[0-9a-f]+\])?, Refiner switch at: 0\.5/);
  assert.equal(text, (await api(url, '/mica/v1/history?limit=1')).images[0].infotext);
  assert.ok(j.images.length > 0);

  // Recall: reset the studio, then "Use these settings".
  await page.keyboard.press('Escape');
  await page.goto(url + '/ui/studio');
  await page.evaluate(() => localStorage.removeItem('mica.studio'));
  await page.goto(url + '/ui/gallery');
  await page.locator('.grid-images .thumb').first().click();
  await page.getByRole('button', { name: 'Use these settings' }).click();
  await page.waitForURL('**/ui/studio');
  await page.locator('details.refiner[open]').waitFor();
  assert.equal(await refinerSelect().inputValue(), 'xl-refiner');
  assert.equal(await num('Switch at').inputValue(), '0.5');
  assert.equal(await modelSelect().inputValue(), 'xl');
  assert.equal(await prompt().inputValue(), 'a lighthouse at dusk');
});

test('studio: a dropped PNG and a pasted infotext set the refiner (and one without turns it off)', { skip }, async () => {
  await studio();
  const withRefiner = 'a barn\nSteps: 6, Sampler: Euler, CFG scale: 5, Seed: 9, Size: 64x64, Model: xl, ' +
    'Refiner: xl-refiner [0123456789], Refiner switch at: 0.7, Version: v1.10.1';
  await dropFile(page, '.params textarea', pngWithText('parameters', withRefiner));
  await page.locator('.notice').filter({ hasText: 'Settings filled from the picture.' }).waitFor();
  await page.locator('details.refiner[open]').waitFor();
  assert.equal(await refinerSelect().inputValue(), 'xl-refiner');
  assert.equal(await num('Switch at').inputValue(), '0.7');
  // Pasted: an infotext made without a refiner turns it off.
  await page.locator('summary').filter({ hasText: 'Paste parameters' }).click();
  await page.getByLabel('Infotext to apply').fill('a barn\nSteps: 6, Sampler: Euler, CFG scale: 5, Seed: 9, Size: 64x64, Model: xl');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => document.querySelector('details.refiner select').value === '');
  // And pasted back with one.
  await page.getByLabel('Infotext to apply').fill(withRefiner.replace('0.7', '0.9'));
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => document.querySelector('details.refiner select').value === 'xl-refiner');
  assert.equal(await num('Switch at').inputValue(), '0.9');
});
