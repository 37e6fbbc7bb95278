/**
 * `scan`: the incremental fold equals the from-scratch fold (a `reduce` folding the sorted inputs)
 * after every batch — with retractions, late values, duplicates, tiny and default checkpoint
 * spacings, in-place state changes, async steps and retention — plus its failure behaviour.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  createGraph,
  MemoryStateStore,
  OperatorError,
  type Collection,
  type Graph,
  type Multiset,
  type StateEntry,
  type StepState,
  type Update,
  type Value,
} from '../../../src/engine';
import type { DrillEvent } from '../../../bench/drill-data';
import {
  pairStartStop,
  usagePipeline,
  usageScanPipeline,
  type Excerpt,
  type UsageRow,
} from '../../../bench/drill-pipelines';
import { checkIncremental, RUNS, scenario } from '../harness';
import { ref, zAdd, zShow, type Z } from '../reference';
import { show, single } from '../run';

type Rec = { k: string; v: number; s: string };
const rec: fc.Arbitrary<Rec> = fc.record({
  k: fc.constantFrom('a', 'b', 'c'),
  v: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7),
  s: fc.constantFrom('x', 'y', 'z'),
});

type State = { acc: number; last: { v: number } | null };
const initial: State = { acc: 0, last: null };

/**
 * Order-sensitive, changes its state in place, emits an object that a later step changes in place
 * (emit must copy), and often returns to an earlier state (so refolds rejoin).
 */
function step(state: State, r: Rec, emit: (o: Value, m?: number) => void, key: string): State {
  state.acc = (state.acc * 3 + r.v + 1) % 7;
  if (r.s === 'x') state.last = { v: r.v };
  else if (r.s === 'y' && state.last) state.last.v += 1;
  if (state.acc % 2 === 0) emit({ key, acc: state.acc, last: state.last });
  if (r.v === 7) emit({ key, seven: true }, 2);
  return state;
}

/** The same fold from scratch, over inputs sorted by the reference order, each multiplicity times. */
function foldFromScratch(key: Value, inputs: [Value, number][], outputs: [Value, number][]): void {
  let state = JSON.parse(JSON.stringify(initial)) as State;
  for (const [v, m] of inputs) {
    for (let i = 0; i < m; i++) {
      state = step(
        state,
        v as Rec,
        (o, n = 1) => outputs.push([JSON.parse(JSON.stringify(o)) as Value, n]),
        key as string,
      );
    }
  }
}

const reference = (z: Z): Z =>
  ref.ungroup(
    ref.reduce(
      ref.groupBy(z, (v) => (v as Rec).k),
      foldFromScratch,
    ),
  );

describe('scan: incremental == from-scratch fold', () => {
  for (const every of [1, 2, 3, 32]) {
    for (const insertOnly of [true, false]) {
      test(`checkpoint every ${every}, ${insertOnly ? 'insert-only' : 'with retractions'}`, async () => {
        await fc.assert(
          fc.asyncProperty(scenario(rec, { retractions: !insertOnly, maxLength: 80 }), (sc) =>
            checkIncremental(
              sc,
              insertOnly,
              (c: Collection<Rec>) =>
                c
                  .groupBy((r) => r.k)
                  .scan(initial, step, { checkpointEvery: every })
                  .ungroup(),
              reference,
            ),
          ),
          { numRuns: RUNS },
        );
      });
    }
  }

  test('async steps take the same results', async () => {
    await fc.assert(
      fc.asyncProperty(scenario(rec, { retractions: true, maxLength: 40 }), (sc) =>
        checkIncremental(
          sc,
          false,
          (c: Collection<Rec>) =>
            c
              .groupBy((r) => r.k)
              .scan(
                initial,
                (s, r, emit, key) =>
                  r.v % 2 === 0 ? Promise.resolve().then(() => step(s, r, emit, key)) : step(s, r, emit, key),
                { checkpointEvery: 2 },
              )
              .ungroup(),
          reference,
        ),
      ),
      { numRuns: RUNS },
    );
  });
});

describe("the seed's usage view as a scan", () => {
  const drillEvent: fc.Arbitrary<DrillEvent> = fc
    .record({
      lamport: fc.integer({ min: 1, max: 60 }),
      m: fc.constantFrom(1, 2),
      kind: fc.constantFrom('started', 'stopped'),
      order: fc.constantFrom('4711', '4712', '__proto__'),
    })
    .map(({ lamport, m, kind, order }) => ({
      lamport,
      stream: `drill${m}-0`,
      offset: lamport,
      timestamp: lamport * 1000,
      appId: 'test',
      tags: ['machine', `machine:Drill${m}`],
      payload: { type: kind as 'started' | 'stopped', order },
    }));

  for (const insertOnly of [true, false]) {
    test(`pairStep scan == pairStartStop reduce, ${insertOnly ? 'insert-only' : 'with retractions'}`, async () => {
      const reduceView = (z: Z): Z => {
        const g = ref.groupBy(
          ref.map(
            z,
            (e) =>
              ({
                lamport: (e as DrillEvent).lamport,
                machine: (e as DrillEvent).tags[1]!.slice(8),
                payload: (e as DrillEvent).payload,
                timestamp: (e as DrillEvent).timestamp,
              }) as Value,
          ),
          (x) => (x as Excerpt).machine,
        );
        // A scan folds a value once per positive multiplicity; a group can hold a negative one
        // for a while (a retraction before its insertion), which the seed's reduce would still see.
        const positive = (inputs: [Value, number][]) => inputs.filter(([, m]) => m > 0) as unknown as Multiset<Excerpt>;
        return ref.ungroup(
          ref.reduce(g, (key, inputs, outputs) =>
            pairStartStop(key as string, positive(inputs), outputs as unknown as [UsageRow, number][]),
          ),
        );
      };
      await fc.assert(
        fc.asyncProperty(scenario(drillEvent, { retractions: !insertOnly, maxLength: 60 }), (sc) =>
          checkIncremental(sc, insertOnly, usageScanPipeline, reduceView),
        ),
        { numRuns: RUNS },
      );
    });
  }

  test('the scan and the reduce pipelines agree batch by batch on a long in-order history', async () => {
    const a = single<DrillEvent>(usagePipeline, true);
    const b = single<DrillEvent>(usageScanPipeline, true);
    let lamport = 0;
    for (let batch = 0; batch < 30; batch++) {
      const events: [DrillEvent, number, number][] = [];
      for (let i = 0; i < 40; i++) {
        lamport++;
        const m = 1 + (lamport % 3);
        const e: DrillEvent = {
          lamport,
          stream: `drill${m}-0`,
          offset: lamport,
          timestamp: lamport,
          appId: 't',
          tags: ['machine', `machine:Drill${m}`],
          payload: { type: (lamport >> 2) % 2 === 0 ? 'started' : 'stopped', order: `o${lamport % 5}` },
        };
        events.push([e, 1, e.timestamp]);
      }
      assert.deepEqual(show(await b.step(events)), show(await a.step(events)), `batch ${batch}`);
    }
  });
});

describe('scan failures', () => {
  type KV = { k: string; v: number };
  const picky = (sum: number, x: KV): number => {
    if (x.v === 13) throw new Error('unlucky');
    return sum + x.v;
  };
  const sums = (c: Collection<KV>) =>
    c
      .groupBy((x) => x.k)
      .scan(
        0,
        (s: number, x: KV, emit, key) => {
          const next = picky(s, x);
          emit({ key, sum: next });
          return next;
        },
        { name: 'running' },
      )
      .ungroup();

  test('skip: the failing input is left out deterministically, the rest goes on', async () => {
    const r = single<KV>(sums);
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({
      in: [
        [{ k: 'a', v: 13 }, 1, 2],
        [{ k: 'a', v: 2 }, 1, 2],
        [{ k: 'b', v: 5 }, 1, 2],
      ],
    });
    assert.deepEqual(show(res.outputs.get('out')!), [
      [{ key: 'a', sum: 3 }, 1],
      [{ key: 'b', sum: 5 }, 1],
    ]);
    assert.equal(res.skipped.length, 1);
    assert.equal(res.skipped[0].operator, 'running');
    assert.equal(res.skipped[0].value, 'a');
    assert.deepEqual(res.skipped[0].input, { k: 'a', v: 13 });
    // as if 13 never came: retracting 1 refolds from 2
    assert.deepEqual(
      show(await r.step([[{ k: 'a', v: 1 }, -1, 3]])),
      [
        [{ key: 'a', sum: 1 }, -1],
        [{ key: 'a', sum: 3 }, -1],
        [{ key: 'a', sum: 2 }, 1],
      ].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1)),
    );
  });

  test('stop: OperatorError with the group key, nothing committed', async () => {
    const r = single<KV>(sums);
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
        assert.equal(e.operator, 'running');
        assert.equal(e.value, 'b');
        return true;
      },
    );
    assert.equal(r.graph.stateSize(), 0);
  });

  test('a step that returns nothing, and a non-JSON emit, are named failures', async () => {
    const noReturn = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .scan(0, (() => undefined) as unknown as (s: number) => number)
        .ungroup(),
    );
    await assert.rejects(noReturn.step([[{ k: 'a', v: 1 }, 1, 1]], { onError: 'stop' }), /must return the next state/);
    const badEmit = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .scan(0, (s: number, _x: KV, emit) => (emit({ when: new Date(0) } as unknown as Value), s))
        .ungroup(),
    );
    await assert.rejects(
      badEmit.step([[{ k: 'a', v: 1 }, 1, 1]], { onError: 'stop' }),
      /emitted output is not a JSON value: \$\.when is a Date/,
    );
    assert.throws(
      () =>
        single<KV>((c) =>
          c
            .groupBy((x) => x.k)
            .scan({ n: NaN }, (s) => s)
            .ungroup(),
        ),
      /initial state is not a JSON value/,
    );
    assert.throws(
      () =>
        single<KV>((c) =>
          c
            .groupBy((x) => x.k)
            .scan(0, (s) => s, { checkpointEvery: 0 })
            .ungroup(),
        ),
      /checkpointEvery/,
    );
  });

  test('inputs appended after all others fold on from the last state: one step call each, whatever the checkpoint spacing', async () => {
    let calls = 0;
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .scan({ sum: 0 }, (s: { sum: number }, x: KV, emit) => {
          calls++;
          s.sum += x.v; // in place: the kept last state must be a copy the step never sees
          emit({ sum: s.sum });
          return s;
        })
        .ungroup(),
    );
    let expected = 0;
    for (let v = 1; v <= 100; v++) {
      calls = 0;
      const out = show(await r.step([[{ k: 'a', v }, 1, v]]));
      assert.equal(calls, 1, `appending input ${v} refolded ${calls - 1} earlier inputs`);
      expected += v;
      assert.deepEqual(out, [[{ sum: expected }, 1]]);
    }
    // A late input still refolds from its checkpoint: here every later sum changes, so all 101 inputs.
    calls = 0;
    const out = show(await r.step([[{ k: 'a', v: 0.5 }, 1, 101]]));
    assert.equal(calls, 101);
    // Every running sum moves by 0.5: 100 retracted, 101 new (0.5 first, 5050.5 last).
    assert.equal(out.filter(([, d]) => d === -1).length, 100);
    assert.equal(out.filter(([, d]) => d === 1).length, 101);
    assert.ok(out.some(([o, d]) => d === 1 && (o as { sum: number }).sum === 0.5));
    assert.ok(out.some(([o, d]) => d === 1 && (o as { sum: number }).sum === 5050.5));
  });

  test('a late value in the middle of a long group changes only what it must', async () => {
    // A counter restarted at every multiple of 10: a late value changes the outputs up to the next restart only.
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .scan(0, (s: number, x: KV, emit) => {
          const next = x.v % 10 === 0 ? 0 : s + 1;
          emit({ at: x.v, next });
          return next;
        })
        .ungroup(),
    );
    const all: [KV, number, number][] = [];
    for (let v = 0; v < 1000; v++) if (v !== 505) all.push([{ k: 'a', v }, 1, v]);
    await r.step(all);
    const out = show(await r.step([[{ k: 'a', v: 505 }, 1, 2000]]));
    // 505 is new; 506..509 each count one more (a retraction and an insertion each).
    assert.equal(out.length, 1 + 4 * 2, JSON.stringify(out));
    assert.deepEqual(
      out.find(([o]) => (o as { at: number }).at === 505),
      [{ at: 505, next: 5 }, 1],
    );
  });
});

describe('scan in a state store: inputs appended to the last page are written as deltas (state format 3)', () => {
  type Ev = { k: string; v: number; o: number; pad: string };
  const OP = 'scan#1';
  const ev = (k: string, o: number, v = o % 5): Ev => ({ k, v, o, pad: 'p'.repeat(40) });
  const foldEv = (acc: number, r: Ev, emit: (o: Value) => void, key: Value): number => {
    const next = (acc * 5 + r.v) % 7;
    if (r.v !== 2) emit({ key, next, o: r.o });
    return next;
  };
  const build = (every: number): Graph => {
    const g = createGraph();
    g.output(
      'out',
      g
        .input<Ev>('in', { order: (r) => r.o })
        .groupBy((r) => r.k)
        .scan(0, foldEv, { checkpointEvery: every })
        .ungroup(),
    );
    return g;
  };
  interface Step {
    readonly updates: Update<Ev>[];
    /** Retention: compact to this cutoff before the step. */
    readonly compact?: number;
    /** Start a new graph over the store after the step (its cache empty). */
    readonly restart?: boolean;
  }
  const ins = (e: Ev, t = e.o): Update<Ev> => [e, 1, t];
  /**
   * The same steps through a graph over a store (every step committed and released; restarts)
   * and through one without a store: their outputs, and per step the scan's entries written.
   */
  async function both(
    every: number,
    steps: readonly Step[],
    cacheBytes = 1e9,
  ): Promise<{ got: Z; want: Z; written: Map<string, StateEntry | null>[]; store: MemoryStateStore }> {
    const want: Z = new Map();
    const memory = build(every);
    for (const s of steps) {
      if (s.compact !== undefined) memory.compact(s.compact);
      for (const [v, d] of (await memory.step({ in: s.updates })).outputs.get('out') ?? []) zAdd(want, v, d);
    }
    const got: Z = new Map();
    const store = new MemoryStateStore();
    const written: Map<string, StateEntry | null>[] = [];
    let cutoff: number | null = null;
    let g = build(every);
    g.useStore(store, { cacheBytes, stored: false });
    for (const s of steps) {
      if (s.compact !== undefined) g.compact((cutoff = s.compact));
      const r = await g.step({ in: s.updates });
      for (const [v, d] of r.outputs.get('out') ?? []) zAdd(got, v, d);
      written.push(new Map(r.state!.entries.get(OP) ?? []));
      store.commit(r.state!);
      g.release(r.state!.step);
      if (s.restart === true) {
        g = build(every);
        g.useStore(store, { cacheBytes, stored: true, cutoff });
      }
    }
    return { got, want, written, store };
  }
  const bytes = (m: Map<string, StateEntry | null>): number => {
    let n = 0;
    for (const e of m.values()) n += e === null ? 0 : e.v.length;
    return n;
  };
  const deltas = (store: MemoryStateStore): string[] => [...store.entries(OP).keys()].filter((k) => k.endsWith('~'));
  /** 300 inputs of group a in one step (one page of 300 with checkpoints every 1,000), then one event per step. */
  const longPage = (appended: number, from = 300): Step[] => [
    { updates: Array.from({ length: from }, (_, i) => ins(ev('a', 2 * i))) },
    ...Array.from({ length: appended }, (_, i): Step => ({ updates: [ins(ev('a', 2 * (from + i)))] })),
  ];

  test('appending one input to a group with a large last page writes the header and a delta of that input', async () => {
    const { got, want, written, store } = await both(1000, longPage(3));
    assert.deepEqual(zShow(got), zShow(want));
    const page = bytes(written[0]);
    assert.ok(page > 30_000, `the first step writes the page whole (${page} bytes)`);
    for (const w of written.slice(1)) {
      assert.equal(w.size, 2, 'the header and one delta');
      const delta = [...w.keys()].find((k) => k.endsWith('~'))!;
      assert.ok(delta !== undefined, 'a delta key');
      assert.ok(bytes(w) < 400, `one appended input writes ${bytes(w)} bytes, not the page's ${page}`);
      assert.ok((w.get(delta)!.v.length ?? 0) < 200);
    }
    assert.equal(deltas(store).length, 3);
  });

  test('a page is sealed (written whole, its deltas deleted) when a checkpoint follows it', async () => {
    // Checkpoints every 8: the first page gets inputs 1–7 as deltas; input 8 starts the next page.
    const { got, want, written, store } = await both(8, longPage(9, 1));
    assert.deepEqual(zShow(got), zShow(want));
    for (let s = 1; s <= 7; s++) assert.equal(written[s].size, 2, `step ${s}: the header and a delta`);
    const seal = written[8];
    assert.equal([...seal.values()].filter((e) => e === null).length, 7, 'the seal deletes the 7 deltas');
    assert.ok(seal.has('ea!a'), "the first page's base written whole");
    assert.equal(written[9].size, 2, 'the next page: the header and a delta again');
    assert.deepEqual(deltas(store), [[...written[9].keys()].find((k) => k.endsWith('~'))]);
  });

  test('restarts, eviction and reload of a page with deltas: its base and deltas are read back, outputs exact', async () => {
    const steps = longPage(20, 40).map((s, i) => (i % 3 === 2 ? { ...s, restart: true } : s));
    // Cache 0: every group is evicted after its step's commit and read back by the next one.
    for (const cache of [0, 1e9]) {
      const { got, want, store } = await both(16, steps, cache);
      assert.deepEqual(zShow(got), zShow(want), `cache ${cache}`);
      assert.ok(deltas(store).length > 0);
    }
  });

  test('retention in a commit of several steps: a forgotten group built again does not read back its old delta', async () => {
    // As the host commits several steps (src/dataflow/durable-state.ts, StateWrite): the greatest
    // forget first, then the steps' entries merged (a later text of a key replaces an earlier one).
    // NB: without the host's guard that turns the entries a later forget would have deleted into
    // deletes (the merge alone would keep b's old delta stored): scan deletes such leftovers itself.
    const commitMerged = (store: MemoryStateStore, states: readonly StepState[]): void => {
      const entries = new Map<string, Map<string, StateEntry | null>>();
      for (const s of states)
        for (const [op, m] of s.entries) {
          const into = entries.get(op) ?? new Map<string, StateEntry | null>();
          for (const [k, e] of m) into.set(k, e);
          entries.set(op, into);
        }
      const forgets = states.flatMap((s) => (s.forget === null ? [] : [s.forget]));
      const forget =
        forgets.length === 0
          ? null
          : { cutoff: Math.max(...forgets.map((f) => f.cutoff)), ops: [...new Set(forgets.flatMap((f) => f.ops))] };
      const last = states[states.length - 1];
      store.commit({ step: last.step, entries, forget, cutoff: last.cutoff });
    };
    for (const restart of [false, true]) {
      const memory = build(1000);
      const store = new MemoryStateStore();
      let g = build(1000);
      g.useStore(store, { cacheBytes: 0, stored: false });
      const want: Z = new Map();
      const got: Z = new Map();
      const pending: StepState[] = [];
      const step = async (updates: Update<Ev>[], compact?: number): Promise<void> => {
        if (compact !== undefined) {
          memory.compact(compact);
          g.compact(compact);
        }
        for (const [v, d] of (await memory.step({ in: updates })).outputs.get('out') ?? []) zAdd(want, v, d);
        const r = await g.step({ in: updates });
        for (const [v, d] of r.outputs.get('out') ?? []) zAdd(got, v, d);
        pending.push(r.state!);
      };
      await step([ins(ev('b', 0), 0)]); // group b: its first page
      await step([ins(ev('b', 2), 1)]); // appended: a delta of b's first page
      await step([ins(ev('b', 1), 0)], 2); // the compaction forgets b; a late event builds it again (one page)
      commitMerged(store, pending.splice(0)); // one commit: the forget, then the three steps' entries
      g.release(3);
      assert.deepEqual(deltas(store), [], "b's old delta is deleted");
      if (restart) {
        g = build(1000);
        g.useStore(store, { cacheBytes: 0, stored: true, cutoff: 2 });
      }
      await step([ins(ev('b', 3), 3)]); // b read back: its page, without the old delta's input
      commitMerged(store, pending.splice(0));
      assert.deepEqual(zShow(got), zShow(want), `restart ${restart}`);
    }
  });

  test('a late event inside a page with deltas, retractions of inputs in deltas, and compaction stay exact', async () => {
    const tail: Step[] = longPage(10, 20); // checkpoints every 16: page 2 = inputs 16–19 (base) + 10 deltas
    const late = (o: number, t: number): Step => ({ updates: [ins(ev('a', o), t)], restart: true });
    const cases: [string, Step[]][] = [
      ['late event among the deltas (after a restart: the seek finds a delta)', [...tail, late(51, 100)]],
      ['late event at a delta key place', [...tail, late(45, 100), late(47, 101)]],
      ['late event in the page before', [...tail, late(3, 100), { updates: [ins(ev('a', 200))] }]],
      [
        'retraction of inputs in deltas',
        [...tail, { updates: [[ev('a', 44), -1, 44] as Update<Ev>, [ev('a', 58), -1, 58] as Update<Ev>] }],
      ],
      [
        'retraction of every input after the base',
        [...tail, { updates: Array.from({ length: 10 }, (_, i): Update<Ev> => [ev('a', 40 + 2 * i), -1, 40 + 2 * i]) }],
      ],
      [
        'compaction forgetting the first pages, then appends',
        [...tail, { updates: [ins(ev('a', 60))], compact: 35, restart: true }, { updates: [ins(ev('a', 62))] }],
      ],
      [
        'compaction forgetting a base and some deltas (the rest read back without their base)',
        [
          ...tail,
          { updates: [ins(ev('b', 0, 1))], compact: 45, restart: true },
          { updates: [ins(ev('a', 61), 1), ins(ev('a', 70))] },
        ],
      ],
    ];
    for (const [name, steps] of cases)
      for (const cache of [0, 1e9]) {
        const { got, want } = await both(16, steps, cache);
        assert.deepEqual(zShow(got), zShow(want), `${name}, cache ${cache}`);
      }
  });
});
