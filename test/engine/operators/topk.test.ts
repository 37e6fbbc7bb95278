/**
 * `topK`: the n greatest (smallest) records per group by a function, ties broken by the value
 * order. Incremental equals a from-scratch sort (fast-check, 200 runs each direction) under random
 * batchings, retractions (also before their insertions), late records and restarts; the result
 * depends on the set of records only, not on their arrival order; examples by hand.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGraph, type Update, type Value } from '../../../src/engine';
import { assertConsolidated, RUNS } from '../harness';
import { refCompare, zAdd, zMinus, zShow, type Z } from '../reference';
import { show } from '../run';

type Stop = { g: string; machine: Value; minutes: number };

const stop: fc.Arbitrary<Stop> = fc.record({
  g: fc.constantFrom('line1', 'line2'),
  machine: fc.constantFrom<Value>('a', 'b', 'c', 'd', 1, { m: 'e' }),
  minutes: fc.integer({ min: 0, max: 4 }), // few scores: many ties
});

const scenarios = fc
  .record({
    n: fc.integer({ min: 1, max: 4 }),
    final: fc.array(fc.tuple(stop, fc.integer({ min: 1, max: 3 })), { maxLength: 16 }),
    noise: fc.array(fc.tuple(stop, fc.boolean()), { maxLength: 8 }),
    order: fc.array(fc.nat(), { maxLength: 32 }),
    cuts: fc.array(fc.nat({ max: 1000 }), { maxLength: 6 }),
    restarts: fc.array(fc.nat({ max: 6 }), { maxLength: 2 }),
  })
  .map(({ n, final, noise, order, cuts, restarts }) => {
    const updates: Update<Stop>[] = final.map(([s, m]) => [s, m, s.minutes]);
    for (const [s, retractFirst] of noise) {
      const pair: Update<Stop>[] = [
        [s, 1, s.minutes],
        [s, -1, s.minutes],
      ];
      updates.push(...(retractFirst ? pair.reverse() : pair));
    }
    const keyed = updates.map((u, i) => [order[i % Math.max(1, order.length)] ?? 0, i, u] as const);
    keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const all = keyed.map(([, , u]) => u);
    const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
    const batches: Update<Stop>[][] = [];
    let from = 0;
    for (const p of [...points, all.length]) {
      batches.push(all.slice(from, p));
      from = p;
    }
    return { n, batches, restarts: new Set(restarts) };
  });

/** From scratch: per group, the records sorted by (minutes, record), the n last (max) or first (min), copies counted. */
function reference(z: Z, n: number, direction: 'max' | 'min'): Z {
  const groups = new Map<string, [Value, number][]>();
  for (const [v, m] of z.values()) {
    if (m <= 0) continue;
    const g = (v as Stop).g;
    groups.set(g, [...(groups.get(g) ?? []), [v, m]]);
  }
  const out: Z = new Map();
  for (const records of groups.values()) {
    records.sort((a, b) => refCompare([(a[0] as Stop).minutes, a[0]], [(b[0] as Stop).minutes, b[0]]));
    if (direction === 'max') records.reverse();
    let left = n;
    for (const [v, m] of records) {
      if (left === 0) break;
      zAdd(out, v, Math.min(m, left));
      left -= Math.min(m, left);
    }
  }
  return out;
}

describe('topK: incremental equals from scratch (batchings, retractions, late records, restarts)', () => {
  for (const direction of ['max', 'min'] as const) {
    test(`${direction}`, () =>
      fc.assert(
        fc.asyncProperty(scenarios, async (sc) => {
          const z: Z = new Map();
          const start = async () => {
            const g = createGraph();
            const input = g.input<Stop>('in');
            g.output(
              'out',
              input
                .groupBy((s) => s.g)
                .topK(sc.n, (s) => s.minutes, { direction })
                .ungroup(),
            );
            const replay: Update<Value>[] = [...z.values()].map(([v, m]) => [v, m, 0]);
            if (replay.length > 0) await g.step({ in: replay }, { onError: 'stop' });
            return g;
          };
          let graph = await start();
          let before = reference(z, sc.n, direction);
          const accumulated: Z = new Map();
          for (const [i, batch] of sc.batches.entries()) {
            if (sc.restarts.has(i)) {
              graph = await start();
              accumulated.clear();
              for (const [v, m] of before.values()) zAdd(accumulated, v, m);
            }
            for (const [v, d] of batch) zAdd(z, v, d);
            const { outputs } = await graph.step({ in: batch }, { onError: 'stop' });
            const out = outputs.get('out') ?? [];
            assertConsolidated(out, `step ${i}`);
            const after = reference(z, sc.n, direction);
            const got: Z = new Map();
            for (const [v, d] of out) zAdd(got, v, d);
            assert.deepEqual(zShow(got), zShow(zMinus(after, before)), `step ${i}`);
            for (const [v, d] of out) zAdd(accumulated, v, d);
            before = after;
          }
          assert.deepEqual(zShow(accumulated), zShow(reference(z, sc.n, direction)));
        }),
        { numRuns: RUNS },
      ));
  }
});

describe('topK: examples', () => {
  const graph = (n: number, direction?: 'max' | 'min') => {
    const g = createGraph();
    g.output(
      'out',
      g
        .input<Stop>('in')
        .groupBy((s) => s.g)
        .topK(n, (s) => s.minutes, { direction, name: 'top' })
        .ungroup(),
    );
    return async (batch: Update<Stop>[]) => show((await g.step({ in: batch })).outputs.get('out') ?? []);
  };
  const s = (machine: string, minutes: number): Stop => ({ g: 'l', machine, minutes });

  test('ties are broken by the value order, whatever the arrival order', async () => {
    for (const order of [
      [s('a', 5), s('b', 5), s('c', 5)],
      [s('c', 5), s('a', 5), s('b', 5)],
    ]) {
      const step = graph(2);
      assert.deepEqual(await step(order.map((x) => [x, 1, 0])), [
        [s('b', 5), 1],
        [s('c', 5), 1],
      ]);
    }
  });

  test('copies count: a record with multiplicity 3 fills a top 2; retracting one copy keeps it', async () => {
    const step = graph(2, 'min');
    assert.deepEqual(
      await step([
        [s('a', 1), 3, 0],
        [s('b', 2), 1, 0],
      ]),
      [[s('a', 1), 2]],
    );
    assert.deepEqual(await step([[s('a', 1), -2, 0]]), [
      [s('a', 1), -1],
      [s('b', 2), 1],
    ]);
  });

  test('bad n and direction fail when the graph is built', () => {
    const g = createGraph()
      .input<Stop>('in')
      .groupBy((x) => x.g);
    assert.throws(() => g.topK(0, (x) => x.minutes), /positive integer/);
    assert.throws(() => g.topK(2.5, (x) => x.minutes), /positive integer/);
    assert.throws(() => g.topK(2, (x) => x.minutes, { direction: 'up' as 'max' }), /'max' or 'min'/);
  });
});
