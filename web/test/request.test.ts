import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaults } from '../src/infotext';
import { requestParams } from '../src/request';

test('requestParams: the refiner is sent as A1111 names it, and only when picked', () => {
  const none = requestParams({ ...defaults, prompt: 'p' }, 'txt2img', '', '');
  assert.equal('refiner_checkpoint' in none, false);
  assert.equal('refiner_switch_at' in none, false);
  for (const mode of ['txt2img', 'img2img', 'inpaint'] as const) {
    const r = requestParams({ ...defaults, prompt: 'p', refiner: 'xl-refiner', refinerSwitch: 0.7, hires: true }, mode, 'data:,', 'data:,');
    assert.equal(r.refiner_checkpoint, 'xl-refiner', mode);
    assert.equal(r.refiner_switch_at, 0.7, mode);
  }
});
