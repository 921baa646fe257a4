import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaults, formatInfotext, pairs, parseInfotext } from '../src/infotext';

test('parseInfotext: prompt, negative and the parameters line', () => {
  const p = parseInfotext('a red fox\nin the snow\nNegative prompt: blurry,\nugly\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 96x64, Model: sd-test, Version: mica dev');
  assert.deepEqual(p, {
    prompt: 'a red fox\nin the snow', negative: 'blurry,\nugly', steps: 20, sampler: 'DPM++ 2M', scheduler: 'Karras',
    cfg: 6.5, seed: 1234, model: 'sd-test', width: 96, height: 64,
  });
});

test('parseInfotext: no parameters line, hires fix, quoted values', () => {
  assert.deepEqual(parseInfotext('just a prompt'), { prompt: 'just a prompt' });
  const p = parseInfotext('x\nSteps: 10, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Denoising strength: 0.4, Hires upscale: 2, Hires steps: 5, Lora hashes: "a: 1, b: 2"');
  assert.equal(p.hires, true);
  assert.equal(p.hrScale, 2);
  assert.equal(p.hrSteps, 5);
  assert.equal(p.hrDenoise, 0.4);
  assert.equal(p.denoise, undefined);
  assert.equal(pairs('Lora hashes: "a: 1, b: 2", Steps: 3').get('Lora hashes'), 'a: 1, b: 2');
});

test('formatInfotext and parseInfotext agree', () => {
  const p = { ...defaults, prompt: 'a cat', negative: 'dog', sampler: 'Euler a', scheduler: 'karras', steps: 12, cfg: 5, seed: 42, width: 640, height: 384, model: 'm', clipSkip: 2 };
  const back = parseInfotext(formatInfotext(p));
  for (const k of ['prompt', 'negative', 'sampler', 'scheduler', 'steps', 'cfg', 'seed', 'width', 'height', 'model', 'clipSkip'] as const) {
    assert.equal(back[k], p[k], k);
  }
});
