/**
 * Repeated problems are summarised (issue 12, point 8): a user function failing on every event is
 * reported in full once, then each failure goes to the Catch nodes (`repeat`) and the log gets a
 * count per interval; a database that stays unreachable is logged once, then counted, and its
 * count is logged before "reachable again".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings, OperatorMember } from '../../src/dataflow/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendInOrder,
  dashboardMembers,
  drillEvents,
  fromScratch,
  recordingListener,
  sourceMember,
  sqliteRows,
  dashboardTable,
  tempDir,
} from './support';

const SETTINGS: DataflowSettings = { batchSize: 4, batchMs: 1, maxInFlight: 2, retentionMicros: null, onError: 'skip' };

test('a function failing on every event: the first in full, every one to Catch nodes, the rest counted in the log', async () => {
  const dir = tempDir();
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const db = new SqliteDatabase({ filename: join(dir, 'views.sqlite') });
  try {
    appendInOrder(log, drillEvents({ machines: 2, events: 64, seed: 4 }));
    const [map, ...rest] = dashboardMembers('src', db, 'dashboard', { failOn: () => true });
    const members: DataflowMember[] = [sourceMember('src', "'machine'", log), map as OperatorMember, ...rest];
    const listener = recordingListener();
    const run = startDataflow({ source: log, members, settings: SETTINGS, reportIntervalMs: 3_600_000 }, listener);
    await run.live;
    await run.stop();
    const errors = listener.recorded.errors.filter((e) => e.id === 'dash-map');
    assert.equal(errors.length, 64, 'each failure reaches the Catch nodes');
    assert.deepEqual(
      errors.map((e) => e.repeat === true),
      [false, ...Array<boolean>(63).fill(true)],
      'only the first is reported in full (logged)',
    );
    const counts = listener.recorded.logs.filter((l) => /dash-map.*more inputs? failed/.test(l.message));
    assert.equal(counts.length, 1, JSON.stringify(listener.recorded.logs));
    assert.match(counts[0]!.message, /63 more inputs failed in the last \d+ s and were skipped \(64 since the first/);
    assert.equal(run.stats().skipped.get('dash-map'), 64);
  } finally {
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreachable database: the failure logged once, then a count per interval, the count before "reachable again"', async () => {
  const dir = tempDir();
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const missing = join(dir, 'not-yet');
  const file = join(missing, 'views.sqlite');
  const db = new SqliteDatabase({ filename: file });
  try {
    appendInOrder(log, drillEvents({ machines: 2, events: 50, seed: 5 }));
    const members: DataflowMember[] = [
      sourceMember('src', "'machine'", log),
      ...dashboardMembers('src', db, 'dashboard'),
    ];
    const listener = recordingListener();
    const run = startDataflow({ source: log, members, settings: SETTINGS, reportIntervalMs: 200 }, listener);
    const failures = (): string[] =>
      listener.recorded.logs
        .filter((l) => /failed \(attempt \d+\)/.test(l.message) && !/still failing/.test(l.message))
        .map((l) => l.message);
    const stillFailing = (): string[] =>
      listener.recorded.logs.filter((l) => /still failing/.test(l.message)).map((l) => l.message);
    while (stillFailing().length < 2 && failures().length < 4) await new Promise((r) => setTimeout(r, 20));
    assert.equal(failures().length, 1, JSON.stringify(failures()));
    assert.match(failures()[0]!, /attempt 1\)/);
    assert.match(stillFailing()[0]!, /more attempts? in the last \d+ s; the latest: .*failed \(attempt \d+\)/);
    mkdirSync(missing);
    await run.live;
    await run.stop();
    const messages = listener.recorded.logs.map((l) => l.message);
    const again = messages.findIndex((m) => /reachable again/.test(m));
    assert.ok(again > 0, JSON.stringify(messages));
    assert.ok(!messages.slice(again).some((m) => /still failing/.test(m)), 'no count after "reachable again"');
    const expected = await fromScratch(members, await allEvents(log));
    assert.deepEqual(sqliteRows(file, dashboardTable('dashboard')), expected.get('dash-sink'));
  } finally {
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
