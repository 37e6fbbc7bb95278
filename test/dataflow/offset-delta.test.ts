/**
 * Offset deltas (core/offset-map.ts, OffsetDelta): a commit's offsets are materialized from the
 * previous commit's with the streams its steps raised (OffsetTracker.offsetsAfter), and handed to
 * the sinks with that delta. A sink that stored the previous offsets writes only the raised
 * streams, so a delta that misses a stream would lose it: these properties check the deltas and
 * the offsets against a model of every stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  eventsBetween,
  eventsBetweenRaised,
  offsetOf,
  type OffsetDelta,
  type OffsetMap,
} from '../../src/core/offset-map';
import { OffsetTracker, StepOffsets } from '../../src/dataflow/offset-tracker';
import { PendingCommit } from '../../src/dataflow/pending-commit';
import type { SinkMember } from '../../src/dataflow/types';
import type { SinkDatabase, SinkState } from '../../src/sinks/types';
import type { ActyxEvent } from '../../src/sources/types';

const ev = (stream: string, offset: number): ActyxEvent => ({
  stream,
  offset,
  lamport: 1,
  timestamp: 1,
  tags: [],
  appId: 'a',
  payload: null,
});

/** `base` with `raised` applied, as a plain sorted list (the streams' names include `__proto__`). */
function applied(base: OffsetMap, raised: ReadonlyMap<string, number>): [string, number][] {
  const out = new Map(Object.entries(base));
  for (const [s, o] of raised) out.set(s, o);
  return [...out].sort();
}
const sorted = (m: OffsetMap): [string, number][] => Object.entries(m).sort();

const STREAMS = ['a-0', 'b-0', 'c-0', '__proto__', 'toString'];

/** A run of the tracker: per step, events of some streams (each stream's offsets increasing), maybe a caught-up map, maybe snapshots between. */
const runs = fc.record({
  start: fc.dictionary(fc.constantFrom(...STREAMS), fc.integer({ min: 0, max: 5 })),
  steps: fc.array(
    fc.record({
      events: fc.array(fc.record({ stream: fc.constantFrom(...STREAMS), skip: fc.integer({ min: 0, max: 3 }) }), {
        maxLength: 6,
      }),
      include: fc.option(fc.dictionary(fc.constantFrom(...STREAMS), fc.integer({ min: 0, max: 30 })), { nil: null }),
      snapshotBetween: fc.boolean(),
    }),
    { minLength: 1, maxLength: 8 },
  ),
});

type Run = typeof runs extends fc.Arbitrary<infer T> ? T : never;

/** Runs the tracker over `run`: the tracker, each step, and the offsets after each step as a model. */
function stepsOf(run: Run): { tracker: OffsetTracker; steps: StepOffsets[]; model: [string, number][][] } {
  const start: Record<string, number> = {};
  for (const [s, o] of Object.entries(run.start)) Object.defineProperty(start, s, { value: o, enumerable: true });
  const tracker = new OffsetTracker(start);
  const next = new Map(Object.entries(start));
  const steps: StepOffsets[] = [];
  const model: [string, number][][] = [];
  for (const step of run.steps) {
    for (const { stream, skip } of step.events) {
      const offset = (next.get(stream) ?? -1) + 1 + skip;
      assert.equal(tracker.advance(ev(stream, offset)), true);
      next.set(stream, offset);
      assert.equal(tracker.advance(ev(stream, offset)), false); // the same event again changes nothing
    }
    if (step.include !== null) {
      const include: Record<string, number> = {};
      for (const [s, o] of Object.entries(step.include))
        Object.defineProperty(include, s, { value: o, enumerable: true });
      tracker.include(include);
      for (const [s, o] of Object.entries(include)) if (o > (next.get(s) ?? -1)) next.set(s, o);
    }
    if (step.snapshotBetween) assert.deepEqual(sorted(tracker.snapshot()), [...next].sort()); // not a step
    steps.push(tracker.step());
    model.push([...next].sort());
  }
  return { tracker, steps, model };
}

test("property: commits joining steps get the offsets after their last step, frozen, with the delta from the previous commit's", () => {
  const db = { kind: 'sqlite', label: 'db' } as SinkDatabase;
  const sink = { id: 'sink', table: { name: 't', mode: 'multiset', columns: [] } } as unknown as SinkMember;
  const write = [[db, [{ sink, table: sink.table, changes: [], state: { fingerprint: 'f', watermark: 1 } }]] as const];
  fc.assert(
    fc.property(runs, fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 8 }), (run, sizes) => {
      const { steps, model } = stepsOf(run);
      let before: OffsetMap | null = null; // the previous commit's offsets
      let at = 0;
      for (const size of sizes) {
        if (at >= steps.length) break;
        const group = steps.slice(at, at + size);
        at += group.length;
        const commit = new PendingCommit('p', write, [], group[0] as StepOffsets, 1);
        for (const s of group.slice(1)) commit.join(write, [], s, 1);
        const [[, [w]]] = commit.writes() as unknown as [[SinkDatabase, { state: SinkState }[]]];
        const { offsets, delta } = w!.state;
        assert.ok(Object.isFrozen(offsets));
        assert.deepEqual(sorted(offsets), model[at - 1]);
        assert.equal(commit.offsets, offsets, 'asked again: the same object');
        assert.ok(delta !== undefined);
        assert.equal(commit.offsetsDelta, delta);
        if (before !== null) assert.equal(delta.base, before, "the base is the previous commit's offsets themselves");
        assert.ok(delta.base !== null);
        assert.deepEqual(sorted(offsets), applied(delta.base, delta.raised));
        before = offsets;
      }
      if (at >= 2) assert.throws(() => (steps[at - 2] as StepOffsets).materialize(), /asked after step/);
    }),
    { numRuns: 300 },
  );
});

test('a commit given whole offsets (no step) hands them without a delta', () => {
  const db = { kind: 'sqlite', label: 'db' } as SinkDatabase;
  const sink = { id: 'sink', table: { name: 't', mode: 'multiset', columns: [] } } as unknown as SinkMember;
  const commit = new PendingCommit(
    'p',
    [[db, [{ sink, table: sink.table, changes: [], state: { fingerprint: 'f', watermark: 1 } }]]],
    [],
    { a: 1 },
    1,
  );
  const [[, [w]]] = commit.writes() as unknown as [[SinkDatabase, { state: SinkState }[]]];
  assert.deepEqual(w!.state, { offsets: { a: 1 }, fingerprint: 'f', watermark: 1 });
  assert.equal(commit.offsetsDelta, null);
});

test('property: the events between, brought forward by a delta, equal the events between counted over every stream', () => {
  const map = fc.dictionary(fc.constantFrom(...STREAMS), fc.integer({ min: 0, max: 20 }));
  fc.assert(
    fc.property(
      map,
      map,
      fc.dictionary(fc.constantFrom(...STREAMS), fc.integer({ min: 1, max: 20 })),
      (b, upper, up) => {
        const base = Object.fromEntries(Object.entries(b));
        // Raised streams go beyond the base's offsets (new streams from -1).
        const raised = new Map(Object.entries(up).map(([s, by]) => [s, (offsetOf(base, s) ?? -1) + by] as const));
        const lower = Object.fromEntries(applied(base, raised));
        const count = eventsBetween(base, upper);
        assert.equal(eventsBetweenRaised(count, base, raised, upper), eventsBetween(lower, upper));
      },
    ),
    { numRuns: 1000 },
  );
});
