/**
 * Offset deltas (core/offset-map.ts, OffsetDelta): the tracker's step snapshots say which streams
 * each step raised, and a commit joining several steps says which streams it raised since the
 * offsets before its first step. A sink that stored those offsets writes only the raised streams,
 * so a delta that misses a stream would lose it: these properties check the deltas against the
 * full maps.
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
import { OffsetTracker } from '../../src/dataflow/offset-tracker';
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

/** Runs the tracker over `run`: each step's offsets and delta. */
function stepsOf(run: Run): { offsets: OffsetMap; delta: OffsetDelta }[] {
  const start: Record<string, number> = {};
  for (const [s, o] of Object.entries(run.start)) Object.defineProperty(start, s, { value: o, enumerable: true });
  const tracker = new OffsetTracker(start);
  const next = new Map(Object.entries(start));
  const out: { offsets: OffsetMap; delta: OffsetDelta }[] = [];
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
    if (step.snapshotBetween) tracker.snapshot(); // the reader's snapshots are not steps
    out.push(tracker.step());
  }
  return out;
}

test('property: each step snapshot is frozen and is the previous one with its delta applied', () => {
  fc.assert(
    fc.property(runs, (run) => {
      const steps = stepsOf(run);
      let previous: OffsetMap | null = null;
      let before: OffsetMap = Object.fromEntries(Object.entries(run.start));
      for (const { offsets, delta } of steps) {
        assert.ok(Object.isFrozen(offsets));
        assert.equal(delta.base, previous);
        assert.deepEqual(sorted(offsets), applied(before, delta.raised));
        for (const [s, o] of delta.raised) assert.ok(o > (Object.entries(before).find(([n]) => n === s)?.[1] ?? -1));
        previous = offsets;
        before = offsets;
      }
    }),
    { numRuns: 300 },
  );
});

test('property: a commit joining steps has the delta from the offsets before its first step, or none when a step is missing', () => {
  const db = { kind: 'sqlite', label: 'db' } as SinkDatabase;
  const sink = { id: 'sink', table: { name: 't', mode: 'multiset', columns: [] } } as unknown as SinkMember;
  fc.assert(
    fc.property(
      runs,
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 8 }),
      fc.option(fc.nat(), { nil: null }),
      (run, sizes, dropped) => {
        const steps = stepsOf(run);
        const drop = dropped === null ? -1 : dropped % steps.length; // a step that joins no commit
        let at = 0;
        for (const size of sizes) {
          if (at >= steps.length) break;
          const group = steps.slice(at, at + size).map((s, i) => ({ ...s, index: at + i }));
          at += size;
          const joined = group.filter((s) => s.index !== drop);
          if (joined.length === 0) continue;
          const write = (offsets: OffsetMap) => [
            [
              db,
              [{ sink, table: sink.table, changes: [], state: { offsets, fingerprint: 'f', watermark: 1 } }],
            ] as const,
          ];
          const first = joined[0] as (typeof joined)[number];
          const commit = new PendingCommit('p', write(first.offsets), [], first.offsets, 1, null, first.delta);
          for (const s of joined.slice(1)) commit.join(write(s.offsets), [], s.offsets, 1, s.delta);
          const last = joined[joined.length - 1] as (typeof joined)[number];
          assert.equal(commit.offsets, last.offsets);
          const [[, [w]]] = commit.writes() as unknown as [[SinkDatabase, { state: SinkState }[]]];
          const delta = w?.state.delta;
          const gap = joined.some((s, i) => i > 0 && s.index !== (joined[i - 1] as (typeof joined)[number]).index + 1);
          if (gap) {
            assert.equal(delta, undefined, 'a commit missing a step between its steps has no delta');
            continue;
          }
          assert.ok(delta !== undefined);
          assert.equal(delta.base, first.delta.base);
          const before =
            first.index === 0 ? Object.fromEntries(Object.entries(run.start)) : steps[first.index - 1]!.offsets;
          assert.deepEqual(sorted(last.offsets), applied(before, delta.raised));
          // The steps' own maps are left as they were.
          for (const s of joined)
            assert.deepEqual(
              sorted(s.offsets),
              applied(s.index === 0 ? before : steps[s.index - 1]!.offsets, s.delta.raised),
            );
        }
      },
    ),
    { numRuns: 300 },
  );
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
