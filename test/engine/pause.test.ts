/**
 * StepOptions.pause: a long step hands control to the host between operators (so that its I/O
 * goes on) and computes the same results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph } from '../../src/engine';

function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // a long operator
  }
}

test('a step pauses between operators once it has run for pauseAfterMs, with the same outputs', async () => {
  const build = () => {
    const g = createGraph();
    const input = g.input<number>('in');
    g.output(
      'out',
      input
        .map((x) => {
          if (x === 1) busy(12);
          return x * 2;
        })
        .filter((x) => x > 0)
        .map((x) => x + 1),
    );
    return g;
  };
  const batch = [[1, 1, 0] as const, [2, 1, 0] as const];
  let pauses = 0;
  const paused = await build().step({ in: batch }, { pause: async () => void pauses++, pauseAfterMs: 5 });
  assert.ok(pauses >= 1, 'the long map was followed by a pause');
  const plain = await build().step({ in: batch });
  assert.deepEqual(paused.outputs, plain.outputs);
  let never = 0;
  await build().step({ in: batch }, { pause: async () => void never++, pauseAfterMs: 60_000 });
  assert.equal(never, 0, 'no pause before pauseAfterMs has passed');
});
