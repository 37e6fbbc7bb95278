/** `reduce` (operators/reduce.ts): sorted consolidated inputs, minimal output changes, touched groups only, failures. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createGraph,
  MemoryStateStore,
  OperatorError,
  type Graph,
  type Multiset,
  type StateEntry,
  type Value,
} from '../../../src/engine';
import { encodeKey } from '../../../src/engine/state-key';
import { show, single, type KV } from '../run';

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

describe('reduce failures', () => {
  /** Fails whenever the group holds a value with v = 13. */
  const picky = (key: Value, inputs: Multiset<Value>, outputs: [Value, number][]) => {
    let sum = 0;
    for (const [x, m] of inputs) {
      if ((x as KV).v === 13) throw new Error('unlucky');
      sum += (x as KV).v * m;
    }
    outputs.push([{ key, sum }, 1]);
  };

  test('skip: the failing input is left out of its group deterministically, other inputs and groups go on', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce(picky, { name: 'usage' })
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({
      in: [
        [{ k: 'a', v: 13 }, 1, 2],
        [{ k: 'a', v: 2 }, 1, 2],
        [{ k: 'a', v: 20 }, 1, 2],
        [{ k: 'b', v: 5 }, 1, 2],
      ],
    });
    assert.deepEqual(show(res.outputs.get('out')!), [
      [{ key: 'a', sum: 1 }, -1],
      [{ key: 'a', sum: 23 }, 1],
      [{ key: 'b', sum: 5 }, 1],
    ]);
    assert.equal(res.skipped.length, 1);
    assert.equal(res.skipped[0].operator, 'usage');
    assert.equal(res.skipped[0].value, 'a', 'the group key');
    assert.deepEqual(res.skipped[0].input, { k: 'a', v: 13 }, 'and the input left out');
    // the state is as if v=13 never came: retracting 2 works from sum 23
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 2 }, -1, 3]])), [
      [{ key: 'a', sum: 21 }, 1],
      [{ key: 'a', sum: 23 }, -1],
    ]);
  });

  test('skip with a single update: the group keeps its state', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce(picky)
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({ in: [[{ k: 'a', v: 13 }, 1, 2]] });
    assert.equal(res.outputs.size, 0);
    assert.deepEqual(res.skipped[0].input, { k: 'a', v: 13 });
    assert.equal(r.graph.stateSize(), 2, 'one input and one output');
  });

  test('invalid reduce outputs are failures too', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs) => (inputs.length > 1 ? [[{ key, bad: NaN }, 1]] : [[{ key }, 1]]))
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({ in: [[{ k: 'a', v: 2 }, 1, 2]] });
    assert.equal(res.outputs.size, 0);
    assert.match((res.skipped[0].error as Error).message, /NaN/);
  });

  test('stop: OperatorError with the group key, and no group of the batch is committed', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce(picky, { name: 'usage' })
        .ungroup(),
    );
    await assert.rejects(
      r.step(
        [
          [{ k: 'a', v: 1 }, 1, 1],
          [{ k: 'b', v: 13 }, 1, 1],
        ],
        { onError: 'stop' },
      ),
      (e: unknown) => {
        assert.ok(e instanceof OperatorError);
        assert.equal(e.operator, 'usage');
        assert.equal(e.value, 'b');
        return true;
      },
    );
    assert.equal(r.graph.stateSize(), 0, 'group a was computed but not committed');
  });
});

/**
 * reduce with a state store (docs/durable-state.md, "reduce in parts"): a header per group and a
 * part per input, so that a step writes only the parts of the inputs it changed and the header.
 */
describe('reduce with a state store: a header and a part per input', () => {
  type M = { k: string; m: number };
  const seen: number[] = [];
  const median = (key: Value, inputs: Multiset<Value>, outputs: [Value, number][]): void => {
    seen.push(inputs.length);
    let total = 0;
    for (const [, n] of inputs) total += n;
    const nth = (i: number): number => {
      let c = 0;
      for (const [v, n] of inputs) if ((c += n) > i) return (v as M).m;
      return NaN;
    };
    outputs.push([{ key, median: nth(Math.floor(total / 2)), total, distinct: inputs.length }, 1]);
  };
  const build = (): Graph => {
    const g = createGraph();
    g.output(
      'out',
      g
        .input<M>('in')
        .groupBy((x) => x.k)
        .reduce(median, { orderBy: (x) => x.m, name: 'median' })
        .ungroup(),
    );
    return g;
  };
  const run = async (
    g: Graph,
    store: MemoryStateStore,
    updates: [M, number, number][],
  ): Promise<{ written: ReadonlyMap<string, StateEntry | null>; out: [Value, number][] }> => {
    const r = await g.step({ in: updates });
    store.commit(r.state!);
    g.release(r.state!.step);
    return {
      written: r.state!.entries.get('median') ?? new Map(),
      out: (r.outputs.get('out') ?? []).map(([v, d]) => [v, d]),
    };
  };
  const header = encodeKey('a');
  const lengths = (n: number, k = 'a'): [M, number, number][] => [...Array(n).keys()].map((i) => [{ k, m: i }, 1, i]);

  test('a step that changes one input writes that input’s part and the header, not the group', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 1e9, stored: false });
    const first = await run(g, store, lengths(50));
    assert.equal(first.written.size, 51, 'the first step: the header and a part per input');
    assert.equal(store.entries('median').size, 51);
    // A new input.
    let r = await run(g, store, [[{ k: 'a', m: 100 }, 1, 60]]);
    assert.deepEqual([...r.written.keys()].sort(), [header, header + encodeKey([100, { k: 'a', m: 100 }])].sort());
    // Another count of an input the group has: its part is rewritten.
    r = await run(g, store, [[{ k: 'a', m: 7 }, 2, 61]]);
    const part7 = header + encodeKey([7, { k: 'a', m: 7 }]);
    assert.deepEqual([...r.written.keys()].sort(), [header, part7].sort());
    assert.deepEqual(JSON.parse(r.written.get(part7)!.v), [null, [7, { k: 'a', m: 7 }, 3, 61]]);
    assert.equal(r.written.get(part7)!.t, 61);
    assert.equal(r.written.get(header)!.t, 61, "the header's time: the group's greatest input time");
    // An input retracted: its part is deleted.
    r = await run(g, store, [[{ k: 'a', m: 3 }, -1, 62]]);
    assert.equal(r.written.get(header + encodeKey([3, { k: 'a', m: 3 }])), null);
    assert.equal(r.written.size, 2);
    for (const e of r.written.values()) assert.ok(e === null || e.v.length < 200, `small entries: ${e?.v}`);
    assert.equal(store.entries('median').size, 51);
  });

  test('a group evicted, or after a restart, is read back whole with one range and continues exactly', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 0, stored: false });
    await run(g, store, [...lengths(30), ...lengths(5, 'b')]);
    assert.equal(g.stateStats()!.entries, 0, 'evicted: the bound is 0');
    const memory = build();
    await memory.step({ in: [...lengths(30), ...lengths(5, 'b')] });
    const next: [M, number, number][] = [
      [{ k: 'a', m: 4 }, 1, 40],
      [{ k: 'a', m: 31 }, 1, 41],
    ];
    const want = (await memory.step({ in: next })).outputs.get('out')!.map(([v, d]) => [v, d]);
    const reads = store.reads;
    seen.length = 0;
    const r = await run(g, store, next);
    assert.equal(store.reads - reads, 31, "group a's header and its 30 parts, not group b");
    assert.deepEqual(seen, [31], 'the function sees the whole group');
    assert.deepEqual(r.out, want);
    assert.equal(r.written.size, 3, 'the header and the two changed parts');
    // A restart over the store: the same.
    const fresh = build();
    fresh.useStore(store, { cacheBytes: 1e9, stored: true });
    const later: [M, number, number][] = [[{ k: 'a', m: 0 }, -1, 42]];
    const wantLater = (await memory.step({ in: later })).outputs.get('out')!.map(([v, d]) => [v, d]);
    const before = store.reads;
    assert.deepEqual((await run(fresh, store, later)).out, wantLater);
    assert.equal(store.reads - before, 32);
  });

  test('retractions that empty a group delete its header and every part', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 0, stored: false });
    await run(g, store, [...lengths(10), ...lengths(3, 'b')]);
    await run(g, store, [[{ k: 'a', m: 2 }, 1, 20]]); // a count of 2
    assert.equal(store.entries('median').size, 15);
    // Read back after eviction and emptied in one step (m 2 twice).
    const r = await run(
      g,
      store,
      lengths(10).map(([x, , t]): [M, number, number] => [x, x.m === 2 ? -2 : -1, t + 30]),
    );
    assert.equal([...r.written.values()].filter((e) => e !== null).length, 0, 'only deletions');
    assert.equal(r.written.size, 11);
    assert.deepEqual(
      [...store.entries('median').keys()].filter((k) => k.startsWith(header)),
      [],
      'nothing of group a is left',
    );
    assert.equal(store.entries('median').size, 4, "group b's header and parts");
    assert.deepEqual(r.out, [[{ key: 'a', median: 4, total: 11, distinct: 10 }, -1]]);
    // The group again: new, nothing read.
    const reads = store.reads;
    assert.deepEqual((await run(g, store, [[{ k: 'a', m: 9 }, 1, 50]])).out, [
      [{ key: 'a', median: 9, total: 1, distinct: 1 }, 1],
    ]);
    assert.equal(store.reads, reads);
  });

  test('retention: parts older than the cutoff are forgotten on disk, the group read back is recomputed silently', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 0, stored: false });
    const memory = build();
    const steps: { updates: [M, number, number][]; compact?: number }[] = [
      { updates: lengths(10) },
      { updates: [[{ k: 'a', m: 20 }, 1, 20]], compact: 5 },
      { updates: [[{ k: 'a', m: 21 }, 1, 21]] },
      { updates: [[{ k: 'a', m: 1 }, 1, 22]], compact: 21 },
      { updates: [[{ k: 'a', m: 0 }, 1, 2]] },
    ];
    for (const s of steps) {
      if (s.compact !== undefined) {
        g.compact(s.compact);
        memory.compact(s.compact);
      }
      const want = (await memory.step({ in: s.updates })).outputs.get('out')?.map(([v, d]) => [v, d]) ?? [];
      assert.deepEqual((await run(g, store, s.updates)).out, want);
    }
    const left = [...store.entries('median').values()].map((e) => e.t);
    assert.ok(
      left.every((t) => t === null || t >= 21 || t === 2),
      `forgotten on disk: ${JSON.stringify(left)}`,
    );
  });
});
