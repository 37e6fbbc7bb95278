/**
 * Issue 16, point 5 (headless operation): while a table is rebuilt, the dataflow logs its progress
 * every few seconds of its clock ("rebuilding <table>: 1,234 of 3,000 events"), with counts that
 * only grow, and stops once it is live.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { Collection } from '../../src/engine/types';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { TableSpec } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { operatorMember, recordingListener, sinkMember, sourceMember, sqliteRows, tempDir } from './support';

const EVENTS = 3_000;
const table: TableSpec = {
  name: 'dashboard',
  mode: 'multiset',
  columns: [
    { name: 'stream', type: 'text', value: { path: 'stream' } },
    { name: 'off', type: 'bigint', value: { path: 'offset' } },
  ],
};

test('a rebuild logs its progress every few seconds: growing counts of the events present, none once live', async () => {
  const dir = tempDir('deltaflow-progress-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const db = new SqliteDatabase({ filename: join(dir, 'views.sqlite') });
  try {
    for (let i = 0; i < EVENTS; i += 500)
      log.appendSync(
        'machine-0',
        Array.from({ length: 500 }, (_, j) => ({
          tags: ['m'],
          payload: { i: i + j },
          lamport: i + j + 1,
          timestamp: 1e15 + i + j,
        })),
      );
    const members = (version: string): DataflowMember[] => [
      sourceMember('src', "'m'", log),
      operatorMember('keep', ['src'], { fn: 'row' }, ([s]) => ({
        kind: 'collection',
        collection: (s as { collection: Collection }).collection.map((v) => v, { name: 'keep' }),
      })),
      sinkMember('sink', ['keep'], db, table, version),
    ];
    // Small steps and a clock that moves a second each time it is read: many progress moments.
    const settings: DataflowSettings = {
      batchSize: 10,
      catchUpBatchSize: 100,
      batchMs: 1,
      maxInFlight: 1,
      onError: 'skip',
      retentionMicros: null,
    };
    let ms = Date.UTC(2026, 0, 5);
    const now = (): number => (ms += 1000);
    const first = startDataflow({ source: log, members: members('1'), settings, now }, recordingListener());
    await first.live;
    await first.stop();
    const listener = recordingListener();
    // A new sink version: the table is rebuilt from the events.
    const second = startDataflow({ source: log, members: members('2'), settings, now }, listener);
    await second.live;
    log.appendSync('machine-0', [
      { tags: ['m'], payload: { i: EVENTS }, lamport: EVENTS + 1, timestamp: 1e15 + EVENTS },
    ]);
    await new Promise((r) => setTimeout(r, 300));
    await second.stop();
    assert.equal(sqliteRows(join(dir, 'views.sqlite'), table).length, EVENTS + 1);
    const messages = listener.recorded.logs.map((l) => l.message);
    const progress = messages.filter((m) => m.startsWith('rebuilding dashboard:'));
    assert.ok(progress.length >= 2, `progress lines while rebuilding: ${JSON.stringify(messages)}`);
    let last = -1;
    for (const line of progress) {
      const m = /^rebuilding dashboard: ([\d,]+) of 3,000 events$/.exec(line);
      assert.ok(m, line);
      const done = Number(m[1]!.replace(/,/g, ''));
      assert.ok(done >= last && done <= EVENTS, `counts grow: ${JSON.stringify(progress)}`);
      last = done;
    }
    // Nothing after the live line.
    const liveAt = messages.findIndex((m) => m.startsWith('live:'));
    assert.ok(liveAt >= 0, JSON.stringify(messages));
    assert.ok(
      messages.slice(liveAt).every((m) => !m.startsWith('rebuilding dashboard')),
      JSON.stringify(messages),
    );
  } finally {
    await db.close();
    log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
