import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downloadName } from '../src/images';

test('downloadName: the URL\'s file name, made safe', () => {
  assert.equal(downloadName('/mica/v1/outputs/2026-11-27/00012-1234.png'), '00012-1234.png');
  assert.equal(downloadName('/mica/v1/outputs/d/a%20b.png?x=1#y'), 'a b.png');
  assert.equal(downloadName('/x/a%2Fb.png'), 'a_b.png');
  assert.equal(downloadName('/x/%E0%A4%A.png'), '%E0%A4%A.png');
  assert.equal(downloadName('/x/'), 'mica.png');
  assert.equal(downloadName('/x/..'), 'mica.png');
});
