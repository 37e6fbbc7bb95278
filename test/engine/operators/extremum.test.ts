/** `maxBy` / `minBy` (operators/extremum.ts): retractions, ties, empty and disappearing groups, both plans, compaction. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, RetractionError } from '../../../src/engine';
import { show, single, type KV } from '../run';

const boom = (): never => {
  throw new Error('boom');
};

describe('maxBy / minBy', () => {
  test("the peers' failing case: insert 5 and 3 for one key, retract 5 → max is 3 (and min stays 3)", async () => {
    const max = single<KV>((c) =>
      c
        .groupBy((r) => r.k)
        .maxBy((r) => r.v)
        .ungroup(),
    );
    const min = single<KV>((c) =>
      c
        .groupBy((r) => r.k)
        .minBy((r) => r.v)
        .ungroup(),
    );
    assert.deepEqual(
      show(
        await max.step([
          [{ k: 'a', v: 5 }, 1, 1],
          [{ k: 'a', v: 3 }, 1, 2],
        ]),
      ),
      [[{ k: 'a', v: 5 }, 1]],
    );
    assert.deepEqual(
      show(
        await min.step([
          [{ k: 'a', v: 5 }, 1, 1],
          [{ k: 'a', v: 3 }, 1, 2],
        ]),
      ),
      [[{ k: 'a', v: 3 }, 1]],
    );
    // a structurally equal retraction (another object, other key order) cancels the insertion
    assert.deepEqual(show(await max.step([[{ v: 5, k: 'a' }, -1, 3]])), [
      [{ k: 'a', v: 3 }, 1],
      [{ k: 'a', v: 5 }, -1],
    ]);
    assert.deepEqual(show(await min.step([[{ v: 5, k: 'a' }, -1, 3]])), []);
  });

  test('a multiplicity above one needs as many retractions', async () => {
    const max = single<KV>((c) =>
      c
        .groupBy((r) => r.k)
        .maxBy((r) => r.v)
        .ungroup(),
    );
    await max.step([
      [{ k: 'a', v: 5 }, 2, 1],
      [{ k: 'a', v: 3 }, 1, 1],
    ]);
    assert.deepEqual(show(await max.step([[{ k: 'a', v: 5 }, -1, 2]])), [], 'one copy of 5 is left');
    assert.deepEqual(show(await max.step([[{ k: 'a', v: 5 }, -1, 3]])), [
      [{ k: 'a', v: 3 }, 1],
      [{ k: 'a', v: 5 }, -1],
    ]);
  });

  for (const insertOnly of [true, false]) {
    test(`ties are broken by the value order, whatever the arrival order (${insertOnly ? 'insert-only' : 'general'})`, async () => {
      const a = { k: 'm', v: 1, tag: 'a' };
      const b = { k: 'm', v: 1, tag: 'b' };
      for (const order of [
        [a, b],
        [b, a],
      ]) {
        const max = single<typeof a>(
          (c) =>
            c
              .groupBy((r) => r.k)
              .maxBy((r) => r.v)
              .ungroup(),
          insertOnly,
        );
        const min = single<typeof a>(
          (c) =>
            c
              .groupBy((r) => r.k)
              .minBy((r) => r.v)
              .ungroup(),
          insertOnly,
        );
        await max.step([[order[0], 1, 1]]);
        await min.step([[order[0], 1, 1]]);
        const outMax = await max.step([[order[1], 1, 2]]);
        const outMin = await min.step([[order[1], 1, 2]]);
        assert.deepEqual(
          show(outMax),
          order[0] === a
            ? [
                [a, -1],
                [b, 1],
              ]
            : [],
          'max: the greater value b wins',
        );
        assert.deepEqual(
          show(outMin),
          order[0] === b
            ? [
                [a, 1],
                [b, -1],
              ]
            : [],
          'min: the smaller value a wins',
        );
      }
    });
  }

  test('a batch that does not change the result emits nothing (lower values, duplicates)', async () => {
    for (const insertOnly of [true, false]) {
      const max = single<KV>(
        (c) =>
          c
            .groupBy((r) => r.k)
            .maxBy((r) => r.v)
            .ungroup(),
        insertOnly,
      );
      await max.step([[{ k: 'a', v: 5 }, 1, 1]]);
      assert.deepEqual(
        await max.step([
          [{ k: 'a', v: 2 }, 1, 2],
          [{ v: 5, k: 'a' }, 1, 3],
        ]),
        [],
      );
    }
  });

  test('a group that disappears retracts its winner; an emptied and refilled group starts afresh', async () => {
    const max = single<KV>((c) =>
      c
        .groupBy((r) => r.k)
        .maxBy((r) => r.v)
        .ungroup(),
    );
    await max.step([
      [{ k: 'a', v: 5 }, 1, 1],
      [{ k: 'b', v: 1 }, 1, 1],
    ]);
    assert.deepEqual(show(await max.step([[{ k: 'a', v: 5 }, -1, 2]])), [[{ k: 'a', v: 5 }, -1]]);
    assert.equal(max.graph.stateSize(), 1);
    assert.deepEqual(show(await max.step([[{ k: 'a', v: 1 }, 1, 3]])), [[{ k: 'a', v: 1 }, 1]]);
  });

  test('insert-only plan: O(1) state per group, and a retraction is a RetractionError that changes nothing', async () => {
    const g = createGraph();
    const events = g.input<KV>('in', { insertOnly: true });
    const grouped = events.groupBy((r) => r.k);
    assert.equal(grouped.insertOnly, true);
    const max = grouped.maxBy((r) => r.v, { name: 'node-7' });
    assert.equal(max.insertOnly, false, 'a max changes, so its output retracts');
    g.output('out', max.ungroup());
    for (let i = 0; i < 100; i++) await g.step({ in: [[{ k: `m${i % 3}`, v: i }, 1, i]] });
    assert.equal(g.stateSize(), 3);
    await assert.rejects(
      g.step({ in: [[{ k: 'm0', v: 99 }, -1, 100]] }),
      (e: unknown) => e instanceof RetractionError && e.operator === 'in',
    );
    const r = await g.step({ in: [[{ k: 'm0', v: 1000 }, 1, 101]] });
    assert.deepEqual(show(r.outputs.get('out')!), [
      [{ k: 'm0', v: 1000 }, 1],
      [{ k: 'm0', v: 99 }, -1],
    ]);
  });

  test('outputs carry the time of the winning input', async () => {
    const max = single<KV>(
      (c) =>
        c
          .groupBy((r) => r.k)
          .maxBy((r) => r.v)
          .ungroup(),
      true,
    );
    const out = await max.step([
      [{ k: 'a', v: 1 }, 1, 10],
      [{ k: 'a', v: 7 }, 1, 20],
      [{ k: 'a', v: 3 }, 1, 30],
    ]);
    assert.deepEqual(out, [[{ k: 'a', v: 7 }, 1, 20]]);
  });
});

describe('maxBy / minBy failures', () => {
  test('a failing score function leaves the group untouched by that input', async () => {
    for (const insertOnly of [true, false]) {
      const max = single<KV>(
        (c) =>
          c
            .groupBy((x) => x.k)
            .maxBy((x) => (x.v > 100 ? boom() : x.v))
            .ungroup(),
        insertOnly,
      );
      await max.step([[{ k: 'a', v: 5 }, 1, 1]]);
      const g = max.graph;
      const r = await g.step({
        in: [
          [{ k: 'a', v: 500 }, 1, 2],
          [{ k: 'a', v: 6 }, 1, 2],
        ],
      });
      assert.deepEqual(show(r.outputs.get('out')!), [
        [{ k: 'a', v: 5 }, -1],
        [{ k: 'a', v: 6 }, 1],
      ]);
      assert.equal(r.skipped.length, 1);
    }
  });
});

describe('maxBy / minBy compaction', () => {
  test('general maxBy: the forgotten winner is replaced silently; later changes are computed from the rest', async () => {
    const max = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .maxBy((x) => x.v)
        .ungroup(),
    );
    await max.step([
      [{ k: 'a', v: 10 }, 1, 1],
      [{ k: 'a', v: 3 }, 1, 5],
    ]);
    assert.equal(max.graph.stateSize(), 2);
    max.graph.compact(3);
    assert.equal(max.graph.stateSize(), 1);
    assert.deepEqual(show(await max.step([[{ k: 'a', v: 4 }, 1, 6]])), [
      [{ k: 'a', v: 3 }, -1],
      [{ k: 'a', v: 4 }, 1],
    ]);
    max.graph.compact(100);
    assert.equal(max.graph.stateSize(), 0);
    assert.deepEqual(
      show(await max.step([[{ k: 'a', v: 1 }, 1, 101]])),
      [[{ k: 'a', v: 1 }, 1]],
      'an emptied group starts afresh (keyed sinks upsert)',
    );
  });

  test('insert-only maxBy keeps O(1) state and needs no compaction', async () => {
    const max = single<KV>(
      (c) =>
        c
          .groupBy((x) => x.k)
          .maxBy((x) => x.v)
          .ungroup(),
      true,
    );
    await max.step([
      [{ k: 'a', v: 10 }, 1, 1],
      [{ k: 'b', v: 3 }, 1, 5],
    ]);
    max.graph.compact(1000);
    assert.equal(max.graph.stateSize(), 2);
    assert.deepEqual(await max.step([[{ k: 'a', v: 9 }, 1, 1001]]), [], 'the old winner still counts');
  });
});
