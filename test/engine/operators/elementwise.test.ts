/** `filter`, `map`, `flatMap` (operators/elementwise.ts): diffs and times carried through. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { show, single, type KV } from '../run';

describe('filter, map, flatMap', () => {
  test('carry diffs and times; consolidate at the output', async () => {
    const m = single<KV>((c) => c.map((x) => ({ k: x.k })));
    assert.deepEqual(
      await m.step([
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'a', v: 2 }, 1, 7],
        [{ k: 'a', v: 3 }, -2, 6],
      ]),
      [],
    );
    assert.deepEqual(
      await m.step([
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'a', v: 2 }, 1, 7],
      ]),
      [[{ k: 'a' }, 2, 7]],
    );
    const f = single<KV>((c) => c.filter((x) => x.v > 1));
    assert.deepEqual(
      await f.step([
        [{ k: 'a', v: 1 }, 1, 5],
        [{ k: 'a', v: 2 }, -1, 7],
      ]),
      [[{ k: 'a', v: 2 }, -1, 7]],
    );
    const fm = single<KV>((c) => c.flatMap((x) => Array.from({ length: x.v }, (_, i) => i)));
    assert.deepEqual(
      show(
        await fm.step([
          [{ k: 'a', v: 2 }, 1, 1],
          [{ k: 'b', v: 1 }, 3, 1],
        ]),
      ),
      [
        [0, 4],
        [1, 1],
      ],
    );
  });
});
