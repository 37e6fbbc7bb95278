/**
 * Issue 12, point 2: one event from a device whose clock is years ahead must not move the retention
 * watermark (it used to push every later event out of the window, silently, for good). On SQLite
 * and PostgreSQL: the event is processed but moves no cutoff, is counted, shown and logged once;
 * a restart at a later wall clock time (when the event would be within the bound) decides nothing
 * anew; a stored watermark already beyond the bound is corrected at start by a rebuild.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { Collection } from '../../src/engine/types';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  operatorMember,
  pgExec,
  pgRows,
  recordingListener,
  rowText,
  sinkMember,
  sourceMember,
  sqliteRows,
  tempDir,
  uniqueName,
  waitCommitted,
} from './support';

const MIN = 60e6;
const T0 = Date.UTC(2026, 0, 5, 6, 0, 0) * 1000;
const TEN_YEARS = 10 * 365 * 24 * 60 * MIN;
const SETTINGS: DataflowSettings = {
  batchSize: 4,
  batchMs: 1,
  maxInFlight: 2,
  retentionMicros: 60 * MIN, // one hour
  onError: 'skip',
};

const table = (name: string): TableSpec => ({
  name,
  mode: 'multiset',
  columns: [
    { name: 'stream', type: 'text', value: { path: 'stream' } },
    { name: 'off', type: 'bigint', value: { path: 'offset' } },
    { name: 'ts', type: 'bigint', value: { path: 'timestamp' } },
  ],
});

function members(log: EmbeddedLog, db: SinkDatabase, name: string): DataflowMember[] {
  return [
    sourceMember('src', "'m'", log),
    operatorMember('keep', ['src'], { fn: 'row' }, ([s]) => ({
      kind: 'collection',
      collection: (s as { collection: Collection }).collection.map((v) => v, { name: 'keep' }),
    })),
    sinkMember('sink', ['keep'], db, table(name)),
  ];
}

const row = (stream: string, offset: number, ts: number): string =>
  rowText({ stream, off: String(offset), ts: String(ts) });

interface Db {
  readonly db: SinkDatabase;
  rows(t: TableSpec): Promise<string[]>;
  setWatermark(t: string, w: number): Promise<void>;
  watermark(t: string): Promise<number | null>;
  close(): Promise<void>;
}

function sqliteDb(dir: string): Db {
  const file = join(dir, 'views.sqlite');
  const db = new SqliteDatabase({ filename: file });
  return {
    db,
    rows: async (t) => sqliteRows(file, t),
    setWatermark: async (t, w) => {
      const c = new Database(file);
      c.prepare('update deltaflow_meta set watermark = ? where table_name = ?').run(w, t);
      c.close();
    },
    watermark: async (t) => {
      const c = new Database(file, { readonly: true });
      const r = c.prepare('select watermark from deltaflow_meta where table_name = ?').get(t) as
        { watermark: number | null } | undefined;
      c.close();
      return r?.watermark ?? null;
    },
    close: () => db.close(),
  };
}

function postgresDb(): Db {
  const db = new PostgresDatabase({});
  return {
    db,
    rows: (t) => pgRows(t),
    setWatermark: (t, w) => pgExec(`update deltaflow_meta set watermark = ${w} where table_name = '${t}'`),
    watermark: async (t) => {
      const pg = await import('pg');
      const c = new pg.default.Client();
      await c.connect();
      try {
        const r = await c.query('select watermark from deltaflow_meta where table_name = $1', [t]);
        const w = (r.rows[0] as { watermark: unknown } | undefined)?.watermark;
        return w === null || w === undefined ? null : Number(w);
      } finally {
        await c.end();
      }
    },
    close: () => db.close(),
  };
}

for (const [kind, open] of [
  ['SQLite', (dir: string) => sqliteDb(dir)],
  ['PostgreSQL', () => postgresDb()],
] as const) {
  test(`${kind}: an event years ahead of the clock is processed but moves no cutoff; a restart at a later clock decides nothing anew`, async () => {
    const dir = tempDir('deltaflow-clock-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const d = open(dir);
    const name = uniqueName('clock');
    try {
      // Nine events: eight of a machine one minute apart, one (the second) from a device ten years ahead.
      const append = (stream: string, lamport: number, timestamp: number): void => {
        log.appendSync(stream, [{ tags: ['m'], payload: {}, lamport, timestamp }]);
      };
      append('good-0', 1, T0);
      append('bad-0', 2, T0 + TEN_YEARS);
      for (let i = 1; i < 8; i++) append('good-0', 2 + i, T0 + i * MIN);
      const clock = { ms: T0 / 1000 + 30 * 60_000 }; // the wall clock: half an hour after the first event
      const listener = recordingListener();
      const run = startDataflow(
        {
          source: log,
          members: members(log, d.db, name),
          settings: SETTINGS,
          now: () => clock.ms,
          reportIntervalMs: 60_000,
        },
        listener,
      );
      await run.live;
      const expected = [
        row('bad-0', 0, T0 + TEN_YEARS),
        ...Array.from({ length: 8 }, (_, i) => row('good-0', i, T0 + i * MIN)),
      ].sort();
      assert.deepEqual(await d.rows(table(name)), expected, 'all nine events reach the table');
      assert.equal(run.stats().eventsOutsideWindow, 0);
      assert.equal(run.stats().eventsAheadOfClock, 1);
      assert.equal(run.stats().watermark, T0 + 7 * MIN, 'the watermark is the newest event within the bound');
      // Logged once, with stream, offset and timestamp.
      const ahead = listener.recorded.logs.filter((l) => /ahead of the clock/.test(l.message));
      assert.equal(ahead.length, 1, JSON.stringify(listener.recorded.logs));
      assert.match(ahead[0]?.message ?? '', /event bad-0\/0 has the timestamp 2036-01-03T06:00:00\.000Z/);
      assert.match(ahead[0]?.message ?? '', /more than 10 min ahead of the clock \(2026-01-05T06:30:00\.000Z/);
      // Two more live: counted, not logged one by one; the count is logged when the dataflow stops.
      append('bad-0', 20, T0 + TEN_YEARS + 1);
      append('bad-0', 21, T0 + TEN_YEARS + 2);
      await waitCommitted(run, await log.presentOffsets());
      assert.equal(run.stats().eventsAheadOfClock, 3);
      assert.equal(listener.recorded.logs.filter((l) => /ahead of the clock/.test(l.message)).length, 1);
      await run.stop();
      // Shown on the source's status (statuses are throttled: what was pending is shown at the stop).
      assert.ok(
        listener.recorded.statuses.some((s) => s.id === 'src' && /3 ahead of clock/.test(s.status.text)),
        JSON.stringify(listener.recorded.statuses.filter((s) => s.id === 'src')),
      );
      assert.ok(
        listener.recorded.logs.some((l) =>
          /^2 more events more than 10 min ahead of the clock .*\(3 since the first\)/.test(l.message),
        ),
        JSON.stringify(listener.recorded.logs),
      );
      assert.equal(await d.watermark(name), T0 + 7 * MIN, 'the stored watermark');

      // Eleven years later the bad events would be within the bound: the restart reads them again,
      // but the stored watermark holds the first run's decision.
      clock.ms = (T0 + TEN_YEARS + 365 * 24 * 60 * MIN) / 1000;
      const again = recordingListener();
      const second = startDataflow(
        { source: log, members: members(log, d.db, name), settings: SETTINGS, now: () => clock.ms },
        again,
      );
      await second.live;
      assert.deepEqual(second.stats().rebuilt, []);
      assert.equal(second.stats().watermark, T0 + 7 * MIN, 'the replay moved no watermark');
      assert.equal(second.stats().eventsAheadOfClock, 0, 'counted by the run that first processed them');
      // A new event of the machine is inside the window of the stored watermark.
      append('good-0', 30, T0 + 8 * MIN);
      await waitCommitted(second, await log.presentOffsets());
      await second.stop();
      assert.deepEqual(
        await d.rows(table(name)),
        [
          ...expected,
          row('bad-0', 1, T0 + TEN_YEARS + 1),
          row('bad-0', 2, T0 + TEN_YEARS + 2),
          row('good-0', 8, T0 + 8 * MIN),
        ].sort(),
      );
      assert.equal(second.stats().eventsOutsideWindow, 0);
      assert.equal(await d.watermark(name), T0 + 8 * MIN);
    } finally {
      await d.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${kind}: a stored watermark beyond the clock bound is corrected at start (the table is rebuilt, with a log line)`, async () => {
    const dir = tempDir('deltaflow-clock-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const d = open(dir);
    const name = uniqueName('clock');
    try {
      const now = (): number => T0 / 1000 + 30 * 60_000;
      for (let i = 0; i < 5; i++)
        log.appendSync('good-0', [{ tags: ['m'], payload: {}, lamport: i + 1, timestamp: T0 + i * MIN }]);
      const first = startDataflow(
        { source: log, members: members(log, d.db, name), settings: SETTINGS, now },
        recordingListener(),
      );
      await first.live;
      await first.stop();
      // As an earlier version stored it after one event ten years ahead (and left the later ones out).
      await d.setWatermark(name, T0 + TEN_YEARS);
      for (let i = 5; i < 8; i++)
        log.appendSync('good-0', [{ tags: ['m'], payload: {}, lamport: i + 1, timestamp: T0 + i * MIN }]);
      const listener = recordingListener();
      const second = startDataflow(
        { source: log, members: members(log, d.db, name), settings: SETTINGS, now },
        listener,
      );
      await second.live;
      await second.stop();
      assert.equal(second.stats().rebuilt.length, 1);
      const line = listener.recorded.logs.find((l) => /rebuilding table/.test(l.message));
      assert.match(
        line?.message ?? '',
        /stored retention watermark 2036-01-03T06:00:00\.000Z .* is beyond the clock bound \(the wall clock 2026-01-05T06:30:00\.000Z .* plus 10 min\)/,
      );
      assert.deepEqual(
        await d.rows(table(name)),
        Array.from({ length: 8 }, (_, i) => row('good-0', i, T0 + i * MIN)).sort(),
        'no event left out',
      );
      assert.equal(second.stats().eventsOutsideWindow, 0);
      assert.equal(await d.watermark(name), T0 + 7 * MIN);
    } finally {
      await d.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
