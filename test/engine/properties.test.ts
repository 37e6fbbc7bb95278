/**
 * Incremental == from scratch, for every operator and for the seed's two pipelines, over random
 * collections, random retractions, random arrival orders and random batch splits (see harness.ts).
 */
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Collection, Multiset, Value } from '../../src/engine';
import type { DrillEvent } from '../../bench/drill-data';
import {
  dashboardPipeline,
  isMachineEvent,
  pairStartStop,
  toDashboardRow,
  toExcerpt,
  usagePipeline,
  type Excerpt,
  type UsageRow,
} from '../../bench/drill-pipelines';
import { checkIncremental, RUNS, scenario } from './harness';
import { ref, refCompare, type Z } from './reference';

type Rec = { k: string; v: number; s: string };

/** Records with few distinct fields (many ties and duplicates), -0 and 0, and varying key order. */
const rec: fc.Arbitrary<Rec> = fc
  .record({
    k: fc.constantFrom('a', 'b', 'c'),
    v: fc.constantFrom(0, -0, 1, 2, -1, 3),
    s: fc.constantFrom('x', 'y', 'é', '\u{1F600}'),
    reversed: fc.boolean(),
  })
  .map(({ k, v, s, reversed }) => (reversed ? { s, v, k } : { k, v, s }));

const byKey = (r: Rec) => r.k;
const byV = (r: Rec) => r.v;
const keep = (r: Rec) => r.v > 0;
const project = (r: Rec): Value => ({ k: r.k, d: Math.abs(r.v) % 2 });
const spread = (r: Rec): Value[] => (r.v > 0 ? [r, { k: r.k }] : r.v < 0 ? [{ k: r.k }] : []);

/** Order-sensitive reduce that also checks what it is given: sorted, consolidated inputs. */
function reduceFn(key: Value, inputs: Multiset<Value>, outputs: [Value, number][]): void {
  let acc = 0;
  let total = 0;
  for (let i = 0; i < inputs.length; i++) {
    const [v, m] = inputs[i];
    if (m === 0) throw new Error('zero multiplicity handed to reduce');
    if (i > 0 && refCompare(inputs[i - 1][0], v) >= 0) throw new Error('reduce inputs not sorted or not consolidated');
    acc = (acc * 3 + (v as Rec).v * m) % 1000;
    total += m;
    outputs.push([{ key, i, acc }, 1]);
  }
  outputs.push([{ key, total }, 2], [{ key }, 1], [{ key }, 1]);
}

interface Case {
  readonly name: string;
  readonly build: (c: Collection<Rec>) => Collection;
  readonly reference: (z: Z) => Z;
  /** Also run with an insert-only input (its O(1)-state plans). */
  readonly insertOnlyToo?: boolean;
}

const cases: Case[] = [
  { name: 'filter', build: (c) => c.filter(keep), reference: (z) => ref.filter(z, (v) => keep(v as Rec)) },
  { name: 'map (not injective)', build: (c) => c.map(project), reference: (z) => ref.map(z, (v) => project(v as Rec)) },
  { name: 'flatMap', build: (c) => c.flatMap(spread), reference: (z) => ref.flatMap(z, (v) => spread(v as Rec)) },
  {
    name: 'concat',
    build: (c) => c.filter(keep).concat([c.map((r) => r as Rec), c.filter((r) => r.k === 'a')]),
    reference: (z) =>
      ref.concat(
        ref.filter(z, (v) => keep(v as Rec)),
        z,
        ref.filter(z, (v) => (v as Rec).k === 'a'),
      ),
  },
  { name: 'distinct', build: (c) => c.distinct(), reference: (z) => ref.distinct(z), insertOnlyToo: true },
  {
    name: 'groupBy + maxBy + ungroup',
    build: (c) => c.groupBy(byKey).maxBy(byV).ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.extremum(
          ref.groupBy(z, (v) => byKey(v as Rec)),
          (v) => byV(v as Rec),
          1,
        ),
      ),
    insertOnlyToo: true,
  },
  {
    name: 'groupBy + minBy + ungroup',
    build: (c) => c.groupBy(byKey).minBy(byV).ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.extremum(
          ref.groupBy(z, (v) => byKey(v as Rec)),
          (v) => byV(v as Rec),
          -1,
        ),
      ),
    insertOnlyToo: true,
  },
  {
    name: 'maxBy with composite keys and scores',
    build: (c) =>
      c
        .groupBy((r) => [r.k, r.s.length])
        .maxBy((r) => ({ s: r.s, v: r.v }))
        .ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.extremum(
          ref.groupBy(z, (v) => [(v as Rec).k, (v as Rec).s.length]),
          (v) => ({ s: (v as Rec).s, v: (v as Rec).v }),
          1,
        ),
      ),
    insertOnlyToo: true,
  },
  {
    name: 'groupBy + reduce + ungroup',
    build: (c) => c.groupBy(byKey).reduce(reduceFn).ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.reduce(
          ref.groupBy(z, (v) => byKey(v as Rec)),
          reduceFn,
        ),
      ),
    insertOnlyToo: true,
  },
  {
    name: 'groupBy + count + ungroup',
    build: (c) => c.groupBy(byKey).count().ungroup(),
    reference: (z) => ref.ungroup(ref.count(ref.groupBy(z, (v) => byKey(v as Rec)))),
    insertOnlyToo: true,
  },
  {
    name: 'groupBy + sum + ungroup',
    build: (c) => c.groupBy(byKey).sum(byV).ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.sum(
          ref.groupBy(z, (v) => byKey(v as Rec)),
          (v) => byV(v as Rec),
        ),
      ),
    insertOnlyToo: true,
  },
  {
    name: 'groupBy + distinct + count (grouped chain)',
    build: (c) => c.groupBy(byKey).distinct().count().ungroup(),
    reference: (z) => ref.ungroup(ref.count(ref.distinctPerGroup(ref.groupBy(z, (v) => byKey(v as Rec))))),
    insertOnlyToo: true,
  },
  {
    name: 'maxBy then count of the winners (retractions inside the graph)',
    build: (c) =>
      c
        .groupBy(byKey)
        .maxBy(byV)
        .ungroup()
        .groupBy((r) => r.v)
        .count()
        .ungroup(),
    reference: (z) =>
      ref.ungroup(
        ref.count(
          ref.groupBy(
            ref.ungroup(
              ref.extremum(
                ref.groupBy(z, (v) => byKey(v as Rec)),
                (v) => byV(v as Rec),
                1,
              ),
            ),
            (v) => (v as Rec).v,
          ),
        ),
      ),
    insertOnlyToo: true,
  },
  {
    name: 'async user functions (map, groupBy, maxBy, reduce) take the same results',
    build: (c) => {
      const grouped = c.map(async (r) => r as Rec).groupBy(async (r) => r.k);
      const maxed = grouped
        .maxBy(async (r) => r.v)
        .ungroup()
        .map((r): Value => r);
      const reduced = grouped
        .reduce(async (key, inputs) => {
          const outputs: [Value, number][] = [];
          reduceFn(key, inputs, outputs);
          return outputs;
        })
        .ungroup();
      return maxed.concat([reduced]);
    },
    reference: (z) => {
      const g = ref.groupBy(z, (v) => byKey(v as Rec));
      return ref.concat(ref.ungroup(ref.extremum(g, (v) => byV(v as Rec), 1)), ref.ungroup(ref.reduce(g, reduceFn)));
    },
    insertOnlyToo: true,
  },
];

describe('incremental results equal from-scratch results (every operator)', () => {
  for (const c of cases) {
    test(`${c.name}, with retractions`, async () => {
      await fc.assert(
        fc.asyncProperty(scenario(rec, { retractions: true }), (sc) =>
          checkIncremental(sc, false, c.build, c.reference),
        ),
        { numRuns: RUNS },
      );
    });
    if (c.insertOnlyToo) {
      test(`${c.name}, insert-only input`, async () => {
        await fc.assert(
          fc.asyncProperty(scenario(rec, { retractions: false }), (sc) =>
            checkIncremental(sc, true, c.build, c.reference),
          ),
          { numRuns: RUNS },
        );
      });
    }
  }
});

/** Drill events with few machines, orders and timestamps (ties), and some worker events. */
const drillEvent: fc.Arbitrary<DrillEvent> = fc
  .record({
    m: fc.integer({ min: 1, max: 3 }),
    kind: fc.constantFrom('started', 'stopped', 'started', 'stopped', 'worker'),
    order: fc.constantFrom('4711', '4712', '4713'),
    ts: fc.integer({ min: 0, max: 12 }),
    lamport: fc.integer({ min: 1, max: 60 }),
  })
  .map(({ m, kind, order, ts, lamport }): DrillEvent => {
    const base = { lamport, offset: lamport, timestamp: ts, appId: 'com.example.drill-factory' };
    if (kind === 'worker') {
      return {
        ...base,
        stream: 'tablet1-0',
        tags: ['worker', 'worker:Fred', `order:${order}`],
        payload: { type: 'setupStarted', machine: `Drill${m}`, order },
      };
    }
    return {
      ...base,
      stream: `drill${m}-0`,
      tags: ['machine', `machine:Drill${m}`],
      payload: { type: kind as 'started' | 'stopped', order },
    };
  });

const dashboardReference = (z: Z): Z =>
  ref.ungroup(
    ref.extremum(
      ref.groupBy(
        ref.map(
          ref.filter(z, (e) => isMachineEvent(e as DrillEvent)),
          (e) => toDashboardRow(e as DrillEvent),
        ),
        (r) => (r as { machine: string }).machine,
      ),
      (r) => (r as { since: number }).since,
      1,
    ),
  );

const usageReference = (z: Z): Z =>
  ref.ungroup(
    ref.reduce(
      ref.groupBy(
        ref.map(
          ref.filter(z, (e) => isMachineEvent(e as DrillEvent)),
          (e) => toExcerpt(e as DrillEvent),
        ),
        (x) => (x as Excerpt).machine,
      ),
      (key, inputs, outputs) =>
        pairStartStop(
          key as string,
          inputs as unknown as Multiset<Excerpt>,
          outputs as unknown as [UsageRow, number][],
        ),
    ),
  );

describe("the seed's pipelines, incremental == from scratch", () => {
  for (const insertOnly of [true, false]) {
    const label = insertOnly ? 'insert-only events' : 'events with retractions';
    test(`dashboard (filter → map → groupBy machine → maxBy since → ungroup), ${label}`, async () => {
      await fc.assert(
        fc.asyncProperty(scenario(drillEvent, { retractions: !insertOnly, maxLength: 30 }), (sc) =>
          checkIncremental(sc, insertOnly, dashboardPipeline, dashboardReference),
        ),
        { numRuns: RUNS },
      );
    });
    test(`usage (map to excerpt → groupBy machine → reduce pairing started/stopped → ungroup), ${label}`, async () => {
      await fc.assert(
        fc.asyncProperty(scenario(drillEvent, { retractions: !insertOnly, maxLength: 30 }), (sc) =>
          checkIncremental(sc, insertOnly, usagePipeline, usageReference),
        ),
        { numRuns: RUNS },
      );
    });
  }
});
