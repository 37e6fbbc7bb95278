/**
 * Dataflows spread across instances (issue 14, point 3), with real processes on one SQLite file:
 * 6 dataflows on 3 instances (spread-worker.ts) while events keep arriving. The leases, read from
 * `deltaflow_lease` itself, spread 2/2/2; after one instance is SIGKILLed the other two run 3/3;
 * after a fourth joins they rebalance to 2/2/2 (the instances over their share give leases up
 * cleanly). At the end every table of every dataflow equals the from-scratch result, its offsets
 * equal the present, and a trigger logging every committed insert into each `applied` table (one
 * row per event) shows no event applied twice: never two writers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { offsetsEqual, type OffsetMap } from '../../src/core/offset-map';
import { appliedTable, fencingMembers } from '../chaos/fencing-members';
import {
  allEvents,
  appendEvents,
  assertSameRows,
  drillEvents,
  fromScratch,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  unusedDatabase,
} from './support';

const worker = join(__dirname, 'spread-worker.ts');
const LEASE_MS = 2000;
const DATAFLOWS = 6;
const INITIAL = 1000;

interface Instance {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

function spawnInstance(logFile: string, file: string, name: string): Instance {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', worker, logFile, file, name, String(LEASE_MS), String(DATAFLOWS)],
    { stdio: ['ignore', 'pipe', 'pipe'], env: process.env },
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', () => undefined);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { name, proc, exited, stderr: () => stderr };
}

test('6 dataflows on 3 instances: leases spread 2/2/2, go to the others after a SIGKILL, rebalance after a join; exact tables, no event applied twice', async () => {
  const dir = tempDir('deltaflow-spread-');
  const file = join(dir, 'views.sqlite');
  const logFile = join(dir, 'log.sqlite');
  const log = new EmbeddedLog(logFile);
  const events = drillEvents({ machines: 20, events: 20_000, seed: 14 });
  appendEvents(log, events.slice(0, INITIAL), 2000);
  const withDb = <T>(fn: (d: Database.Database) => T): T => {
    const d = new Database(file);
    try {
      d.pragma('busy_timeout = 10000');
      return fn(d);
    } finally {
      d.close();
    }
  };
  // Every dataflow's applied table exists before it runs, with a trigger logging every insert.
  const setup = new SqliteDatabase({ filename: file });
  for (let i = 0; i < DATAFLOWS; i++) await setup.transaction((tx) => tx.ensureTable(appliedTable(`d${i}_applied`)));
  await setup.close();
  withDb((d) => {
    for (let i = 0; i < DATAFLOWS; i++) {
      d.exec(`CREATE TABLE "d${i}_applied_log" (stream text, event_offset bigint)`);
      d.exec(
        `CREATE TRIGGER "d${i}_applied_logged" AFTER INSERT ON "d${i}_applied" BEGIN INSERT INTO "d${i}_applied_log" VALUES (NEW.stream, NEW.event_offset); END`,
      );
    }
  });
  /** Holders of the unexpired leases: instance → number of dataflows, and whether all 6 are held. */
  const spread = (): { counts: Record<string, number>; held: number } => {
    const rows = withDb((d) => {
      try {
        return d
          .prepare(
            `SELECT holder FROM deltaflow_lease WHERE holder IS NOT NULL AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`,
          )
          .all() as { holder: string }[];
      } catch {
        return [];
      }
    });
    const counts: Record<string, number> = {};
    for (const r of rows) counts[r.holder] = (counts[r.holder] ?? 0) + 1;
    return { counts, held: rows.length };
  };
  const waitSpread = async (expected: Record<string, number>, what: string, ms = 30_000): Promise<void> => {
    const until = Date.now() + ms;
    let last = spread();
    for (;;) {
      last = spread();
      if (last.held === DATAFLOWS && JSON.stringify(sorted(last.counts)) === JSON.stringify(sorted(expected))) return;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; leases: ${JSON.stringify(last.counts)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const sorted = (o: Record<string, number>): [string, number][] =>
    Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));

  let appended = INITIAL;
  const appender = setInterval(() => {
    const next = Math.min(events.length, appended + 10);
    if (next > appended) appendEvents(log, events.slice(appended, next), 2000);
    appended = next;
  }, 50);
  const instances: Instance[] = [];
  const start = (name: string): Instance => {
    const i = spawnInstance(logFile, file, name);
    instances.push(i);
    return i;
  };
  try {
    const [, , c] = [start('a'), start('b'), start('c')];
    await waitSpread({ a: 2, b: 2, c: 2 }, 'the leases spread 2/2/2 on 3 instances');
    (c as Instance).proc.kill('SIGKILL');
    await (c as Instance).exited;
    await waitSpread({ a: 3, b: 3 }, 'the 2 instances left run 3 each after the third was killed');
    start('d');
    await waitSpread({ a: 2, b: 2, d: 2 }, 'the leases rebalance to 2/2/2 after a fourth instance joined');
    clearInterval(appender);
    // Every dataflow catches up with every event.
    const present = await log.presentOffsets();
    const until = Date.now() + 60_000;
    for (let i = 0; i < DATAFLOWS; i++) {
      let offsets: OffsetMap = {};
      while (!offsetsEqual(offsets, present)) {
        assert.ok(Date.now() < until, `dataflow d${i} commits every event`);
        try {
          offsets = sqliteOffsets(file, `d${i}_applied`);
        } catch {
          offsets = {};
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const i of instances) if (i.proc.exitCode === null && i.proc.signalCode === null) i.proc.kill('SIGTERM');
    for (const i of instances) await i.exited;
    const all = await allEvents(log);
    for (let i = 0; i < DATAFLOWS; i++) {
      const members = fencingMembers(log, unusedDatabase, `d${i}_`);
      const expected = await fromScratch(members, all);
      for (const m of members) {
        if (m.role !== 'sink') continue;
        assertSameRows(sqliteRows(file, m.table), expected.get(m.id), `${m.table.name} equals the from-scratch result`);
        assert.deepEqual(sqliteOffsets(file, m.table.name), present, `${m.table.name} offsets equal the present`);
      }
      const twice = withDb((d) =>
        d
          .prepare(
            `SELECT stream, event_offset, count(*) AS n FROM "d${i}_applied_log" GROUP BY stream, event_offset HAVING count(*) > 1`,
          )
          .all(),
      );
      assert.deepEqual(twice, [], `d${i}: no event applied twice`);
      const [total] = withDb((d) => d.prepare(`SELECT count(*) AS n FROM "d${i}_applied_log"`).all()) as {
        n: number;
      }[];
      assert.equal(Number(total?.n), appended, `d${i}: every event applied once`);
    }
    // A clean stop deletes the heartbeat (the killed instance's row just expired).
    assert.deepEqual(
      withDb((d) => d.prepare('SELECT instance FROM deltaflow_instance ORDER BY instance').all()),
      [{ instance: 'c' }],
      'only the killed instance left a heartbeat',
    );
  } catch (e) {
    for (const i of instances) process.stderr.write(`--- ${i.name}\n${i.stderr().slice(-3000)}\n`);
    throw e;
  } finally {
    clearInterval(appender);
    for (const i of instances) i.proc.kill('SIGKILL');
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
