/** `concat` (operators/concat.ts): multiplicities add up; insert-only when every input is. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph } from '../../../src/engine';

describe('concat', () => {
  test('concat adds multiplicities of several inputs, and insert-only-ness only when all are', async () => {
    const g = createGraph();
    const a = g.input<number>('a', { insertOnly: true });
    const b = g.input<number>('b', { insertOnly: true });
    const c = g.input<number>('c');
    assert.equal(a.concat([b]).insertOnly, true);
    assert.equal(a.concat([b, c]).insertOnly, false);
    g.output('out', a.concat([b, c]));
    const r = await g.step({
      a: [[1, 1, 1]],
      b: [
        [1, 1, 2],
        [2, 1, 2],
      ],
      c: [[2, -1, 3]],
    });
    assert.deepEqual(r.outputs.get('out'), [[1, 2, 2]]);
  });
});
