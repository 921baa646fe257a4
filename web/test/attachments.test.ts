import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admit, content, fitsTotal, maxImageBytes, maxImages, maxTotalChars } from '../src/attachments';

const png = (name: string, size = 1000) => ({ name, type: 'image/png', size });

test('admit: pictures within the limits are taken, in order', () => {
  const r = admit([png('a.png'), { name: 'b.jpg', type: 'image/jpeg', size: maxImageBytes }], 0);
  assert.deepEqual(r, { take: [true, true], problems: [] });
});

test('admit: each refusal says which file and why', () => {
  const r = admit([{ name: 'notes.txt', type: 'text/plain', size: 10 }, png('big.png', maxImageBytes + 1), png('ok.png')], 0);
  assert.deepEqual(r.take, [false, false, true]);
  assert.match(r.problems[0], /^notes\.txt is not a PNG, JPEG, GIF or WebP picture\.$/);
  assert.match(r.problems[1], /^big\.png is 4\.0 MB; an image may be at most 4\.0 MB\.$/);
  assert.equal(r.problems.length, 2);
});

test('admit: at most maxImages per message, counting those attached already', () => {
  const files = Array.from({ length: 5 }, (_, i) => png(`p${i}.png`));
  const r = admit(files, maxImages - 2);
  assert.deepEqual(r.take, [true, true, false, false, false]);
  assert.equal(r.problems.length, 3);
  assert.match(r.problems[0], new RegExp(`^p2\\.png was not attached: a message may hold at most ${maxImages} images\\.$`));
  assert.match(admit([{ name: '', type: 'image/gif', size: maxImageBytes * 2 }], 0).problems[0], /^the pasted image is/);
});

test('fitsTotal: the conversation\'s images together', () => {
  const half = 'x'.repeat(maxTotalChars / 2);
  assert.equal(fitsTotal([half], [half]), true);
  assert.equal(fitsTotal([half], [half + 'y']), false);
  assert.equal(fitsTotal([], []), true);
});

test('content: text alone, or text then one image_url part per image', () => {
  assert.equal(content('hi'), 'hi');
  assert.equal(content('hi', []), 'hi');
  assert.deepEqual(content('what is this?', ['data:image/png;base64,AA', 'data:image/jpeg;base64,BB']), [
    { type: 'text', text: 'what is this?' },
    { type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } },
    { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,BB' } },
  ]);
  assert.deepEqual(content('', ['data:image/png;base64,AA']), [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } }]);
});
