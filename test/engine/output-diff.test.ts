/**
 * The reduce output diff skips the unchanged prefix and suffix position by position and
 * consolidates only the middles: for random previous and new output lists (sharing random
 * prefixes and suffixes, with duplicates, zero multiplicities and scrambled key order) its
 * difference equals the from-scratch multiset difference (consolidated where something was
 * replaced; mere appends are passed on unconsolidated), and what it keeps equals the new list (structurally, in order).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { diffOutputs, type OutputPair } from '../../src/engine/output-diff';
import type { Value } from '../../src/engine';
import { RUNS } from './harness';
import { refKey, zFrom, zMinus, zShow } from './reference';

const value: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom(1, 2, -0, 0, 'a', null),
  fc
    .record({ o: fc.constantFrom('x', 'y'), n: fc.constantFrom(1, 2), r: fc.boolean() })
    .map(({ o, n, r }) => (r ? { o, n } : { n, o })),
);
const pair = fc.tuple(value, fc.integer({ min: -2, max: 2 }));
const nonZero = fc.tuple(value, fc.constantFrom(-1, 1, 2));

describe('reduce output diff', () => {
  test('equals next − prev from scratch; kept equals next without zeros', () => {
    fc.assert(
      fc.property(
        fc.array(nonZero, { maxLength: 6 }),
        fc.array(nonZero, { maxLength: 5 }),
        fc.array(pair, { maxLength: 5 }),
        fc.array(nonZero, { maxLength: 6 }),
        (prefix, prevMid, nextMid, suffix) => {
          const prev: OutputPair[] = [...prefix, ...prevMid, ...suffix];
          // The function's fresh copies: equal, not identical objects.
          const copy = (pairs: readonly (readonly [Value, number])[]): unknown[] =>
            pairs.map(([v, m]) => [structuredClone(v), m]);
          const next = [...copy(prefix), ...copy(nextMid), ...copy(suffix)];
          const change = diffOutputs(prev, next);
          assert.deepEqual(zShow(zFrom(change.diff)), zShow(zMinus(zFrom(next as [Value, number][]), zFrom(prev))));
          for (const [, d] of change.diff) assert.notEqual(d, 0);
          const shown = (pairs: readonly (readonly [Value, number])[]): [string, number][] =>
            pairs.map(([v, m]) => [refKey(v), m]);
          assert.deepEqual(shown(change.kept), shown((next as [Value, number][]).filter(([, m]) => m !== 0)));
        },
      ),
      { numRuns: RUNS * 5 },
    );
  });

  test('a changed middle is consolidated; outputs appended after an unchanged prefix are passed on as they are', () => {
    const prev: OutputPair[] = [[{ a: 1 }, 1]];
    assert.deepEqual(
      diffOutputs(prev, [
        [{ b: 1 }, 1],
        [{ b: 1 }, 1],
      ]).diff,
      [
        [{ a: 1 }, -1],
        [{ b: 1 }, 2],
      ],
    );
    assert.deepEqual(
      diffOutputs(prev, [
        [{ a: 1 }, 1],
        [{ b: 1 }, 1],
        [{ b: 1 }, -1],
      ]).diff,
      [
        [{ b: 1 }, 1],
        [{ b: 1 }, -1],
      ],
    );
  });

  test('a malformed output after an unchanged prefix is rejected, also when the suffix matches', () => {
    const prev: OutputPair[] = [
      [{ a: 1 }, 1],
      [{ a: 2 }, 1],
    ];
    assert.throws(
      () =>
        diffOutputs(prev, [
          [{ a: 1 }, 1],
          [{ a: 3 }, 1.5],
          [{ a: 2 }, 1],
        ]),
      /integer multiplicities/,
    );
    assert.throws(
      () =>
        diffOutputs(prev, [
          [{ a: 1 }, 1],
          [{ a: Number.NaN }, 1],
          [{ a: 2 }, 1],
        ]),
      /not a JSON value/,
    );
    assert.deepEqual(
      diffOutputs(prev, [
        [{ a: 1 }, 1],
        [{ a: 3 }, 1],
        [{ a: 2 }, 1],
      ]).diff,
      [[{ a: 3 }, 1]],
    );
  });
});
