/** Unit tests per operator: retractions, ties, empty and disappearing groups, minimal outputs. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, RetractionError, type Multiset, type Value } from '../../src/engine';
import { show, single } from './run';

type KV = { k: string; v: number };

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

describe('reduce', () => {
  test('sees consolidated inputs sorted by value, with multiplicities; emits only the output difference', async () => {
    const seen: Multiset<Value>[] = [];
    const r = single<{ lamport: number; x: string }>((c) =>
      c
        .groupBy(() => 'g')
        .reduce((key, inputs, outputs) => {
          seen.push(inputs.map(([v, m]) => [v, m] as const));
          for (const [v, m] of inputs) outputs.push([{ key, x: (v as { x: string }).x }, m]);
        })
        .ungroup(),
    );
    const out1 = await r.step([
      [{ x: 'c', lamport: 3 }, 1, 1],
      [{ lamport: 1, x: 'a' }, 1, 1],
      [{ lamport: 3, x: 'c' }, 1, 1],
      [{ lamport: 2, x: 'b' }, 1, 1],
      [{ lamport: 2, x: 'b' }, -1, 1],
    ]);
    assert.deepEqual(seen[0], [
      [{ lamport: 1, x: 'a' }, 1],
      [{ x: 'c', lamport: 3 }, 2],
    ]);
    assert.deepEqual(show(out1), [
      [{ key: 'g', x: 'a' }, 1],
      [{ key: 'g', x: 'c' }, 2],
    ]);
    const out2 = await r.step([[{ lamport: 0, x: 'z' }, 1, 2]]);
    assert.deepEqual(
      seen[1].map(([v]) => (v as { lamport: number }).lamport),
      [0, 1, 3],
    );
    assert.deepEqual(show(out2), [[{ key: 'g', x: 'z' }, 1]], 'unchanged outputs are not re-emitted');
  });

  test('only groups touched by a batch are recomputed', async () => {
    const calls: Value[] = [];
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs, outputs) => {
          calls.push(key);
          outputs.push([{ key, n: inputs.length }, 1]);
        })
        .ungroup(),
    );
    await r.step([
      [{ k: 'a', v: 1 }, 1, 1],
      [{ k: 'b', v: 1 }, 1, 1],
    ]);
    calls.length = 0;
    await r.step([[{ k: 'b', v: 2 }, 1, 2]]);
    assert.deepEqual(calls, ['b']);
    calls.length = 0;
    assert.deepEqual(
      await r.step([
        [{ k: 'a', v: 5 }, 1, 3],
        [{ k: 'a', v: 5 }, -1, 3],
      ]),
      [],
    );
    assert.deepEqual(calls, [], 'updates that cancel out touch nothing');
  });

  test('a group whose inputs are all retracted disappears and its outputs are retracted', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs) => [[{ key, n: inputs.length }, 1]])
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 1 }, -1, 2]])), [[{ key: 'a', n: 1 }, -1]]);
    assert.equal(r.graph.stateSize(), 0);
  });

  test('returned outputs and pushed outputs both count, zero multiplicities are dropped', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, _inputs, outputs) => {
          outputs.push([{ key, p: 1 }, 1], [{ key, z: 1 }, 0]);
          return [[{ key, q: 1 }, 2]];
        })
        .ungroup(),
    );
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 1 }, 1, 1]])), [
      [{ key: 'a', p: 1 }, 1],
      [{ key: 'a', q: 1 }, 2],
    ]);
  });
});

describe('count, sum, distinct', () => {
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

  test('distinct: once while the multiplicity is positive (ungrouped and per group)', async () => {
    const d = single<KV>((c) => c.distinct());
    assert.deepEqual(
      show(
        await d.step([
          [{ k: 'a', v: 1 }, 2, 1],
          [{ v: 1, k: 'a' }, 1, 1],
        ]),
      ),
      [[{ k: 'a', v: 1 }, 1]],
    );
    assert.deepEqual(await d.step([[{ k: 'a', v: 1 }, -2, 2]]), []);
    assert.deepEqual(show(await d.step([[{ k: 'a', v: 1 }, -1, 3]])), [[{ k: 'a', v: 1 }, -1]]);
    const per = single<KV>((c) =>
      c
        .groupBy((x) => x.v)
        .distinct()
        .ungroup(),
    );
    assert.deepEqual(
      show(
        await per.step([
          [{ k: 'a', v: 1 }, 1, 1],
          [{ k: 'a', v: 1 }, 1, 1],
        ]),
      ),
      [[{ k: 'a', v: 1 }, 1]],
    );
  });
});

describe('filter, map, flatMap, concat', () => {
  test('carry diffs and times; consolidate at the output', async () => {
    const m = single<KV>((c) => c.map((x) => ({ k: x.k })));
    assert.deepEqual(
      await m.step([
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'a', v: 2 }, 1, 7],
        [{ k: 'a', v: 3 }, -2, 6],
      ]),
      [],
    );
    assert.deepEqual(
      await m.step([
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'a', v: 2 }, 1, 7],
      ]),
      [[{ k: 'a' }, 2, 7]],
    );
    const f = single<KV>((c) => c.filter((x) => x.v > 1));
    assert.deepEqual(
      await f.step([
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'a', v: 2 }, -1, 7],
      ]),
      [[{ k: 'a', v: 2 }, -1, 7]],
    );
    const fm = single<KV>((c) => c.flatMap((x) => Array.from({ length: x.v }, (_, i) => i)));
    assert.deepEqual(
      show(
        await fm.step([
          [{ k: 'a', v: 2 }, 1, 1],
          [{ k: 'b', v: 1 }, 3, 1],
        ]),
      ),
      [
        [0, 4],
        [1, 1],
      ],
    );
  });

  test('concat adds multiplicities of several inputs, and insert-only-ness only when all are', async () => {
    const g = createGraph();
    const a = g.input<number>('a', { insertOnly: true });
    const b = g.input<number>('b', { insertOnly: true });
    const c = g.input<number>('c');
    assert.equal(a.concat([b]).insertOnly, true);
    assert.equal(a.concat([b, c]).insertOnly, false);
    g.output('out', a.concat([b, c]));
    const r = await g.step({
      a: [[1, 1, 1]],
      b: [
        [1, 1, 2],
        [2, 1, 2],
      ],
      c: [[2, -1, 3]],
    });
    assert.deepEqual(r.outputs.get('out'), [[1, 2, 2]]);
  });
});

describe('graph', () => {
  test('outputs with no change are absent; several outputs in one step', async () => {
    const g = createGraph();
    const i = g.input<KV>('in');
    g.output('all', i);
    g.output(
      'big',
      i.filter((x) => x.v > 10),
    );
    const r = await g.step(new Map([['in', [[{ k: 'a', v: 1 }, 1, 1]] as const]]));
    assert.deepEqual([...r.outputs.keys()], ['all']);
  });

  test('refuses unknown inputs, malformed updates, late graph changes and overlapping steps', async () => {
    const g = createGraph();
    const i = g.input<number>('in');
    g.output('out', i);
    await assert.rejects(g.step({ nope: [] }), /no input named "nope"/);
    await assert.rejects(g.step({ in: [[1, 0.5, 1]] }), /not an integer/);
    await assert.rejects(g.step({ in: [[1, 1, NaN]] }), /time/);
    await assert.rejects(g.step({ in: [[1, 1] as unknown as [number, number, number]] }), /\[value, diff, time\]/);
    await g.step({ in: [[1, 1, 1]] });
    assert.throws(() => i.map((x) => x + 1), /already run a step/);
    const slow = createGraph();
    slow.output(
      'out',
      slow.input<number>('in').map(async (x) => x),
    );
    const first = slow.step({ in: [[1, 1, 1]] });
    await assert.rejects(slow.step({ in: [[2, 1, 1]] }), /still running/);
    assert.deepEqual((await first).outputs.get('out'), [[1, 1, 1]]);
    assert.throws(() => createGraph().input('x') && g.output('o', createGraph().input('y')), /another graph/);
  });

  test('column batches: the same results as tuples; diffs default to 1; malformed columns are refused', async () => {
    const build = () => {
      const g = createGraph();
      const i = g.input<KV>('in', { insertOnly: true });
      g.output(
        'max',
        i
          .groupBy((r) => r.k)
          .maxBy((r) => r.v)
          .ungroup(),
      );
      g.output(
        'sum',
        i
          .groupBy((r) => r.k)
          .sum((r) => r.v)
          .ungroup(),
      );
      return g;
    };
    const values: KV[] = [
      { k: 'a', v: 1 },
      { k: 'b', v: 5 },
      { k: 'a', v: 3 },
    ];
    const tuples = await build().step({ in: values.map((v, n) => [v, 1, n] as const) });
    const columns = await build().step({ in: { values, times: [0, 1, 2] } });
    assert.deepEqual([...columns.outputs], [...tuples.outputs]);
    const g = build();
    await assert.rejects(g.step({ in: { values, times: [0, 1] } }), /columns differ in length/);
    await assert.rejects(g.step({ in: { values, times: [0, 1, 2], diffs: [1, 1] } }), /columns differ in length/);
    await assert.rejects(g.step({ in: { values, times: [0, 1, 2], diffs: [1, -1, 1] } }), RetractionError);
    await assert.rejects(g.step({ in: { values: [undefined as unknown as KV], times: [0] } }), /has no value/);
    await assert.rejects(g.step({ in: { times: [0] } as never }), /neither an array of updates nor/);
    // A refused batch changed nothing.
    assert.deepEqual(
      show((await g.step({ in: { values: [{ k: 'a', v: 2 }], times: [3] } })).outputs.get('max') ?? []),
      [[{ k: 'a', v: 2 }, 1]],
    );
  });
});
