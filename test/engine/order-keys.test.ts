/**
 * Order keys (see "Order keys" in src/engine/types.ts): records carry their input's order key
 * through map/filter/flatMap/groupBy; reduce and scan sort a group by (order key, value), or by
 * (orderBy(value), value); distinct, count and the graph's outputs see values only.
 *
 * The properties compare every step's output with the change of a from-scratch reference written
 * here without the engine, over random batchings, retractions, late events (order keys that arrive
 * in any order) and restarts (a new graph fed everything so far, as the dataflow does at start).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGraph, type Collection, type Update, type Value } from '../../src/engine';
import { eventOrderKey } from '../../src/sources/event-order';
import { assertConsolidated, RUNS } from './harness';
import { refCompare, refKey, zAdd, zMinus, zShow, type Z } from './reference';
import { show } from './run';

type OrderKey = [lamport: number, stream: string, offset: number];
/** An input record: its order key `o`, a group `g`, a value `v` and a field `x` the map drops. */
type In = { o: OrderKey; g: string; v: Value; x: number };
type Mapped = { g: string; v: Value };

const input: fc.Arbitrary<In> = fc.record({
  o: fc.tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 2 })),
  g: fc.constantFrom('p', 'q'),
  v: fc.constantFrom<Value>(0, 1, 2, 'x', { z: 1 }),
  x: fc.integer({ min: 0, max: 1 }),
});

const orderOf = (r: In): Value => r.o;
const strip = (r: In): Mapped => ({ g: r.g, v: r.v });

/** Emits each record's place in its group: a result that changes with any change of order. */
function placeStep(n: number, m: Mapped, emit: (row: Value) => void, g: Value): number {
  emit({ g, n, v: m.v });
  return n + 1;
}

// ---- the reference: records as (order key, value) with multiplicities ------------------------

/** A collection of records: refKey([order, value]) → [order, value, multiplicity]. */
type Records = Map<string, [Value, Value, number]>;

function addRecord(z: Records, order: Value, value: Value, diff: number): void {
  const k = refKey([order, value]);
  const e = z.get(k);
  if (e === undefined) z.set(k, [order, value, diff]);
  else if (e[2] + diff === 0) z.delete(k);
  else e[2] += diff;
}

/** Per group, the records sorted by (order, value), as `[order, value, multiplicity]`. */
function sortedGroups(z: Records, groupOf: (value: Value) => Value): Map<string, [Value, Value, number][]> {
  const groups = new Map<string, [Value, Value, number][]>();
  for (const r of z.values()) {
    const k = refKey(groupOf(r[1]));
    const list = groups.get(k) ?? [];
    list.push(r);
    groups.set(k, list);
  }
  for (const list of groups.values()) list.sort((a, b) => refCompare([a[0], a[1]], [b[0], b[1]]));
  return groups;
}

/** The rows `placeStep` folds to over each group's records (positive multiplicities, m times each). */
function places(z: Records, out: Z = new Map()): Z {
  for (const list of sortedGroups(z, (v) => (v as Mapped).g).values()) {
    let n = 0;
    for (const [, value, m] of list)
      for (let i = 0; i < m; i++) zAdd(out, { g: (value as Mapped).g, n: n++, v: (value as Mapped).v }, 1);
  }
  return out;
}

function mappedRecords(inputs: Z): Records {
  const z: Records = new Map();
  for (const [value, m] of inputs.values()) addRecord(z, (value as In).o, strip(value as In), m);
  return z;
}

/** The winner of maxBy(v) per group among present records: greatest (score, value, order). */
function winners(z: Records): Records {
  const out: Records = new Map();
  for (const list of sortedGroups(z, (v) => (v as Mapped).g).values()) {
    let best: [Value, Value, number] | null = null;
    for (const r of list) {
      if (r[2] <= 0) continue;
      const score = (v: Value) => (v as Mapped).v;
      if (best === null || refCompare([score(r[1]), r[1], r[0]], [score(best[1]), best[1], best[0]]) > 0) best = r;
    }
    if (best !== null) addRecord(out, best[0], best[1], 1);
  }
  return out;
}

// ---- the harness ------------------------------------------------------------------------------

interface Scenario {
  readonly batches: Update<In>[][];
  /** Restart before these batches. */
  readonly restarts: ReadonlySet<number>;
}

const scenarios = (retractions = true): fc.Arbitrary<Scenario> =>
  fc
    .record({
      final: fc.array(fc.tuple(input, fc.integer({ min: 1, max: 2 })), { maxLength: 20 }),
      noise: retractions ? fc.array(input, { maxLength: 8 }) : fc.constant([]),
      order: fc.array(fc.nat(), { maxLength: 40 }),
      cuts: fc.array(fc.nat({ max: 1000 }), { maxLength: 6 }),
      restarts: fc.array(fc.nat({ max: 6 }), { maxLength: 2 }),
    })
    .map(({ final, noise, order, cuts, restarts }) => {
      const updates: Update<In>[] = [];
      for (const [r, m] of final) updates.push([r, m, r.o[0]]);
      for (const r of noise) updates.push([r, 1, r.o[0]], [r, -1, r.o[0]]);
      // Any arrival order: late events are records whose order keys arrive after greater ones.
      const keyed = updates.map((u, i) => [order[i % Math.max(1, order.length)] ?? 0, i, u] as const);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const shuffled = keyed.map(([, , u]) => u);
      const points = [...new Set(cuts.map((c) => c % (shuffled.length + 1)))].sort((a, b) => a - b);
      const batches: Update<In>[][] = [];
      let from = 0;
      for (const p of [...points, shuffled.length]) {
        batches.push(shuffled.slice(from, p));
        from = p;
      }
      return { batches, restarts: new Set(restarts) };
    });

/**
 * Steps the pipeline through the scenario (restarting where it says) and compares each step's
 * output with the change of `reference` over the inputs so far, and the sum of the outputs with
 * the final reference.
 */
async function check(
  sc: Scenario,
  build: (c: Collection<In>) => Collection,
  reference: (inputs: Z) => Z,
  insertOnly: boolean,
) {
  const start = async (so: Z) => {
    const g = createGraph();
    g.output('out', build(g.input<In>('in', { order: orderOf, insertOnly })));
    // A restart replays the inputs so far; what the replay outputs is already in `accumulated`.
    const replay: Update<In>[] = [...so.values()].map(([v, m]) => [v as In, m, 0]);
    if (replay.length > 0) await g.step({ in: replay }, { onError: 'stop' });
    return g;
  };
  const inputs: Z = new Map();
  let graph = await start(inputs);
  let before = reference(inputs);
  const accumulated: Z = new Map();
  for (const [i, batch] of sc.batches.entries()) {
    if (sc.restarts.has(i)) graph = await start(inputs);
    for (const [v, d] of batch) zAdd(inputs, v, d);
    const { outputs } = await graph.step({ in: batch }, { onError: 'stop' });
    const out = outputs.get('out') ?? [];
    assertConsolidated(out, `step ${i}`);
    const after = reference(inputs);
    const got: Z = new Map();
    for (const [v, d] of out) zAdd(got, v, d);
    assert.deepEqual(zShow(got), zShow(zMinus(after, before)), `step ${i}: output differs from the reference's change`);
    for (const [v, d] of out) zAdd(accumulated, v, d);
    before = after;
  }
  assert.deepEqual(zShow(accumulated), zShow(reference(inputs)), 'accumulated output differs from the reference');
}

/** `insertOnly`: no retractions, and the input says so (the operators' insert-only plans). */
const property = (build: (c: Collection<In>) => Collection, reference: (inputs: Z) => Z, insertOnly = false) =>
  fc.assert(
    fc.asyncProperty(scenarios(!insertOnly), (sc) => check(sc, build, reference, insertOnly)),
    { numRuns: RUNS },
  );

// ---- properties ---------------------------------------------------------------------------------

describe('order keys: incremental equals from scratch (batchings, retractions, late events, restarts)', () => {
  test('scan after a map sees each group in (order key, value) order', () =>
    property(
      (c) =>
        c
          .map(strip)
          .groupBy((m) => m.g)
          .scan(0, placeStep)
          .ungroup(),
      (inputs) => places(mappedRecords(inputs)),
    ));

  test('reduce after a map sees each group in (order key, value) order, the same value once per place', () =>
    property(
      (c) =>
        c
          .map(strip)
          .groupBy((m) => m.g)
          .reduce((g, records, outputs) => {
            let n = 0;
            for (const [m, k] of records) for (let i = 0; i < k; i++) outputs.push([{ g, n: n++, v: m.v }, 1]);
          })
          .ungroup(),
      (inputs) => places(mappedRecords(inputs)),
    ));

  test('filter and flatMap carry the order key; every output of a flatMap gets its input’s', () =>
    property(
      (c) =>
        c
          .filter((r) => r.x === 0)
          .flatMap((r) => [strip(r), { g: r.g, v: 'copy' }])
          .groupBy((m) => m.g)
          .scan(0, placeStep)
          .ungroup(),
      (inputs) => {
        const z: Records = new Map();
        for (const [value, m] of inputs.values()) {
          const r = value as In;
          if (r.x !== 0) continue;
          addRecord(z, r.o, strip(r), m);
          addRecord(z, r.o, { g: r.g, v: 'copy' }, m);
        }
        return places(z);
      },
    ));

  for (const insertOnly of [false, true]) {
    test(`maxBy outputs the winning record with its order key (ties: value, then order key)${insertOnly ? ', insert-only' : ''}`, () =>
      property(
        (c) =>
          c
            .map(strip)
            .groupBy((m) => m.g)
            .maxBy((m) => m.v)
            .ungroup()
            .groupBy(() => 'all')
            .scan(0, (n: number, m: Mapped, emit) => {
              emit({ n, g: m.g, v: m.v });
              return n + 1;
            })
            .ungroup(),
        (inputs) => {
          const out: Z = new Map();
          const list = [...winners(mappedRecords(inputs)).values()].sort((a, b) =>
            refCompare([a[0], a[1]], [b[0], b[1]]),
          );
          list.forEach(([, value], n) => zAdd(out, { n, g: (value as Mapped).g, v: (value as Mapped).v }, 1));
          return out;
        },
        insertOnly,
      ));
  }

  test('scan outputs carry the order key of the record whose step emitted them', () =>
    property(
      (c) =>
        c
          .map(strip)
          .groupBy((m) => m.g)
          // Emits the same value at several places: each is its own record downstream.
          .scan(0, (n: number, m: Mapped, emit) => {
            emit({ v: m.v });
            return n + 1;
          })
          .ungroup()
          .groupBy(() => 'all')
          .scan(0, (n: number, r: Value, emit) => {
            emit({ n, v: (r as { v: Value }).v });
            return n + 1;
          })
          .ungroup(),
      (inputs) => {
        // Every present record emits {v} at its own order key; all of them in (order key, {v}) order.
        const emitted: Records = new Map();
        for (const list of sortedGroups(mappedRecords(inputs), (v) => (v as Mapped).g).values())
          for (const [order, value, m] of list) if (m > 0) addRecord(emitted, order, { v: (value as Mapped).v }, m);
        const out: Z = new Map();
        let n = 0;
        for (const list of sortedGroups(emitted, () => 'all').values())
          for (const [, value, m] of list)
            for (let i = 0; i < m; i++) zAdd(out, { n: n++, v: (value as { v: Value }).v }, 1);
        return out;
      },
    ));

  test('distinct and count beside an ordered scan see values only: no duplicates from order keys', () =>
    property(
      (c) => {
        const mapped = c.map(strip);
        // The scan makes the map carry order keys; distinct and count must not see them.
        const places = mapped
          .groupBy((m) => m.g)
          .scan(0, placeStep)
          .ungroup();
        const counts = mapped
          .distinct()
          .groupBy((m) => m.g)
          .count()
          .ungroup();
        return places.concat([counts.map((x) => ({ distinct: x }))]);
      },
      (inputs) => {
        const records = mappedRecords(inputs);
        const out = places(records);
        const values: Z = new Map();
        for (const [, value, m] of records.values()) zAdd(values, value, m);
        const counts = new Map<string, number>();
        for (const [value, m] of values.values())
          if (m > 0) counts.set((value as Mapped).g, (counts.get((value as Mapped).g) ?? 0) + 1);
        for (const [key, count] of counts) zAdd(out, { distinct: { key, count } }, 1);
        return out;
      },
    ));

  test('an explicit orderBy replaces the order key: (orderBy(value), value), copies of a value consolidated', () =>
    property(
      (c) =>
        c
          .map(strip)
          .groupBy((m) => m.g)
          .scan(0, placeStep, { orderBy: (m) => (typeof m.v === 'number' ? -m.v : 0) })
          .ungroup(),
      (inputs) => {
        const z: Records = new Map();
        for (const [value, m] of inputs.values()) {
          const s = strip(value as In);
          addRecord(z, typeof s.v === 'number' ? -s.v : 0, s, m);
        }
        return places(z);
      },
    ));
});

// ---- examples -----------------------------------------------------------------------------------

/** Events as the dataflow feeds them, with a payload whose fields sort in no causal way. */
function events(payloads: readonly Record<string, Value>[]): Update[] {
  // Lamport order is the reverse of the array order, and of the timestamps.
  return payloads.map((payload, i) => {
    const e = { lamport: 100 - i, stream: 's', offset: payloads.length - i, timestamp: 1000 + i, payload };
    return [e, 1, e.timestamp] as Update;
  });
}

/** A scan pairing started/stopped per machine over mapped records, by the causal order of the events. */
async function spans(rename: (r: Record<string, Value>) => Record<string, Value>, ordered = true) {
  const g = createGraph();
  const input = g.input<{ payload: Record<string, Value> }>('events', ordered ? { order: eventOrderKey } : {});
  g.output(
    'out',
    input
      .map((e) => rename(e.payload))
      .groupBy(() => 'Drill1')
      .scan({ open: null as Value }, (s: { open: Value }, r: Record<string, Value>, emit) => {
        const back = rename(r); // the rename is its own inverse
        if (back.type === 'started') return { open: back.count };
        if (s.open !== null) emit({ from: s.open, to: back.count });
        return { open: null };
      })
      .ungroup(),
  );
  // In causal order: started 1, stopped 2, started 3, stopped 4 (the array is in reverse).
  const batch = events([
    { type: 'stopped', count: 4 },
    { type: 'started', count: 3 },
    { type: 'stopped', count: 2 },
    { type: 'started', count: 1 },
  ]);
  return show((await g.step({ events: batch })).outputs.get('out') ?? []);
}

describe('order keys: examples', () => {
  test('a scan result does not change when a field is renamed to sort earlier', async () => {
    const same = (r: Record<string, Value>) => r;
    // `count` sorts before `type`; as `zcount` after it: in value order the two folds would differ.
    const swap = (r: Record<string, Value>) => {
      const { count, zcount, ...rest } = r;
      return count === undefined ? { ...rest, count: zcount } : { ...rest, zcount: count };
    };
    const expected = [
      [{ from: 1, to: 2 }, 1],
      [{ from: 3, to: 4 }, 1],
    ];
    assert.deepEqual(await spans(same), expected);
    assert.deepEqual(await spans(swap), expected);
    // Without order keys the fold follows the value order (count 1, 2, 3, 4 by `count` first, but
    // by `type` first with `zcount`), so at least one naming gives other rows.
    const unordered = [await spans(same, false), await spans(swap, false)];
    assert.ok(unordered.some((rows) => JSON.stringify(rows) !== JSON.stringify(expected)));
  });

  test('a reduce sees raw events in causal order, not by appId first', async () => {
    const g = createGraph();
    const input = g.input<Record<string, Value>>('events', { order: eventOrderKey });
    g.output(
      'out',
      input
        .groupBy(() => null)
        .reduce((_k, inputs, outputs) => {
          outputs.push([inputs.map(([e]) => (e as { lamport: number }).lamport), 1]);
        })
        .ungroup(),
    );
    const e = (lamport: number, appId: string, stream: string) => ({ lamport, stream, offset: 0, appId, timestamp: 0 });
    const batch: Update[] = [e(3, 'a', 's1'), e(1, 'z', 's2'), e(2, 'm', 's3'), e(2, 'b', 's4')].map(
      (x) => [x, 1, 0] as Update,
    );
    assert.deepEqual(show((await g.step({ events: batch })).outputs.get('out') ?? []), [[[1, 2, 2, 3], 1]]);
  });

  test('reduce outputs carry no order key: a downstream scan orders them by value', async () => {
    const g = createGraph();
    const input = g.input<In>('in', { order: orderOf });
    g.output(
      'out',
      input
        .groupBy((r) => r.g)
        .reduce((g, rs, out) => void out.push([{ g, n: rs.length }, 1]))
        .ungroup()
        .groupBy(() => 0)
        .scan(0, (n: number, r: Value, emit) => (emit({ n, r }), n + 1))
        .ungroup(),
    );
    const rec = (o: number, g: string): Update<In> => [{ o: [o, 's', 0], g, v: 0, x: 0 }, 1, 0];
    const out = (await g.step({ in: [rec(9, 'a'), rec(1, 'b'), rec(2, 'b')] })).outputs.get('out') ?? [];
    // {g: 'a'} sorts before {g: 'b'} although b's records came first causally.
    assert.deepEqual(show(out), [
      [{ n: 0, r: { g: 'a', n: 1 } }, 1],
      [{ n: 1, r: { g: 'b', n: 2 } }, 1],
    ]);
  });

  test('order keys are computed only when an operator downstream reads them', async () => {
    let calls = 0;
    const order = (r: In): Value => (calls++, r.o);
    const g = createGraph();
    const input = g.input<In>('in', { order });
    g.output(
      'max',
      input
        .groupBy((r) => r.g)
        .maxBy((r) => r.o[0])
        .ungroup(),
    );
    g.output(
      'scan',
      input
        .groupBy((r) => r.g)
        .scan(0, (n: number) => n + 1, { orderBy: (r) => r.x })
        .ungroup(),
    );
    await g.step({ in: [[{ o: [1, 's', 0], g: 'a', v: 0, x: 0 }, 1, 0]] });
    assert.equal(calls, 0);
  });

  test('an order key that is not a JSON value fails the step before anything changes', async () => {
    const g = createGraph();
    const input = g.input<{ t: number }>('in', { order: (r) => (r.t > 0 ? r.t : (undefined as unknown as Value)) });
    g.output(
      'out',
      input
        .groupBy(() => 0)
        .scan(0, (n: number, _r, emit) => (emit(n), n + 1))
        .ungroup(),
    );
    await assert.rejects(
      g.step({
        in: [
          [{ t: 1 }, 1, 0],
          [{ t: 0 }, 1, 0],
        ],
      }),
      /order key of update 1 is not a JSON value/,
    );
    const out = (await g.step({ in: [[{ t: 1 }, 1, 0]] })).outputs.get('out') ?? [];
    assert.deepEqual(show(out), [[0, 1]]);
  });

  test('an orderBy that throws skips that record (reported), the rest of the group folds', async () => {
    const g = createGraph();
    const input = g.input<{ t: number | null }>('in');
    g.output(
      'out',
      input
        .groupBy(() => 0)
        .reduce((_k, rs, out) => void out.push([rs.map(([r]) => (r as { t: number }).t), 1]), {
          orderBy: (r) => {
            if (r.t === null) throw new Error('no t');
            return -r.t;
          },
        })
        .ungroup(),
    );
    const r = await g.step({
      in: [
        [{ t: 1 }, 1, 0],
        [{ t: null }, 1, 0],
        [{ t: 3 }, 1, 0],
      ],
    });
    assert.deepEqual(show(r.outputs.get('out') ?? []), [[[3, 1], 1]]);
    assert.equal(r.skipped.length, 1);
    assert.match(String((r.skipped[0]!.error as Error).message), /no t/);
  });
});
