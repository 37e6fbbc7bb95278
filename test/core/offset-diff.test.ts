/**
 * offsetDiff (core/offset-map.ts): what a sink writes to bring stored offsets to new ones. Applying
 * the changed streams and deleting the removed ones to `before` must give `next`, and nothing
 * unchanged may be listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { offsetDiff, type OffsetMap } from '../../src/core/offset-map';

const streams = fc.constantFrom('a', 'b', 'c', 'd', '__proto__', 'constructor');
const offsets = fc.dictionary(streams, fc.nat(5), { maxKeys: 6 }).map((d) => {
  const m: Record<string, number> = Object.create(null);
  for (const [k, v] of Object.entries(d)) m[k] = v;
  return m as OffsetMap;
});

test('offsetDiff: before + changed − removed = next, and only real changes are listed', () => {
  fc.assert(
    fc.property(offsets, offsets, (before, next) => {
      const { changed, removed } = offsetDiff(before, next);
      const out = new Map(Object.keys(before).map((s) => [s, before[s]]));
      for (const s of removed) out.delete(s);
      for (const [s, o] of changed) out.set(s, o);
      assert.deepEqual(
        new Map([...out].sort()),
        new Map(
          Object.keys(next)
            .map((s) => [s, next[s]] as const)
            .sort(),
        ),
      );
      for (const [s, o] of changed) assert.notEqual(Object.hasOwn(before, s) ? before[s] : undefined, o);
      for (const s of removed) assert.ok(Object.hasOwn(before, s) && !Object.hasOwn(next, s));
    }),
    { numRuns: 200 },
  );
});

test('offsetDiff: example', () => {
  assert.deepEqual(offsetDiff({ a: 1, b: 2 }, { a: 1, b: 3, c: 0 }), {
    changed: [
      ['b', 3],
      ['c', 0],
    ],
    removed: [],
  });
  assert.deepEqual(offsetDiff({ a: 1, b: 2 }, { b: 2 }), { changed: [], removed: ['a'] });
});
