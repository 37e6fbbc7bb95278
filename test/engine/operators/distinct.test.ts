/** `distinct` (operators/distinct.ts), ungrouped and per group, and what compaction forgets. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { show, single, type KV } from '../run';

describe('distinct', () => {
  test('distinct: once while the multiplicity is positive (ungrouped and per group)', async () => {
    const d = single<KV>((c) => c.distinct());
    assert.deepEqual(
      show(
        await d.step([
          [{ k: 'a', v: 1 }, 2, 1],
          [{ v: 1, k: 'a' }, 1, 1],
        ]),
      ),
      [[{ k: 'a', v: 1 }, 1]],
    );
    assert.deepEqual(await d.step([[{ k: 'a', v: 1 }, -2, 2]]), []);
    assert.deepEqual(show(await d.step([[{ k: 'a', v: 1 }, -1, 3]])), [[{ k: 'a', v: 1 }, -1]]);
    const per = single<KV>((c) =>
      c
        .groupBy((x) => x.v)
        .distinct()
        .ungroup(),
    );
    assert.deepEqual(
      show(
        await per.step([
          [{ k: 'a', v: 1 }, 1, 1],
          [{ k: 'a', v: 1 }, 1, 1],
        ]),
      ),
      [[{ k: 'a', v: 1 }, 1]],
    );
  });

  test('distinct forgets old values; count keeps its totals', async () => {
    const d = single<KV>((c) => c.distinct());
    await d.step([
      [{ k: 'a', v: 1 }, 1, 1],
      [{ k: 'b', v: 1 }, 1, 10],
    ]);
    d.graph.compact(5);
    assert.equal(d.graph.stateSize(), 1);
    assert.deepEqual(show(await d.step([[{ k: 'b', v: 1 }, 1, 11]])), [], 'b is still known');
    assert.deepEqual(show(await d.step([[{ k: 'a', v: 1 }, 1, 12]])), [[{ k: 'a', v: 1 }, 1]], 'a was forgotten');
    const c = single<KV>((x) =>
      x
        .groupBy((r) => r.k)
        .count()
        .ungroup(),
    );
    await c.step([[{ k: 'a', v: 1 }, 1, 1]]);
    c.graph.compact(5);
    assert.deepEqual(show(await c.step([[{ k: 'a', v: 2 }, 1, 6]])), [
      [{ count: 1, key: 'a' }, -1],
      [{ count: 2, key: 'a' }, 1],
    ]);
  });
});
