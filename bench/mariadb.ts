/**
 * MariaDB benchmark (`npm run bench:mariadb`): catch-up of the EXAMPLE FLOWS as the nodes compile
 * them (bench/example-flows.ts: `examples/mariadb-dashboard.json` and `examples/machine-usage.json`
 * in an in-process Node-RED, their db-config nodes pointed at MariaDB) from the embedded log into
 * MariaDB, beside a bare multi-row INSERT floor measured in the same run.
 *
 * The floor: every row the catch-up's INSERT statements wrote (multiset inserts and keyed upserts
 * alike, recorded once from the statements the sinks sent in an untimed first catch-up), inserted
 * through mysql2 alone as prepared 500-row INSERT statements into plain tables with the same column
 * types (no key, no index), in as many transactions as the catch-up committed — no reading, no
 * engine, no offsets, no upserts, no deletes. Rounds alternate (catch-up, floor, catch-up, floor, …),
 * each into a fresh database; the ratio is the median of the rounds' floor time / catch-up time
 * (= catch-up rate / floor rate). Bar: ≥ 0.4 (issue 17).
 *
 * A second line measures the hand-written views of bench/drill-pipelines.ts (dashboard keyed by
 * machine, usage multiset by dd-scan, 2-day retention; what this benchmark measured before) the same
 * way: far less engine work per event, so it shows the MariaDB write path's share more plainly.
 *
 * Beside each round: what the server counted during the catch-up (SHOW GLOBAL STATUS): commits,
 * statements per commit (round trips: the sink sends one statement at a time) and rows written;
 * and where the time went: the CPU time of this process (its main thread, which runs the engine,
 * the sinks and mysql2, and all its threads, GC included; Linux /proc) and of the server (when it is
 * the benchmark's own mariadbd), for the catch-up and for the floor. A catch-up whose main thread
 * is busy for most of its wall time waits on our own code, not on the server.
 *
 * A second floor, for comparison (the bar stays against the bare one, as issue 17 names it): the
 * same rows into tables with the sink tables' own keys and indexes (CREATE TABLE … LIKE), the keyed
 * tables' rows as the same upserts (INSERT … ON DUPLICATE KEY UPDATE) — the server's row work the
 * sinks cannot avoid.
 *
 * The server: the one the MYSQL_* variables (or MARIADB_URL) name — each round then uses databases
 * of its own, `bench_mariadb_<pid>_…`, dropped at the end, and the server counts include other
 * sessions — else Debian's mariadbd started in a temporary directory (scripts/mariadb-server.mjs)
 * and removed at the end. Environment: BENCH_EVENTS (200,000: the example flows catch up
 * at a few thousand events/s, and each line runs ROUNDS + 1 catch-ups), BENCH_MACHINES (50), BENCH_ROUNDS
 * (3), BENCH_EXAMPLES (mariadb-dashboard,machine-usage), BENCH_LOG_DIR (the generated log's cache,
 * shared with bench:e2e).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mysql from 'mysql2/promise';
import { startDataflow } from '../src/dataflow/coordinator';
import type { DataflowListener, DataflowSettings } from '../src/dataflow/types';
import { MariadbConnection } from '../src/sinks/mariadb-connection';
import { MariadbDatabase } from '../src/sinks/mariadb-database';
import { EmbeddedLog } from '../src/sources/embedded-log';
import { cachedDrillLog, drillMembers } from './drill-members';
import { runExampleFlows } from './example-flows';

const EVENTS = intEnv('BENCH_EVENTS', 200_000);
const MACHINES = intEnv('BENCH_MACHINES', 50);
const ROUNDS = intEnv('BENCH_ROUNDS', 3);
const EXAMPLES = (process.env.BENCH_EXAMPLES || 'mariadb-dashboard,machine-usage').split(',').map((s) => s.trim());
const BAR = 0.4;
/** BENCH_ONLY=flows or views: one line only (for profiling). */
const ONLY = process.env.BENCH_ONLY || '';
/** Rows per bare INSERT statement (the sink's own limit for multi-row statements). */
const ROWS_PER_INSERT = 500;
/** The repository root (this file runs from dist/bench). */
const ROOT = join(__dirname, '..', '..');

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Math.max(1, Math.floor(Number(v)));
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US');
const rate = (n: number, ms: number): string => `${count((n / ms) * 1000)} events/s`;
const line = (label: string, text: string): void => console.log(`  ${label.padEnd(40)} ${text}`);
const q = (name: string): string => `\`${name}\``;

/** The MariaDB to use: MYSQL_* / MARIADB_URL, else a temporary server of our own. */
async function server(): Promise<{
  env: Record<string, string>;
  own: boolean;
  pid?: number;
  stop(): Promise<void>;
}> {
  const given = ['MYSQL_HOST', 'MYSQL_PORT', 'MYSQL_DATABASE', 'MYSQL_USER', 'MARIADB_URL', 'MYSQL_URL'].some(
    (k) => process.env[k],
  );
  if (given) return { env: {}, own: false, stop: async () => undefined };
  // An ES module: import() through Function, which TypeScript's CommonJS output leaves alone.
  const load = new Function('path', 'return import(path)') as (path: string) => Promise<{
    startTemporaryMariadb(): Promise<{ env: Record<string, string>; pid: number; stop(): Promise<void> }>;
  }>;
  const { startTemporaryMariadb } = await load(join(ROOT, 'scripts', 'mariadb-server.mjs'));
  return { ...(await startTemporaryMariadb()), own: true };
}

/** The generated log of bench:e2e (generated by it when missing). */
const cachedLog = (): string => cachedDrillLog(EVENTS, MACHINES);

/** The rows the sinks' INSERT statements carried, per table (column names and bound values). */
interface Written {
  readonly columns: string[];
  readonly rows: (readonly unknown[])[];
  /** The sink's ` ON DUPLICATE KEY UPDATE …` clause for a keyed table ('' for a multiset table): the indexed floor's upserts. */
  readonly upsert: string;
}

const INSERT = /^INSERT INTO `([^`]+)` \(([^)]*)\) VALUES /;
/** Tables of the sinks' bookkeeping, not of the flows' views. */
const BOOKKEEPING = /(_offsets$|^deltaflow_)/;

/**
 * Runs `fn` while recording every INSERT into a view's table that a sink's connection sends
 * (MariadbConnection.query, patched for the duration).
 */
async function recordingInserts<T>(fn: () => Promise<T>): Promise<{ result: T; written: Map<string, Written> }> {
  const written = new Map<string, Written>();
  const proto = MariadbConnection.prototype as unknown as { query(sql: string, params?: readonly unknown[]): unknown };
  const original = proto.query;
  proto.query = function (this: unknown, sql: string, params: readonly unknown[] = []) {
    const m = INSERT.exec(sql);
    if (m && !BOOKKEEPING.test(m[1] as string)) {
      const columns = (m[2] as string).split(', ').map((c) => c.replace(/^`|`$/g, ''));
      let w = written.get(m[1] as string);
      const at = sql.indexOf(' ON DUPLICATE KEY UPDATE ');
      if (w === undefined)
        written.set(m[1] as string, (w = { columns, rows: [], upsert: at < 0 ? '' : sql.slice(at) }));
      for (let i = 0; i < params.length; i += columns.length) w.rows.push(params.slice(i, i + columns.length));
    }
    return original.call(this, sql, params);
  };
  try {
    return { result: await fn(), written };
  } finally {
    proto.query = original;
  }
}

const STATUS = [
  'Com_commit',
  'Com_stmt_execute',
  'Com_select',
  'Com_insert',
  'Com_delete',
  'Com_update',
  'Questions',
  'Handler_write',
  'Handler_update',
  'Handler_delete',
  'Handler_read_key',
] as const;
type Status = Record<(typeof STATUS)[number], number>;

async function status(c: mysql.Connection): Promise<Status> {
  const [rows] = await c.query(`SHOW GLOBAL STATUS WHERE Variable_name IN (${STATUS.map(() => '?').join(', ')})`, [
    ...STATUS,
  ]);
  const out = {} as Status;
  for (const name of STATUS) out[name] = 0;
  for (const r of rows as { Variable_name: string; Value: string }[])
    out[r.Variable_name as keyof Status] = Number(r.Value);
  return out;
}

function delta(a: Status, b: Status): Status {
  const out = {} as Status;
  for (const name of STATUS) out[name] = b[name] - a[name];
  return out;
}

/**
 * CPU time (ms, user + system) of a process, or of one of its threads, from /proc (Linux); null
 * where that cannot be read.
 */
function cpuMs(pid: number, thread?: number): number | null {
  try {
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    // NB: fields after the command name (which may hold spaces) — utime and stime are the 12th and 13th, in clock ticks (100 Hz).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

/** CPU time spent during a phase: this process (main thread, all threads) and the server (its own mariadbd only). */
interface Cpu {
  readonly main: number | null;
  readonly process: number;
  readonly server: number | null;
}

let serverPid: number | undefined;

/** Starts measuring; the returned function gives the CPU time spent since. */
function cpuMeter(): () => Cpu {
  const main0 = cpuMs(process.pid, process.pid);
  const server0 = serverPid === undefined ? null : cpuMs(serverPid);
  const all0 = process.cpuUsage();
  return () => {
    const all = process.cpuUsage(all0);
    const main = cpuMs(process.pid, process.pid);
    const server = serverPid === undefined ? null : cpuMs(serverPid);
    return {
      main: main0 === null || main === null ? null : main - main0,
      process: (all.user + all.system) / 1000,
      server: server0 === null || server === null ? null : server - server0,
    };
  };
}

const seconds = (ms: number | null): string => (ms === null ? '?' : `${(ms / 1000).toFixed(2)} s`);
const cpuText = (c: Cpu, wallMs: number): string =>
  `CPU: this process ${seconds(c.process)} (main thread ${seconds(c.main)}${c.main === null ? '' : `, busy ${Math.round((100 * c.main) / wallMs)} % of the wall time`}), server ${seconds(c.server)}`;

/** What a round catches up with: the example flows, or the hand-written views. */
type Kind = 'flows' | 'views';

/** Catches up with a fresh copy of the log into a fresh database; times it and counts the server's work. */
async function catchUp(
  kind: Kind,
  dir: string,
  round: string,
  database: string,
  conn: mysql.Connection,
): Promise<{ ms: number; server: Status; cpu: Cpu }> {
  const logFile = join(dir, `log-${round}.sqlite`);
  copyFileSync(cachedLog(), logFile);
  await conn.query(`DROP DATABASE IF EXISTS ${q(database)}`);
  await conn.query(`CREATE DATABASE ${q(database)}`);
  const before = await status(conn);
  const cpu = cpuMeter();
  const ms = kind === 'flows' ? await flowsCatchUp(logFile, database) : await viewsCatchUp(logFile, database);
  const spent = cpu();
  const after = await status(conn);
  rmSync(logFile, { force: true });
  return { ms, server: delta(before, after), cpu: spent };
}

/** The example flows as the nodes compile them (bench/example-flows.ts), db-configs pointed at `database`. */
async function flowsCatchUp(logFile: string, database: string): Promise<number> {
  const run = await runExampleFlows(
    ROOT,
    logFile,
    {
      kind: 'mariadb',
      host: process.env.MYSQL_HOST ?? '127.0.0.1',
      port: process.env.MYSQL_PORT ?? '3306',
      user: process.env.MYSQL_USER ?? 'root',
      database,
      ssl: 'default',
      connectTimeout: '10',
      statementTimeout: '60',
    },
    EXAMPLES,
  );
  await run.stop();
  return run.ms;
}

/** The hand-written views (bench/drill-pipelines.ts): dashboard keyed by machine, usage multiset by dd-scan, 2-day retention. */
const VIEW_SETTINGS: DataflowSettings = {
  batchSize: 10_000,
  batchMs: 5,
  maxInFlight: 16,
  retentionMicros: 2 * 86_400e6,
  onError: 'skip',
};

async function viewsCatchUp(logFile: string, database: string): Promise<number> {
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 0 });
  const db = new MariadbDatabase({ database });
  // As in the example flows: the dashboard's db-sink reports its changes, the usage sink's output is not wired.
  const members = drillMembers(log, db);
  const listener: DataflowListener = {
    status: () => undefined,
    error: (id, message) => console.error(`  ! ${id}: ${message}`),
    committed: () => undefined,
    log: (level, message) => {
      if (level === 'warn') console.error(`  ! ${message}`);
    },
  };
  const t0 = performance.now();
  const run = startDataflow({ source: log, members, settings: VIEW_SETTINGS }, listener);
  try {
    await Promise.race([
      run.live,
      run.finished.then(() => Promise.reject(new Error(run.stats().error ?? 'dataflow ended'))),
    ]);
    return performance.now() - t0;
  } finally {
    await run.stop();
    await db.close();
    await log.close();
  }
}

/**
 * Tables in `to` for the tables in `from`: plain (their column types, no keys, no index), or
 * `indexed` (CREATE TABLE … LIKE: the same keys and indexes).
 */
async function bareTables(
  c: mysql.Connection,
  from: string,
  to: string,
  tables: readonly string[],
  indexed: boolean,
): Promise<void> {
  await c.query(`DROP DATABASE IF EXISTS ${q(to)}`);
  await c.query(`CREATE DATABASE ${q(to)}`);
  for (const t of tables) {
    if (indexed) {
      await c.query(`CREATE TABLE ${q(to)}.${q(t)} LIKE ${q(from)}.${q(t)}`);
      continue;
    }
    const [cols] = await c.query(
      'SELECT COLUMN_NAME AS n, COLUMN_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      [from, t],
    );
    const defs = (cols as { n: string; t: string }[]).map((x) => `${q(x.n)} ${x.t}`).join(', ');
    await c.query(
      `CREATE TABLE ${q(to)}.${q(t)} (${defs}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin`,
    );
  }
}

/**
 * The floor: the written rows into the tables of `database` as prepared multi-row INSERTs (with
 * `upserts`, a keyed table's rows with the sink's ON DUPLICATE KEY UPDATE clause), in `transactions`
 * transactions. Resolves to its wall time and CPU time.
 */
async function bareInserts(
  c: mysql.Connection,
  database: string,
  written: ReadonlyMap<string, Written>,
  transactions: number,
  upserts: boolean,
): Promise<{ ms: number; cpu: Cpu }> {
  const text = new Map<string, string>();
  const statement = (table: string, columns: readonly string[], n: number): string => {
    const shape = `${table}\u0000${n}`;
    let s = text.get(shape);
    if (s === undefined) {
      const tuple = `(${columns.map(() => '?').join(', ')})`;
      s = `INSERT INTO ${q(database)}.${q(table)} (${columns.map(q).join(', ')}) VALUES ${Array(n).fill(tuple).join(', ')}`;
      if (upserts) s += written.get(table)?.upsert ?? '';
      text.set(shape, s);
    }
    return s;
  };
  const n = Math.max(1, transactions);
  const cpu = cpuMeter();
  const t0 = performance.now();
  for (let t = 0; t < n; t++) {
    await c.query('START TRANSACTION');
    for (const [table, w] of written) {
      const from = Math.floor((w.rows.length * t) / n);
      const to = Math.floor((w.rows.length * (t + 1)) / n);
      for (let at = from; at < to; at += ROWS_PER_INSERT) {
        const part = w.rows.slice(at, Math.min(to, at + ROWS_PER_INSERT));
        await c.execute(statement(table, w.columns, part.length), part.flat() as never);
      }
    }
    await c.query('COMMIT');
  }
  const ms = performance.now() - t0;
  return { ms, cpu: cpu() };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(): Promise<void> {
  console.log(
    `MariaDB benchmark: ${count(EVENTS)} events, ${MACHINES} machines, example flows ${EXAMPLES.join(' + ')} as the nodes compile them, ${ROUNDS} paired rounds, Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const srv = await server();
  Object.assign(process.env, srv.env);
  serverPid = srv.pid;
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-bench-mariadb-'));
  const conn = await mysql.createConnection({
    host: process.env.MYSQL_HOST ?? '127.0.0.1',
    port: Number(process.env.MYSQL_PORT ?? 3306),
    user: process.env.MYSQL_USER ?? 'root',
    password: process.env.MYSQL_PASSWORD ?? '',
    timezone: 'Z',
  });
  await conn.query("SET SESSION time_zone = '+00:00'");
  const prefix = `bench_mariadb_${process.pid}_`;
  const made: string[] = [];
  const fresh = (name: string): string => {
    made.push(prefix + name);
    return prefix + name;
  };
  try {
    const [[v]] = (await conn.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
    console.log(
      `  server: MariaDB ${v.v} at ${process.env.MYSQL_HOST}:${process.env.MYSQL_PORT}${srv.own ? ' (a temporary mariadbd of this run)' : ''}`,
    );
    cachedLog();
    const verdicts: string[] = [];
    for (const kind of (['flows', 'views'] as const).filter((k) => !ONLY || k === ONLY)) {
      const title =
        kind === 'flows'
          ? `example flows (${EXAMPLES.join(' + ')}) as the nodes compile them`
          : 'hand-written views (bench/drill-pipelines.ts: dashboard + usage by dd-scan, 2-day retention)';
      console.log(`\n${title}, ${ROUNDS} paired rounds`);
      // The rows the catch-up writes: recorded in an untimed first catch-up (which also warms up).
      const rec = await recordingInserts(() => catchUp(kind, dir, `${kind}-record`, fresh(`${kind}_record`), conn));
      const written = rec.written;
      const rowCount = [...written.values()].reduce((n, w) => n + w.rows.length, 0);
      line(
        'rows the catch-up inserted (the floor)',
        `${count(rowCount)}: ${[...written].map(([t, w]) => `${t} ${count(w.rows.length)}`).join(', ')}`,
      );
      const ratios: number[] = [];
      const indexedRatios: number[] = [];
      const perCommit: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        // A: the catch-up into a fresh database.
        const db = fresh(`${kind}_r${r}`);
        const a = await catchUp(kind, dir, `${kind}-r${r}`, db, conn);
        const commits = a.server.Com_commit;
        // B: the same rows, bare, into plain tables; then (for comparison) into tables with the sinks' keys and indexes.
        const bare = fresh(`${kind}_r${r}_bare`);
        await bareTables(conn, db, bare, [...written.keys()], false);
        const floor = await bareInserts(conn, bare, written, commits, false);
        const indexed = fresh(`${kind}_r${r}_indexed`);
        await bareTables(conn, db, indexed, [...written.keys()], true);
        const indexedFloor = await bareInserts(conn, indexed, written, commits, true);
        ratios.push(floor.ms / a.ms);
        indexedRatios.push(indexedFloor.ms / a.ms);
        const s = a.server;
        const statements = s.Questions;
        perCommit.push(statements / Math.max(1, commits));
        line(
          `round ${r + 1}: catch-up / floor`,
          `${rate(EVENTS, a.ms)} (${(a.ms / 1000).toFixed(2)} s) / ${count((rowCount / floor.ms) * 1000)} rows/s (${(floor.ms / 1000).toFixed(2)} s) → ${(floor.ms / a.ms).toFixed(2)}`,
        );
        line(
          '  server during the catch-up',
          `${count(commits)} commits, ${count(statements)} statements (${(statements / Math.max(1, commits)).toFixed(1)} per commit: ${count(s.Com_stmt_execute)} prepared, ${count(s.Com_select)} SELECT), rows ${count(s.Handler_write)} written, ${count(s.Handler_update)} updated, ${count(s.Handler_delete)} deleted, ${count(s.Handler_read_key)} key lookups`,
        );
        line('  catch-up', cpuText(a.cpu, a.ms));
        line('  bare floor', cpuText(floor.cpu, floor.ms));
        line(
          '  indexed floor (keys, indexes, upserts)',
          `${(indexedFloor.ms / 1000).toFixed(2)} s → ${(indexedFloor.ms / a.ms).toFixed(2)}; ${cpuText(indexedFloor.cpu, indexedFloor.ms)}`,
        );
        for (const d of [db, bare, indexed]) await conn.query(`DROP DATABASE IF EXISTS ${q(d)}`);
      }
      const m = median(ratios);
      const v = `median ${m.toFixed(2)} (rounds ${ratios.map((x) => x.toFixed(2)).join(', ')}; ${median(perCommit).toFixed(1)} statements per commit)`;
      line(
        'catch-up rate ÷ indexed floor rate',
        `median ${median(indexedRatios).toFixed(2)} (rounds ${indexedRatios.map((x) => x.toFixed(2)).join(', ')}; for comparison)`,
      );
      if (kind === 'flows') {
        line('catch-up rate ÷ bare-INSERT floor rate', `${v} — ${m >= BAR ? 'PASS' : 'FAIL'} (bar ≥ ${BAR}, issue 17)`);
        verdicts.push(`example flows ${m.toFixed(2)} ${m >= BAR ? 'PASS' : 'FAIL'}`);
      } else {
        line('catch-up rate ÷ bare-INSERT floor rate', `${v} (for comparison; the bar is the example flows')`);
        verdicts.push(`hand-written views ${m.toFixed(2)}`);
      }
    }
    console.log(`\n  ${verdicts.join('; ')} (bar ≥ ${BAR})`);
  } finally {
    for (const d of made) await conn.query(`DROP DATABASE IF EXISTS ${q(d)}`).catch(() => undefined);
    await conn.end();
    rmSync(dir, { recursive: true, force: true });
    await srv.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
