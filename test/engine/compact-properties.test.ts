/**
 * Retention as a property: after `compact(cutoff)`, a stateful operator behaves as if its input had
 * only ever held the values whose newest update is at or after the cutoff; what it emits from then
 * on is the change of the from-scratch result over those values plus the new updates.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGraph, type Collection, type Multiset, type Update, type Value } from '../../src/engine';
import { assertConsolidated, RUNS, scenario } from './harness';
import { ref, refCompare, refKey, zAdd, zMinus, zShow, type Z } from './reference';

type Rec = { k: string; v: number };
const rec: fc.Arbitrary<Rec> = fc.record({ k: fc.constantFrom('a', 'b'), v: fc.integer({ min: 0, max: 4 }) });

function sortedSum(key: Value, inputs: Multiset<Value>, outputs: [Value, number][]): void {
  let acc = 0;
  for (let i = 0; i < inputs.length; i++) {
    if (i > 0 && refCompare(inputs[i - 1][0], inputs[i][0]) >= 0) throw new Error('inputs not sorted');
    acc = acc * 5 + (inputs[i][0] as Rec).v * inputs[i][1];
  }
  outputs.push([{ key, acc }, 1]);
}

/** A fold that emits at every input and often returns to an earlier state (refolds rejoin). */
function foldStep(acc: number, r: Rec, emit: (o: Value) => void, key: Value): number {
  const next = (acc * 5 + r.v) % 7;
  emit({ key, next, v: r.v });
  return next;
}

/** `foldStep` from scratch over the sorted inputs, each as often as its (positive) multiplicity. */
function foldFromScratch(key: Value, inputs: Multiset<Value>, outputs: [Value, number][]): void {
  let acc = 0;
  for (const [r, m] of inputs)
    for (let i = 0; i < m; i++) acc = foldStep(acc, r as Rec, (o) => outputs.push([o, 1]), key);
}

const cases: { name: string; build: (c: Collection<Rec>) => Collection; reference: (z: Z) => Z }[] = [
  { name: 'distinct', build: (c) => c.distinct(), reference: (z) => ref.distinct(z) },
  {
    name: 'maxBy (general plan)',
    build: (c) =>
      c
        .groupBy((r) => r.k)
        .maxBy((r) => r.v)
        .ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.extremum(
          ref.groupBy(z, (v) => (v as Rec).k),
          (v) => (v as Rec).v,
          1,
        ),
      ),
  },
  {
    name: 'minBy (general plan)',
    build: (c) =>
      c
        .groupBy((r) => r.k)
        .minBy((r) => r.v)
        .ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.extremum(
          ref.groupBy(z, (v) => (v as Rec).k),
          (v) => (v as Rec).v,
          -1,
        ),
      ),
  },
  {
    name: 'reduce',
    build: (c) =>
      c
        .groupBy((r) => r.k)
        .reduce(sortedSum)
        .ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.reduce(
          ref.groupBy(z, (v) => (v as Rec).k),
          sortedSum,
        ),
      ),
  },
  ...[1, 2, 32].map((every) => ({
    name: `scan (checkpoint every ${every})`,
    build: (c: Collection<Rec>) =>
      c
        .groupBy((r) => r.k)
        .scan(0, foldStep, { checkpointEvery: every })
        .ungroup(),
    reference: (z: Z) =>
      ref.ungroup(
        ref.reduce(
          ref.groupBy(z, (v) => (v as Rec).k),
          foldFromScratch,
        ),
      ),
  })),
];

/**
 * What a stateful operator keeps after compaction. A value's time is the newest time of the
 * changes that reached it while it was present, a batch counting as one change (its updates of the
 * value summed, at their newest time; a batch whose updates cancel out does not touch the value).
 * Values whose time is older than the cutoff are forgotten.
 */
function kept(batches: readonly (readonly Update<Rec>[])[], cutoff: number): Z {
  const state = new Map<string, { value: Value; mult: number; time: number }>();
  for (const batch of batches) {
    const net = new Map<string, { value: Value; diff: number; time: number }>();
    for (const [v, d, t] of batch) {
      const k = refKey(v);
      const e = net.get(k);
      if (e) {
        e.diff += d;
        e.time = Math.max(e.time, t);
      } else net.set(k, { value: v, diff: d, time: t });
    }
    for (const [k, { value, diff, time }] of net) {
      if (diff === 0) continue;
      const s = state.get(k);
      if (!s) state.set(k, { value, mult: diff, time });
      else if (s.mult + diff === 0) state.delete(k);
      else {
        s.mult += diff;
        s.time = Math.max(s.time, time);
      }
    }
  }
  const z: Z = new Map();
  for (const { value, mult, time } of state.values()) if (time >= cutoff) zAdd(z, value, mult);
  return z;
}

describe('compact(cutoff) then more updates == from scratch over the kept values plus the new updates', () => {
  for (const c of cases) {
    test(c.name, async () => {
      await fc.assert(
        fc.asyncProperty(
          scenario(rec, { retractions: true }),
          fc.nat(20),
          fc.integer({ min: 0, max: 11 }),
          async (sc, cut, cutoff) => {
            const split = cut % (sc.batches.length + 1);
            const g = createGraph();
            g.output('out', c.build(g.input<Rec>('in')));
            const before = sc.batches.slice(0, split);
            for (const batch of before) await g.step({ in: batch }, { onError: 'stop' });
            const size = g.stateSize();
            g.compact(cutoff);
            assert.ok(g.stateSize() <= size, 'compaction never grows the state');
            const collection = kept(before, cutoff);
            let previous = c.reference(collection);
            for (const batch of sc.batches.slice(split)) {
              for (const [v, d] of batch) zAdd(collection, v, d);
              const out = (await g.step({ in: batch }, { onError: 'stop' })).outputs.get('out') ?? [];
              assertConsolidated(out, 'after compaction');
              const now = c.reference(collection);
              const got: Z = new Map();
              for (const [v, d] of out) zAdd(got, v, d);
              assert.deepEqual(zShow(got), zShow(zMinus(now, previous)));
              previous = now;
            }
          },
        ),
        { numRuns: RUNS },
      );
    });
  }
});
