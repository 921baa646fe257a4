import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaults, formatInfotext, pairs, parseInfotext, refinerName } from '../src/infotext';

test('parseInfotext: prompt, negative and the parameters line', () => {
  const p = parseInfotext('a red fox\nin the snow\nNegative prompt: blurry,\nugly\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 96x64, Model: sd-test, Version: mica dev');
  assert.deepEqual(p, {
    prompt: 'a red fox\nin the snow', negative: 'blurry,\nugly', steps: 20, sampler: 'DPM++ 2M', scheduler: 'Karras',
    cfg: 6.5, seed: 1234, model: 'sd-test', width: 96, height: 64, refiner: '',
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

test('parseInfotext: the SDXL refiner as mica and A1111 write it', () => {
  const line = 'Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 64x64, Model: xl, Refiner: xl-refiner [0123abcdef], Refiner switch at: 0.65, Version: mica dev';
  const p = parseInfotext('a lighthouse\n' + line);
  assert.equal(p.refiner, 'xl-refiner');
  assert.equal(p.refinerSwitch, 0.65);
  assert.equal(p.model, 'xl');
  // Without a hash, with the file's extension, or "None".
  assert.equal(parseInfotext('x\nSteps: 2, Sampler: Euler, Seed: 1, Refiner: my_refiner').refiner, 'my_refiner');
  assert.equal(parseInfotext('x\nSteps: 2, Sampler: Euler, Seed: 1, Refiner: sd_xl_refiner_1.0.safetensors [7440042bbd]').refiner, 'sd_xl_refiner_1.0');
  assert.equal(parseInfotext('x\nSteps: 2, Sampler: Euler, Seed: 1, Refiner: None').refiner, '');
  // A parameters line without a refiner turns it off (recall of an image
  // made without one); a bare prompt leaves the setting alone.
  assert.equal(parseInfotext('x\nSteps: 2, Sampler: Euler, Seed: 1').refiner, '');
  assert.equal(parseInfotext('x\nSteps: 2, Sampler: Euler, Seed: 1').refinerSwitch, undefined);
  assert.equal('refiner' in parseInfotext('just a prompt'), false);
  assert.equal(refinerName(' base.ckpt [abc123] '), 'base');
});

test('formatInfotext and parseInfotext agree on the refiner', () => {
  for (const [refiner, refinerSwitch] of [['xl-refiner', 0.8], ['r2', 0.35], ['', 0.8]] as const) {
    const p = { ...defaults, prompt: 'a cat', seed: 7, model: 'xl', refiner, refinerSwitch };
    const text = formatInfotext(p);
    assert.equal(text.includes('Refiner:'), refiner !== '', text);
    const back = { ...defaults, refiner: 'stale', ...parseInfotext(text) };
    assert.equal(back.refiner, refiner);
    assert.equal(back.refinerSwitch, refinerSwitch);
  }
});
