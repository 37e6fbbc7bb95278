/** The graph (graph.ts): outputs, refused inputs and graph changes, column batches. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, RetractionError } from '../../src/engine';
import { show, type KV } from './run';

describe('graph', () => {
  test('outputs with no change are absent; several outputs in one step', async () => {
    const g = createGraph();
    const i = g.input<KV>('in');
    g.output('all', i);
    g.output(
      'big',
      i.filter((x) => x.v > 10),
    );
    const r = await g.step(new Map([['in', [[{ k: 'a', v: 1 }, 1, 1]] as const]]));
    assert.deepEqual([...r.outputs.keys()], ['all']);
  });

  test('refuses unknown inputs, malformed updates, late graph changes and overlapping steps', async () => {
    const g = createGraph();
    const i = g.input<number>('in');
    g.output('out', i);
    await assert.rejects(g.step({ nope: [] }), /no input named "nope"/);
    await assert.rejects(g.step({ in: [[1, 0.5, 1]] }), /not an integer/);
    await assert.rejects(g.step({ in: [[1, 1, NaN]] }), /time/);
    await assert.rejects(g.step({ in: [[1, 1] as unknown as [number, number, number]] }), /\[value, diff, time\]/);
    await g.step({ in: [[1, 1, 1]] });
    assert.throws(() => i.map((x) => x + 1), /already run a step/);
    const slow = createGraph();
    slow.output(
      'out',
      slow.input<number>('in').map(async (x) => x),
    );
    const first = slow.step({ in: [[1, 1, 1]] });
    await assert.rejects(slow.step({ in: [[2, 1, 1]] }), /still running/);
    assert.deepEqual((await first).outputs.get('out'), [[1, 1, 1]]);
    assert.throws(() => createGraph().input('x') && g.output('o', createGraph().input('y')), /another graph/);
  });

  test('column batches: the same results as tuples; diffs default to 1; malformed columns are refused', async () => {
    const build = () => {
      const g = createGraph();
      const i = g.input<KV>('in', { insertOnly: true });
      g.output(
        'max',
        i
          .groupBy((r) => r.k)
          .maxBy((r) => r.v)
          .ungroup(),
      );
      g.output(
        'sum',
        i
          .groupBy((r) => r.k)
          .sum((r) => r.v)
          .ungroup(),
      );
      return g;
    };
    const values: KV[] = [
      { k: 'a', v: 1 },
      { k: 'b', v: 5 },
      { k: 'a', v: 3 },
    ];
    const tuples = await build().step({ in: values.map((v, n) => [v, 1, n] as const) });
    const columns = await build().step({ in: { values, times: [0, 1, 2] } });
    assert.deepEqual([...columns.outputs], [...tuples.outputs]);
    const g = build();
    await assert.rejects(g.step({ in: { values, times: [0, 1] } }), /columns differ in length/);
    await assert.rejects(g.step({ in: { values, times: [0, 1, 2], diffs: [1, 1] } }), /columns differ in length/);
    await assert.rejects(g.step({ in: { values, times: [0, 1, 2], diffs: [1, -1, 1] } }), RetractionError);
    await assert.rejects(g.step({ in: { values: [undefined as unknown as KV], times: [0] } }), /has no value/);
    await assert.rejects(g.step({ in: { times: [0] } as never }), /neither an array of updates nor/);
    // A refused batch changed nothing.
    assert.deepEqual(
      show((await g.step({ in: { values: [{ k: 'a', v: 2 }], times: [3] } })).outputs.get('max') ?? []),
      [[{ k: 'a', v: 2 }, 1]],
    );
  });
});
