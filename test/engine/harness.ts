/**
 * Property-test harness: a random final collection, plus (optionally) values inserted and
 * retracted again, in a random arrival order, split into random batches. After every step the
 * engine's output batch must be consolidated and equal to the change of the from-scratch result
 * (so it never holds more diffs than the real change), and the accumulated outputs must equal the
 * from-scratch result over the final collection.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGraph, type Collection, type ColumnBatch, type Update, type Value } from '../../src/engine';
import { refKey, zAdd, zMinus, zShow, type Z } from './reference';

export interface Scenario<T extends Value> {
  readonly batches: Update<T>[][];
}

/** Runs per property; at least 200 as the issue requires (override with FC_RUNS). */
export const RUNS = Math.max(200, Number(process.env.FC_RUNS ?? 200));
// FC_SEED: every property of the files importing this runs from that seed (to repeat a reported run).
if (process.env.FC_SEED !== undefined)
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: Number(process.env.FC_SEED) });

function shuffle<X>(xs: X[], seed: number): X[] {
  let a = seed >>> 0 || 1;
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    a ^= a << 13;
    a ^= a >>> 17;
    a ^= a << 5;
    const j = (a >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Scenarios over values from `value`: the final collection, and with `retractions` also noise
 * (values inserted and retracted), shuffled and cut into batches.
 */
export function scenario<T extends Value>(
  value: fc.Arbitrary<T>,
  options: { retractions: boolean; maxLength?: number },
): fc.Arbitrary<Scenario<T>> {
  const max = options.maxLength ?? 24;
  return fc
    .record({
      final: fc.array(fc.tuple(value, fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 9 })), {
        maxLength: max,
      }),
      noise: options.retractions
        ? fc.array(fc.tuple(value, fc.integer({ min: 0, max: 9 })), { maxLength: max / 2 })
        : fc.constant([]),
      seed: fc.integer(),
      cuts: fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 6 }),
    })
    .map(({ final, noise, seed, cuts }) => {
      const updates: Update<T>[] = [];
      for (const [v, m, t] of final) updates.push([v, m, t]);
      for (const [v, t] of noise) updates.push([v, 1, t], [v, -1, t + 1]);
      const shuffled = shuffle(updates, seed);
      const points = [...new Set(cuts.map((c) => c % (shuffled.length + 1)))].sort((a, b) => a - b);
      const batches: Update<T>[][] = [];
      let from = 0;
      for (const p of points) {
        batches.push(shuffled.slice(from, p));
        from = p;
      }
      batches.push(shuffled.slice(from));
      return { batches };
    });
}

export function assertConsolidated(batch: readonly Update[], label: string): void {
  const seen = new Set<string>();
  for (const [v, d] of batch) {
    assert.notEqual(d, 0, `${label}: zero diff in output`);
    const k = refKey(v);
    assert.ok(!seen.has(k), `${label}: value ${k} appears twice in one output batch`);
    seen.add(k);
  }
}

/**
 * Checks one pipeline: `build` wires it in the engine, `reference` computes it from scratch.
 * Returns nothing; throws (fails the property) on any difference.
 */
export async function checkIncremental<T extends Value>(
  sc: Scenario<T>,
  insertOnly: boolean,
  build: (input: Collection<T>) => Collection,
  reference: (z: Z) => Z,
): Promise<void> {
  const g = createGraph();
  g.output('out', build(g.input<T>('in', { insertOnly })));
  const collection: Z = new Map();
  let before = reference(collection);
  const accumulated: Z = new Map();
  const given: { input: unknown; text: string }[] = [];
  for (const [i, batch] of sc.batches.entries()) {
    for (const [v, d] of batch) zAdd(collection, v, d);
    // Every other step as columns: both forms of input are checked for changes at the end.
    const input = i % 2 === 1 ? asColumns(batch) : batch;
    given.push({ input, text: JSON.stringify(input) });
    const { outputs, skipped } = await g.step({ in: input }, { onError: 'stop' });
    assert.equal(skipped.length, 0);
    const out = outputs.get('out') ?? [];
    assertConsolidated(out, `step ${i}`);
    const after = reference(collection);
    const got: Z = new Map();
    for (const [v, d] of out) zAdd(got, v, d);
    assert.deepEqual(
      zShow(got),
      zShow(zMinus(after, before)),
      `step ${i}: output differs from the change of the from-scratch result`,
    );
    for (const [v, d] of out) zAdd(accumulated, v, d);
    before = after;
  }
  assert.deepEqual(
    zShow(accumulated),
    zShow(reference(collection)),
    'accumulated output differs from the from-scratch result',
  );
  // Values are never mutated, nor the columns an input was given (NB in src/dataflow/processor.ts
  // eventValue and src/engine/graph.ts fromColumnBatch): the events are the engine's values.
  for (const [i, { input, text }] of given.entries()) {
    assert.equal(JSON.stringify(input), text, `step ${i}: the engine changed the batch or the values it was given`);
  }
}

/** The batch as columns `{values, diffs, times}`. */
function asColumns<T extends Value>(batch: Update<T>[]): ColumnBatch<T> {
  return { values: batch.map((u) => u[0]), diffs: batch.map((u) => u[1]), times: batch.map((u) => u[2]) };
}
