/**
 * Durable operator state on the example flows (`npm run bench:durable`, issue 13's bars): the
 * example flows as the nodes compile them (bench/example-flows.ts, SQLite) with the dd-dataflow
 * setting *Operator state* `in memory` (A) and `in the database` (B), in paired rounds (A, B, A,
 * B …) on fresh copies of the generated log. Per round and mode, each phase in a process of its
 * own (so that its peak RSS is its own):
 *
 * - catch-up: from an empty database to every db-sink live — events/s, peak RSS, RSS after it;
 * - restart → live: the same flows started again on the database the catch-up left (a clean stop
 *   before) — the time from loading the flows to every db-sink live, and its peak RSS.
 *
 * - live: in the restarted process, once every db-sink is live, BENCH_LIVE_EVENTS machine events
 *   appended to the log at 1,000 per second (through the process's shared embedded log, as an
 *   actyx-publish node would), each timed from its append until every sink table's
 *   `<table>_offsets` row, read by a connection of its own, covers it: the committed rows are
 *   visible to a reader such as a dashboard. p50, p99 and the maximum.
 *
 * Beside them, the floor of the same run: reading and parsing the log alone. PASS/FAIL against
 * the bars: restart → live ≤ 1 s, peak RSS ≤ 400 MB, catch-up ≥ 200,000 events/s and ≥ 0.45 of
 * the floor (bench:e2e measures the other floors), live p99 ≤ 20 ms; with more than one history
 * size (BENCH_EVENTS=1000000,10000000), the CPU per event of the catch-up from the smallest to the
 * largest, flat within 20 %. The issue's bars are without retention window: the examples' windows
 * are removed unless BENCH_WINDOW=keep.
 *
 * Beside the peak RSS, each phase reports the peak of V8's heap (committed, sampled every 50 ms)
 * and the live heap at its end (used after full collections, with the flows still running): the
 * peak RSS is the heap's peak plus what is outside the heap (code, worker threads, SQLite), and
 * the heap's peak is the live heap plus garbage V8 lets accumulate before a full collection.
 * And the peak size of the views database's WAL file and of the log's (sampled every 50 ms; the
 * log's grows only with the live phase's appends): the disk a catch-up takes beside the files.
 *
 * Environment: BENCH_EVENTS (1,000,000; a comma-separated list measures each history size in turn,
 * each size's log generated once and cached), BENCH_MODES (memory,database; `database` alone for
 * histories whose in-memory replay would not fit), BENCH_LIVE_EVENTS (5,000; 0: no live phase),
 * BENCH_MACHINES (50), BENCH_ROUNDS (1), BENCH_STATE_CACHE_MB
 * (the node's default, 64), BENCH_WINDOW (keep: the examples' retention windows), BENCH_LOG_DIR
 * (where bench:e2e caches the generated log), BENCH_PHASE_TIMEOUT_S (900: a phase still running
 * then is stopped and reported as not finished, a FAIL), BENCH_MAX_OLD_SPACE_MB (none: the phases
 * with the state in the database run with `node --max-old-space-size` of this many MB, as a
 * deployment that bounds its heap; the in-memory ones keep their whole state and run without it),
 * BENCH_KEEP_DIR (each round's log and views database are moved there instead of removed, e.g. to
 * profile the live phase again on a long history; the same file system as the temporary directory).
 *
 * Restart + live alone on a kept pair: BENCH_RESTART_LOG and BENCH_RESTART_DB (the paths of a log and
 * a views database, e.g. from BENCH_KEEP_DIR) run only the restart → live phase on those files,
 * BENCH_MODES' first mode (database), with BENCH_MAX_OLD_SPACE_MB and BENCH_LIVE_EVENTS as above, and
 * print its figures with PASS/FAIL. The files are changed (live events appended and committed): give
 * a fresh copy per run. Live events are timed after the log's newest event (and their orders named
 * after their first timestamp), so a pair that already had a live phase gets new, not late, events.
 * BENCH_CPU_PROF=<dir>: the phase runs under `node --cpu-prof --cpu-prof-dir=<dir>`. BENCH_DATAFLOW: JSON
 * of dd-dataflow fields set on both dataflows (e.g. `{"batchMs":"10"}`), to compare settings.
 */
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import {
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EmbeddedLog } from '../src/sources/embedded-log';
import { openSharedEmbeddedLog } from '../src/sources/shared-embedded-log';
import { cachedDrillLog } from './drill-members';
import { EXAMPLES, runExampleFlows } from './example-flows';

const SIZES = (process.env.BENCH_EVENTS ?? '1000000')
  .split(',')
  .map((v) => Math.max(1, Math.floor(Number(v))))
  .filter((n) => Number.isFinite(n));
const MODES = (process.env.BENCH_MODES ?? 'memory,database')
  .split(',')
  .map((m) => m.trim())
  .filter((m): m is Mode => m === 'memory' || m === 'database');
const LIVE_EVENTS = process.env.BENCH_LIVE_EVENTS === '0' ? 0 : intEnv('BENCH_LIVE_EVENTS', 5_000);
const MACHINES = intEnv('BENCH_MACHINES', 50);
const ROUNDS = intEnv('BENCH_ROUNDS', 1);
const CACHE_MB = process.env.BENCH_STATE_CACHE_MB ?? '';
const KEEP_WINDOW = process.env.BENCH_WINDOW === 'keep';
const PHASE_TIMEOUT_MS = intEnv('BENCH_PHASE_TIMEOUT_S', 900) * 1000;
const MAX_OLD_SPACE_MB = process.env.BENCH_MAX_OLD_SPACE_MB ?? '';
/** Where each round's log and views database are kept (for a look afterwards); '': removed. */
const KEEP_DIR = process.env.BENCH_KEEP_DIR ?? '';
/** The repository (dist/bench/durable.js is two levels below). */
const ROOT = join(__dirname, '..', '..');
/** Restart + live alone on these files (see the header). */
const RESTART_LOG = process.env.BENCH_RESTART_LOG ?? '';
const RESTART_DB = process.env.BENCH_RESTART_DB ?? '';
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF ?? '';
/** BENCH_DATAFLOW: JSON of dd-dataflow fields set on every dataflow of the flows (e.g. `{"batchMs":"10"}`). */
const DATAFLOW_FIELDS = JSON.parse(process.env.BENCH_DATAFLOW ?? '{}') as Record<string, string>;
/** Set in a child process: the phase it runs (JSON of Phase). */
const PHASE = 'BENCH_DURABLE_PHASE';

const RESTART_BAR_MS = 1000;
const RSS_BAR = 400 * 1048576;
const RATE_BAR = 200_000;
const FLOOR_SHARE_BAR = 0.45;
const LIVE_P99_BAR_MS = 20;
/** CPU per event from the smallest to the largest history: flat within 20 %. */
const FLAT_BAR = 1.2;

type Mode = 'memory' | 'database';

interface Phase {
  readonly kind: 'flows' | 'read';
  readonly log: string;
  readonly db: string;
  readonly mode: Mode;
  /** Events in the log (checked by the read phase). */
  readonly events: number;
  /** Live events appended after every sink is live (0: none). */
  readonly live: number;
}

/** Latencies of the live phase (ms, sorted; and in the events' order), and how many events no sink covered within 10 s. */
interface Live {
  readonly sorted: number[];
  /** CPU of the whole process (every thread) while the live events ran, ms (the bench's own appends and polls included). */
  readonly cpuMs?: number;
  readonly arrival: number[];
  readonly missed: number;
}

interface Result {
  readonly ms: number;
  readonly cpuMs: number;
  /** Peak RSS of the process (bytes). */
  readonly peakRss: number;
  /** RSS after the phase, after GC (bytes). */
  readonly rss: number;
  /** Peak of V8's committed heap (bytes; sampled every 50 ms). */
  readonly peakHeap: number;
  /** V8's heap in use at the end of the phase after full collections, the flows still running (bytes). */
  readonly liveHeap: number;
  /** Peak size of the views database's WAL file (bytes; sampled every 50 ms). */
  readonly peakWal: number;
  /** Peak size of the log's WAL file (bytes; sampled every 50 ms). */
  readonly peakLogWal: number;
  readonly live?: Live;
}

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Math.max(1, Math.floor(Number(v)));
}

const gc = (globalThis as { gc?: () => void }).gc;
function rssAfterGc(): number {
  if (gc) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().rss;
}
function heapAfterGc(): number {
  if (gc) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}
const mb = (b: number): string => (Number.isFinite(b) ? `${(b / 1048576).toFixed(0)} MB` : '—');
const perSecond = (n: number, ms: number): number => (n / ms) * 1000;
const rate = (n: number, ms: number): string => `${Math.round(perSecond(n, ms)).toLocaleString('en-US')} events/s`;
const seconds = (ms: number): string =>
  Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : `not finished within ${PHASE_TIMEOUT_MS / 1000} s`;
const line = (label: string, text: string): void => console.log(`  ${label.padEnd(46)} ${text}`);
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The dd-dataflow fields of a mode (and without the examples' retention windows unless kept). */
function dataflowFields(mode: Mode): Record<string, string> {
  return {
    operatorState: mode,
    ...(CACHE_MB !== '' ? { stateCache: CACHE_MB } : {}),
    ...(KEEP_WINDOW ? {} : { retention: '' }),
    ...DATAFLOW_FIELDS,
  };
}

// ---- child: one phase ------------------------------------------------------------------------

async function runPhase(phase: Phase): Promise<Result> {
  rssAfterGc();
  let peakHeap = 0;
  let peakWal = 0;
  let peakLogWal = 0;
  const walSize = (file: string): number =>
    file === '' ? 0 : (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);
  const sample = (): void => {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapTotal);
    peakWal = Math.max(peakWal, walSize(phase.db));
    peakLogWal = Math.max(peakLogWal, walSize(phase.log));
  };
  const sampler = setInterval(sample, 50);
  const cpu0 = process.cpuUsage();
  let ms: number;
  let liveHeap = NaN;
  let live: Live | undefined;
  if (phase.kind === 'read') {
    const log = new EmbeddedLog(phase.log, { foreignWritePollMs: 0 });
    const present = await log.presentOffsets();
    const t0 = performance.now();
    let n = 0;
    for await (const e of log.query('allEvents', {}, present)) if (e.offset >= 0) n++;
    ms = performance.now() - t0;
    liveHeap = heapAfterGc();
    await log.close();
    if (n !== phase.events) throw new Error(`read ${n} events, expected ${phase.events}`);
  } else {
    const run = await runExampleFlows(ROOT, phase.log, phase.db, EXAMPLES, dataflowFields(phase.mode));
    ms = run.ms;
    if (phase.live > 0) {
      const liveCpu0 = process.cpuUsage();
      live = await liveLatency(phase, phase.live);
      const c = process.cpuUsage(liveCpu0);
      live = { ...live, cpuMs: (c.user + c.system) / 1000 };
    }
    liveHeap = heapAfterGc();
    await run.stop();
  }
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  sample();
  return {
    peakHeap,
    peakWal,
    peakLogWal,
    liveHeap,
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    peakRss: process.resourceUsage().maxRSS * 1024,
    rss: rssAfterGc(),
    ...(live ? { live } : {}),
  };
}

/**
 * Appends `count` machine events at 1,000 per second to the log the flows read (the process's
 * shared embedded log, so they are woken as by an actyx-publish node) and times each until every
 * sink table's offsets row covers it, read through a connection of its own (committed, visible to
 * any reader). Polls every millisecond; an event not covered within 10 s after the last append
 * counts as missed.
 */
async function liveLatency(phase: Phase, count: number): Promise<Live> {
  const handle = openSharedEmbeddedLog(phase.log);
  const reader = new Database(phase.db, { readonly: true, fileMustExist: true });
  try {
    const tables = (
      reader
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_offsets' ESCAPE '\\'")
        .all() as { name: string }[]
    )
      .map((r) => r.name)
      .filter((name) => !name.startsWith('deltaflow_'));
    if (tables.length === 0) throw new Error('no sink offsets table to watch');
    const reads = tables.map((t) => reader.prepare(`SELECT "offset" AS o FROM "${t}" WHERE stream = ?`));
    const covered = (stream: string, offset: number): boolean =>
      reads.every((r) => ((r.get(stream) as { o: number } | undefined)?.o ?? -1) >= offset);
    const pending: { stream: string; offset: number; t: number }[] = [];
    const arrival: number[] = [];
    const settle = (): void => {
      const now = performance.now();
      while (pending.length > 0 && covered(pending[0]!.stream, pending[0]!.offset))
        arrival.push(now - pending.shift()!.t);
    };
    const poller = setInterval(settle, 1);
    // After the history's last timestamp (and a live phase run on it before): new events, not late.
    let ts = Math.max(Date.UTC(2030, 0, 1) * 1000, newestTimestamp(phase.log));
    const run = ts;
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = t0 + i - performance.now(); // 1,000 events per second
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Each machine in turn; a machine alternates started and stopped of one order, so the live
      // events close timespans (usage rows, totals, the median) as a working plant's do.
      const m = (i % MACHINES) + 1;
      const turn = Math.floor(i / MACHINES);
      ts += 1000;
      const t = performance.now();
      const [published] = handle.log.appendSync(`drill${m}-0`, [
        {
          tags: ['machine', `machine:Drill${m}`],
          payload: { type: turn % 2 === 0 ? 'started' : 'stopped', order: `live-${run}-${m}-${turn >> 1}` },
          timestamp: ts,
        },
      ]);
      if (published) pending.push({ stream: published.stream, offset: published.offset, t });
    }
    const until = performance.now() + 10_000;
    while (pending.length > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    clearInterval(poller);
    return { sorted: [...arrival].sort((a, b) => a - b), arrival, missed: pending.length };
  } finally {
    reader.close();
    await handle.release();
  }
}

/** The greatest event timestamp in the log (µs; 0 when empty), through its timestamp index. */
function newestTimestamp(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const r = db
      .prepare(
        "SELECT max(CASE WHEN json_valid(event) THEN json_extract(event, '$.timestamp') END) AS t FROM deltaflow_log_events",
      )
      .get() as { t: number | null };
    return r.t ?? 0;
  } finally {
    db.close();
  }
}

// ---- parent ----------------------------------------------------------------------------------

/** A phase that did not finish within BENCH_PHASE_TIMEOUT_S: its time is reported as Infinity. */
const NOT_FINISHED: Result = {
  ms: Infinity,
  cpuMs: Infinity,
  peakRss: Infinity,
  rss: Infinity,
  peakHeap: Infinity,
  liveHeap: Infinity,
  peakWal: Infinity,
  peakLogWal: Infinity,
};

/** Runs one phase in a process of its own and returns its result line. */
function inChild(phase: Phase): Result {
  const flags =
    MAX_OLD_SPACE_MB === '' || phase.mode !== 'database' ? [] : [`--max-old-space-size=${MAX_OLD_SPACE_MB}`];
  if (CPU_PROF_DIR !== '') flags.push('--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`);
  const r = spawnSync(process.execPath, ['--expose-gc', ...flags, __filename], {
    env: { ...process.env, [PHASE]: JSON.stringify(phase) },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: PHASE_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return NOT_FINISHED;
  const out = /^RESULT (.*)$/m.exec(r.stdout ?? '');
  if (r.status !== 0 || out === null)
    throw new Error(`phase ${JSON.stringify(phase)} failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return JSON.parse(out[1]!) as Result;
}

/** A fresh copy of the log, its pages on disk before anything is timed. */
function copyOfLog(source: string, copy: string): string {
  copyFileSync(source, copy);
  const fd = openSync(copy, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  return copy;
}

function removeSqlite(...files: string[]): void {
  for (const f of files) for (const suffix of ['', '-wal', '-shm']) rmSync(f + suffix, { force: true });
}

interface Round {
  readonly catchUp: Result;
  readonly restart: Result;
}

/** The stored operator state: entries and their text's size ('' without state tables). */
function storedState(file: string): string {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'deltaflow_state'").get() === undefined) return '';
    const r = db.prepare('SELECT count(*) AS n, coalesce(sum(length(v)), 0) AS bytes FROM deltaflow_state').get() as {
      n: number;
      bytes: number;
    };
    return `, stored state ${r.n.toLocaleString('en-US')} entries, ${mb(r.bytes)}`;
  } finally {
    db.close();
  }
}

function round(dir: string, source: string, events: number, mode: Mode, r: number): Round {
  const log = copyOfLog(source, join(dir, `log-${mode}-${r}.sqlite`));
  const db = join(dir, `views-${mode}-${r}.sqlite`);
  try {
    const catchUp = inChild({ kind: 'flows', log, db, mode, events, live: 0 });
    console.log(
      `  round ${r + 1}, ${mode}: catch-up ${seconds(catchUp.ms)}, peak RSS ${mb(catchUp.peakRss)}, peak WAL ${mb(catchUp.peakWal)}${Number.isFinite(catchUp.ms) ? storedState(db) : ''}`,
    );
    const restart = Number.isFinite(catchUp.ms)
      ? inChild({ kind: 'flows', log, db, mode, events, live: LIVE_EVENTS })
      : NOT_FINISHED;
    console.log(
      `  round ${r + 1}, ${mode}: restart → live ${seconds(restart.ms)}, peak RSS ${mb(restart.peakRss)}${restart.live ? `, live ${liveText(restart.live)}` : ''}`,
    );
    return { catchUp, restart };
  } finally {
    if (KEEP_DIR === '') removeSqlite(log, db);
    else
      for (const f of [log, db])
        for (const suffix of ['', '-wal', '-shm'])
          if (existsSync(f + suffix))
            renameSync(f + suffix, join(KEEP_DIR, basename(f).replace('.sqlite', `-${events}.sqlite`) + suffix));
  }
}

const pct = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const liveText = (l: Live): string =>
  `${l.sorted.length.toLocaleString('en-US')} events at 1,000/s: p50 ${pct(l.sorted, 0.5).toFixed(1)} ms, p99 ${pct(l.sorted, 0.99).toFixed(1)} ms, max ${(l.sorted.at(-1) ?? NaN).toFixed(1)} ms${l.missed > 0 ? `, ${l.missed} not committed within 10 s` : ''}${l.cpuMs === undefined ? '' : `, CPU ${((l.cpuMs * 1000) / Math.max(1, l.sorted.length)).toFixed(0)} µs per event (process)`}`;

interface SizeResult {
  readonly events: number;
  /** Median CPU per event of the catch-ups with the state in the database (µs). */
  readonly cpuPerEventUs: number;
}

/** Every mode's rounds on a history of `events` events, with the bars. */
async function measure(events: number): Promise<SizeResult> {
  const source = cachedDrillLog(events, MACHINES); // bench:e2e's cached log, generated by it when missing
  await new EmbeddedLog(source, { foreignWritePollMs: 0 }).close(); // (schema up to date once, not per copy)
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-durable-bench-'));
  try {
    console.log(`\n${events.toLocaleString('en-US')} events of history`);
    const floorLog = copyOfLog(source, join(dir, 'floor-log.sqlite'));
    const floor = inChild({ kind: 'read', log: floorLog, db: '', mode: 'memory', events, live: 0 });
    removeSqlite(floorLog);
    const rounds: Partial<Record<Mode, Round>>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const byMode: Partial<Record<Mode, Round>> = {};
      for (const mode of MODES) byMode[mode] = round(dir, source, events, mode, r);
      rounds.push(byMode);
    }
    const floorRate = perSecond(events, floor.ms);
    const of = (mode: Mode): Round[] => rounds.map((x) => x[mode]).filter((x): x is Round => x !== undefined);
    for (const mode of MODES) {
      const rs = of(mode);
      console.log(
        `\nOperator state ${mode === 'memory' ? 'in memory' : 'in the database'}, ${events.toLocaleString('en-US')} events`,
      );
      line(
        'catch-up, per round',
        rs.map((x) => `${rate(events, x.catchUp.ms)} (CPU ${seconds(x.catchUp.cpuMs)})`).join('; '),
      );
      line(
        'peak RSS during catch-up; RSS after it',
        rs.map((x) => `${mb(x.catchUp.peakRss)}; ${mb(x.catchUp.rss)}`).join(' | '),
      );
      line(
        'catch-up: peak heap; live heap at its end',
        rs.map((x) => `${mb(x.catchUp.peakHeap)}; ${mb(x.catchUp.liveHeap)}`).join(' | '),
      );
      line(
        'peak WAL size, catch-up; restart + live',
        rs
          .map((x) => `${mb(x.catchUp.peakWal)}; ${mb(x.restart.peakWal)} (log ${mb(x.restart.peakLogWal)})`)
          .join(' | '),
      );
      line('restart → live, per round', rs.map((x) => seconds(x.restart.ms)).join('; '));
      line('peak RSS of the restart', rs.map((x) => mb(x.restart.peakRss)).join('; '));
      if (LIVE_EVENTS > 0)
        line('live after the restart', rs.map((x) => (x.restart.live ? liveText(x.restart.live) : '—')).join(' | '));
    }
    const db = of('database');
    if (db.length === 0) return { events, cpuPerEventUs: NaN };
    const catchUpRate = median(db.map((x) => perSecond(events, x.catchUp.ms)));
    const restartMs = median(db.map((x) => x.restart.ms));
    const peak = Math.max(...db.map((x) => Math.max(x.catchUp.peakRss, x.restart.peakRss)));
    const cpuPerEventUs = median(db.map((x) => (x.catchUp.cpuMs * 1000) / events));
    console.log(`\nBars (operator state in the database, ${events.toLocaleString('en-US')} events of history)`);
    line('floor: reading + parsing the log alone', rate(events, floor.ms));
    line(
      'restart → live (median)',
      `${seconds(restartMs)}  bar ≤ ${seconds(RESTART_BAR_MS)}: ${verdict(restartMs <= RESTART_BAR_MS)}`,
    );
    line('peak RSS, catch-up and restart', `${mb(peak)}  bar ≤ ${mb(RSS_BAR)}: ${verdict(peak <= RSS_BAR)}`);
    line(
      'catch-up (median)',
      `${Math.round(catchUpRate).toLocaleString('en-US')} events/s  bar ≥ ${RATE_BAR.toLocaleString('en-US')}: ${verdict(catchUpRate >= RATE_BAR)}`,
    );
    line(
      'catch-up / reading floor',
      `${(catchUpRate / floorRate).toFixed(2)}  bar ≥ ${FLOOR_SHARE_BAR}: ${verdict(catchUpRate / floorRate >= FLOOR_SHARE_BAR)}`,
    );
    line('catch-up CPU per event (median)', `${cpuPerEventUs.toFixed(1)} µs`);
    if (LIVE_EVENTS > 0) {
      const lives = db.map((x) => x.restart.live).filter((l): l is Live => l !== undefined);
      const p99 = median(lives.map((l) => (l.missed > 0 ? Infinity : pct(l.sorted, 0.99))));
      line(
        'live p99 after the restart (median)',
        `${p99.toFixed(1)} ms  bar ≤ ${LIVE_P99_BAR_MS} ms: ${verdict(p99 <= LIVE_P99_BAR_MS)}`,
      );
    }
    if (MODES.includes('memory')) {
      const ratio = (f: (r: Round) => number): string =>
        median(rounds.map((x) => f(x.database!) / f(x.memory!))).toFixed(2);
      line('in the database / in memory: catch-up time', `${ratio((r) => r.catchUp.ms)}× (median of per-round ratios)`);
      line('in the database / in memory: restart time', `${ratio((r) => r.restart.ms)}× (median of per-round ratios)`);
    }
    return { events, cpuPerEventUs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Restart + live on BENCH_RESTART_LOG / BENCH_RESTART_DB (see the header). */
function restartOnly(): void {
  const mode = MODES[0] ?? 'database';
  console.log(
    `Durable operator state, restart → live on ${RESTART_DB} (log ${RESTART_LOG}): example flows, mode ${mode}, state cache ${CACHE_MB === '' ? 'default (64 MB)' : `${CACHE_MB} MB`}, ${MAX_OLD_SPACE_MB === '' ? '' : `node --max-old-space-size=${MAX_OLD_SPACE_MB}, `}Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const r = inChild({ kind: 'flows', log: RESTART_LOG, db: RESTART_DB, mode, events: 0, live: LIVE_EVENTS });
  line('restart → live', `${seconds(r.ms)}  bar ≤ ${seconds(RESTART_BAR_MS)}: ${verdict(r.ms <= RESTART_BAR_MS)}`);
  line('peak RSS of the restart', mb(r.peakRss));
  if (r.live) {
    line('live after the restart', liveText(r.live));
    const p99 = r.live.missed > 0 ? Infinity : pct(r.live.sorted, 0.99);
    line('live p99', `${p99.toFixed(1)} ms  bar ≤ ${LIVE_P99_BAR_MS} ms: ${verdict(p99 <= LIVE_P99_BAR_MS)}`);
    // Per 1,000 events in arrival order is not kept (sorted); the first 500 and the rest are.
    const first = r.live.arrival.slice(0, 500).sort((a, b) => a - b);
    const rest = r.live.arrival.slice(500).sort((a, b) => a - b);
    line('  first 500 live events: p50 / p99', `${pct(first, 0.5).toFixed(1)} / ${pct(first, 0.99).toFixed(1)} ms`);
    line('  the later ones: p50 / p99', `${pct(rest, 0.5).toFixed(1)} / ${pct(rest, 0.99).toFixed(1)} ms`);
  }
  const l = r.live;
  const summary = l
    ? { n: l.sorted.length, p50: pct(l.sorted, 0.5), p99: pct(l.sorted, 0.99), missed: l.missed }
    : null;
  console.log(`RESULT ${JSON.stringify({ ms: r.ms, peakRss: r.peakRss, live: summary })}`);
}

async function main(): Promise<void> {
  console.log(
    `Durable operator state: example flows (${EXAMPLES.join(' + ')}), ${SIZES.map((n) => n.toLocaleString('en-US')).join(' and ')} events, ${MACHINES} machines, modes ${MODES.join(', ')}, ${KEEP_WINDOW ? "the examples' retention windows" : 'no retention window'}, state cache ${CACHE_MB === '' ? 'default (64 MB)' : `${CACHE_MB} MB`}, ${MAX_OLD_SPACE_MB === '' ? '' : `node --max-old-space-size=${MAX_OLD_SPACE_MB} (state in the database), `}${ROUNDS} paired round(s), Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  if (SIZES.length === 0 || MODES.length === 0) throw new Error('BENCH_EVENTS and BENCH_MODES name nothing to measure');
  const sizes: SizeResult[] = [];
  for (const events of SIZES) sizes.push(await measure(events));
  const first = sizes[0]!;
  const last = sizes.at(-1)!;
  if (sizes.length > 1 && Number.isFinite(first.cpuPerEventUs)) {
    const growth = last.cpuPerEventUs / first.cpuPerEventUs;
    console.log(
      `\nCost per event with the history (operator state in the database, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')})`,
    );
    line(
      `CPU per event, ${first.events.toLocaleString('en-US')} → ${last.events.toLocaleString('en-US')}`,
      `${first.cpuPerEventUs.toFixed(1)} → ${last.cpuPerEventUs.toFixed(1)} µs (${growth.toFixed(2)}×)  bar ≤ ${FLAT_BAR}×: ${verdict(growth <= FLAT_BAR)}`,
    );
  }
}

const phase = process.env[PHASE];
(phase
  ? runPhase(JSON.parse(phase) as Phase).then((r) => void process.stdout.write(`RESULT ${JSON.stringify(r)}\n`))
  : RESTART_LOG !== '' || RESTART_DB !== ''
    ? Promise.resolve().then(restartOnly)
    : main()
).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
