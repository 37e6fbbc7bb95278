/**
 * Durable state: a commit that becomes durable while a step runs (the host releases it during the
 * step's pause, a turn of the event loop) evicts nothing the step is using. Before the fix,
 * `release` evicted at once: the group an earlier operator of the step had loaded and changed was
 * dropped before the step serialised it, so its state was lost (saved as deleted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGraph, MemoryStateStore, type Collection, type Value } from '../../src/engine';

test('a release during a step (its pause) evicts only after the step', async () => {
  const graph = createGraph();
  const input = graph.input('in') as Collection<{ k: string }>;
  graph.output(
    'n',
    input
      .groupBy((r) => r.k)
      .count()
      .ungroup(),
  );
  graph.output(
    'm',
    input
      .groupBy((r) => r.k)
      .count()
      .ungroup(),
  );
  const store = new MemoryStateStore();
  graph.useStore(store, { cacheBytes: 0, stored: false });
  const counts = (outputs: ReadonlyMap<string, readonly (readonly [Value, number, number?])[]>): Value[] =>
    (outputs.get('n') ?? []).filter(([, d]) => d > 0).map(([v]) => v);
  const r1 = await graph.step({ in: [[{ k: 'a' }, 1, 1]] });
  store.commit(r1.state!);
  // Step 2: the commit of step 1 becomes durable between the step's operators.
  const r2 = await graph.step({ in: [[{ k: 'a' }, 1, 2]] }, { pauseAfterMs: 0, pause: async () => graph.release(1) });
  store.commit(r2.state!);
  graph.release(2);
  const r3 = await graph.step({ in: [[{ k: 'a' }, 1, 3]] });
  assert.deepEqual(counts(r2.outputs), [{ key: 'a', count: 2 }]);
  assert.deepEqual(counts(r3.outputs), [{ key: 'a', count: 3 }]);
});
