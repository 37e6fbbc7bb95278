/**
 * `window`: event-time windows in a time zone.
 * - The windows of an instant and the split of a timespan equal a brute-force reference that scans
 *   the wall clock minute by minute (Intl, read independently) around DST changes in zones with
 *   1 h and 30 min changes, north and south, and one without DST (fast-check, 200 runs).
 * - Minutes per shift and window through groupBy/sum: incremental equals from scratch under random
 *   batchings, retractions (also before their insertions), late records and restarts (200 runs).
 * - By hand: Berlin's night shifts across the DST changes are 7 and 9 hours, a run across 14:00 is
 *   split, the repeated hour is one 2-hour window, the skipped hour no window; weeks, months,
 *   sliding windows; bad options and bad times.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGraph, type Update, type Value, type WindowOptions } from '../../../src/engine';
import { Windowing } from '../../../src/engine/time-windows';
import { assertConsolidated, RUNS } from '../harness';
import { zAdd, zMinus, zShow, type Z } from '../reference';

const MIN = 60_000;
const at = (iso: string): number => Date.parse(iso) * 1000;
const utc = (us: number): string => new Date(us / 1000).toISOString();

/** DST changes (UTC) the property tests look around, per zone (Kolkata has none). */
const ZONES: Readonly<Record<string, readonly string[]>> = {
  'Europe/Berlin': ['2026-03-29T01:00:00Z', '2026-10-25T01:00:00Z'],
  'America/New_York': ['2026-03-08T07:00:00Z', '2026-11-01T06:00:00Z'],
  'Australia/Lord_Howe': ['2026-04-04T15:00:00Z', '2026-10-03T15:30:00Z'],
  'Australia/Sydney': ['2026-04-04T16:00:00Z', '2026-10-03T16:00:00Z'],
  'Asia/Kolkata': ['2026-06-01T00:00:00Z'],
};

/** The local wall clock at each minute, read with Intl's plain string form (not the engine's code). */
function wallClock(zone: string): (ms: number) => number {
  const f = new Intl.DateTimeFormat('en-GB', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
  return (ms) => {
    const [d, m, y, h, mi] = f
      .format(ms)
      .split(/[/, :]+/)
      .map(Number);
    return Date.UTC(y!, m! - 1, d!, h!, mi!);
  };
}

type Spec = { unit: 'minute' | 'hour' | 'day'; size: number; slide: number; start: string; zone: string };

/**
 * The tumbling steps around `centre` by brute force: a step begins at the first minute at which the
 * running maximum of the wall clock reaches its boundary's local time (so a skipped local time
 * begins at the change, a repeated one at its first occurrence). Returns step start instants (ms).
 */
function referenceSteps(spec: Spec, centreMs: number, days: number): number[] {
  const wall = wallClock(spec.zone);
  const unit = { minute: MIN, hour: 60 * MIN, day: 1440 * MIN }[spec.unit];
  const step = spec.slide * unit;
  const [hh, mm] = spec.start.split(':').map(Number);
  const phase = spec.unit === 'day' ? (hh! * 60 + mm!) * MIN : ((hh! * 60 + mm!) * MIN) % step;
  const from = Math.floor(centreMs / MIN) * MIN - days * 1440 * MIN;
  const starts: number[] = [];
  let max = -Infinity;
  let index = NaN;
  for (let u = from; u <= from + 2 * days * 1440 * MIN; u += MIN) {
    max = Math.max(max, wall(u));
    const k = Math.floor((max - phase) / step);
    // Every boundary passed begins here, also those of local times that did not exist (empty steps).
    if (!Number.isNaN(index)) for (let j = index + 1; j <= k; j++) starts.push(u);
    index = k;
  }
  return starts;
}

/** The windows [start, end) (µs) of the reference steps that overlap [from, to], with `span` steps each. */
function referenceWindows(starts: number[], span: number, from: number, to: number, instant: boolean): number[][] {
  const out: number[][] = [];
  for (let i = 0; i + span < starts.length; i++) {
    const s = starts[i]! * 1000;
    const e = starts[i + span]! * 1000;
    if (instant ? s <= from && from < e : Math.max(from, s) < Math.min(to, e)) {
      out.push(instant ? [s, e] : [s, e, Math.max(from, s), Math.min(to, e)]);
    }
  }
  return out;
}

const specs: fc.Arbitrary<Spec> = fc
  .record({
    zone: fc.constantFrom(...Object.keys(ZONES)),
    shape: fc.constantFrom(
      { unit: 'minute', size: 30, slide: 15 },
      { unit: 'minute', size: 20, slide: 20 },
      { unit: 'hour', size: 1, slide: 1 },
      { unit: 'hour', size: 8, slide: 8 },
      { unit: 'hour', size: 6, slide: 2 },
      { unit: 'day', size: 1, slide: 1 },
      { unit: 'day', size: 2, slide: 1 },
    ),
    start: fc.constantFrom('00:00', '06:00', '02:30', '22:00', '01:45'),
  })
  .map(({ zone, shape, start }) => ({ ...(shape as Omit<Spec, 'zone' | 'start'>), zone, start }));

describe('window: the windows equal a brute-force scan of the wall clock around DST changes', () => {
  const around = (zone: string, change: number, offsetMinutes: number) =>
    at(ZONES[zone]![change % ZONES[zone]!.length]!) + offsetMinutes * MIN * 1000;

  test('instants', () =>
    fc.assert(
      fc.property(
        specs,
        fc.nat(),
        fc.integer({ min: -26 * 60, max: 26 * 60 }),
        fc.nat({ max: 59_999_999 }),
        (spec, change, minutes, micros) => {
          const t = around(spec.zone, change, minutes) + micros;
          const w = new Windowing({ ...spec, timeZone: spec.zone });
          const got = w.windowsOf('r', t).map((r) => [r.start, r.end]);
          const steps = referenceSteps(spec, t / 1000, spec.unit === 'day' ? 3 : 1.5);
          assert.deepEqual(got, referenceWindows(steps, spec.size / spec.slide, t, t, true), `${spec.zone} ${utc(t)}`);
        },
      ),
      { numRuns: RUNS },
    ));

  test('timespans: the parts inside each window', () =>
    fc.assert(
      fc.property(
        specs,
        fc.nat(),
        fc.integer({ min: -20 * 60, max: 20 * 60 }),
        fc.integer({ min: 0, max: 10 * 60 * 60 * 1_000_000 }),
        (spec, change, minutes, length) => {
          const from = around(spec.zone, change, minutes) + 1234;
          const to = from + length;
          const w = new Windowing({ ...spec, timeZone: spec.zone });
          const got = w.split('r', from, to).map((r) => [r.start, r.end, r.from!, r.to!]);
          const steps = referenceSteps(spec, from / 1000, spec.unit === 'day' ? 4 : 2);
          assert.deepEqual(got, referenceWindows(steps, spec.size / spec.slide, from, to, false));
        },
      ),
      { numRuns: RUNS },
    ));
});

type Run = { m: string; from: number; len: number };

describe('window: incremental equals from scratch (batchings, retractions, late records, restarts)', () => {
  const options: WindowOptions<Run> = {
    time: (r) => r.from,
    end: (r) => r.from + r.len,
    unit: 'hour',
    size: 8,
    start: '06:00',
    timeZone: 'Europe/Berlin',
  };
  const base = at('2026-10-24T18:00:00Z');
  const run: fc.Arbitrary<Run> = fc.record({
    m: fc.constantFrom('a', 'b'),
    from: fc.integer({ min: 0, max: 20 * 60 }).map((minutes) => base + minutes * MIN * 1000),
    len: fc.integer({ min: 0, max: 12 * 60 }).map((minutes) => minutes * MIN * 1000),
  });
  const scenarios = fc
    .record({
      final: fc.array(fc.tuple(run, fc.integer({ min: 1, max: 2 })), { maxLength: 12 }),
      noise: fc.array(fc.tuple(run, fc.boolean()), { maxLength: 6 }),
      order: fc.array(fc.nat(), { maxLength: 24 }),
      cuts: fc.array(fc.nat({ max: 1000 }), { maxLength: 5 }),
      restarts: fc.array(fc.nat({ max: 5 }), { maxLength: 2 }),
    })
    .map(({ final, noise, order, cuts, restarts }) => {
      const updates: Update<Run>[] = final.map(([r, m]) => [r, m, r.from]);
      for (const [r, retractFirst] of noise) {
        const pair: Update<Run>[] = [
          [r, 1, r.from],
          [r, -1, r.from],
        ];
        updates.push(...(retractFirst ? pair.reverse() : pair));
      }
      // Any arrival order: later runs before earlier ones (late events).
      const keyed = updates.map((u, i) => [order[i % Math.max(1, order.length)] ?? 0, i, u] as const);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const all = keyed.map(([, , u]) => u);
      const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
      const batches: Update<Run>[][] = [];
      let from = 0;
      for (const p of [...points, all.length]) {
        batches.push(all.slice(from, p));
        from = p;
      }
      return { batches, restarts: new Set(restarts) };
    });

  /** Minutes per machine and shift from scratch. */
  const reference = (z: Z): Z => {
    const windowing = new Windowing(options);
    const sums = new Map<string, [string, number, number]>();
    for (const [v, m] of z.values()) {
      const r = v as Run;
      for (const w of windowing.split(r, r.from, r.from + r.len)) {
        const k = JSON.stringify([r.m, w.start]);
        const e = sums.get(k) ?? [r.m, w.start, 0];
        e[2] += ((w.to! - w.from!) / 60e6) * m;
        sums.set(k, e);
      }
    }
    const out: Z = new Map();
    const counts = new Map<string, number>();
    for (const [v, m] of z.values()) {
      for (const w of windowing.split(v, (v as Run).from, (v as Run).from + (v as Run).len)) {
        const k = JSON.stringify([(v as Run).m, w.start]);
        counts.set(k, (counts.get(k) ?? 0) + m);
      }
    }
    for (const [k, [machine, start, sum]] of sums)
      if (counts.get(k) !== 0) zAdd(out, { key: [machine, start], sum }, 1);
    return out;
  };

  test('minutes per machine and Berlin shift, across the change back to winter time', () =>
    fc.assert(
      fc.asyncProperty(scenarios, async (sc) => {
        const z: Z = new Map();
        const start = async () => {
          const g = createGraph();
          const shifts = g.input<Run>('in').window(options);
          const perShift = shifts.groupBy((w) => [w.value.m, w.start]).sum((w) => (w.to! - w.from!) / 60e6);
          g.output('out', perShift.ungroup());
          const replay: Update<Value>[] = [...z.values()].map(([v, m]) => [v, m, 0]);
          if (replay.length > 0) await g.step({ in: replay }, { onError: 'stop' });
          return g;
        };
        let graph = await start();
        let before = reference(z);
        for (const [i, batch] of sc.batches.entries()) {
          if (sc.restarts.has(i)) graph = await start();
          for (const [v, d] of batch) zAdd(z, v, d);
          const { outputs } = await graph.step({ in: batch }, { onError: 'stop' });
          const out = outputs.get('out') ?? [];
          assertConsolidated(out, `step ${i}`);
          const after = reference(z);
          const got: Z = new Map();
          for (const [v, d] of out) zAdd(got, v, d);
          assert.deepEqual(zShow(got), zShow(zMinus(after, before)), `step ${i}`);
          before = after;
        }
      }),
      { numRuns: RUNS },
    ));
});

describe('window: examples', () => {
  const shifts = (extra: Partial<WindowOptions> = {}) =>
    new Windowing({ unit: 'hour', size: 8, start: '06:00', timeZone: 'Europe/Berlin', ...extra });
  const hours = (rows: { start: number; end: number }[]) => rows.map((r) => (r.end - r.start) / 3.6e9);

  test('Berlin night shifts are 7 hours across the change to summer time and 9 across the change back', () => {
    const spring = shifts().windowsOf('r', at('2026-03-29T01:30:00Z'));
    assert.deepEqual(
      spring.map((r) => [utc(r.start), utc(r.end)]),
      [['2026-03-28T21:00:00.000Z', '2026-03-29T04:00:00.000Z']],
    );
    assert.deepEqual(hours(spring), [7]);
    assert.deepEqual(hours(shifts().windowsOf('r', at('2026-10-25T01:30:00Z'))), [9]);
    assert.deepEqual(hours(shifts().windowsOf('r', at('2026-07-01T01:30:00Z'))), [8]);
  });

  test('a run from 13:00 to 15:30 local is split at the 14:00 shift change', () => {
    const rows = shifts().split('r', at('2026-06-01T11:00:00Z'), at('2026-06-01T13:30:00Z'));
    assert.deepEqual(
      rows.map((r) => [utc(r.start), (r.to! - r.from!) / 60e6]),
      [
        ['2026-06-01T04:00:00.000Z', 60],
        ['2026-06-01T12:00:00.000Z', 90],
      ],
    );
  });

  test('the repeated hour is one 2-hour window; the skipped hour has none', () => {
    const hourly = new Windowing({ unit: 'hour', timeZone: 'Europe/Berlin' });
    const back = hourly.split('r', at('2026-10-24T23:30:00Z'), at('2026-10-25T02:30:00Z'));
    assert.deepEqual(hours(back), [1, 2, 1]);
    const forward = hourly.split('r', at('2026-03-29T00:30:00Z'), at('2026-03-29T01:30:00Z'));
    assert.deepEqual(
      forward.map((r) => [utc(r.start), utc(r.end)]),
      [
        ['2026-03-29T00:00:00.000Z', '2026-03-29T01:00:00.000Z'],
        ['2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z'],
      ],
    );
  });

  test('weeks from Monday 06:00, months from the 1st, sliding 7-day windows', () => {
    const week = new Windowing({ unit: 'week', start: '06:00', timeZone: 'Australia/Lord_Howe' });
    const [w] = week.windowsOf('r', at('2026-04-05T03:00:00Z'));
    // Monday 30 March 06:00 +11:00 to Monday 6 April 06:00 +10:30 (the half-hour change on 5 April)
    assert.deepEqual([utc(w!.start), utc(w!.end)], ['2026-03-29T19:00:00.000Z', '2026-04-05T19:30:00.000Z']);
    const month = new Windowing({ unit: 'month', timeZone: 'America/New_York' });
    const [m] = month.windowsOf('r', at('2026-03-01T03:00:00Z')); // still February in New York
    assert.deepEqual([utc(m!.start), utc(m!.end)], ['2026-02-01T05:00:00.000Z', '2026-03-01T05:00:00.000Z']);
    const quarter = new Windowing({ unit: 'month', size: 3, timeZone: 'UTC' });
    assert.deepEqual(
      quarter.windowsOf('r', at('2026-05-10T00:00:00Z')).map((r) => [utc(r.start), utc(r.end)]),
      [['2026-04-01T00:00:00.000Z', '2026-07-01T00:00:00.000Z']],
    );
    const sliding = new Windowing({ unit: 'day', size: 7, slide: 1, timeZone: 'UTC' });
    const rows = sliding.windowsOf('r', at('2026-05-10T12:00:00Z'));
    assert.equal(rows.length, 7);
    assert.deepEqual(
      [utc(rows[0]!.start), utc(rows[6]!.end)],
      ['2026-05-04T00:00:00.000Z', '2026-05-17T00:00:00.000Z'],
    );
  });

  test('bad options fail when the graph is built; bad times skip the record with a clear error', async () => {
    const g = createGraph();
    const input = g.input<{ t: Value }>('in');
    assert.throws(() => input.window({ time: () => 0, unit: 'hour', timeZone: 'Mars/Olympus' }), /unknown time zone/);
    assert.throws(() => input.window({ time: () => 0, unit: 'hour', size: 7 }), /do not divide a day/);
    assert.throws(() => input.window({ time: () => 0, unit: 'day', size: 3, slide: 2 }), /multiple of slide/);
    assert.throws(() => input.window({ time: () => 0, unit: 'day', start: '6 am' }), /HH:MM/);
    assert.throws(() => input.window({ time: () => 0, unit: 'fortnight' as 'day' }), /unit must be one of/);
    g.output('out', input.window({ time: (r) => r.t as number, unit: 'day', name: 'per day' }));
    const { outputs, skipped } = await g.step({
      in: [
        [{ t: 'noon' }, 1, 0],
        [{ t: at('2026-06-01T10:00:00Z') }, 1, 0],
      ],
    });
    assert.equal(outputs.get('out')?.length, 1);
    assert.deepEqual(
      skipped.map((s) => [s.operator, s.value, (s.error as Error).message]),
      [['per day', { t: 'noon' }, 'time is not a number of µs since the epoch: "noon"']],
    );
    assert.throws(() => shifts().split('r', 10, 5), /ends \(5 µs\) before it starts/);
    assert.throws(
      () => new Windowing({ unit: 'minute', timeZone: 'UTC' }).split('r', 0, 365 * 86400e6),
      /more than 10000 windows/,
    );
  });
});
