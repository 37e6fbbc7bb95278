/**
 * Warming the state cache after a restart (docs/durable-state.md, "Warm-up after a restart"):
 * `Graph.hotUnits` lists what the cache holds, `Graph.warm` reads it back before the first step,
 * so that the step reads nothing from the store; what the steps compute is the same either way.
 * (The durable property tests warm at restarts and between steps over random plans.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createGraph,
  MemoryStateStore,
  type Graph,
  type HotUnit,
  type Multiset,
  type Update,
  type Value,
} from '../../src/engine';

type Ev = { readonly m: string; readonly n: number; readonly t: number };

const median = (key: string, inputs: Multiset<Ev>, out: [Value, number][]): void => {
  const all: number[] = [];
  for (const [v, mult] of inputs) for (let i = 0; i < mult; i++) all.push(v.n);
  out.push([{ key, median: all[all.length >> 1] ?? null }, 1]);
};

/**
 * Per machine: a median (reduce in parts), a running sum (scan in pages, in time order), a count,
 * a minimum and a maximum (insert-only: one entry per group). The multiset maxBy/minBy read the
 * elements a change lands among (not warmed); the property tests cover their warm-up.
 */
function build(): Graph {
  const g = createGraph();
  const events = g.input<Ev>('in', { insertOnly: true });
  const byM = events.groupBy((e) => e.m);
  g.output('median', byM.reduce(median, { orderBy: (e) => e.n, partInputs: 4, name: 'median' }).ungroup());
  g.output(
    'running',
    byM
      .scan(0, (acc: number, e: Ev, emit) => (emit({ m: e.m, acc: acc + e.n }), acc + e.n), {
        checkpointEvery: 4,
        orderBy: (e) => e.t,
        name: 'running',
      })
      .ungroup(),
  );
  g.output('count', byM.count({ name: 'count' }).ungroup());
  g.output('first', byM.minBy((e) => e.n, { name: 'first' }).ungroup());
  g.output('max', byM.maxBy((e) => e.n, { name: 'max' }).ungroup());
  return g;
}

const MACHINES = ['m1', 'm2', 'm3', 'm4', 'm5'];
function batch(from: number, to: number): Update<Ev>[] {
  const out: Update<Ev>[] = [];
  for (let i = from; i < to; i++) out.push([{ m: MACHINES[i % MACHINES.length]!, n: (i * 37) % 101, t: i }, 1, i]);
  return out;
}

/** The store after 200 events in steps of 10, every step committed; and the last graph's hot units. */
async function history(): Promise<{ store: MemoryStateStore; hot: readonly HotUnit[] }> {
  const store = new MemoryStateStore();
  const g = build();
  g.useStore(store, { cacheBytes: 1e9, stored: false });
  for (let i = 0; i < 200; i += 10) {
    const r = await g.step({ in: batch(i, i + 10) });
    store.commit(r.state!);
    g.release(r.state!.step);
  }
  return { store, hot: g.hotUnits() };
}

async function live(g: Graph, store: MemoryStateStore): Promise<{ reads: number; outputs: string }> {
  const before = store.reads;
  const r = await g.step({ in: batch(200, 200 + MACHINES.length) });
  return { reads: store.reads - before, outputs: JSON.stringify([...r.outputs].sort()) };
}

test('a restart warmed with the hot units of the run before reads nothing in its first step, with the same outputs', async () => {
  const cold = await history();
  const g1 = build();
  g1.useStore(cold.store, { cacheBytes: 1e9, stored: true });
  const without = await live(g1, cold.store);
  assert.ok(without.reads > 0, 'without a warm-up the first step reads the groups it touches');

  const warmRun = await history();
  // Every stateful operator's groups are listed, the most touched first.
  assert.deepEqual(new Set(warmRun.hot.map((h) => h.id)), new Set(['median', 'running', 'count', 'first', 'max']));
  for (let i = 1; i < warmRun.hot.length; i++) assert.ok(warmRun.hot[i - 1]!.hits >= warmRun.hot[i]!.hits);
  const g2 = build();
  g2.useStore(warmRun.store, { cacheBytes: 1e9, stored: true });
  const w = await g2.warm(warmRun.hot);
  assert.equal(w.units, warmRun.hot.length);
  assert.equal(w.skipped, 0);
  assert.equal(g2.stateStats()!.entries, warmRun.hot.length);
  const warmed = await live(g2, warmRun.store);
  assert.equal(warmed.reads, 0, 'the first step after the warm-up reads no state');
  assert.equal(warmed.outputs, without.outputs);
});

test('a warm-up stays within the cache bound, the list first, and stops at its deadline', async () => {
  const { store, hot } = await history();
  const bound = hot.slice(0, 3).reduce((n, h) => n + h.bytes, 0);
  const g = build();
  g.useStore(store, { cacheBytes: bound, stored: true });
  const w = await g.warm(hot);
  assert.ok(w.bytes <= bound, `${w.bytes} ≤ ${bound}`);
  assert.ok(w.units >= 3 && w.skipped === hot.length - w.units);
  // The list's first units are among those read.
  const stats = g.stateStats()!;
  assert.equal(stats.entries, w.units);

  const late = build();
  late.useStore(store, { cacheBytes: 1e9, stored: true });
  const none = await late.warm(hot, { deadline: Date.now() - 1 });
  assert.deepEqual(none, { units: 0, bytes: 0, skipped: hot.length });
});

test('a stale or foreign hint changes nothing: unknown operators, groups gone, units already in memory', async () => {
  const { store, hot } = await history();
  const g = build();
  g.useStore(store, { cacheBytes: 1e9, stored: true });
  const foreign: HotUnit[] = [
    { id: 'gone', key: 'ex!', unit: 'x', bytes: 10, hits: 9 },
    { id: 'median', key: 'emissing!', unit: 'missing', bytes: 10, hits: 9 },
    ...hot,
    ...hot,
  ];
  const w = await g.warm(foreign);
  assert.equal(w.units, hot.length);
  const ref = build();
  ref.useStore(store, { cacheBytes: 1e9, stored: true });
  assert.equal((await live(g, store)).outputs, (await live(ref, store)).outputs);
});
