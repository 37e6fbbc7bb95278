/**
 * The coordinator against the real PostgreSQL (PG* env) together with SQLite: exactly-once restart
 * without writes, and sinks on two databases at different offsets (one behind: its commits were
 * missing) each brought forward without touching the other's rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendEvents,
  dashboardMembers,
  drillEvents,
  fromScratch,
  pgExec,
  pgOffsets,
  pgRows,
  recordingListener,
  rowText,
  sourceMember,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  uniqueName,
  usageMembers,
  waitCommitted,
} from './support';

const SETTINGS: DataflowSettings = {
  batchSize: 300,
  batchMs: 5,
  maxInFlight: 3,
  retentionMicros: null,
  onError: 'skip',
};

async function pgWrites(table: string): Promise<() => Promise<number>> {
  await pgExec(`create table if not exists "${table}_writes" (n integer not null); insert into "${table}_writes" values (0);
    create or replace function "${table}_count"() returns trigger language plpgsql as $$ begin update "${table}_writes" set n = n + 1; return null; end $$;
    create trigger "${table}_trg" after insert or update or delete on "${table}" for each row execute function "${table}_count"();`);
  return async () => {
    const pg = await import('pg');
    const c = new pg.default.Client();
    await c.connect();
    try {
      return Number((await c.query(`select n from "${table}_writes"`)).rows[0].n);
    } finally {
      await c.end();
    }
  };
}

test('PostgreSQL and SQLite sinks in one dataflow: restart writes nothing, a sink behind is brought forward alone', async () => {
  const dir = tempDir();
  const dash = uniqueName('dash');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const pgDb = new PostgresDatabase({});
  const file = join(dir, 'views.sqlite');
  const sqlite = new SqliteDatabase({ filename: file });
  try {
    appendEvents(log, drillEvents({ machines: 6, events: 2000, seed: 5 }));
    const both = (): DataflowMember[] => [
      sourceMember('src', "'machine'", log),
      ...dashboardMembers('src', pgDb, dash),
      ...usageMembers('src', sqlite, 'usage'),
    ];
    const sqliteOnly = (): DataflowMember[] => [
      sourceMember('src', "'machine'", log),
      ...usageMembers('src', sqlite, 'usage'),
    ];

    const first = startDataflow({ source: log, members: both(), settings: SETTINGS }, recordingListener());
    await first.live;
    await first.stop();
    const expected1 = await fromScratch(both(), await allEvents(log));
    const dashSink = both().find((m) => m.id === 'dash-sink');
    assert.ok(dashSink?.role === 'sink');
    assert.deepEqual(await pgRows(dashSink.table), expected1.get('dash-sink'));

    // Restart: nothing written on either database.
    const pgCount = await pgWrites(dash);
    const again = startDataflow({ source: log, members: both(), settings: SETTINGS }, recordingListener());
    await again.live;
    await again.stop();
    assert.equal(await pgCount(), 0, 'no PostgreSQL row written for covered events');

    // More events while only the SQLite sink runs: PostgreSQL falls behind.
    appendEvents(
      log,
      drillEvents({ machines: 6, events: 700, seed: 6, start: Date.UTC(2025, 0, 1) * 1000 }).map((e) => ({
        ...e,
        lamport: e.lamport + 50_000,
      })),
    );
    const solo = startDataflow({ source: log, members: sqliteOnly(), settings: SETTINGS }, recordingListener());
    await solo.live;
    await solo.stop();
    const present = await log.presentOffsets();
    assert.deepEqual(sqliteOffsets(file, 'usage'), present);
    assert.notDeepEqual(await pgOffsets(dash), present);

    // Both again: the PostgreSQL sink catches up; the SQLite table (already there) is not touched.
    const db = new Database(file);
    db.exec(
      'create table usage_writes (n integer); insert into usage_writes values (0); create trigger usage_trg after insert on usage begin update usage_writes set n = n + 1; end; create trigger usage_trg_d after delete on usage begin update usage_writes set n = n + 1; end;',
    );
    db.close();
    const listener = recordingListener();
    const caughtUp = startDataflow({ source: log, members: both(), settings: SETTINGS }, listener);
    await caughtUp.live;
    await waitCommitted(caughtUp, present);
    await caughtUp.stop();
    const check = new Database(file, { readonly: true });
    assert.equal(
      (check.prepare('select n from usage_writes').get() as { n: number }).n,
      0,
      'the SQLite table was not touched',
    );
    check.close();
    // (Brought forward aside and swapped in: the write-counting trigger went with the old table.)
    assert.deepEqual(await pgOffsets(dash), present, 'the PostgreSQL table was brought forward');
    const expected = await fromScratch(both(), await allEvents(log));
    const members = both();
    for (const m of members) {
      if (m.role !== 'sink') continue;
      const rows = m.database === pgDb ? await pgRows(m.table) : sqliteRows(file, m.table);
      assert.deepEqual(rows, expected.get(m.id), `${m.table.name} equals the from-scratch result`);
    }
    assert.deepEqual(await pgOffsets(dash), present);
  } finally {
    await pgExec(
      `drop table if exists "${dash}", "${dash}_offsets", "${dash}_writes" cascade; drop function if exists "${dash}_count"(); delete from deltaflow_meta where table_name = '${dash}'`,
    ).catch(() => undefined);
    await pgDb.close();
    await sqlite.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreachable PostgreSQL gives the sink a retrying status, reading waits, then it recovers exactly', async () => {
  const dir = tempDir();
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const dash = uniqueName('unreach_dash');
  // Nothing listens on `port` at first; then a TCP proxy to the real server opens there.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const server = process.env.PGHOST ?? '127.0.0.1';
  const proxy = net.createServer((client) => {
    const upstream = server.startsWith('/')
      ? net.connect({ path: join(server, `.s.PGSQL.${process.env.PGPORT ?? 5432}`) })
      : net.connect({ host: server, port: Number(process.env.PGPORT ?? 5432) });
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  const db = new PostgresDatabase({ host: '127.0.0.1', port, connectionTimeoutMs: 2000 });
  let run: ReturnType<typeof startDataflow> | null = null;
  try {
    appendEvents(log, drillEvents({ machines: 5, events: 800, seed: 21 }));
    const ms: DataflowMember[] = [sourceMember('src', "'machine'", log), ...dashboardMembers('src', db, dash)];
    const listener = recordingListener();
    run = startDataflow({ source: log, members: ms, settings: SETTINGS }, listener);
    for (
      let i = 0;
      i < 200 && !listener.recorded.statuses.some((s) => s.id === 'dash-sink' && s.status.text.startsWith('retrying'));
      i++
    )
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      listener.recorded.statuses.some((s) => s.id === 'dash-sink' && s.status.text.startsWith('retrying')),
      `status says retrying: ${JSON.stringify(listener.recorded.statuses.map((s) => s.status.text))}`,
    );
    assert.ok(
      listener.recorded.errors.some((e) => e.id === 'dash-sink' && e.message.includes(`127.0.0.1:${port}`)),
      'the sink reports the unreachable server',
    );
    assert.equal(run.stats().batchesCommitted, 0);
    await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    await run.live;
    await run.stop();
    const sink = ms.find((m) => m.role === 'sink');
    assert.ok(sink && sink.role === 'sink');
    assert.deepEqual(await pgRows(sink.table), (await fromScratch(ms, await allEvents(log))).get('dash-sink'));
    assert.deepEqual(await pgOffsets(dash), await log.presentOffsets());
  } finally {
    await run?.stop();
    await db.close();
    await new Promise<void>((resolve) => (proxy.listening ? proxy.close(() => resolve()) : resolve()));
    await pgExec(
      `drop table if exists "${dash}", "${dash}_offsets" cascade; delete from deltaflow_meta where table_name = '${dash}'`,
    ).catch(() => undefined);
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a database that does not exist yet: the sink retries with a status naming it and the field, and fills the table once it is created', async () => {
  const dir = tempDir();
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const name = uniqueName('later_db');
  const dash = uniqueName('later_dash');
  const db = new PostgresDatabase({ database: name, connectionTimeoutMs: 2000 });
  let run: ReturnType<typeof startDataflow> | null = null;
  let created = false;
  try {
    appendEvents(log, drillEvents({ machines: 4, events: 300, seed: 5 }));
    const ms: DataflowMember[] = [sourceMember('src', "'machine'", log), ...dashboardMembers('src', db, dash)];
    const listener = recordingListener();
    // Retries after the first are counted, and the counts logged every 50 ms naming the latest attempt.
    run = startDataflow({ source: log, members: ms, settings: SETTINGS, reportIntervalMs: 50 }, listener);
    const attempts = (): number =>
      Math.max(
        0,
        ...listener.recorded.logs
          .filter((l) => l.message.includes(`database "${name}"`))
          .map((l) => Number(/\(attempt (\d+)\)/.exec(l.message)?.[1] ?? 0)),
      );
    // Several attempts, not a halt: the database can be created while the dataflow waits.
    for (let i = 0; i < 300 && attempts() < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(attempts() >= 3, `retried: ${JSON.stringify(listener.recorded.logs)}`);
    const sinkStatus = listener.recorded.statuses.filter((s) => s.id === 'dash-sink').at(-1)?.status;
    assert.deepEqual(sinkStatus, {
      fill: 'yellow',
      shape: 'ring',
      text: `retrying: no database "${name}" (Database field)`,
    });
    assert.ok(
      listener.recorded.errors.some(
        (e) =>
          e.id === 'dash-sink' &&
          e.message.includes(`database "${name}" does not exist — create the database (CREATE DATABASE …)`),
      ),
      `the sink says what to do: ${JSON.stringify(listener.recorded.errors)}`,
    );
    assert.ok(!listener.recorded.statuses.some((s) => s.status.fill === 'red'), 'nothing is red');
    assert.equal(run.stats().batchesCommitted, 0);

    await pgExec(`create database "${name}"`);
    created = true;
    await run.live;
    await run.stop();
    const sink = ms.find((m) => m.role === 'sink');
    assert.ok(sink && sink.role === 'sink');
    const client = new pg.Client({ database: name });
    await client.connect();
    try {
      const cols = sink.table.columns.map((c) => `"${c.name}"`).join(', ');
      const rows = (await client.query(`select ${cols} from "${dash}"`)).rows as Record<string, unknown>[];
      assert.deepEqual(rows.map(rowText).sort(), (await fromScratch(ms, await allEvents(log))).get('dash-sink'));
    } finally {
      await client.end();
    }
  } finally {
    await run?.stop();
    await db.close();
    if (created) await pgExec(`drop database if exists "${name}" with (force)`);
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
