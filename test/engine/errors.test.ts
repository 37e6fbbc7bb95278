/** User functions that throw or reject: skip (reported) or stop (OperatorError); never half-updated. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, OperatorError, type Multiset, type Value } from '../../src/engine';
import { evaluateAll, SKIP } from '../../src/engine/evaluate';
import { StepContext } from '../../src/engine/step-context';
import { show, single } from './run';

type KV = { k: string; v: number };
const boom = (): never => {
  throw new Error('boom');
};

describe('skip and stop', () => {
  test('skip: the failing input is left out and reported with the operator name (or a generated id)', async () => {
    const g = createGraph();
    const i = g.input<KV>('in');
    g.output(
      'named',
      i.map((x) => (x.v === 2 ? boom() : { k: x.k }), { name: 'node-42' }),
    );
    g.output(
      'generated',
      i.filter((x) => (x.v === 3 ? boom() : true)),
    );
    const r = await g.step({
      in: [
        [{ k: 'a', v: 1 }, 1, 1],
        [{ k: 'b', v: 2 }, 1, 1],
        [{ k: 'c', v: 3 }, 1, 1],
      ],
    });
    assert.deepEqual(show(r.outputs.get('named')!), [
      [{ k: 'a' }, 1],
      [{ k: 'c' }, 1],
    ]);
    assert.deepEqual(show(r.outputs.get('generated')!), [
      [{ k: 'a', v: 1 }, 1],
      [{ k: 'b', v: 2 }, 1],
    ]);
    assert.deepEqual(
      r.skipped.map((s) => [s.operator, s.value, (s.error as Error).message]),
      [
        ['node-42', { k: 'b', v: 2 }, 'boom'],
        ['filter#1', { k: 'c', v: 3 }, 'boom'],
      ],
    );
  });

  test('results that are not values count as failures (map returning undefined or NaN, a NaN sort key)', async () => {
    const m = single<KV>((c) =>
      c.map((x) => (x.v === 1 ? (undefined as unknown as Value) : { n: x.v === 2 ? NaN : x.v })),
    );
    const r = await m.graph.step({
      in: [
        [{ k: 'a', v: 1 }, 1, 1],
        [{ k: 'a', v: 2 }, 1, 1],
        [{ k: 'a', v: 3 }, 1, 1],
      ],
    });
    assert.deepEqual(r.outputs.get('out'), [[{ n: 3 }, 1, 1]]);
    assert.equal(r.skipped.length, 2);
    assert.match((r.skipped[0].error as Error).message, /undefined/);
    assert.match((r.skipped[1].error as Error).message, /NaN/);
    const max = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .maxBy((x) => (x.v === 1 ? NaN : x.v))
        .ungroup(),
    );
    const r2 = await max.graph.step({
      in: [
        [{ k: 'a', v: 1 }, 1, 1],
        [{ k: 'a', v: 0 }, 1, 1],
      ],
    });
    assert.deepEqual(r2.outputs.get('out'), [[{ k: 'a', v: 0 }, 1, 1]]);
    assert.equal(r2.skipped.length, 1);
  });

  test('stop: OperatorError names the operator and the value; the graph must then be rebuilt', async () => {
    const m = single<KV>((c) => c.map((x) => (x.v === 2 ? boom() : x), { name: 'mapper' }));
    await assert.rejects(
      m.step(
        [
          [{ k: 'a', v: 1 }, 1, 1],
          [{ k: 'a', v: 2 }, 1, 1],
        ],
        { onError: 'stop' },
      ),
      (e: unknown) => {
        assert.ok(e instanceof OperatorError);
        assert.equal(e.operator, 'mapper');
        assert.deepEqual(e.value, { k: 'a', v: 2 });
        assert.equal((e.cause as Error).message, 'boom');
        return true;
      },
    );
    await assert.rejects(m.step([[{ k: 'a', v: 1 }, 1, 1]]), /rebuild/);
  });

  test('a failing score function leaves the group untouched by that input', async () => {
    for (const insertOnly of [true, false]) {
      const max = single<KV>(
        (c) =>
          c
            .groupBy((x) => x.k)
            .maxBy((x) => (x.v > 100 ? boom() : x.v))
            .ungroup(),
        insertOnly,
      );
      await max.step([[{ k: 'a', v: 5 }, 1, 1]]);
      const g = max.graph;
      const r = await g.step({
        in: [
          [{ k: 'a', v: 500 }, 1, 2],
          [{ k: 'a', v: 6 }, 1, 2],
        ],
      });
      assert.deepEqual(show(r.outputs.get('out')!), [
        [{ k: 'a', v: 5 }, -1],
        [{ k: 'a', v: 6 }, 1],
      ]);
      assert.equal(r.skipped.length, 1);
    }
  });
});

describe('async user functions', () => {
  test('promises are awaited once per batch; rejections are skipped like throws', async () => {
    const g = createGraph();
    const i = g.input<KV>('in');
    g.output(
      'out',
      i
        .map(async (x) => (x.v === 2 ? Promise.reject(new Error('async boom')) : { k: x.k, w: x.v * 10 }))
        .filter((x) => x.w > 0),
    );
    const r = await g.step({
      in: [
        [{ k: 'a', v: 1 }, 1, 1],
        [{ k: 'b', v: 2 }, 1, 1],
        [{ k: 'c', v: 0 }, 1, 1],
      ],
    });
    assert.deepEqual(r.outputs.get('out'), [[{ k: 'a', w: 10 }, 1, 1]]);
    assert.equal((r.skipped[0].error as Error).message, 'async boom');
  });

  test('async reduce, groupBy, maxBy and sum', async () => {
    const g = createGraph();
    const i = g.input<KV>('in');
    const grouped = i.groupBy(async (x) => x.k);
    g.output('max', grouped.maxBy(async (x) => x.v).ungroup());
    g.output('sum', grouped.sum(async (x) => x.v).ungroup());
    g.output('red', grouped.reduce(async (key, inputs) => [[{ key, n: inputs.length }, 1] as const]).ungroup());
    const r = await g.step({
      in: [
        [{ k: 'a', v: 1 }, 1, 1],
        [{ k: 'a', v: 4 }, 1, 1],
      ],
    });
    assert.deepEqual(r.outputs.get('max'), [[{ k: 'a', v: 4 }, 1, 1]]);
    assert.deepEqual(r.outputs.get('sum'), [[{ key: 'a', sum: 5 }, 1, 1]]);
    assert.deepEqual(r.outputs.get('red'), [[{ key: 'a', n: 2 }, 1, 1]]);
  });

  test('synchronous functions are evaluated without promises (no microtask per value)', () => {
    const ctx = new StepContext('skip');
    const r = evaluateAll(ctx, 'op', (v) => (v === 2 ? boom() : (v as number) * 2), [1, 2, 3], null);
    assert.ok(Array.isArray(r), 'a plain array, not a promise');
    assert.deepEqual(r, [2, SKIP, 6]);
    const p = evaluateAll(ctx, 'op', (v) => (v === 1 ? Promise.resolve(1) : v), [1, 2], null);
    assert.ok(p instanceof Promise);
  });

  test('stop with pending promises: no unhandled rejection escapes', async () => {
    let unhandled = 0;
    const onUnhandled = () => unhandled++;
    process.on('unhandledRejection', onUnhandled);
    try {
      const m = single<number>((c) => c.map((x) => (x === 1 ? Promise.reject(new Error('later')) : boom())));
      await assert.rejects(
        m.step(
          [
            [1, 1, 1],
            [2, 1, 1],
          ],
          { onError: 'stop' },
        ),
        OperatorError,
      );
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(unhandled, 0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('reduce failures', () => {
  /** Fails whenever the group holds a value with v = 13. */
  const picky = (key: Value, inputs: Multiset<Value>, outputs: [Value, number][]) => {
    let sum = 0;
    for (const [x, m] of inputs) {
      if ((x as KV).v === 13) throw new Error('unlucky');
      sum += (x as KV).v * m;
    }
    outputs.push([{ key, sum }, 1]);
  };

  test('skip: the failing input is left out of its group deterministically, other inputs and groups go on', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce(picky, { name: 'usage' })
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({
      in: [
        [{ k: 'a', v: 13 }, 1, 2],
        [{ k: 'a', v: 2 }, 1, 2],
        [{ k: 'a', v: 20 }, 1, 2],
        [{ k: 'b', v: 5 }, 1, 2],
      ],
    });
    assert.deepEqual(show(res.outputs.get('out')!), [
      [{ key: 'a', sum: 1 }, -1],
      [{ key: 'a', sum: 23 }, 1],
      [{ key: 'b', sum: 5 }, 1],
    ]);
    assert.equal(res.skipped.length, 1);
    assert.equal(res.skipped[0].operator, 'usage');
    assert.equal(res.skipped[0].value, 'a', 'the group key');
    assert.deepEqual(res.skipped[0].input, { k: 'a', v: 13 }, 'and the input left out');
    // the state is as if v=13 never came: retracting 2 works from sum 23
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 2 }, -1, 3]])), [
      [{ key: 'a', sum: 21 }, 1],
      [{ key: 'a', sum: 23 }, -1],
    ]);
  });

  test('skip with a single update: the group keeps its state', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce(picky)
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({ in: [[{ k: 'a', v: 13 }, 1, 2]] });
    assert.equal(res.outputs.size, 0);
    assert.deepEqual(res.skipped[0].input, { k: 'a', v: 13 });
    assert.equal(r.graph.stateSize(), 2, 'one input and one output');
  });

  test('invalid reduce outputs are failures too', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs) => (inputs.length > 1 ? [[{ key, bad: NaN }, 1]] : [[{ key }, 1]]))
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    const res = await r.graph.step({ in: [[{ k: 'a', v: 2 }, 1, 2]] });
    assert.equal(res.outputs.size, 0);
    assert.match((res.skipped[0].error as Error).message, /NaN/);
  });

  test('stop: OperatorError with the group key, and no group of the batch is committed', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce(picky, { name: 'usage' })
        .ungroup(),
    );
    await assert.rejects(
      r.step(
        [
          [{ k: 'a', v: 1 }, 1, 1],
          [{ k: 'b', v: 13 }, 1, 1],
        ],
        { onError: 'stop' },
      ),
      (e: unknown) => {
        assert.ok(e instanceof OperatorError);
        assert.equal(e.operator, 'usage');
        assert.equal(e.value, 'b');
        return true;
      },
    );
    assert.equal(r.graph.stateSize(), 0, 'group a was computed but not committed');
  });
});
