/**
 * RunningDataflow.lag() (issue 14, point 4; the metrics' deltaflow_lag_events and _seconds): while
 * the commits wait (a database whose transactions are held back), the lag counts the events not
 * committed and says how old the oldest of them is by the dataflow's clock; once everything is
 * committed it is 0 events and 0 seconds. The clock is the definition's `now`, so no timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDataflow } from '../../src/dataflow/coordinator';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase, SinkTransaction } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { appendInOrder, dashboardMembers, drillEvents, recordingListener, sourceMember, tempDir } from './support';

test('lag: events not committed and the age of the oldest, 0 and 0 once committed', async () => {
  const dir = tempDir('deltaflow-lag-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const db = new SqliteDatabase({ filename: join(dir, 'views.sqlite') });
  // Transactions wait while `held` is set (the first one, opening the tables, passes).
  let held: Promise<void> | null = null;
  let letGo: () => void = () => undefined;
  let transactions = 0;
  const gated: SinkDatabase = {
    kind: db.kind,
    label: db.label,
    transaction: async <T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> => {
      transactions++;
      if (held !== null) await held;
      return db.transaction(fn);
    },
    close: () => db.close(),
  };
  const start = Date.UTC(2026, 0, 1) * 1000;
  const events = drillEvents({ machines: 5, events: 200, start, gapMicros: 1000 });
  const oldest = (events[0] as (typeof events)[number]).timestamp;
  // The dataflow's clock: 90 s after the first event.
  const now = oldest / 1000 + 90_000;
  const run = startDataflow(
    {
      source: log,
      members: [sourceMember('src', "'machine'", log), ...dashboardMembers('src', gated, 'dash')],
      settings: { batchSize: 50, batchMs: 1, maxInFlight: 4, retentionMicros: null, onError: 'skip' },
      now: () => now,
    },
    recordingListener(),
  );
  try {
    await run.live; // nothing in the log yet
    assert.deepEqual(run.lag(), { events: 0, seconds: 0 });
    held = new Promise((resolve) => (letGo = resolve));
    const before = transactions;
    appendInOrder(log, events); // in timestamp order: the first event read is the oldest
    // Wait until events were read and a commit waits for the database (live: one at a time).
    for (let i = 0; run.stats().eventsRead === 0 || transactions === before; i++) {
      assert.ok(i < 10_000, 'events are read and a commit waits');
      await new Promise((r) => setTimeout(r, 1));
    }
    const read = run.stats().eventsRead;
    const waiting = run.lag();
    assert.equal(waiting?.events, read, 'every event read so far, none committed');
    assert.ok(
      Math.abs((waiting?.seconds ?? 0) - 90) < 0.001,
      `the oldest is 90 s old by the clock: ${waiting?.seconds}`,
    );
    letGo();
    held = null;
    for (let i = 0; run.stats().committedOffsets['drill1-0'] === undefined || run.lag()?.events !== 0; i++) {
      assert.ok(i < 10_000, `committed: ${JSON.stringify(run.lag())}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.deepEqual(run.lag(), { events: 0, seconds: 0 });
  } finally {
    letGo();
    await run.stop();
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(run.lag(), null, 'no lag once stopped');
});
