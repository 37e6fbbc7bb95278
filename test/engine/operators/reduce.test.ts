/** `reduce` (operators/reduce.ts): sorted consolidated inputs, minimal output changes, touched groups only, failures. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OperatorError, type Multiset, type Value } from '../../../src/engine';
import { show, single, type KV } from '../run';

describe('reduce', () => {
  test('sees consolidated inputs sorted by value, with multiplicities; emits only the output difference', async () => {
    const seen: Multiset<Value>[] = [];
    const r = single<{ lamport: number; x: string }>((c) =>
      c
        .groupBy(() => 'g')
        .reduce((key, inputs, outputs) => {
          seen.push(inputs.map(([v, m]) => [v, m] as const));
          for (const [v, m] of inputs) outputs.push([{ key, x: (v as { x: string }).x }, m]);
        })
        .ungroup(),
    );
    const out1 = await r.step([
      [{ x: 'c', lamport: 3 }, 1, 1],
      [{ lamport: 1, x: 'a' }, 1, 1],
      [{ lamport: 3, x: 'c' }, 1, 1],
      [{ lamport: 2, x: 'b' }, 1, 1],
      [{ lamport: 2, x: 'b' }, -1, 1],
    ]);
    assert.deepEqual(seen[0], [
      [{ lamport: 1, x: 'a' }, 1],
      [{ x: 'c', lamport: 3 }, 2],
    ]);
    assert.deepEqual(show(out1), [
      [{ key: 'g', x: 'a' }, 1],
      [{ key: 'g', x: 'c' }, 2],
    ]);
    const out2 = await r.step([[{ lamport: 0, x: 'z' }, 1, 2]]);
    assert.deepEqual(
      seen[1].map(([v]) => (v as { lamport: number }).lamport),
      [0, 1, 3],
    );
    assert.deepEqual(show(out2), [[{ key: 'g', x: 'z' }, 1]], 'unchanged outputs are not re-emitted');
  });

  test('only groups touched by a batch are recomputed', async () => {
    const calls: Value[] = [];
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs, outputs) => {
          calls.push(key);
          outputs.push([{ key, n: inputs.length }, 1]);
        })
        .ungroup(),
    );
    await r.step([
      [{ k: 'a', v: 1 }, 1, 1],
      [{ k: 'b', v: 1 }, 1, 1],
    ]);
    calls.length = 0;
    await r.step([[{ k: 'b', v: 2 }, 1, 2]]);
    assert.deepEqual(calls, ['b']);
    calls.length = 0;
    assert.deepEqual(
      await r.step([
        [{ k: 'a', v: 5 }, 1, 3],
        [{ k: 'a', v: 5 }, -1, 3],
      ]),
      [],
    );
    assert.deepEqual(calls, [], 'updates that cancel out touch nothing');
  });

  test('a group whose inputs are all retracted disappears and its outputs are retracted', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs) => [[{ key, n: inputs.length }, 1]])
        .ungroup(),
    );
    await r.step([[{ k: 'a', v: 1 }, 1, 1]]);
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 1 }, -1, 2]])), [[{ key: 'a', n: 1 }, -1]]);
    assert.equal(r.graph.stateSize(), 0);
  });

  test('returned outputs and pushed outputs both count, zero multiplicities are dropped', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, _inputs, outputs) => {
          outputs.push([{ key, p: 1 }, 1], [{ key, z: 1 }, 0]);
          return [[{ key, q: 1 }, 2]];
        })
        .ungroup(),
    );
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 1 }, 1, 1]])), [
      [{ key: 'a', p: 1 }, 1],
      [{ key: 'a', q: 1 }, 2],
    ]);
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
