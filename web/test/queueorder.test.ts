import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropIndex, moveItem } from '../src/queueorder';

test('moveItem: one item moves, the others keep their order', () => {
  const l = ['a', 'b', 'c', 'd'];
  assert.deepEqual(moveItem(l, 3, 0), ['d', 'a', 'b', 'c']);
  assert.deepEqual(moveItem(l, 0, 3), ['b', 'c', 'd', 'a']);
  assert.deepEqual(moveItem(l, 1, 2), ['a', 'c', 'b', 'd']);
  assert.deepEqual(moveItem(l, 2, 2), l);
  assert.deepEqual(moveItem(l, -1, 2), l);
  assert.deepEqual(moveItem(l, 1, 4), l);
  assert.deepEqual(l, ['a', 'b', 'c', 'd'], 'the input is left alone');
});

test('dropIndex: the rows whose middle is above the pointer', () => {
  const rows = [{ top: 0, height: 40 }, { top: 44, height: 40 }, { top: 88, height: 40 }];
  assert.equal(dropIndex(-10, rows), 0);
  assert.equal(dropIndex(19, rows), 0);
  assert.equal(dropIndex(21, rows), 1);
  assert.equal(dropIndex(70, rows), 2);
  assert.equal(dropIndex(500, rows), 3);
  assert.equal(dropIndex(5, []), 0);
});
