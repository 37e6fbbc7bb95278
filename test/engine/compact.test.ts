/** Retention: `compact(cutoff)` forgets older inputs and silently re-baselines outputs. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DrillEvent } from '../../bench/drill-data';
import { usagePipeline } from '../../bench/drill-pipelines';
import { show, single, type KV } from './run';

function machineEvent(lamport: number, type: 'started' | 'stopped', order: string, timestamp: number): DrillEvent {
  return {
    lamport,
    stream: 'drill1-0',
    offset: lamport,
    timestamp,
    tags: ['machine', 'machine:Drill1'],
    appId: 'test',
    payload: { type, order },
  };
}

describe('compact', () => {
  test('usage: rows derived from forgotten events stay (never retracted); new events only add their rows', async () => {
    const u = single<DrillEvent>(usagePipeline, true);
    const first = await u.step([
      [machineEvent(1, 'started', '4711', 100), 1, 100],
      [machineEvent(2, 'stopped', '4711', 200), 1, 200],
    ]);
    assert.deepEqual(show(first), [[{ machine: 'Drill1', order: '4711', started: 100, durationMicros: 100 }, 1]]);
    const before = u.graph.stateSize();
    u.graph.compact(300);
    assert.ok(u.graph.stateSize() < before, 'state shrinks');
    const next = await u.step([
      [machineEvent(3, 'started', '4712', 400), 1, 400],
      [machineEvent(4, 'stopped', '4712', 450), 1, 450],
    ]);
    assert.deepEqual(
      show(next),
      [[{ machine: 'Drill1', order: '4712', started: 400, durationMicros: 50 }, 1]],
      'no retraction of 4711',
    );
  });

  test('compaction emits nothing by itself and the next untouched step stays empty', async () => {
    const r = single<KV>((c) =>
      c
        .groupBy((x) => x.k)
        .reduce((key, inputs) => [[{ key, n: inputs.length }, 1]])
        .ungroup(),
    );
    await r.step([
      [{ k: 'a', v: 1 }, 1, 1],
      [{ k: 'a', v: 2 }, 1, 9],
      [{ k: 'b', v: 1 }, 1, 9],
    ]);
    r.graph.compact(5);
    assert.deepEqual(await r.step([[{ k: 'b', v: 2 }, 1, 10]]), [
      [{ key: 'b', n: 1 }, -1, 10],
      [{ key: 'b', n: 2 }, 1, 10],
    ]);
    // group a was re-baselined to n=1 silently; touching it emits the change from there
    assert.deepEqual(show(await r.step([[{ k: 'a', v: 3 }, 1, 11]])), [
      [{ key: 'a', n: 1 }, -1],
      [{ key: 'a', n: 2 }, 1],
    ]);
  });
});
