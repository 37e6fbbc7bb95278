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
 * Beside them, the floor of the same run: reading and parsing the log alone. PASS/FAIL against
 * the bars: restart → live ≤ 1 s, peak RSS ≤ 400 MB, catch-up ≥ 200,000 events/s and ≥ 0.45 of
 * the floor (bench:e2e measures the other floors). The issue's bars are without retention window:
 * the examples' windows are removed unless BENCH_WINDOW=keep.
 *
 * Beside the peak RSS, each phase reports the peak of V8's heap (committed, sampled every 50 ms)
 * and the live heap at its end (used after full collections, with the flows still running): the
 * peak RSS is the heap's peak plus what is outside the heap (code, worker threads, SQLite), and
 * the heap's peak is the live heap plus garbage V8 lets accumulate before a full collection.
 *
 * Environment: BENCH_EVENTS (1,000,000), BENCH_MACHINES (50), BENCH_ROUNDS (1), BENCH_STATE_CACHE_MB
 * (the node's default, 64), BENCH_WINDOW (keep: the examples' retention windows), BENCH_LOG_DIR
 * (where bench:e2e caches the generated log), BENCH_PHASE_TIMEOUT_S (900: a phase still running
 * then is stopped and reported as not finished, a FAIL), BENCH_MAX_OLD_SPACE_MB (none: the phases
 * with the state in the database run with `node --max-old-space-size` of this many MB, as a
 * deployment that bounds its heap; the in-memory ones keep their whole state and run without it).
 */
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { closeSync, copyFileSync, fsyncSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EmbeddedLog } from '../src/sources/embedded-log';
import { cachedDrillLog } from './drill-members';
import { EXAMPLES, runExampleFlows } from './example-flows';

const EVENTS = intEnv('BENCH_EVENTS', 1_000_000);
const MACHINES = intEnv('BENCH_MACHINES', 50);
const ROUNDS = intEnv('BENCH_ROUNDS', 1);
const CACHE_MB = process.env.BENCH_STATE_CACHE_MB ?? '';
const KEEP_WINDOW = process.env.BENCH_WINDOW === 'keep';
const PHASE_TIMEOUT_MS = intEnv('BENCH_PHASE_TIMEOUT_S', 900) * 1000;
const MAX_OLD_SPACE_MB = process.env.BENCH_MAX_OLD_SPACE_MB ?? '';
/** The repository (dist/bench/durable.js is two levels below). */
const ROOT = join(__dirname, '..', '..');
/** Set in a child process: the phase it runs (JSON of Phase). */
const PHASE = 'BENCH_DURABLE_PHASE';

const RESTART_BAR_MS = 1000;
const RSS_BAR = 400 * 1048576;
const RATE_BAR = 200_000;
const FLOOR_SHARE_BAR = 0.45;

type Mode = 'memory' | 'database';

interface Phase {
  readonly kind: 'flows' | 'read';
  readonly log: string;
  readonly db: string;
  readonly mode: Mode;
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
  };
}

// ---- child: one phase ------------------------------------------------------------------------

async function runPhase(phase: Phase): Promise<Result> {
  rssAfterGc();
  let peakHeap = 0;
  const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapTotal)), 50);
  const cpu0 = process.cpuUsage();
  let ms: number;
  let liveHeap = NaN;
  if (phase.kind === 'read') {
    const log = new EmbeddedLog(phase.log, { foreignWritePollMs: 0 });
    const present = await log.presentOffsets();
    const t0 = performance.now();
    let n = 0;
    for await (const e of log.query('allEvents', {}, present)) if (e.offset >= 0) n++;
    ms = performance.now() - t0;
    liveHeap = heapAfterGc();
    await log.close();
    if (n !== EVENTS) throw new Error(`read ${n} events, expected ${EVENTS}`);
  } else {
    const run = await runExampleFlows(ROOT, phase.log, phase.db, EXAMPLES, dataflowFields(phase.mode));
    ms = run.ms;
    liveHeap = heapAfterGc();
    await run.stop();
  }
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  return {
    peakHeap: Math.max(peakHeap, process.memoryUsage().heapTotal),
    liveHeap,
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    peakRss: process.resourceUsage().maxRSS * 1024,
    rss: rssAfterGc(),
  };
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
};

/** Runs one phase in a process of its own and returns its result line. */
function inChild(phase: Phase): Result {
  const flags =
    MAX_OLD_SPACE_MB === '' || phase.mode !== 'database' ? [] : [`--max-old-space-size=${MAX_OLD_SPACE_MB}`];
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

/** bench:e2e's cached log (generated by it when missing). */
const cachedLog = (): string => cachedDrillLog(EVENTS, MACHINES);

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

function round(dir: string, source: string, mode: Mode, r: number): Round {
  const log = copyOfLog(source, join(dir, `log-${mode}-${r}.sqlite`));
  const db = join(dir, `views-${mode}-${r}.sqlite`);
  try {
    const catchUp = inChild({ kind: 'flows', log, db, mode });
    console.log(
      `  round ${r + 1}, ${mode}: catch-up ${seconds(catchUp.ms)}, peak RSS ${mb(catchUp.peakRss)}${Number.isFinite(catchUp.ms) ? storedState(db) : ''}`,
    );
    const restart = Number.isFinite(catchUp.ms) ? inChild({ kind: 'flows', log, db, mode }) : NOT_FINISHED;
    console.log(`  round ${r + 1}, ${mode}: restart → live ${seconds(restart.ms)}, peak RSS ${mb(restart.peakRss)}`);
    return { catchUp, restart };
  } finally {
    removeSqlite(log, db);
  }
}

async function main(): Promise<void> {
  console.log(
    `Durable operator state: example flows (${EXAMPLES.join(' + ')}), ${EVENTS.toLocaleString('en-US')} events, ${MACHINES} machines, ${KEEP_WINDOW ? "the examples' retention windows" : 'no retention window'}, state cache ${CACHE_MB === '' ? 'default (64 MB)' : `${CACHE_MB} MB`}, ${MAX_OLD_SPACE_MB === '' ? '' : `node --max-old-space-size=${MAX_OLD_SPACE_MB} (state in the database), `}${ROUNDS} paired round(s), Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const source = cachedLog();
  await new EmbeddedLog(source, { foreignWritePollMs: 0 }).close(); // (schema up to date once, not per copy)
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-durable-bench-'));
  try {
    const floorLog = copyOfLog(source, join(dir, 'floor-log.sqlite'));
    const floor = inChild({ kind: 'read', log: floorLog, db: '', mode: 'memory' });
    removeSqlite(floorLog);
    const rounds: { memory: Round; database: Round }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const memory = round(dir, source, 'memory', r);
      const database = round(dir, source, 'database', r);
      rounds.push({ memory, database });
    }
    const floorRate = perSecond(EVENTS, floor.ms);
    const show = (mode: Mode): void => {
      const rs = rounds.map((x) => x[mode]);
      console.log(`\nOperator state ${mode === 'memory' ? 'in memory' : 'in the database'}`);
      line(
        'catch-up, per round',
        rs.map((x) => `${rate(EVENTS, x.catchUp.ms)} (CPU ${seconds(x.catchUp.cpuMs)})`).join('; '),
      );
      line(
        'peak RSS during catch-up; RSS after it',
        rs.map((x) => `${mb(x.catchUp.peakRss)}; ${mb(x.catchUp.rss)}`).join(' | '),
      );
      line(
        'catch-up: peak heap; live heap at its end',
        rs.map((x) => `${mb(x.catchUp.peakHeap)}; ${mb(x.catchUp.liveHeap)}`).join(' | '),
      );
      line('restart → live, per round', rs.map((x) => seconds(x.restart.ms)).join('; '));
      line('peak RSS of the restart', rs.map((x) => mb(x.restart.peakRss)).join('; '));
    };
    show('memory');
    show('database');
    const db = rounds.map((x) => x.database);
    const catchUpRate = median(db.map((x) => perSecond(EVENTS, x.catchUp.ms)));
    const restartMs = median(db.map((x) => x.restart.ms));
    const peak = Math.max(...db.map((x) => Math.max(x.catchUp.peakRss, x.restart.peakRss)));
    console.log(`\nBars (operator state in the database, ${EVENTS.toLocaleString('en-US')} events of history)`);
    line('floor: reading + parsing the log alone', rate(EVENTS, floor.ms));
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
    line(
      'in the database / in memory: catch-up time',
      `${median(rounds.map((x) => x.database.catchUp.ms / x.memory.catchUp.ms)).toFixed(2)}× (median of per-round ratios)`,
    );
    line(
      'in the database / in memory: restart time',
      `${median(rounds.map((x) => x.database.restart.ms / x.memory.restart.ms)).toFixed(2)}× (median of per-round ratios)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const phase = process.env[PHASE];
(phase
  ? runPhase(JSON.parse(phase) as Phase).then((r) => void process.stdout.write(`RESULT ${JSON.stringify(r)}\n`))
  : main()
).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
