/** `groupBy` and `ungroup` (operators/grouping.ts): keys attached and dropped, nothing else changed. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph } from '../../../src/engine';
import { show, type KV } from '../run';

describe('groupBy, ungroup', () => {
  test('values, diffs and times pass unchanged; an update whose key function fails is left out and reported', async () => {
    const g = createGraph();
    const grouped = g.input<KV>('in').groupBy(
      (x) => {
        if (x.v < 0) throw new Error('no key');
        return x.k;
      },
      { name: 'by-k' },
    );
    g.output('through', grouped.ungroup());
    g.output('counts', grouped.count().ungroup());
    const r = await g.step({
      in: [
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'b', v: 2 }, 2, 6],
        [{ k: 'a', v: -1 }, 1, 7],
      ],
    });
    assert.deepEqual(r.outputs.get('through'), [
      [{ k: 'a', v: 1 }, 1, 5],
      [{ k: 'b', v: 2 }, 2, 6],
    ]);
    assert.deepEqual(show(r.outputs.get('counts') ?? []), [
      [{ key: 'a', count: 1 }, 1],
      [{ key: 'b', count: 2 }, 1],
    ]);
    assert.deepEqual(
      r.skipped.map((s) => [s.operator, s.value]),
      [['by-k', { k: 'a', v: -1 }]],
    );
  });
});
