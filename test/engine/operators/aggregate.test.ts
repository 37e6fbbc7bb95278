/** `count` and `sum` per group (operators/aggregate.ts): minimal changes, groups disappear at zero, insert-only plans. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, RetractionError } from '../../../src/engine';
import { show, single, type KV } from '../run';

describe('count, sum', () => {
  test('count and sum per group, minimal changes, groups disappear at zero', async () => {
    const count = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .count()
        .ungroup(),
    );
    const sum = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .sum((x) => x.v)
        .ungroup(),
    );
    const batch = [
      [{ k: 'a', v: 2 }, 1, 1],
      [{ k: 'a', v: 3 }, 2, 1],
      [{ k: 'b', v: 0 }, 1, 1],
    ] as [KV, number, number][];
    assert.deepEqual(show(await count.step(batch)), [
      [{ key: 'a', count: 3 }, 1],
      [{ key: 'b', count: 1 }, 1],
    ]);
    assert.deepEqual(
      show(await sum.step(batch)),
      [
        [{ key: 'a', sum: 8 }, 1],
        [{ key: 'b', sum: 0 }, 1],
      ],
      'a group summing to 0 is still there',
    );
    // +1 and a -1 of the same value: no change
    const noop = [
      [{ k: 'a', v: 2 }, 1, 2],
      [{ k: 'a', v: 2 }, -1, 2],
    ] as [KV, number, number][];
    assert.deepEqual(await count.step(noop), []);
    assert.deepEqual(await sum.step(noop), []);
    // adding a 0 changes the count but not the sum
    assert.deepEqual(show(await sum.step([[{ k: 'b', v: 0 }, 1, 3]])), []);
    const gone = [[{ k: 'b', v: 0 }, -1, 4]] as [KV, number, number][];
    assert.deepEqual(show(await count.step(gone)), [[{ key: 'b', count: 1 }, -1]]);
  });

  test('insert-only count and sum reject retractions', async () => {
    const g = createGraph();
    const input = g.input<KV>('in', { insertOnly: false });
    g.output(
      'out',
      input
        .filter(() => true)
        .groupBy((x) => x.k)
        .count()
        .ungroup(),
    );
    await g.step({ in: [[{ k: 'a', v: 1 }, 1, 1]] });
    // An insert-only input rejects at the input; an operator planned insert-only rejects too:
    const h = createGraph();
    const ins = h.input<KV>('in', { insertOnly: true });
    h.output(
      'out',
      ins
        .groupBy((x) => x.k)
        .sum((x) => x.v, { name: 'total' })
        .ungroup(),
    );
    await assert.rejects(h.step({ in: [[{ k: 'a', v: 1 }, -1, 1]] }), RetractionError);
  });
});
