/**
 * Durable operator state as a property (docs/durable-state.md): a graph whose state lives in a
 * store — committed every few steps, restarted from the committed state at random points (the
 * uncommitted steps lost and their events fed again), with a small state cache that evicts and
 * reloads groups — gives the same results as an uninterrupted run without a store that takes one
 * event per step. Events arrive out of order (late events: order keys and times not in arrival
 * order) and with retractions. With retention, the comparison is with an uninterrupted run
 * without a store that takes the same batches and compacts at the same points.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  createGraph,
  MemoryStateStore,
  type Collection,
  type Graph,
  type HotUnit,
  type MaybePromise,
  type Multiset,
  type StateEntry,
  type StateStore,
  type StepState,
  type Update,
  type Value,
} from '../../src/engine';
import { StateWrite } from '../../src/dataflow/durable-state';
import { RUNS } from './harness';
import { zAdd, zShow, type Z } from './reference';

type Rec = { k: string; v: number; o: number };

const rec: fc.Arbitrary<Rec> = fc.record({
  k: fc.constantFrom('a', 'b', 'c'),
  v: fc.integer({ min: 0, max: 4 }),
  o: fc.integer({ min: 0, max: 30 }), // the order key: arrival order is random, so many events are late
});

function sortedFold(key: Value, inputs: Multiset<Value>, outputs: [Value, number][]): void {
  let acc = 0;
  for (const [r, m] of inputs) acc = (acc * 5 + (r as Rec).v * m + (r as Rec).o) % 997;
  outputs.push([{ key, acc, n: inputs.length }, 1]);
}

function foldStep(acc: number, r: Rec, emit: (o: Value) => void, key: Value): number {
  const next = (acc * 5 + r.v) % 7;
  if (r.v !== 2) emit({ key, next, o: r.o });
  return next;
}

interface Case {
  readonly name: string;
  readonly build: (c: Collection<Rec>) => Collection;
  readonly insertOnly?: boolean;
}

const byK = (r: Rec): string => r.k;
const cases: Case[] = [
  { name: 'distinct', build: (c) => c.map((r) => ({ k: r.k, v: r.v })).distinct() },
  { name: 'grouped distinct + count', build: (c) => c.groupBy(byK).distinct().count().ungroup() },
  {
    name: 'count and sum',
    build: (c) =>
      c
        .groupBy(byK)
        .count()
        .ungroup()
        .concat([
          c
            .groupBy(byK)
            .sum((r) => r.v)
            .ungroup(),
        ] as never[]),
  },
  { name: 'count, insert-only', build: (c) => c.groupBy(byK).count().ungroup(), insertOnly: true },
  {
    name: 'maxBy',
    build: (c) =>
      c
        .groupBy(byK)
        .maxBy((r) => r.v)
        .ungroup(),
  },
  {
    name: 'minBy, insert-only',
    build: (c) =>
      c
        .groupBy(byK)
        .minBy((r) => r.v)
        .ungroup(),
    insertOnly: true,
  },
  { name: 'reduce (causal order)', build: (c) => c.groupBy(byK).reduce(sortedFold).ungroup() },
  {
    name: 'reduce (orderBy)',
    build: (c) =>
      c
        .groupBy(byK)
        .reduce(sortedFold, { orderBy: (r) => -r.o })
        .ungroup(),
  },
  {
    name: 'reduce (parts of 2 inputs)',
    build: (c) => c.groupBy(byK).reduce(sortedFold, { partInputs: 2 }).ungroup(),
  },
  {
    name: 'scan (causal order, checkpoints every 2)',
    build: (c) => c.groupBy(byK).scan(0, foldStep, { checkpointEvery: 2 }).ungroup(),
  },
  {
    name: 'scan (orderBy), insert-only',
    build: (c) =>
      c
        .groupBy(byK)
        .scan(0, foldStep, { orderBy: (r) => r.v })
        .ungroup(),
    insertOnly: true,
  },
  {
    name: 'join (left outer) of two groupings',
    build: (c) =>
      c
        .filter((r) => r.v < 3)
        .groupBy((r) => r.v)
        .join(
          c.filter((r) => r.v > 0).groupBy((r) => r.v - 1),
          { kind: 'left' },
        )
        .ungroup(),
  },
  {
    name: 'join (inner), both sides retracted',
    build: (c) =>
      c
        .filter((r) => r.v !== 2)
        .groupBy((r) => r.v % 2)
        .join(
          c.filter((r) => r.o % 3 === 0).groupBy((r) => r.v % 2),
          { kind: 'inner' },
        )
        .ungroup(),
  },
  {
    name: 'join (inner, order keys kept) then reduce in causal order (parts of 2)',
    build: (c) =>
      c
        .groupBy((r) => r.v % 2)
        .join(c.filter((r) => r.v > 2).groupBy((r) => r.v % 2))
        .ungroup()
        .groupBy((r) => (r as { key: number }).key)
        .reduce(
          (key, inputs, outputs) => {
            let acc = 0;
            for (const [r, m] of inputs) {
              const row = r as { left: Rec; right: Rec };
              acc = (acc * 3 + row.left.o + 2 * row.right.o + m) % 1009;
            }
            outputs.push([{ key, acc, n: inputs.length }, 1]);
          },
          { partInputs: 2 },
        )
        .ungroup(),
  },
  {
    name: 'window (sliding: 3 minutes every minute) then a count and a maxBy per window and k',
    build: (c) => {
      const w = c.window({ time: (r) => r.o * 60_000_000, unit: 'minute', size: 3, slide: 1 });
      const byWindow = (x: { start: number; value: Rec }): string => `${x.start}/${x.value.k}`;
      return w
        .groupBy(byWindow)
        .count()
        .ungroup()
        .concat([
          w
            .groupBy(byWindow)
            .maxBy((x) => x.value.v)
            .ungroup(),
        ] as never[]);
    },
  },
  {
    name: 'topK (the 2 greatest v)',
    build: (c) =>
      c
        .groupBy(byK)
        .topK(2, (r) => r.v)
        .ungroup(),
  },
  {
    name: 'topK (the smallest o), insert-only',
    build: (c) =>
      c
        .groupBy(byK)
        .topK(1, (r) => r.o, { direction: 'min' })
        .ungroup(),
    insertOnly: true,
  },
  {
    name: 'scan then maxBy of its outputs (a paged operator fed retractions by another)',
    build: (c) =>
      c
        .groupBy(byK)
        .scan(0, foldStep, { checkpointEvery: 2 })
        .ungroup()
        .groupBy((r) => (r as { key: string }).key)
        .maxBy((r) => (r as { next: number }).next)
        .ungroup(),
  },
  {
    name: 'reduce (parts of 2) then distinct then count',
    build: (c) =>
      c
        .groupBy(byK)
        .reduce(sortedFold, { partInputs: 2 })
        .ungroup()
        .map((r) => ({ n: (r as { n: number }).n }))
        .groupBy((r) => r.n % 2)
        .distinct()
        .count()
        .ungroup(),
  },
  {
    name: 'maxBy then count of winners, two operators of one name',
    build: (c) =>
      c
        .groupBy(byK)
        .maxBy((r) => r.v, { name: 'node' })
        .ungroup()
        .groupBy((r) => r.v)
        .count({ name: 'node' })
        .ungroup(),
  },
];

interface Plan {
  readonly updates: Update<Rec>[];
  /** Batch boundaries, commit points and restart points, as positions in `updates`. */
  readonly cuts: number[];
  readonly commits: Set<number>;
  readonly restarts: Set<number>;
  readonly cacheBytes: number;
  /** Retention: before the batch at a position, compact to a cutoff (increasing). */
  readonly compactions: Map<number, number>;
  /**
   * A commit of several steps as the host writes it (src/dataflow/durable-state.ts, StateWrite):
   * their entries merged (a later text of a key replaces an earlier one) after the greatest forget,
   * instead of each step's forget and entries in turn.
   */
  readonly merged?: boolean;
  /**
   * At a commit point, the newest `lag` steps stay pending (the host computes steps ahead while a
   * commit is in flight: the commit holds steps up to s, `release(s)` comes with steps after s
   * computed and not committed).
   */
  readonly lag?: number;
  /**
   * Reads answered later (as PostgreSQL's and MariaDB's are): 0 none, 1 every read, 2 every other.
   * With `releaseDuring`, steps a commit left pending (`lag`) are committed and released at the
   * next step's first read, while that step runs (a commit becoming durable during a step), the
   * read seeing the store before that commit or (`readAfter`) after it.
   */
  readonly asyncReads?: number;
  readonly releaseDuring?: boolean;
  readonly readAfter?: boolean;
  /**
   * A restart first reads back the units the graph before it held (`Graph.hotUnits` then `warm`, as
   * the host does with the hint it stored): including units whose newest texts were lost with the
   * steps not committed. And every third batch first reads back every unit any graph of the run
   * held (evicted ones, within the cache bound) while entries of steps not committed are pinned.
   */
  readonly warm?: boolean;
}

/** Where a plan's batches, commits, restarts and compactions fall, and the host's modes. */
interface Schedule {
  readonly cuts: number[];
  readonly commits: number[];
  readonly restarts: number[];
  readonly cacheBytes: number;
  readonly merged: boolean;
  readonly lag: number;
  readonly asyncReads: number;
  readonly releaseDuring: boolean;
  readonly readAfter: boolean;
  readonly warm: boolean;
  /** [position, cutoff] pairs, each taken modulo the updates' length (cutoffs sorted). */
  readonly compactions: [number, number][];
}

/**
 * A schedule's arbitrary: positions below `at` (taken modulo the updates' length by planOf), at most
 * `cuts`/`commits`/`restarts` of each, compaction cutoffs up to `cutoff` when `retention`.
 */
function scheduleOf(
  retention: boolean,
  n: { at: number; cuts: number; commits: number; restarts: number; cutoff: number },
  cacheBytes: number[],
): fc.Arbitrary<Schedule> {
  return fc.record({
    cuts: fc.array(fc.nat({ max: n.at }), { maxLength: n.cuts, size: 'max' }),
    commits: fc.array(fc.nat({ max: n.at }), { maxLength: n.commits, size: 'max' }),
    restarts: fc.array(fc.nat({ max: n.at }), { maxLength: n.restarts, size: 'max' }),
    cacheBytes: fc.constantFrom(...cacheBytes),
    merged: fc.boolean(),
    lag: fc.constantFrom(0, 0, 1, 2),
    asyncReads: fc.constantFrom(0, 0, 1, 2),
    releaseDuring: fc.boolean(),
    readAfter: fc.boolean(),
    warm: fc.boolean(),
    compactions: retention
      ? fc.array(fc.tuple(fc.nat({ max: n.at }), fc.integer({ min: 1, max: n.cutoff })), { maxLength: 3, size: 'max' })
      : fc.constant<[number, number][]>([]),
  });
}

/** The plan of `updates` under a schedule: its positions taken modulo the updates' length. */
function planOf(updates: Update<Rec>[], s: Schedule): Plan {
  const n = updates.length;
  const points = (xs: number[]): number[] => [...new Set(xs.map((x) => x % (n + 1)))].sort((a, b) => a - b);
  const sortedCompactions = points(s.compactions.map(([p]) => p));
  const cutoffs = s.compactions.map(([, c]) => c).sort((a, b) => a - b);
  return {
    updates,
    cuts: points([...s.cuts, ...s.commits, ...s.restarts, ...sortedCompactions]),
    commits: new Set(points(s.commits)),
    restarts: new Set(points(s.restarts)),
    cacheBytes: s.cacheBytes,
    merged: s.merged,
    lag: s.lag,
    asyncReads: s.asyncReads,
    releaseDuring: s.releaseDuring,
    readAfter: s.readAfter,
    warm: s.warm,
    compactions: new Map(sortedCompactions.map((p, i) => [p, cutoffs[i] ?? 0])),
  };
}

function plan(retention: boolean, insertOnly: boolean): fc.Arbitrary<Plan> {
  return fc
    .record({
      final: fc.array(fc.tuple(rec, fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 20 })), {
        maxLength: 24,
        size: 'max',
      }),
      noise: insertOnly
        ? fc.constant([])
        : fc.array(fc.tuple(rec, fc.integer({ min: 0, max: 20 })), { maxLength: 10, size: 'max' }),
      order: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
      schedule: scheduleOf(
        retention,
        { at: 40, cuts: 10, commits: 6, restarts: 4, cutoff: 25 },
        [0, 40, 200, 700, 1500, 4000, 1e9],
      ),
    })
    .map(({ final, noise, order, schedule }) => {
      const updates: Update<Rec>[] = [];
      for (const [r, m, t] of final) updates.push([r, m, t]);
      for (const [r, t] of noise) updates.push([r, 1, t], [r, -1, t + 1]);
      // Shuffle (a retraction may arrive before its insertion).
      for (let i = updates.length - 1; i > 0; i--) {
        const j = (order[i % order.length] ?? 0) % (i + 1);
        [updates[i], updates[j]] = [updates[j], updates[i]];
      }
      return planOf(updates, schedule);
    });
}

function build(c: Case): Graph {
  const g = createGraph();
  g.output('out', c.build(g.input<Rec>('in', { insertOnly: c.insertOnly === true, order: (r) => r.o })));
  return g;
}

/** The batches [from, to) of the plan. */
function batchesOf(p: Plan): [number, number][] {
  const bounds = [0, ...p.cuts.filter((x) => x > 0 && x < p.updates.length), p.updates.length];
  const out: [number, number][] = [];
  for (let i = 1; i < bounds.length; i++) if (bounds[i] > bounds[i - 1]) out.push([bounds[i - 1], bounds[i]]);
  return out;
}

/** The cutoff in force from position `at` (the greatest compaction at or before it), or null. */
function cutoffAt(p: Plan, at: number): number | null {
  let c: number | null = null;
  for (const [pos, cutoff] of p.compactions) if (pos <= at && (c === null || cutoff > c)) c = cutoff;
  return c;
}

/** Uninterrupted, no store: the accumulated outputs, and (with `batches`) the outputs after each batch. */
async function uninterrupted(
  c: Case,
  p: Plan,
  batches: [number, number][] | null,
): Promise<{ total: Z; after: Map<number, string> }> {
  const g = build(c);
  const total: Z = new Map();
  const after = new Map<number, string>();
  let cutoff: number | null = null;
  const steps = batches ?? p.updates.map((_, i): [number, number] => [i, i + 1]);
  for (const [from, to] of steps) {
    if (batches !== null) {
      const want = cutoffAt(p, from);
      if (want !== null && want !== cutoff) g.compact((cutoff = want));
    }
    const { outputs } = await g.step({ in: p.updates.slice(from, to) }, { onError: 'stop' });
    for (const [v, d] of outputs.get('out') ?? []) zAdd(total, v, d);
    after.set(to, JSON.stringify(zShow(total)));
  }
  return { total, after };
}

/**
 * Steps' states as one commit, merged by the host's StateWrite (src/dataflow/durable-state.ts):
 * the greatest forget, then the entries (later texts replace earlier ones).
 */
function mergeStates(states: readonly StepState[]): StepState {
  const write = new StateWrite('s', null, null);
  for (const s of states) write.add(s, null);
  const changes = write.changes();
  const entries = new Map<string, Map<string, StateEntry | null>>();
  for (const [op, m] of changes.entries) entries.set(op.slice('s/'.length), new Map(m));
  const forget =
    changes.forget === null
      ? null
      : { cutoff: changes.forget.cutoff, ops: changes.forget.ops.map((op) => op.slice('s/'.length)) };
  return { step: write.step, entries, forget, cutoff: write.cutoff };
}

/** A store whose reads may answer later, calling `onRead` (once) at a read (Plan.asyncReads). */
class LaterReads implements StateStore {
  onRead: (() => void) | null = null;
  private n = 0;
  constructor(
    private readonly store: MemoryStateStore,
    private readonly p: Plan,
  ) {}

  private answer<X>(read: () => X): MaybePromise<X> {
    const hook = this.onRead;
    this.onRead = null;
    const later = this.p.asyncReads === 1 || (this.p.asyncReads === 2 && this.n++ % 2 === 0);
    if (hook === null) return later ? Promise.resolve().then(read) : read();
    if (this.p.readAfter === true) {
      hook();
      return later ? Promise.resolve().then(read) : read();
    }
    const x = read();
    hook();
    return later ? Promise.resolve(x) : x;
  }

  get(op: string, keys: readonly string[]): MaybePromise<readonly (string | undefined)[]> {
    return this.answer(() => this.store.get(op, keys));
  }

  seek(op: string, from: string, to: string, last: boolean): MaybePromise<readonly [string, string] | undefined> {
    return this.answer(() => this.store.seek(op, from, to, last));
  }

  range(op: string, from: string, to: string): MaybePromise<readonly (readonly [string, string])[]> {
    return this.answer(() => this.store.range(op, from, to));
  }
}

/** With a store: commits, restarts (losing what is not committed), a small cache. */
async function durable(c: Case, p: Plan): Promise<{ total: Z; after: Map<number, string>; store: MemoryStateStore }> {
  const batches = batchesOf(p);
  const store = new MemoryStateStore();
  /** The same steps committed one at a time. */
  const oneByOne = new MemoryStateStore();
  const committed: Z = new Map();
  const after = new Map<number, string>();
  let committedAt = 0;
  let committedCutoff: number | null = null;
  let pending: { state: StepState; out: readonly Update[]; to: number }[] = [];
  const restarts = new Set(p.restarts);
  const reads = new LaterReads(store, p);
  /** Every unit a graph of the run held (with `warm`). */
  const seen = new Map<string, HotUnit>();
  const start = (stored: boolean): { g: Graph; cutoff: number | null } => {
    const g = build(c);
    g.useStore(reads, { cacheBytes: p.cacheBytes, stored, cutoff: committedCutoff });
    return { g, cutoff: committedCutoff };
  };
  let run = start(false);
  /** Commits the pending steps but the newest `keep`, and releases them. */
  const commit = (keep: number): void => {
    const merged = p.merged === true;
    const now = pending.slice(0, Math.max(0, pending.length - keep));
    if (merged && now.length > 0) store.commit(mergeStates(now.map((x) => x.state)));
    for (const x of now) {
      if (!merged) store.commit(x.state);
      oneByOne.commit(x.state);
      for (const [v, d] of x.out) zAdd(committed, v, d);
      after.set(x.to, JSON.stringify(zShow(committed)));
      committedAt = x.to;
      committedCutoff = x.state.cutoff;
    }
    if (now.length > 0) run.g.release(now[now.length - 1]!.state.step);
    pending = pending.slice(now.length);
    // A commit of merged steps leaves the store exactly as the steps committed one by one.
    for (const { id } of run.g.stateIds())
      assert.deepEqual(
        [...store.entries(id)].sort(),
        [...oneByOne.entries(id)].sort(),
        `the stored entries of ${id}, merged commits against one by one`,
      );
  };
  let b = 0;
  while (b < batches.length) {
    const [from, to] = batches[b]!;
    const want = cutoffAt(p, from);
    if (want !== null && want !== run.cutoff) run.g.compact((run.cutoff = want));
    if (p.warm === true && b % 3 === 1) await run.g.warm([...seen.values()]);
    const r = await run.g.step({ in: p.updates.slice(from, to) }, { onError: 'stop' });
    assert.ok(r.state !== undefined, 'a step with a store returns its state');
    if (p.warm === true) for (const h of run.g.hotUnits()) seen.set(h.id + ' ' + h.key, h);
    pending.push({ state: r.state, out: r.outputs.get('out') ?? [], to });
    b++;
    if (b === batches.length) commit(0);
    else if (p.commits.has(to)) {
      commit(p.lag ?? 0);
      if (pending.length > 0 && p.releaseDuring === true) reads.onRead = () => commit(0);
    }
    if (restarts.has(to)) {
      restarts.delete(to);
      pending = [];
      reads.onRead = null;
      const hint = p.warm === true ? run.g.hotUnits() : [];
      run = start(true);
      if (hint.length > 0) await run.g.warm(hint);
      b = batches.findIndex(([f]) => f === committedAt);
      if (b < 0) b = batches.length;
      assert.ok(committedAt === p.updates.length || b < batches.length);
    }
  }
  return { total: committed, after, store };
}

describe('durable state: restarted from the store == uninterrupted', () => {
  for (const c of cases) {
    test(`${c.name}: one event per step without a store == batches, commits, restarts, evictions`, async () => {
      await fc.assert(
        fc.asyncProperty(plan(false, c.insertOnly === true), async (p) => {
          const want = await uninterrupted(c, p, null);
          const got = await durable(c, p);
          assert.deepEqual(zShow(got.total), zShow(want.total));
        }),
        { numRuns: RUNS },
      );
    });
    test(`${c.name}: with retention, == the same batches and compactions without a store`, async () => {
      await fc.assert(
        fc.asyncProperty(plan(true, c.insertOnly === true), async (p) => {
          const want = await uninterrupted(c, p, batchesOf(p));
          const got = await durable(c, p);
          for (const [to, text] of got.after) assert.equal(text, want.after.get(to), `outputs after position ${to}`);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe('durable state: the store holds what is needed, and reads only what is missing', () => {
  test('a group evicted is read back; a new graph over a stored state reads only the groups it touches', async () => {
    const c = cases.find((x) => x.name === 'count and sum')!;
    const store = new MemoryStateStore();
    const g = build(c);
    g.useStore(store, { cacheBytes: 0, stored: false });
    const r1 = await g.step({
      in: [
        [{ k: 'a', v: 1, o: 1 }, 1, 1],
        [{ k: 'b', v: 2, o: 2 }, 1, 2],
      ],
    });
    store.commit(r1.state!);
    assert.equal(store.reads, 0, 'nothing stored yet: no reads');
    assert.deepEqual(g.stateStats(), { entries: 4, bytes: g.stateStats()!.bytes, loads: 0, evictions: 0 });
    g.release(r1.state!.step);
    assert.equal(g.stateStats()!.entries, 0, 'released entries beyond the bound (0) are evicted');
    const r2 = await g.step({ in: [[{ k: 'a', v: 3, o: 3 }, 1, 3]] });
    assert.equal(store.reads, 2, 'the count and the sum of group a are read back');
    assert.deepEqual(
      [...(r2.outputs.get('out') ?? [])]
        .map(([v, d]) => [v, d])
        .sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1)),
      [
        [{ key: 'a', count: 1 }, -1],
        [{ key: 'a', count: 2 }, 1],
        [{ key: 'a', sum: 1 }, -1],
        [{ key: 'a', sum: 4 }, 1],
      ],
    );
    assert.deepEqual(
      g.stateIds().map((s) => s.id),
      ['count#1', 'sum#1'],
    );
  });

  test('an entry pinned by a commit not yet durable is never read back (the store has the older text)', async () => {
    const c = cases.find((x) => x.name === 'count, insert-only')!;
    const store = new MemoryStateStore();
    const g = build(c);
    g.useStore(store, { cacheBytes: 0, stored: false });
    const r1 = await g.step({ in: [[{ k: 'a', v: 1, o: 1 }, 1, 1]] });
    // not committed, not released: the entry stays in memory although the bound is 0
    const r2 = await g.step({ in: [[{ k: 'a', v: 1, o: 2 }, 1, 2]] });
    assert.equal(store.reads, 0);
    assert.deepEqual(
      r2.outputs.get('out')?.map(([v, d]) => [v, d]),
      [
        [{ key: 'a', count: 1 }, -1],
        [{ key: 'a', count: 2 }, 1],
      ],
    );
    store.commit(r1.state!);
    store.commit(r2.state!);
    assert.equal([...store.entries('count#1').values()][0]!.v, '[null,[2,0,2]]');
  });

  test("a merged commit deletes an earlier step's entry that a later step's forget would have deleted (the host's StateWrite)", async () => {
    // The transaction runs the commit's forget before its entries: an entry saved by step 1 below
    // the cutoff of step 2's forget would survive it, where committed step by step it is deleted.
    const c = cases.find((x) => x.name === 'distinct')!;
    const g = build(c);
    const store = new MemoryStateStore();
    const oneByOne = new MemoryStateStore();
    g.useStore(store, { cacheBytes: 1e9, stored: false });
    const r1 = await g.step({ in: [[{ k: 'a', v: 1, o: 0 }, 1, 0]] });
    g.compact(1); // forgets a/1 (time 0) in memory
    const r2 = await g.step({ in: [[{ k: 'b', v: 2, o: 1 }, 1, 1]] });
    assert.equal(r2.state!.forget?.cutoff, 1);
    const merged = mergeStates([r1.state!, r2.state!]);
    assert.deepEqual(
      [...merged.entries.get('distinct#1')!.values()].map((e) => e?.t ?? null),
      [null, 1],
    );
    store.commit(merged);
    oneByOne.commit(r1.state!);
    oneByOne.commit(r2.state!);
    assert.equal(store.entries('distinct#1').size, 1, 'b/2 only');
    assert.deepEqual([...store.entries('distinct#1')], [...oneByOne.entries('distinct#1')]);
  });

  test('two operators of one node get state ids name and name#2', () => {
    const g = build(cases.find((x) => x.name.startsWith('maxBy then count'))!);
    assert.deepEqual(g.stateIds(), [
      { id: 'node', operator: 'node' },
      { id: 'node#2', operator: 'node' },
    ]);
  });
});

/**
 * Pages of a scan group (docs/durable-state.md, "Pages"): long groups in few pages' worth of
 * checkpoints, events mostly in causal order (so the group in memory is trimmed to its last
 * page after every durable commit) with late events landing in early pages, and retractions of
 * runs of earlier inputs that empty pages (or the group).
 */
function pagedPlan(retention: boolean): fc.Arbitrary<Plan> {
  return fc
    .record({
      values: fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 4 })), {
        minLength: 1,
        maxLength: 60,
        size: 'max',
      }),
      late: fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 4 }), fc.nat(), fc.nat()), {
        maxLength: 6,
        size: 'max',
      }),
      retract: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 12 }), fc.nat()), { maxLength: 3, size: 'max' }),
      schedule: scheduleOf(
        retention,
        { at: 100, cuts: 25, commits: 12, restarts: 3, cutoff: 60 },
        [0, 300, 1500, 4000, 1e9],
      ),
    })
    .map(({ values, late, retract, schedule }) => {
      // In causal order: order keys 0, 2, 4 … and times 0, 1, 2 …
      const updates: Update<Rec>[] = values.map(([k, v], i) => [{ k, v, o: 2 * i }, 1, i]);
      // Late events: odd order keys (between two earlier inputs), arriving at a later place.
      for (const [k, v, at, place] of late) {
        const pos = Math.min(updates.length, 1 + (at % updates.length));
        const o = 2 * (place % Math.max(1, Math.floor(pos / 2) + 1)) + 1;
        updates.splice(pos, 0, [{ k, v, o }, 1, o]);
      }
      // Retractions of a run of earlier inputs (emptying pages), after the last of them.
      for (const [from, length, delay] of retract) {
        const start = from % updates.length;
        const run = updates.slice(start, start + length).filter(([, d]) => d > 0);
        const pos = Math.min(updates.length, start + length + (delay % 10));
        updates.splice(pos, 0, ...run.map(([r, , t]): Update<Rec> => [r, -1, t + 1]));
      }
      return planOf(updates, schedule);
    });
}

/** The median of the values `v` (as the example flows' dd-reduce), with the count of inputs. */
function medianOf(key: Value, inputs: Multiset<Value>, outputs: [Value, number][]): void {
  let total = 0;
  for (const [, n] of inputs) total += n;
  let seen = 0;
  let median: number | null = null;
  for (const [r, n] of inputs)
    if ((seen += n) > Math.floor(total / 2)) {
      median = (r as Rec).v;
      break;
    }
  outputs.push([{ key, median, total, distinct: inputs.length }, 1]);
}

describe('durable state: long groups in pages (scan pages; maxBy/minBy elements; reduce parts), late events, emptied pages', () => {
  const scans: Case[] = [
    {
      name: 'scan, checkpoints every 2',
      build: (c) => c.groupBy(byK).scan(0, foldStep, { checkpointEvery: 2 }).ungroup(),
    },
    {
      name: 'scan, checkpoints every 5, orderBy',
      build: (c) =>
        c
          .groupBy(byK)
          .scan(0, foldStep, { checkpointEvery: 5, orderBy: (r) => r.o * 3 })
          .ungroup(),
    },
  ];
  const extremes: Case[] = [
    {
      name: 'maxBy (few scores: ties by value)',
      build: (c) =>
        c
          .groupBy(byK)
          .maxBy((r) => r.v)
          .ungroup(),
    },
    {
      name: 'minBy (the order key: retractions take the winner)',
      build: (c) =>
        c
          .groupBy(byK)
          .minBy((r) => r.o)
          .ungroup(),
    },
  ];
  const reduces: Case[] = [
    {
      name: 'reduce (parts of 2 inputs), causal order',
      build: (c) => c.groupBy(byK).reduce(sortedFold, { partInputs: 2 }).ungroup(),
    },
    {
      name: 'reduce (parts of 3 inputs), values with counts, orderBy',
      build: (c) =>
        c
          .map((r) => ({ k: r.k, v: r.v, o: r.o % 7 }))
          .groupBy((r) => r.k)
          .reduce(medianOf, { orderBy: (r) => (r as Rec).o, partInputs: 3 })
          .ungroup(),
    },
  ];
  const others: Case[] = [
    {
      name: 'topK (the 3 smallest o: retractions bring in the next)',
      build: (c) =>
        c
          .groupBy(byK)
          .topK(3, (r) => r.o, { direction: 'min' })
          .ungroup(),
    },
    {
      name: 'scan (checkpoints every 3) then minBy of its outputs by o (multiset fed by pages)',
      build: (c) =>
        c
          .groupBy(byK)
          .scan(0, foldStep, { checkpointEvery: 3 })
          .ungroup()
          .groupBy((r) => (r as { key: string }).key)
          .minBy((r) => (r as { o: number }).o)
          .ungroup(),
    },
  ];
  for (const c of [...scans, ...extremes, ...reduces, ...others]) {
    test(`${c.name}: one event per step without a store == batches, commits, restarts, trims`, async () => {
      await fc.assert(
        fc.asyncProperty(pagedPlan(false), async (p) => {
          const want = await uninterrupted(c, p, null);
          const got = await durable(c, p);
          assert.deepEqual(zShow(got.total), zShow(want.total));
        }),
        { numRuns: RUNS },
      );
    });
    test(`${c.name}: with retention, == the same batches and compactions without a store`, async () => {
      await fc.assert(
        fc.asyncProperty(pagedPlan(true), async (p) => {
          const want = await uninterrupted(c, p, batchesOf(p));
          const got = await durable(c, p);
          for (const [to, text] of got.after) assert.equal(text, want.after.get(to), `outputs after position ${to}`);
        }),
        { numRuns: RUNS },
      );
    });
  }

  test('events in causal order read the header and the last page; a step writes only the pages it changed', async () => {
    const c = scans[0]!;
    const store = new MemoryStateStore();
    const g = build(c);
    g.useStore(store, { cacheBytes: 1000, stored: false });
    let written = 0;
    const step = async (r: Rec, t: number): Promise<void> => {
      const res = await g.step({ in: [[r, 1, t]] });
      written = res.state!.entries.get('scan#1')?.size ?? 0;
      store.commit(res.state!);
      g.release(res.state!.step);
    };
    for (let i = 0; i < 40; i++) await step({ k: 'a', v: i % 5, o: 2 * i }, i);
    const pages = [...store.entries('scan#1').keys()].filter((k) => k !== 'ea!');
    assert.equal(pages.filter((k) => !k.endsWith('~')).length, 20, 'a page per checkpoint (every 2 inputs)');
    assert.equal(pages.length, 21, "the last page's second input as a delta (state format 3)");
    assert.equal(g.stateStats()!.entries, 1);
    assert.ok(g.stateStats()!.bytes < 900, `in memory: the header and the last page (${g.stateStats()!.bytes} bytes)`);
    const before = store.reads;
    await step({ k: 'a', v: 1, o: 80 }, 40);
    assert.equal(store.reads - before, 0, 'appending: the last page is in memory');
    // This input starts a page: the header, the new page, the sealed page before it and its delta deleted.
    assert.ok(written <= 4, `written: the header and the last page(s), not the group (${written})`);
    g.release(Number.MAX_SAFE_INTEGER);
    const fresh = build(c);
    fresh.useStore(store, { cacheBytes: 0, stored: true });
    const r = await fresh.step({ in: [[{ k: 'a', v: 1, o: 82 }, 1, 41]] });
    assert.equal(store.reads - before, 2, 'a restart reads the header and the last page');
    assert.deepEqual(
      r.outputs.get('out')?.map(([v, d]) => [v, d]),
      [[{ key: 'a', next: (((1 * 5 + 1) % 7) * 0 + fold41()) % 7, o: 82 }, 1]],
    );
  });
});

/** The fold's state after the 41 inputs of the test above, then one more (v 1). */
function fold41(): number {
  let acc = 0;
  for (let i = 0; i < 40; i++) acc = (acc * 5 + (i % 5)) % 7;
  acc = (acc * 5 + 1) % 7;
  return (acc * 5 + 1) % 7;
}

test('scan with retention: an input that arrives after a compaction with an older time survives the group being trimmed and read back', async () => {
  // Found by the property above (1,500 runs): group c's first page was saved before the
  // compaction and not again (the compaction forgot nothing in memory), o3 arrived after it with
  // time 0 < cutoff 1; read back, the old page's cutoff made the whole group compact again, o3 too.
  const u = (k: string, o: number, d: number, t: number): Update<Rec> => [{ k, v: 0, o }, d, t];
  const p: Plan = {
    updates: [
      u('a', 0, 1, 0),
      u('c', 0, 1, 1),
      u('a', 0, 1, 0),
      u('a', 0, -1, 1),
      u('c', 1, -1, 1),
      u('c', 2, 1, 1),
      u('c', 3, 1, 0),
      u('a', 0, 1, 0),
      u('c', 3, -1, 1),
      u('c', 1, 1, 0),
      u('a', 0, 1, 0),
      u('c', 2, -1, 2),
      u('c', 0, -1, 2),
      u('a', 0, 1, 0),
    ],
    cuts: [6, 7],
    commits: new Set([7]),
    restarts: new Set(),
    cacheBytes: 0,
    compactions: new Map([[6, 1]]),
  };
  const c = cases.find((x) => x.name.startsWith('scan (causal order'))!;
  const want = await uninterrupted(c, p, batchesOf(p));
  const got = await durable(c, p);
  for (const [to, text] of got.after) assert.equal(text, want.after.get(to), `outputs after position ${to}`);
});

test('maxBy with retention: an element forgotten by a compaction while its newest text is not yet committed is not read back from the store', async () => {
  // Found by the property above (groups of one key, more events): x was committed as [1, time 2],
  // then retracted (deleted) and inserted again with time 1 in steps not yet committed; the
  // compaction to 2 forgot it in memory (the group, read back after eviction, held only part of
  // its elements), and the next step read x's committed text back from the store — time 2, so
  // not forgotten — and made it the winner again, where the run without a store had forgotten it.
  const x: Rec = { k: 'a', v: 1, o: 0 };
  const y: Rec = { k: 'a', v: 0, o: 1 };
  const p: Plan = {
    updates: [
      [x, 1, 2],
      [y, 1, 5],
      [x, -1, 1],
      [x, 1, 1],
      [x, -1, 3],
    ],
    cuts: [2, 3, 4],
    commits: new Set([2]),
    restarts: new Set(),
    cacheBytes: 0,
    compactions: new Map([[4, 2]]),
  };
  for (const name of ['maxBy', 'maxBy then count of winners, two operators of one name']) {
    const c = cases.find((x) => x.name === name)!;
    const want = await uninterrupted(c, p, batchesOf(p));
    const got = await durable(c, p);
    for (const [to, text] of got.after) assert.equal(text, want.after.get(to), `${name}: outputs after position ${to}`);
  }
});

test('maxBy with retention: a group touched only by updates of diff 0 after a compaction keeps its stored header stale', async () => {
  // Seen while looking for the case above: group a, read back after a restart (so only partly in
  // memory), was compacted (its winner, v 3 at time 0, forgotten) and then touched by an update of
  // diff 0 only; the step saved its header unchanged — the forgotten winner — under the new
  // cutoff, so that after the next restart the header was not stale any more and v 3 stayed the
  // winner: v 2 did not win over it.
  const build = (): Graph => {
    const g = createGraph();
    g.output(
      'out',
      g
        .input<Rec>('in')
        .groupBy(byK)
        .maxBy((r) => r.v)
        .ungroup(),
    );
    return g;
  };
  const steps: { updates: Update<Rec>[]; compact?: number; restart?: boolean }[] = [
    {
      updates: [
        [{ k: 'a', v: 3, o: 0 }, 1, 0],
        [{ k: 'a', v: 1, o: 0 }, 1, 5],
      ],
      restart: true,
    },
    { updates: [[{ k: 'a', v: 0, o: 0 }, 1, 5]] },
    { updates: [[{ k: 'a', v: 0, o: 0 }, 0, 6]], compact: 3, restart: true },
    { updates: [[{ k: 'a', v: 2, o: 0 }, 1, 7]] },
  ];
  const want: Z = new Map();
  const memory = build();
  for (const s of steps) {
    if (s.compact !== undefined) memory.compact(s.compact);
    for (const [v, d] of (await memory.step({ in: s.updates })).outputs.get('out') ?? []) zAdd(want, v, d);
  }
  const got: Z = new Map();
  const store = new MemoryStateStore();
  let cutoff: number | null = null;
  let g = build();
  g.useStore(store, { cacheBytes: 1e9, stored: false });
  for (const s of steps) {
    if (s.compact !== undefined) g.compact((cutoff = s.compact));
    const r = await g.step({ in: s.updates });
    for (const [v, d] of r.outputs.get('out') ?? []) zAdd(got, v, d);
    store.commit(r.state!);
    g.release(r.state!.step);
    if (s.restart === true) {
      g = build();
      g.useStore(store, { cacheBytes: 1e9, stored: true, cutoff });
    }
  }
  assert.deepEqual(zShow(got), zShow(want));
  assert.deepEqual(
    zShow(want),
    zShow(zOf([{ k: 'a', v: 2, o: 0 }, 1], [{ k: 'a', v: 1, o: 0 }, -1], [{ k: 'a', v: 3, o: 0 }, 1])),
  );
});

function zOf(...xs: [Value, number][]): Z {
  const z: Z = new Map();
  for (const [v, d] of xs) zAdd(z, v, d);
  return z;
}
