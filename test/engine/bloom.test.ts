/** The state cache's Bloom filter of evicted keys: no false negatives, few false positives. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bloom } from '../../src/engine/bloom';
import { RUNS } from './harness';

test('every added string may be there; an empty filter has nothing', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: 'binary' }), { maxLength: 200 }), fc.string(), (added, other) => {
      const b = new Bloom();
      assert.equal(b.mayHave(other), false);
      for (const s of added) b.add(s);
      for (const s of added) assert.ok(b.mayHave(s), JSON.stringify(s));
    }),
    { numRuns: RUNS },
  );
});

test('after 100,000 keys, under 1 % of other keys are false positives', () => {
  const b = new Bloom();
  for (let i = 0; i < 100_000; i++) b.add(`ge${i}!`);
  let false_ = 0;
  for (let i = 100_000; i < 200_000; i++) if (b.mayHave(`ge${i}!`)) false_++;
  assert.ok(false_ < 1000, `${false_} false positives`);
});
