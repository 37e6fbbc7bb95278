/** User functions that throw or reject: skip (reported) or stop (OperatorError); never half-updated. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, OperatorError, type Multiset, type Value } from '../../src/engine';
import { evaluateAll, SKIP } from '../../src/engine/evaluate';
import { StepContext } from '../../src/engine/step-context';
import { show, single, type KV } from './run';

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

  test('resultsChecked: map and groupBy leave the check to the caller (whose throw still skips)', async () => {
    // The caller's check, as the nodes' toValue: a Value or an error.
    const checked = (r: unknown): Value => {
      if (typeof r === 'number' && !Number.isFinite(r)) throw new TypeError(`caller: ${r} is not a value`);
      return r as Value;
    };
    const build = (resultsChecked: boolean) =>
      single<KV>((c) =>
        c
          .map((x) => ({ k: x.k, n: checked(x.v === 2 ? NaN : x.v * 10) }), { resultsChecked })
          .groupBy((x) => checked(x.k), { resultsChecked })
          .count()
          .ungroup(),
      );
    const batch = {
      in: [
        [{ k: 'a', v: 1 }, 1, 1],
        [{ k: 'a', v: 2 }, 1, 1],
        [{ k: 'b', v: 3 }, 1, 2],
      ] as [KV, number, number][],
    };
    const trusted = await build(true).graph.step(batch);
    const plain = await build(false).graph.step(batch);
    assert.deepEqual(trusted.outputs.get('out'), plain.outputs.get('out'));
    assert.equal(trusted.skipped.length, 1);
    assert.match((trusted.skipped[0].error as Error).message, /caller: NaN/);
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
