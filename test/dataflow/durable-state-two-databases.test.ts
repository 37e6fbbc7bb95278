/**
 * The README's promise for *Operator state: in the database* when a dataflow's sinks are in two
 * databases (docs/durable-state.md, "Where": all sinks in one database, otherwise the state stays
 * in memory and the log says why). A dataflow with durable state asked for, one table in an SQLite
 * file and one in PostgreSQL: it runs with its state in memory (stats, a warning naming the
 * reason), writes no operator state to either database, and its tables equal the from-scratch
 * result — after the first start and after a restart, which rebuilds the state by replaying the
 * history, as without durable state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendInOrder,
  dashboardMembers,
  drillEvents,
  fromScratch,
  pgClient,
  pgExec,
  pgRows,
  recordingListener,
  sourceMember,
  sqliteRows,
  tempDir,
  uniqueName,
  usageMembers,
  waitCommitted,
} from './support';

const SETTINGS: DataflowSettings = {
  batchSize: 20,
  batchMs: 1,
  maxInFlight: 2,
  retentionMicros: null,
  onError: 'skip',
  durableState: true,
  stateCacheBytes: 1000,
};

test('durable state asked for, sinks in SQLite and PostgreSQL: the state stays in memory, the log says why, the tables are right across a restart', async () => {
  const dir = tempDir('deltaflow-durable-two-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const file = join(dir, 'views.sqlite');
  const sqlite = new SqliteDatabase({ filename: file });
  const pg = new PostgresDatabase({});
  const usage = uniqueName('two_db_usage');
  const id = uniqueName('two_db_flow');
  const members: DataflowMember[] = [
    sourceMember('src', "'machine'", log),
    ...dashboardMembers('src', sqlite, 'dashboard'),
    ...usageMembers('src', pg, usage),
  ];
  const runOnce = async () => {
    const listener = recordingListener();
    const run = startDataflow({ id, source: log, members, settings: SETTINGS }, listener);
    await Promise.race([run.live, run.finished]);
    await waitCommitted(run, await log.presentOffsets());
    await run.stop();
    return { stats: run.stats(), warnings: listener.recorded.logs.filter((l) => l.level === 'warn') };
  };
  const assertTables = async (what: string): Promise<void> => {
    const expected = await fromScratch(members, await allEvents(log));
    for (const m of members) {
      if (m.role !== 'sink') continue;
      const rows = m.database === sqlite ? sqliteRows(file, m.table) : await pgRows(m.table);
      assert.deepEqual(rows, expected.get(m.id), `${m.table.name} ${what}`);
      assert.ok(rows.length > 0, `${m.table.name} has rows`);
    }
  };
  /** Operator state stored for this dataflow: SQLite's state tables, PostgreSQL's rows of the scope. */
  const storedState = async (): Promise<string[]> => {
    const out: string[] = [];
    const c = new Database(file, { readonly: true });
    try {
      for (const r of c.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'deltaflow_state%'").all())
        out.push(`SQLite table ${(r as { name: string }).name}`);
    } finally {
      c.close();
    }
    const p = await pgClient();
    try {
      const exists = (await p.query("SELECT to_regclass('deltaflow_state_scope') IS NOT NULL AS ok")).rows[0].ok;
      if (exists)
        for (const r of (await p.query('SELECT scope FROM deltaflow_state_scope WHERE scope = $1', [id])).rows)
          out.push(`PostgreSQL scope ${String(r.scope)}`);
    } finally {
      await p.end();
    }
    return out;
  };
  try {
    const events = drillEvents({ machines: 3, events: 200, seed: 11 });
    appendInOrder(log, events.slice(0, 120));
    const first = await runOnce();
    assert.equal(first.stats.error, null);
    assert.equal(first.stats.durableState, false, 'the state is kept in memory');
    assert.ok(
      first.warnings.some((l) =>
        /operator state kept in memory: its db-sinks write to more than one database/.test(l.message),
      ),
      `the log says why: ${JSON.stringify(first.warnings)}`,
    );
    await assertTables('after the first start');
    assert.deepEqual(await storedState(), [], 'no operator state is written to either database');

    appendInOrder(log, events.slice(120));
    const second = await runOnce();
    assert.equal(second.stats.error, null);
    assert.equal(second.stats.durableState, false);
    assert.equal(second.stats.eventsReplayed, 120, 'the restart rebuilds the state from the history');
    assert.equal(second.stats.eventsRead, 200);
    await assertTables('after a restart');
    assert.deepEqual(await storedState(), []);
  } finally {
    await sqlite.close();
    await pg.close();
    await log.close();
    await pgExec(
      `drop table if exists "${usage}", "${usage}_offsets"; delete from deltaflow_meta where table_name = '${usage}'`,
    );
    rmSync(dir, { recursive: true, force: true });
  }
});
