/**
 * Crash test (SQLite, PostgreSQL, MariaDB): a child process runs the dashboard + usage dataflow over
 * 100,000 events and is killed with SIGKILL at random moments (in up to three rounds certainly
 * while a transaction is open: its rows written, not yet committed); after every restart it
 * resumes. At the end every table equals the from-scratch result row for row and the offsets equal
 * the source's present. With the operators' state in the database (SQLite, PostgreSQL, MariaDB),
 * also after every kill: the state's level equals the tables' offsets, the tables equal the
 * from-scratch result at that level, and no restart replays history (the final run reads only the
 * events after the state); on SQLite a copy of the database taken inside a commit also continues
 * from its state to the from-scratch result reading only the events after it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { OffsetMap } from '../../src/core/offset-map';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { ActyxEvent } from '../../src/sources/types';
import type { DataflowMember } from '../../src/dataflow/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import {
  allEvents,
  appendEvents,
  appendInOrder,
  assertSameRows,
  drillEvents,
  fromScratch,
  offsetRows,
  oneByOne,
  pgClient,
  pgExec,
  mariadbDrop,
  mariadbExec,
  mariadbOffsets,
  mariadbRows,
  pgOffsets,
  pgRows,
  recordingListener,
  seeded,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  rowText,
  uniqueName,
  waitCommitted,
  withMariadb,
} from '../dataflow/support';
import { crashMembers } from './members';

const EVENTS = 100_000;
const KILLS = 10;
const worker = join(__dirname, 'worker.ts');

interface Child {
  proc: ChildProcess;
  started: Promise<void>;
  live: Promise<void>;
  /** Resolves when the worker reported its n-th commit. */
  commits(n: number): Promise<void>;
  /** Resolves when the worker (mode hold) announced its n-th open transaction. */
  opened(n: number): Promise<void>;
  /** The last transaction line of a hold worker: 'open' while a transaction has written its rows and not committed. */
  lastTx(): 'open' | 'done' | null;
  /** The greatest `eventsReplayed` of the commit lines (durable state: 0), and whether every commit line had durable state. */
  replayed(): { max: number; commits: number; durable: boolean };
  /** The worker's stats once live. */
  liveStats(): { replayed: number; read: number } | null;
  exited: Promise<number | null>;
}

function spawnWorker(args: readonly string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', worker, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: process.env,
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let onStarted!: () => void;
  let onLive!: () => void;
  const started = new Promise<void>((r) => (onStarted = r));
  const live = new Promise<void>((r) => (onLive = r));
  let commitCount = 0;
  const commitWaiters: { n: number; resolve: () => void }[] = [];
  let openCount = 0;
  let lastTx: 'open' | 'done' | null = null;
  let liveStats: { replayed: number; read: number } | null = null;
  const replayed = { max: 0, commits: 0, durable: true };
  const openWaiters: { n: number; resolve: () => void }[] = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const msg = JSON.parse(line) as {
      started?: boolean;
      live?: boolean;
      stats?: { replayed: number; read: number };
      commit?: number;
      replayed?: number;
      durable?: boolean;
      tx?: 'open' | 'done';
    };
    if (msg.tx !== undefined) lastTx = msg.tx;
    if (msg.stats !== undefined) liveStats = msg.stats;
    if (msg.commit !== undefined) {
      replayed.commits++;
      replayed.max = Math.max(replayed.max, msg.replayed ?? 0);
      replayed.durable &&= msg.durable === true;
    }
    if (msg.tx === 'open') {
      openCount++;
      for (const w of openWaiters.filter((x) => x.n <= openCount)) w.resolve();
    }
    if (msg.started) onStarted();
    if (msg.live) onLive();
    if (msg.commit !== undefined) {
      commitCount = msg.commit;
      for (const w of commitWaiters.filter((x) => x.n <= commitCount)) w.resolve();
    }
  });
  const commits = (n: number): Promise<void> =>
    commitCount >= n ? Promise.resolve() : new Promise((resolve) => commitWaiters.push({ n, resolve }));
  const opened = (n: number): Promise<void> =>
    openCount >= n ? Promise.resolve() : new Promise((resolve) => openWaiters.push({ n, resolve }));
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code, signal) => {
      if (code !== null && code !== 0) process.stderr.write(stderr);
      resolve(code ?? (signal === 'SIGKILL' ? null : -1));
    }),
  );
  return {
    proc,
    started,
    live,
    commits,
    opened,
    lastTx: () => lastTx,
    replayed: () => ({ ...replayed }),
    liveStats: () => liveStats,
    exited,
  };
}

interface LoopOptions {
  /** Retention window in µs ('' none). */
  readonly retention?: string;
  /** Operator state in the database: every worker must commit with it and replay no history. */
  readonly durable?: boolean;
  /** Events in the log (default EVENTS). */
  readonly events?: number;
  /** Checks the database after each kill (round number, whether the kill was inside a commit for sure). */
  readonly afterKill?: (round: number, insideCommit: boolean) => Promise<void>;
}

/** With durable state: the worker committed with it, and no restart replayed history (only new events read). */
function assertNoReplay(child: Child, round: string): void {
  const r = child.replayed();
  assert.ok(r.durable, `${round}: the worker kept its operator state in the database`);
  assert.equal(r.max, 0, `${round}: a restart from the stored state replayed no history`);
}

/**
 * Runs KILLS rounds of start + SIGKILL, then a final run to live; returns how many rounds were
 * already live when killed, and how many were killed inside a commit.
 */
async function crashLoop(
  kind: 'sqlite' | 'postgres' | 'mariadb',
  logFile: string,
  target: string,
  seed: number,
  progress: () => Promise<number>,
  options: LoopOptions = {},
): Promise<{ live: number; insideCommit: number }> {
  const retention = options.retention ?? '';
  const extra = options.durable ? ['durable'] : [];
  const rnd = seeded(seed);
  const seen: number[] = [];
  let liveBeforeKill = 0;
  let insideCommit = 0;
  let holdKills = 0;
  for (let i = 0; i < KILLS; i++) {
    if (i % 4 === 1) {
      // Inside a commit for sure: the transaction has written its rows and holds for 200 ms.
      const child = spawnWorker([kind, logFile, target, 'hold', retention, ...extra]);
      const outcome = await Promise.race([
        child.opened(2 + Math.floor(rnd() * 4)).then(() => 'due'),
        child.live.then(() => 'live'),
        child.exited.then(() => 'exited'),
      ]);
      if (outcome === 'exited') assert.fail(`worker exited by itself in round ${i}`);
      child.proc.kill('SIGKILL');
      await child.exited;
      // (A round may reach live first, near the end of the history: then it is killed while live.)
      const inside = outcome === 'due' && child.lastTx() === 'open';
      if (outcome === 'due') {
        holdKills++;
        if (inside) insideCommit++;
      }
      if (options.durable) assertNoReplay(child, `round ${i}`);
      seen.push(await progress());
      await options.afterKill?.(i, inside);
      continue;
    }
    const child = spawnWorker([kind, logFile, target, i % 2 === 0 ? 'slow' : '-', retention, ...extra]);
    // A random moment: right at start (opening tables, replaying) in some rounds, otherwise a few
    // ms after a random number of new commits (inside the next batch's computation or commit).
    const commits = i % 4 === 3 ? 0 : 1 + Math.floor(rnd() * 6);
    const waitFor = commits === 0 ? child.started : child.commits(commits);
    const outcome = await Promise.race([
      waitFor.then(() => 'due'),
      child.live.then(() => 'live'),
      child.exited.then(() => 'exited'),
    ]);
    if (outcome === 'exited') assert.fail(`worker exited by itself in round ${i}`);
    if (outcome === 'live') liveBeforeKill++;
    await new Promise((r) => setTimeout(r, Math.floor(rnd() * 15)));
    child.proc.kill('SIGKILL');
    await child.exited;
    if (options.durable) assertNoReplay(child, `round ${i}`);
    seen.push(await progress());
    await options.afterKill?.(i, false);
  }
  if (process.env.CRASH_DEBUG)
    console.log(
      `# ${kind} progress after kills: ${seen.join(', ')}; killed inside a commit: ${insideCommit}, live: ${liveBeforeKill}`,
    );
  assert.ok(holdKills >= 1, 'a hold round was killed before the dataflow was live');
  assert.equal(
    insideCommit,
    holdKills,
    'the hold rounds were killed while a transaction had written its rows and not committed',
  );
  // The kills must have interrupted real work: committed progress grew across rounds, stepwise.
  assert.ok(new Set(seen).size >= 4, `committed progress after each kill: ${seen.join(', ')}`);
  const committed = await progress();
  const last = spawnWorker([kind, logFile, target, '-', retention, ...extra]);
  await Promise.race([last.live, last.exited.then((c) => assert.fail(`final worker exited with ${c}`))]);
  last.proc.kill('SIGTERM');
  assert.equal(await last.exited, 0);
  if (options.durable) {
    assertNoReplay(last, 'final run');
    // Read from the source: exactly the events after the state (the stored ones were not read again).
    assert.equal(last.liveStats()?.replayed, 0);
    assert.equal(
      last.liveStats()?.read,
      (options.events ?? EVENTS) - committed,
      'the final run read only the events after the state',
    );
  }
  return { live: liveBeforeKill, insideCommit };
}

async function expected(
  log: EmbeddedLog,
  db: SinkDatabase,
  prefix: string,
): Promise<{ members: DataflowMember[]; rows: Map<string, string[]> }> {
  const members = crashMembers(log, db, prefix);
  return { members, rows: await fromScratch(members, await allEvents(log)) };
}

const dummyDb: SinkDatabase = {
  kind: 'sqlite',
  label: 'unused',
  transaction: () => Promise.reject(new Error('unused')),
  close: () => Promise.resolve(),
};

function makeLog(dir: string, events = EVENTS): { file: string; log: EmbeddedLog } {
  const file = join(dir, 'log.sqlite');
  const log = new EmbeddedLog(file);
  appendEvents(log, drillEvents({ machines: 50, events, seed: 42 }), 20_000);
  return { file, log };
}

/** Events committed to a SQLite file's usage table so far (0 before it exists). */
function sqliteProgress(dbFile: string): () => Promise<number> {
  return async () => {
    try {
      return Object.values(sqliteOffsets(dbFile, 'usage')).reduce((a, b) => a + b + 1, 0);
    } catch {
      return 0; // not created yet
    }
  };
}

test('SQLite: SIGKILL at random moments, restart, tables equal the from-scratch result', async () => {
  const dir = tempDir('deltaflow-crash-');
  try {
    const { file: logFile, log } = makeLog(dir);
    const dbFile = join(dir, 'views.sqlite');
    const progress = sqliteProgress(dbFile);
    const { live } = await crashLoop('sqlite', logFile, dbFile, 1, progress);
    assert.ok(live <= KILLS / 2, `most kills hit before the dataflow was live (${live} of ${KILLS} were live)`);
    const { members, rows } = await expected(log, dummyDb, '');
    const present = await log.presentOffsets();
    for (const m of members) {
      if (m.role !== 'sink') continue;
      const actual = sqliteRows(dbFile, m.table);
      assert.ok(actual.length > 0);
      assertSameRows(actual, rows.get(m.id), `${m.table.name} equals the from-scratch result`);
      assert.deepEqual(sqliteOffsets(dbFile, m.table.name), present, `${m.table.name} offsets equal the present`);
    }
    await log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL: SIGKILL at random moments, restart, tables equal the from-scratch result', async () => {
  const dir = tempDir('deltaflow-crash-');
  const prefix = `${uniqueName('crash')}_`;
  try {
    const { file: logFile, log } = makeLog(dir);
    const progress = async (): Promise<number> => {
      try {
        return Object.values(await pgOffsets(`${prefix}usage`)).reduce((a, b) => a + b + 1, 0);
      } catch {
        return 0; // not created yet
      }
    };
    const { live } = await crashLoop('postgres', logFile, prefix, 2, progress);
    assert.ok(live <= KILLS / 2, `most kills hit before the dataflow was live (${live} of ${KILLS} were live)`);
    const { members, rows } = await expected(log, dummyDb, prefix);
    const present = await log.presentOffsets();
    for (const m of members) {
      if (m.role !== 'sink') continue;
      const actual = await pgRows(m.table);
      assert.ok(actual.length > 0);
      assertSameRows(actual, rows.get(m.id), `${m.table.name} equals the from-scratch result`);
      assert.deepEqual(await pgOffsets(m.table.name), present, `${m.table.name} offsets equal the present`);
    }
    await log.close();
  } finally {
    for (const t of ['dashboard', 'usage'])
      await pgExec(`drop table if exists "${prefix}${t}", "${prefix}${t}_offsets"`).catch(() => undefined);
    await pgExec(`delete from deltaflow_meta where table_name like '${prefix}%'`).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MariaDB: SIGKILL at random moments (three inside a commit), restart, tables equal the from-scratch result', async () => {
  const dir = tempDir('deltaflow-crash-');
  const prefix = `${uniqueName('crashm')}_`;
  try {
    const { file: logFile, log } = makeLog(dir);
    const progress = async (): Promise<number> => {
      try {
        return Object.values(await mariadbOffsets(`${prefix}usage`)).reduce((a, b) => a + b + 1, 0);
      } catch {
        return 0; // not created yet
      }
    };
    const { live, insideCommit } = await crashLoop('mariadb', logFile, prefix, 4, progress);
    assert.ok(live <= KILLS / 2, `most kills hit before the dataflow was live (${live} of ${KILLS} were live)`);
    assert.ok(insideCommit >= 3, `three kills inside a commit (${insideCommit})`);
    const { members, rows } = await expected(log, dummyDb, prefix);
    const present = await log.presentOffsets();
    for (const m of members) {
      if (m.role !== 'sink') continue;
      const actual = await mariadbRows(m.table);
      assert.ok(actual.length > 0);
      assertSameRows(actual, rows.get(m.id), `${m.table.name} equals the from-scratch result`);
      assert.deepEqual(await mariadbOffsets(m.table.name), present, `${m.table.name} offsets equal the present`);
    }
    await log.close();
  } finally {
    await mariadbDrop([`${prefix}dashboard`, `${prefix}usage`]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Events of the durable-state case: fewer, since every kill is checked against a from-scratch run. */
const DURABLE_EVENTS = 60_000;

/** The level of a state scope in a SQLite file ({} before it exists). */
function sqliteStateLevel(file: string, scope: string): OffsetMap {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const exists = db.prepare("select 1 from sqlite_master where name = 'deltaflow_state_offsets'").get();
    if (exists === undefined) return {};
    const rows = db.prepare('select stream, "offset" from deltaflow_state_offsets where scope = ?').all(scope);
    return offsetRows(rows as Record<string, unknown>[]);
  } finally {
    db.close();
  }
}

/** The offsets of a table in a SQLite file ({} before it exists). */
function sqliteOffsetsOrNone(file: string, table: string): OffsetMap {
  try {
    return sqliteOffsets(file, table);
  } catch {
    return {};
  }
}

/** The events a level covers. */
function upTo(events: readonly ActyxEvent[], level: OffsetMap): ActyxEvent[] {
  return events.filter((e) => Object.prototype.hasOwnProperty.call(level, e.stream) && e.offset <= level[e.stream]!);
}

test('SQLite with the operator state in the database: SIGKILL at random moments (also inside commits); after every kill state level = offsets, tables = from scratch at that level, and restarts read only newer events', async () => {
  const dir = tempDir('deltaflow-crash-');
  try {
    const { file: logFile, log } = makeLog(dir, DURABLE_EVENTS);
    const dbFile = join(dir, 'views.sqlite');
    const events = await allEvents(log);
    const members = crashMembers(log, dummyDb, '', true);
    const final = await fromScratch(members, events);
    let continued = 0;
    const afterKill = async (round: number, insideCommit: boolean): Promise<void> => {
      if (!existsSync(dbFile)) return;
      const level = sqliteStateLevel(dbFile, 'flow');
      for (const m of members) {
        if (m.role !== 'sink') continue;
        // Same transaction: the state's level is exactly every table's offsets.
        assert.deepEqual(
          sqliteOffsetsOrNone(dbFile, m.table.name),
          level,
          `round ${round}: ${m.table.name} offsets = state level`,
        );
      }
      const expected = await fromScratch(members, upTo(events, level));
      for (const m of members)
        if (m.role === 'sink' && Object.keys(level).length > 0)
          assertSameRows(
            sqliteRows(dbFile, m.table),
            expected.get(m.id),
            `round ${round}: ${m.table.name} at the state's level`,
          );
      if (!insideCommit) return;
      // Killed inside a commit: a copy of the database continues from its state, reading only the
      // events after it, to the from-scratch result of the whole log.
      const copy = join(dir, `copy-${round}.sqlite`);
      copyFileSync(dbFile, copy);
      if (existsSync(`${dbFile}-wal`)) copyFileSync(`${dbFile}-wal`, `${copy}-wal`);
      const db = new SqliteDatabase({ filename: copy });
      try {
        const copyMembers = crashMembers(log, db, '', true);
        const run = startDataflow(
          {
            id: 'flow',
            source: log,
            members: copyMembers,
            settings: {
              batchSize: 1000,
              catchUpBatchSize: 1000,
              batchMs: 5,
              maxInFlight: 2,
              retentionMicros: null,
              onError: 'skip',
              durableState: true,
              stateCacheBytes: 200_000,
            },
          },
          recordingListener(),
        );
        await run.live;
        await waitCommitted(run, await log.presentOffsets());
        await run.stop();
        const stats = run.stats();
        assert.equal(stats.error, null);
        assert.equal(stats.durableState, true);
        assert.equal(stats.eventsReplayed, 0, `round ${round}: the copy replayed no history`);
        assert.equal(
          stats.eventsRead,
          events.length - upTo(events, level).length,
          `round ${round}: the copy read only newer events`,
        );
        for (const m of copyMembers)
          if (m.role === 'sink')
            assertSameRows(sqliteRows(copy, m.table), final.get(m.id), `round ${round}: the copy's ${m.table.name}`);
        continued++;
      } finally {
        await db.close();
      }
    };
    const { live, insideCommit } = await crashLoop('sqlite', logFile, dbFile, 5, sqliteProgress(dbFile), {
      durable: true,
      events: DURABLE_EVENTS,
      afterKill,
    });
    assert.ok(live <= KILLS / 2, `most kills hit before the dataflow was live (${live} of ${KILLS} were live)`);
    assert.ok(
      insideCommit >= 1 && continued === insideCommit,
      `copies continued after kills inside a commit (${continued})`,
    );
    const present = await log.presentOffsets();
    for (const m of members) {
      if (m.role !== 'sink') continue;
      assertSameRows(sqliteRows(dbFile, m.table), final.get(m.id), `${m.table.name} equals the from-scratch result`);
      assert.deepEqual(sqliteOffsets(dbFile, m.table.name), present, `${m.table.name} offsets equal the present`);
    }
    assert.deepEqual(sqliteStateLevel(dbFile, 'flow'), present, 'the state level equals the present');
    await log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

type ServerKind = 'postgres' | 'mariadb';

/** What a server database holds at one moment: a state scope's level, and each table's offsets and rows. */
interface ServerView {
  readonly level: OffsetMap;
  readonly offsets: ReadonlyMap<string, OffsetMap>;
  readonly rows: ReadonlyMap<string, string[]>;
}

/**
 * Reads a scope's state level (deltaflow_state_offsets) and the given tables' offsets and rows from
 * PostgreSQL or MariaDB in one read-only snapshot (a commit the killed worker had already sent may
 * still be finishing: the snapshot sees all of it or none). A table, or the state's offsets table,
 * that does not exist yet reads as no offsets and no rows.
 */
async function serverView(kind: ServerKind, scope: string, tables: readonly TableSpec[]): Promise<ServerView> {
  const q = (name: string): string => (kind === 'postgres' ? `"${name}"` : `\`${name}\``);
  const read = async (
    query: (sql: string, params?: readonly unknown[]) => Promise<Record<string, unknown>[]>,
    exists: (name: string) => Promise<boolean>,
    begin: string,
  ): Promise<ServerView> => {
    const present = new Set<string>();
    for (const name of ['deltaflow_state_offsets', ...tables.flatMap((t) => [t.name, `${t.name}_offsets`])])
      if (await exists(name)) present.add(name);
    await query(begin);
    try {
      const level = present.has('deltaflow_state_offsets')
        ? offsetRows(
            await query(
              `select ${q('stream')}, ${q('offset')} from ${q('deltaflow_state_offsets')} where ${q('scope')} = ${kind === 'postgres' ? '$1' : '?'}`,
              [scope],
            ),
          )
        : {};
      const offsets = new Map<string, OffsetMap>();
      const rows = new Map<string, string[]>();
      for (const t of tables) {
        const o = `${t.name}_offsets`;
        offsets.set(t.name, present.has(o) ? offsetRows(await query(`select * from ${q(o)}`)) : {});
        const cols = t.columns
          .filter((c) => !c.exclude)
          .map((c) => q(c.name))
          .join(', ');
        rows.set(
          t.name,
          present.has(t.name) ? (await query(`select ${cols} from ${q(t.name)}`)).map(rowText).sort() : [],
        );
      }
      return { level, offsets, rows };
    } finally {
      await query('rollback');
    }
  };
  if (kind === 'postgres') {
    const c = await pgClient();
    try {
      return await read(
        async (sql, params) => (await c.query(sql, params as unknown[] | undefined)).rows as Record<string, unknown>[],
        async (name) => (await c.query('select to_regclass($1) is not null as ok', [`"${name}"`])).rows[0].ok === true,
        'begin isolation level repeatable read read only',
      );
    } finally {
      await c.end();
    }
  }
  return withMariadb((c) =>
    read(
      async (sql, params) => (await c.query(sql, params as unknown[] | undefined))[0] as Record<string, unknown>[],
      async (name) => {
        const [r] = await c.query(
          'select count(*) as n from information_schema.tables where table_schema = database() and table_name = ?',
          [name],
        );
        return Number((r as Record<string, unknown>[])[0]!.n) > 0;
      },
      'start transaction with consistent snapshot, read only',
    ),
  );
}

/** The level of a state scope in PostgreSQL or MariaDB ({} before it exists). */
async function serverStateLevel(kind: ServerKind, scope: string): Promise<OffsetMap> {
  return (await serverView(kind, scope, [])).level;
}

/** Drops a server test's tables (and their meta rows) and deletes its state scope: entries, level and scope row. */
async function serverCleanup(kind: ServerKind, prefix: string, scope: string): Promise<void> {
  const tables = ['dashboard', 'usage', 'spans', 'first_span'].map((t) => `${prefix}${t}`);
  const exec = kind === 'postgres' ? pgExec : mariadbExec;
  if (kind === 'postgres') {
    for (const t of tables) await pgExec(`drop table if exists "${t}", "${t}_offsets"`).catch(() => undefined);
    await pgExec(`delete from deltaflow_meta where table_name like '${prefix}%'`).catch(() => undefined);
  } else await mariadbDrop(tables).catch(() => undefined);
  const op = kind === 'postgres' ? '"op"' : '`op`';
  const sc = kind === 'postgres' ? '"scope"' : '`scope`';
  await exec(`delete from deltaflow_state where ${op} >= '${scope}/' and ${op} < '${scope}0'`).catch(() => undefined);
  await exec(`delete from deltaflow_state_offsets where ${sc} = '${scope}'`).catch(() => undefined);
  await exec(`delete from deltaflow_state_scope where ${sc} = '${scope}'`).catch(() => undefined);
}

for (const [kind, seed] of [
  ['postgres', 6],
  ['mariadb', 7],
] as const) {
  const name = kind === 'postgres' ? 'PostgreSQL' : 'MariaDB';
  test(`${name} with the operator state in the database: SIGKILL at random moments (also inside commits); after every kill state level = offsets, tables = from scratch at that level, and restarts read only newer events`, async () => {
    const dir = tempDir('deltaflow-crash-');
    const prefix = `${uniqueName(kind === 'postgres' ? 'crashd' : 'crashdm')}_`;
    // The worker's dataflow id, which is its state scope.
    const scope = `${prefix}flow`;
    const { file: logFile, log } = makeLog(dir, DURABLE_EVENTS);
    try {
      const events = await allEvents(log);
      const members = crashMembers(log, dummyDb, prefix, true);
      const sinks = members.filter((m) => m.role === 'sink');
      const tables = sinks.map((m) => m.table);
      const final = await fromScratch(members, events);
      const progress = async (): Promise<number> =>
        Object.values((await serverView(kind, scope, [])).level).reduce((a, b) => a + b + 1, 0);
      let checked = 0;
      const afterKill = async (round: number): Promise<void> => {
        const view = await serverView(kind, scope, tables);
        for (const m of sinks)
          // Same transaction: the state's level is exactly every table's offsets.
          assert.deepEqual(
            view.offsets.get(m.table.name),
            view.level,
            `round ${round}: ${m.table.name} offsets = state level`,
          );
        const expected = await fromScratch(members, upTo(events, view.level));
        for (const m of sinks)
          assertSameRows(
            view.rows.get(m.table.name) ?? [],
            expected.get(m.id),
            `round ${round}: ${m.table.name} at the state's level`,
          );
        checked++;
      };
      const { live, insideCommit } = await crashLoop(kind, logFile, prefix, seed, progress, {
        durable: true,
        events: DURABLE_EVENTS,
        afterKill,
      });
      assert.ok(live <= KILLS / 2, `most kills hit before the dataflow was live (${live} of ${KILLS} were live)`);
      assert.ok(insideCommit >= 1, `kills inside a commit (${insideCommit})`);
      assert.equal(checked, KILLS, 'the database was checked after every kill');
      const present = await log.presentOffsets();
      const view = await serverView(kind, scope, tables);
      for (const m of sinks) {
        assertSameRows(
          view.rows.get(m.table.name) ?? [],
          final.get(m.id),
          `${m.table.name} equals the from-scratch result`,
        );
        assert.deepEqual(view.offsets.get(m.table.name), present, `${m.table.name} offsets equal the present`);
      }
      assert.deepEqual(await serverStateLevel(kind, scope), present, 'the state level equals the present');
    } finally {
      await log.close();
      await serverCleanup(kind, prefix, scope);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Events with every 7th late by up to two hours; appended in Lamport order, so every run (and the reference) computes them in the same order. */
function makeLateLog(dir: string): { file: string; log: EmbeddedLog } {
  const file = join(dir, 'log.sqlite');
  const log = new EmbeddedLog(file);
  appendInOrder(
    log,
    drillEvents({ machines: 50, events: 40_000, seed: 43 }).map((e, i) =>
      i % 7 === 3 ? { ...e, timestamp: e.timestamp - ((i * 7919) % 7200) * 1e6 } : e,
    ),
  );
  return { file, log };
}

/** 1 h of the events' time (≈ 3,600 events), compacted in steps of 7.5 min; late events reach two windows back. */
const WINDOW = 3600e6;

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} with a retention window and late events: SIGKILL at random moments, tables equal one uninterrupted run of one event per step`, async () => {
    const dir = tempDir('deltaflow-crash-');
    const prefix = kind === 'postgres' ? `${uniqueName('crashr')}_` : '';
    const dbFile = join(dir, 'views.sqlite');
    try {
      const { file: logFile, log } = makeLateLog(dir);
      const progress =
        kind === 'sqlite'
          ? sqliteProgress(dbFile)
          : async (): Promise<number> => {
              try {
                return Object.values(await pgOffsets(`${prefix}usage`)).reduce((a, b) => a + b + 1, 0);
              } catch {
                return 0; // not created yet
              }
            };
      await crashLoop(kind, logFile, kind === 'sqlite' ? dbFile : prefix, 3, progress, { retention: String(WINDOW) });
      const members = crashMembers(log, dummyDb, prefix);
      const reference = await oneByOne(members, await allEvents(log), WINDOW);
      const all = await fromScratch(members, await allEvents(log));
      const present = await log.presentOffsets();
      for (const m of members) {
        if (m.role !== 'sink') continue;
        const actual = kind === 'sqlite' ? sqliteRows(dbFile, m.table) : await pgRows(m.table);
        assert.ok(actual.length > 0);
        assertSameRows(
          actual,
          reference.get(m.id),
          `${m.table.name} equals one uninterrupted run of one event per step`,
        );
        assert.deepEqual(
          kind === 'sqlite' ? sqliteOffsets(dbFile, m.table.name) : await pgOffsets(m.table.name),
          present,
          `${m.table.name} offsets equal the present`,
        );
      }
      // The window mattered: without it the usage table would differ.
      assert.notEqual(JSON.stringify(reference.get('usage-sink')), JSON.stringify(all.get('usage-sink')));
      await log.close();
    } finally {
      if (kind === 'postgres') {
        for (const t of ['dashboard', 'usage'])
          await pgExec(`drop table if exists "${prefix}${t}", "${prefix}${t}_offsets"`).catch(() => undefined);
        await pgExec(`delete from deltaflow_meta where table_name like '${prefix}%'`).catch(() => undefined);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
