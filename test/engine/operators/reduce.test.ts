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
  type StepState,
  type Value,
} from '../../../src/engine';
import { PART_INPUTS } from '../../../src/engine/operators/reduce';
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
 * reduce with a state store (docs/durable-state.md, "Implementation status"): a header per group
 * and its inputs in parts (here of 4 inputs, split beyond 8), so that a step writes only the parts
 * holding the inputs it changed and the header.
 */
describe('reduce with a state store: a header and parts of the inputs', () => {
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
  /** The median graph; its parts of 4 inputs here (`{}`: the default, PART_INPUTS). */
  const build = (parts: { readonly partInputs?: number } = { partInputs: 4 }): Graph => {
    const g = createGraph();
    g.output(
      'out',
      g
        .input<M>('in')
        .groupBy((x) => x.k)
        .reduce(median, { orderBy: (x) => x.m, name: 'median', ...parts })
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
  /** The stored keys of group a. */
  const groupA = (store: MemoryStateStore): string[] =>
    [...store.entries('median').keys()].filter((k) => k.startsWith(header)).sort();
  /** The inputs a stored part holds, as [m, multiplicity, time]. */
  const inputsOf = (e: StateEntry): [number, number, number][] => {
    const [, [, values, mults, times]] = JSON.parse(e.v) as [null, [Value[], M[], number[], number[]]];
    return values.map((v, j) => [v.m, mults[j]!, times[j]!]);
  };

  test('a step that changes one input writes the part holding it and the header, not the group', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 1e9, stored: false });
    const first = await run(g, store, lengths(50));
    assert.equal(first.written.size, 14, 'the header and 50 inputs in 13 parts (beyond 8: split into parts of 4)');
    assert.deepEqual(
      [...first.written].filter(([k]) => k !== header).flatMap(([, e]) => inputsOf(e!).map(([m]) => m)),
      [...Array(50).keys()],
      'the parts hold the inputs in order',
    );
    const partWith = (written: ReadonlyMap<string, StateEntry | null>, m: number): [number, number, number][] => {
      assert.equal(written.size, 2, `the header and one part: ${[...written.keys()].join(', ')}`);
      assert.ok(written.has(header));
      const [k, e] = [...written].find(([key]) => key !== header)!;
      assert.ok(k.startsWith(header) && e !== null);
      const inputs = inputsOf(e);
      assert.ok(inputs.length <= 8, `a part of at most 8 inputs: ${inputs.length}`);
      assert.ok(inputs.some(([x]) => x === m) || m < 0);
      return inputs;
    };
    // A new input, after the others.
    partWith((await run(g, store, [[{ k: 'a', m: 100 }, 1, 60]])).written, 100);
    // Another count of an input the group has.
    const r = await run(g, store, [[{ k: 'a', m: 7 }, 2, 61]]);
    assert.deepEqual(
      partWith(r.written, 7).find(([m]) => m === 7),
      [7, 3, 61],
    );
    assert.equal(r.written.get(header)!.t, 61, "the header's time: the group's greatest input time");
    assert.equal(JSON.parse(r.written.get(header)!.v)[1][2], 51, 'the header counts the inputs');
    // An input retracted: its part is rewritten without it.
    const without = partWith((await run(g, store, [[{ k: 'a', m: 3 }, -1, 62]])).written, -1);
    assert.ok(!without.some(([m]) => m === 3));
    assert.equal(groupA(store).length, 14);
    // Late inputs into one part: it splits when it holds more than 8.
    const late: [M, number, number][] = [...Array(6).keys()].map((i) => [{ k: 'a', m: 20 + (i + 1) / 10 }, 1, 70]);
    const split = (await run(g, store, late)).written;
    // (The part of 19–22 holds 10 inputs then: split into 3 of about 4.)
    assert.equal(split.size, 4, `the header and the part split in three: ${[...split.keys()].join(', ')}`);
    assert.deepEqual(
      [...split].filter(([k]) => k !== header).map(([, e]) => inputsOf(e!).length),
      [3, 3, 4],
    );
    assert.equal(groupA(store).length, 16);
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
    const stored = groupA(store).length;
    assert.equal(stored, 9, 'the header and 30 inputs in 8 parts');
    const reads = store.reads;
    seen.length = 0;
    const r = await run(g, store, next);
    assert.equal(store.reads - reads, stored, "group a's header and parts, not group b");
    assert.deepEqual(seen, [31], 'the function sees the whole group');
    assert.deepEqual(r.out, want);
    assert.equal(r.written.size, 3, 'the header and the two parts holding the changed inputs');
    // A restart over the store: the same.
    const fresh = build();
    fresh.useStore(store, { cacheBytes: 1e9, stored: true });
    const later: [M, number, number][] = [[{ k: 'a', m: 0 }, -1, 42]];
    const wantLater = (await memory.step({ in: later })).outputs.get('out')!.map(([v, d]) => [v, d]);
    const before = store.reads;
    assert.deepEqual((await run(fresh, store, later)).out, wantLater);
    assert.equal(store.reads - before, stored);
  });

  test('by default a part holds about PART_INPUTS inputs; groups stored in larger parts are split as they are rewritten', async () => {
    const sizes = (written: ReadonlyMap<string, StateEntry | null>): number[] =>
      [...written].filter(([k, e]) => k !== header && e !== null).map(([, e]) => inputsOf(e!).length);
    // Stored as the previous default wrote it: 200 inputs in parts of 64 (split beyond 128).
    const store = new MemoryStateStore();
    const old = build({ partInputs: 64 });
    old.useStore(store, { cacheBytes: 1e9, stored: false });
    const first = await run(old, store, lengths(200));
    assert.ok(
      sizes(first.written).every((n) => n > 2 * PART_INPUTS),
      `parts of 64: ${sizes(first.written).join(', ')}`,
    );
    const memory = build({});
    await memory.step({ in: lengths(200) });
    // Today's default, restarted over that store: another count of one input.
    const g = build({});
    g.useStore(store, { cacheBytes: 1e9, stored: true });
    const next: [M, number, number][] = [[{ k: 'a', m: 150 }, 1, 300]];
    const want = (await memory.step({ in: next })).outputs.get('out')!.map(([v, d]) => [v, d]);
    const r = await run(g, store, next);
    assert.deepEqual(r.out, want, 'the group read back from larger parts continues exactly');
    const rewritten = sizes(r.written);
    assert.ok(rewritten.length > 1, `the part holding it is split: ${rewritten.join(', ')}`);
    assert.ok(
      rewritten.every((n) => n <= 2 * PART_INPUTS),
      `parts of about ${PART_INPUTS}: ${rewritten.join(', ')}`,
    );
    // A further change rewrites one small part and the header.
    const again = await run(g, store, [[{ k: 'a', m: 151 }, 1, 301]]);
    assert.equal(again.written.size, 2, `the header and one part: ${[...again.written.keys()].join(', ')}`);
    assert.ok(sizes(again.written)[0]! <= 2 * PART_INPUTS);
  });

  test('retractions that empty a group delete its header and every part', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 0, stored: false });
    await run(g, store, [...lengths(10), ...lengths(3, 'b')]);
    await run(g, store, [[{ k: 'a', m: 2 }, 1, 20]]); // a count of 2
    const stored = groupA(store);
    assert.equal(stored.length, 4, 'the header and 10 inputs in 3 parts');
    const others = store.entries('median').size - stored.length;
    // Read back after eviction and emptied in one step (m 2 twice).
    const r = await run(
      g,
      store,
      lengths(10).map(([x, , t]): [M, number, number] => [x, x.m === 2 ? -2 : -1, t + 30]),
    );
    assert.deepEqual([...r.written.keys()].sort(), stored, 'the header and every part');
    assert.ok(
      [...r.written.values()].every((e) => e === null),
      'deleted',
    );
    assert.deepEqual(groupA(store), [], 'nothing of group a is left');
    assert.equal(store.entries('median').size, others, "group b's entries stay");
    assert.deepEqual(r.out, [[{ key: 'a', median: 4, total: 11, distinct: 10 }, -1]]);
    // The group again: new, nothing read.
    const reads = store.reads;
    assert.deepEqual((await run(g, store, [[{ k: 'a', m: 9 }, 1, 50]])).out, [
      [{ key: 'a', median: 9, total: 1, distinct: 1 }, 1],
    ]);
    assert.equal(store.reads, reads);
  });

  test('retention: parts of a forgotten group saved after the forget in one commit do not mix with the new group', async () => {
    // As the host commits: the steps of a commit merged, the forget first, then the entries (an
    // earlier step's parts of group a, forgotten in memory by the compaction, are stored after it).
    const merge = (a: StepState, b: StepState): StepState => {
      const entries = new Map<string, Map<string, StateEntry | null>>();
      for (const s of [a, b])
        for (const [op, m] of s.entries) {
          const into = entries.get(op) ?? new Map<string, StateEntry | null>();
          for (const [k, e] of m) into.set(k, e);
          entries.set(op, into);
        }
      return { step: b.step, entries, forget: b.forget ?? a.forget, cutoff: b.cutoff };
    };
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 0, stored: false });
    const memory = build();
    const both = async (updates: [M, number, number][]): Promise<StepState> => {
      const r = await g.step({ in: updates });
      const want = (await memory.step({ in: updates })).outputs.get('out')?.map(([v, d]) => [v, d]) ?? [];
      assert.deepEqual(
        (r.outputs.get('out') ?? []).map(([v, d]) => [v, d]),
        want,
      );
      return r.state!;
    };
    const s1 = await both(lengths(12)); // three parts: from the start, from m 4, from m 8
    g.compact(20);
    memory.compact(20); // forgets group a
    const s2 = await both([0, 1, 2, 3, 4, 5, 6].map((m): [M, number, number] => [{ k: 'a', m }, 1, 30 + m]));
    store.commit(merge(s1, s2));
    g.release(s2.step);
    for (const [i, m] of [9, 10, 11, 12].entries()) {
      const r = await both([[{ k: 'a', m }, 1, 40 + i]]);
      store.commit(r);
      g.release(r.step);
    }
  });

  test('retention: parts older than the cutoff are forgotten on disk, the group read back is recomputed silently', async () => {
    const store = new MemoryStateStore();
    const g = build();
    g.useStore(store, { cacheBytes: 0, stored: false });
    const memory = build();
    const steps: { updates: [M, number, number][]; compact?: number }[] = [
      { updates: lengths(20) },
      { updates: [[{ k: 'a', m: 30 }, 1, 30]], compact: 9 },
      { updates: [[{ k: 'a', m: 31 }, 1, 31]] },
      { updates: [[{ k: 'a', m: 1 }, 1, 32]], compact: 31 },
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
      left.every((t) => t === null || t >= 31 || t === 2),
      `forgotten on disk: ${JSON.stringify(left)}`,
    );
  });
});
