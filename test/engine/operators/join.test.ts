/**
 * `join` (inner and left outer): every step's output equals the change of a from-scratch join of
 * the two sides so far (written here naively over Z-sets), over random batchings of both sides,
 * retractions on either side (also before their insertions), late records (any arrival order)
 * and restarts (a new graph fed everything so far).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGraph, type Collection, type Grouped, type Update, type Value } from '../../../src/engine';
import { SCAN_LIMIT } from '../../../src/engine/operators/join';
import { assertConsolidated, RUNS } from '../harness';
import { refCompare, refKey, zAdd, zMinus, zShow, type Z } from '../reference';
import { show } from '../run';

type Rec = { k: string; v: Value; o: number };
type Side = 'l' | 'r';

const rec: fc.Arbitrary<Rec> = fc.record({
  k: fc.constantFrom('a', 'b', 'c'),
  v: fc.constantFrom<Value>(0, 1, 'x', { y: 2 }),
  o: fc.integer({ min: 0, max: 3 }),
});

/**
 * Records of few keys with many distinct values: a key's side grows beyond SCAN_LIMIT records (then
 * found through an index by identity) and shrinks below it again, with records moved on removal.
 */
const wideRec: fc.Arbitrary<Rec> = fc.record({
  k: fc.constantFrom('a', 'b'),
  v: fc.oneof(
    fc.integer({ min: 0, max: 2 * SCAN_LIMIT }),
    fc.integer({ min: 0, max: SCAN_LIMIT }).map((i): Value => ({ y: i })),
  ),
  o: fc.integer({ min: 0, max: 1 }),
});

interface Scenario {
  readonly batches: [Side, Update<Rec>][][];
  readonly restarts: ReadonlySet<number>;
}

const scenariosOf = (rec: fc.Arbitrary<Rec>, size: number, minLength = 0): fc.Arbitrary<Scenario> =>
  fc
    .record({
      final: fc.array(fc.tuple(fc.constantFrom<Side>('l', 'r'), rec, fc.integer({ min: 1, max: 2 })), {
        minLength,
        maxLength: size,
      }),
      noise: fc.array(fc.tuple(fc.constantFrom<Side>('l', 'r'), rec, fc.boolean()), {
        minLength: minLength / 2,
        maxLength: size / 2,
      }),
      order: fc.array(fc.nat(), { maxLength: 2 * size }),
      cuts: fc.array(fc.nat({ max: 1000 }), { maxLength: 6 }),
      restarts: fc.array(fc.nat({ max: 6 }), { maxLength: 2 }),
    })
    .map(({ final, noise, order, cuts, restarts }) => {
      const updates: [Side, Update<Rec>][] = [];
      for (const [side, r, m] of final) updates.push([side, [r, m, r.o]]);
      // Noise: inserted and retracted, the retraction possibly first.
      for (const [side, r, first] of noise) {
        const pair: [Side, Update<Rec>][] = [
          [side, [r, 1, r.o]],
          [side, [r, -1, r.o]],
        ];
        updates.push(...(first ? pair : pair.reverse()));
      }
      const keyed = updates.map((u, i) => [order[i % Math.max(1, order.length)] ?? 0, i, u] as const);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const shuffled = keyed.map(([, , u]) => u);
      const points = [...new Set(cuts.map((c) => c % (shuffled.length + 1)))].sort((a, b) => a - b);
      const batches: [Side, Update<Rec>][][] = [];
      let from = 0;
      for (const p of [...points, shuffled.length]) {
        batches.push(shuffled.slice(from, p));
        from = p;
      }
      return { batches, restarts: new Set(restarts) };
    });
const scenarios = scenariosOf(rec, 16);

/** The join from scratch: `{key, left, right}` per pair of a key, unmatched left records with null. */
function joined(l: Z, r: Z, kind: 'inner' | 'left'): Z {
  const out: Z = new Map();
  for (const [a, ma] of l.values()) {
    const key = (a as Rec).k;
    let matched = false;
    for (const [b, mb] of r.values()) {
      if ((b as Rec).k !== key) continue;
      matched = true;
      zAdd(out, { key, left: a, right: b }, ma * mb);
    }
    if (kind === 'left' && !matched) zAdd(out, { key, left: a, right: null }, ma);
  }
  return out;
}

type Build = (l: Grouped<string, Rec>, r: Grouped<string, Rec>) => Collection;

async function check(sc: Scenario, build: Build, reference: (l: Z, r: Z) => Z): Promise<void> {
  const l: Z = new Map();
  const r: Z = new Map();
  const start = async () => {
    const g = createGraph();
    const order = (x: Rec): Value => x.o;
    const byKey = (x: Rec) => x.k;
    g.output('out', build(g.input<Rec>('l', { order }).groupBy(byKey), g.input<Rec>('r', { order }).groupBy(byKey)));
    const replay = (z: Z): Update<Rec>[] => [...z.values()].map(([v, m]) => [v as Rec, m, 0]);
    if (l.size + r.size > 0) await g.step({ l: replay(l), r: replay(r) }, { onError: 'stop' });
    return g;
  };
  let graph = await start();
  let before = reference(l, r);
  const accumulated: Z = new Map();
  for (const [i, batch] of sc.batches.entries()) {
    if (sc.restarts.has(i)) graph = await start();
    const inputs: Record<Side, Update<Rec>[]> = { l: [], r: [] };
    for (const [side, u] of batch) {
      inputs[side].push(u);
      zAdd(side === 'l' ? l : r, u[0], u[1]);
    }
    const { outputs } = await graph.step(inputs, { onError: 'stop' });
    const out = outputs.get('out') ?? [];
    assertConsolidated(out, `step ${i}`);
    const after = reference(l, r);
    const got: Z = new Map();
    for (const [v, d] of out) zAdd(got, v, d);
    assert.deepEqual(zShow(got), zShow(zMinus(after, before)), `step ${i}: output differs from the reference's change`);
    for (const [v, d] of out) zAdd(accumulated, v, d);
    before = after;
  }
  assert.deepEqual(zShow(accumulated), zShow(reference(l, r)), 'accumulated output differs from the reference');
}

const property = (build: Build, reference: (l: Z, r: Z) => Z, from = scenarios) =>
  fc.assert(
    fc.asyncProperty(from, (sc) => check(sc, build, reference)),
    { numRuns: RUNS },
  );

describe('join: incremental equals from scratch (batchings, retractions on either side, late records, restarts)', () => {
  for (const kind of ['inner', 'left'] as const) {
    test(`${kind} join`, () =>
      property(
        (l, r) => l.join(r, { kind }).ungroup(),
        (l, r) => joined(l, r, kind),
      ));
  }

  for (const kind of ['inner', 'left'] as const) {
    test(`${kind} join, keys with more records than SCAN_LIMIT (${SCAN_LIMIT}) on a side`, () =>
      property(
        (l, r) => l.join(r, { kind }).ungroup(),
        (l, r) => joined(l, r, kind),
        scenariosOf(wideRec, 6 * SCAN_LIMIT, 4 * SCAN_LIMIT),
      ));
  }

  test('rows carry the later order key of their two records (left outer: the left record’s)', () =>
    property(
      (l, r) =>
        l
          .join(r, { kind: 'left' })
          .ungroup()
          .groupBy(() => 'all')
          .scan(0, (n: number, row: Value, emit) => {
            emit({ n, row });
            return n + 1;
          })
          .ungroup(),
      (l, r) => {
        // Rows as (order key, row) records, numbered in (order key, row) order.
        const records: [number, Value, number][] = [];
        for (const [row, m] of joined(l, r, 'left').values()) {
          const { left, right } = row as { left: Rec; right: Rec | null };
          records.push([Math.max(left.o, right?.o ?? -1), row, m]);
        }
        // The same row can come from records at different places: each place is its own record.
        const byPlace = new Map<string, [number, Value, number]>();
        for (const [o, row, m] of records) {
          const k = refKey([o, row]);
          const e = byPlace.get(k);
          if (e) e[2] += m;
          else byPlace.set(k, [o, row, m]);
        }
        const sorted = [...byPlace.values()].sort((a, b) => refCompare([a[0], a[1]], [b[0], b[1]]));
        const out: Z = new Map();
        let n = 0;
        for (const [, row, m] of sorted) for (let i = 0; i < m; i++) zAdd(out, { n: n++, row }, 1);
        return out;
      },
    ));
});

describe('join: examples', () => {
  const step = async (
    g: ReturnType<typeof createGraph>,
    l: Update<Value>[],
    r: Update<Value>[],
  ): Promise<[Value, number][]> => show((await g.step({ l, r })).outputs.get('out') ?? []);

  const graph = (kind: 'inner' | 'left') => {
    const g = createGraph();
    const l = g.input<{ order: string; step: string }>('l').groupBy((x) => x.order);
    const r = g.input<{ order: string; machine: string }>('r').groupBy((x) => x.order);
    g.output('out', l.join(r, { kind }).ungroup());
    return g;
  };

  test('left outer: a left record waits with right null, is matched when its right record comes, and unmatched again when it is retracted', async () => {
    const g = graph('left');
    const step1 = { order: '4711', step: 'hole drilling' };
    const span = { order: '4711', machine: 'Drill1' };
    assert.deepEqual(await step(g, [[step1, 1, 0]], []), [[{ key: '4711', left: step1, right: null }, 1]]);
    assert.deepEqual(await step(g, [], [[span, 1, 0]]), [
      [{ key: '4711', left: step1, right: null }, -1],
      [{ key: '4711', left: step1, right: span }, 1],
    ]);
    assert.deepEqual(await step(g, [], [[span, -1, 0]]), [
      [{ key: '4711', left: step1, right: null }, 1],
      [{ key: '4711', left: step1, right: span }, -1],
    ]);
    assert.deepEqual(await step(g, [[step1, -1, 0]], []), [[{ key: '4711', left: step1, right: null }, -1]]);
  });

  test('inner: a record arriving on both sides in one batch, and two right records of a key', async () => {
    const g = graph('inner');
    const s = { order: '1', step: 'a' };
    const m1 = { order: '1', machine: 'Drill1' };
    const m2 = { order: '1', machine: 'Drill2' };
    assert.deepEqual(
      await step(
        g,
        [[s, 1, 0]],
        [
          [m1, 1, 0],
          [m2, 1, 0],
        ],
      ),
      [
        [{ key: '1', left: s, right: m1 }, 1],
        [{ key: '1', left: s, right: m2 }, 1],
      ],
    );
    // A batch that retracts and re-inserts a record on both sides changes nothing.
    assert.deepEqual(
      await step(
        g,
        [
          [s, -1, 0],
          [s, 1, 0],
        ],
        [
          [m1, 1, 0],
          [m1, -1, 0],
        ],
      ),
      [],
    );
    assert.equal(g.stateSize(), 3);
  });

  test('one update per row even unconsolidated: a pair that both terms of the change produce is summed', async () => {
    const g = createGraph();
    const l = g.input<{ order: string }>('l').groupBy((x) => x.order);
    const r = g.input<{ order: string; m: string }>('r').groupBy((x) => x.order);
    g.output('out', l.join(r, { kind: 'left' }).ungroup(), { consolidate: false });
    const a = { order: '1' };
    const b = { order: '1', m: 'x' };
    await g.step({ l: [], r: [[b, 1, 0]] });
    // a arrives while b's multiplicity goes from 1 to 2: ΔL ⋈ R_old and L_new ⋈ ΔR both hold (a, b).
    const out = (await g.step({ l: [[a, 1, 0]], r: [[b, 1, 0]] })).outputs.get('out') ?? [];
    assert.deepEqual(
      out.map(([v, d]) => [v, d]),
      [[{ key: '1', left: a, right: b }, 2]],
    );
  });

  test(`a key with more changes in one batch than a record list scans (SCAN_LIMIT ${SCAN_LIMIT}): repeats summed, cancellations dropped, retractions matched`, async () => {
    const g = graph('left');
    const n = 3 * SCAN_LIMIT;
    const s = Array.from({ length: 2 * n }, (_, i) => ({ order: '1', step: `s${i}` }));
    const m = { order: '1', machine: 'Drill1' };
    const row = (i: number): Value => ({ key: '1', left: s[i], right: m });
    const sorted = (xs: [Value, number][]) => [...xs].sort((a, b) => refCompare(a[0], b[0]));
    // s0 twice, s1 inserted and retracted in the same batch (cancels: no row), the others once.
    const first: Update<Value>[] = s.slice(0, n).map((x) => [x, 1, 0]);
    first.push([s[0], 1, 0], [s[1], -1, 0]);
    assert.deepEqual(
      sorted(await step(g, first, [[m, 1, 0]])),
      sorted([[row(0), 2], ...s.slice(2, n).map((_, i): [Value, number] => [row(i + 2), 1])]),
    );
    // Retract s0 (both copies) and s2 … s(n/3 - 1), retract and re-add s1 (not there: cancels), add s(n) … s(2n - 1).
    const second: Update<Value>[] = [
      [s[0], -1, 0],
      [s[1], -1, 0],
      [s[0], -1, 0],
      [s[1], 1, 0],
    ];
    second.push(
      ...s.slice(2, n / 3).map((x): Update<Value> => [x, -1, 0]),
      ...s.slice(n).map((x): Update<Value> => [x, 1, 0]),
    );
    assert.deepEqual(
      sorted(await step(g, second, [])),
      sorted([
        [row(0), -2],
        ...s.slice(2, n / 3).map((_, i): [Value, number] => [row(i + 2), -1]),
        ...s.slice(n).map((_, i): [Value, number] => [row(n + i), 1]),
      ]),
    );
    assert.equal(g.stateSize(), 1 + (n - n / 3) + n);
  });

  test('compaction forgets old records of both sides silently; later records join only what is retained', async () => {
    const g = graph('inner');
    const s = { order: '1', step: 'a' };
    const m1 = { order: '1', machine: 'Drill1' };
    await step(g, [[s, 1, 10]], [[m1, 1, 5]]);
    g.compact(8); // forgets m1 (time 5), keeps s (time 10)
    assert.equal(g.stateSize(), 1);
    const m2 = { order: '1', machine: 'Drill2' };
    assert.deepEqual(await step(g, [], [[m2, 1, 20]]), [[{ key: '1', left: s, right: m2 }, 1]]);
  });

  test('the two sides must belong to the same graph, and kind is inner or left', () => {
    const g = createGraph();
    const other = createGraph();
    const a = g.input('a').groupBy(() => 0);
    assert.throws(() => a.join(other.input('b').groupBy(() => 0)), /another graph/);
    assert.throws(() => a.join(a, { kind: 'full' as 'left' }), /inner' or 'left'/);
  });
});
