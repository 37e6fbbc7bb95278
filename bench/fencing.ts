/**
 * Issue 14's bars (not a test; run under the benchmark lock):
 *
 * 1. Takeover time with the default lease: two worker processes of one dataflow on one SQLite file
 *    (the fencing chaos test's worker, test/chaos/fencing-worker.ts, through tsx) while events
 *    arrive at 100/s; the active one is SIGKILLed and the time until the standby's first commit is
 *    measured, BENCH_TAKEOVERS times. Bar: every takeover ≤ 10 s.
 * 2. The steady-state cost of fencing: the drill dashboard + usage dataflow catching up with
 *    BENCH_EVENTS events, then BENCH_LIVE_EVENTS live events at 1,000/s (latency to the committed
 *    row), with leases off and on in paired rounds (off, on, off, on, …; fresh tables each run).
 *    Bars: the median of the per-round ratios on/off ≤ 1.05 for the catch-up time and the live p99.
 *    The lease-off figures of the same run are the floors printed beside them.
 *
 *   npm run bench:fencing            (BENCH_ROUNDS=5 BENCH_EVENTS=500000 BENCH_LIVE_EVENTS=3000 BENCH_TAKEOVERS=3)
 *   BENCH_ONLY=takeover | steady     one part only
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { covers, type OffsetMap } from '../src/core/offset-map';
import { startDataflow, type RunningDataflow } from '../src/dataflow/coordinator';
import type { DataflowListener, DataflowSettings } from '../src/dataflow/types';
import { DEFAULT_LEASE_SECONDS } from '../src/nodes/dd-dataflow';
import { SqliteDatabase } from '../src/sinks/sqlite-database';
import { EmbeddedLog } from '../src/sources/embedded-log';
import { generateDrillEvents, type DrillEvent } from './drill-data';
import { drillMembers } from './drill-members';

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Math.max(1, Math.floor(Number(v)));
}

const ROUNDS = intEnv('BENCH_ROUNDS', 5);
// 500,000: with 100,000 the catch-up takes under a second and the lease's fixed start (first
// heartbeat, acquisition) shows as a few per cent (BENCHMARKS.md).
const EVENTS = intEnv('BENCH_EVENTS', 500_000);
const LIVE_EVENTS = intEnv('BENCH_LIVE_EVENTS', 3_000);
const TAKEOVERS = intEnv('BENCH_TAKEOVERS', 3);
const ONLY = process.env.BENCH_ONLY;
const MACHINES = 50;
const LEASE_MS = DEFAULT_LEASE_SECONDS * 1000;
/** The repository (dist/bench/fencing.js is two levels below). */
const ROOT = join(__dirname, '..', '..');
const SETTINGS: DataflowSettings = {
  batchSize: 10_000,
  batchMs: 5,
  maxInFlight: 16,
  retentionMicros: null,
  onError: 'skip',
};

const line = (label: string, text: string): void => console.log(`  ${label.padEnd(48)} ${text}`);
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- 1. takeover time --------------------------------------------------------------------------

interface Worker {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly lines: { readonly at: number; readonly line: Record<string, unknown> }[];
  readonly exited: Promise<void>;
  stderr(): string;
}

function spawnWorker(logFile: string, file: string, name: string): Worker {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'test', 'chaos', 'fencing-worker.ts'),
      'sqlite',
      logFile,
      file,
      name,
      String(LEASE_MS),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: Worker['lines'] = [];
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (text) =>
    lines.push({ at: performance.now(), line: JSON.parse(text) as Record<string, unknown> }),
  );
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return { name, proc, lines, exited, stderr: () => err };
}

async function until<T>(what: string, find: () => T | undefined, ms = 120_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = find();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

function appendMachineEvents(log: EmbeddedLog, from: number, count: number): void {
  for (let i = from; i < from + count; i++) {
    const m = (i % MACHINES) + 1;
    log.appendSync(`drill${m}-0`, [
      {
        tags: ['machine', `machine:Drill${m}`],
        payload: { type: i % 2 === 0 ? 'started' : 'stopped', order: `o-${i}` },
      },
    ]);
  }
}

async function takeoverTimes(): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-bench-fencing-'));
  const logFile = join(dir, 'log.sqlite');
  const file = join(dir, 'views.sqlite');
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 0 });
  appendMachineEvents(log, 0, 2000);
  let appended = 2000;
  const appender = setInterval(() => {
    appendMachineEvents(log, appended, 5);
    appended += 5;
  }, 50); // 100 events/s
  const workers: Worker[] = [];
  let serial = 0;
  const start = (): Worker => {
    const w = spawnWorker(logFile, file, `instance-${++serial}`);
    workers.push(w);
    return w;
  };
  const times: number[] = [];
  try {
    let active = start();
    await until(`${active.name} takes the lease`, () => active.lines.find((l) => l.line.took !== undefined));
    let standby = start();
    await until(`${standby.name} is a standby`, () =>
      standby.lines.find((l) => String(l.line.status ?? '').startsWith('standby (held by')),
    );
    for (let round = 0; round < TAKEOVERS; round++) {
      // The active one commits, and the standby has been looking for a while (as in production).
      const mark = active.lines.length;
      await until(`${active.name} commits`, () => active.lines.slice(mark).find((l) => l.line.commit !== undefined));
      await sleep(2000 + Math.floor(Math.random() * 1000));
      const from = standby.lines.length;
      active.proc.kill('SIGKILL');
      const killed = performance.now();
      await active.exited;
      const s = standby;
      const first = await until(`${s.name} commits after the kill`, () =>
        s.lines.slice(from).find((l) => l.line.commit !== undefined),
      );
      times.push((first.at - killed) / 1000);
      line(`takeover ${round + 1}: SIGKILL → standby's first commit`, `${times[times.length - 1]?.toFixed(2)} s`);
      active = standby;
      standby = start();
      await until(`${standby.name} is a standby`, () =>
        standby.lines.find((l) => String(l.line.status ?? '').startsWith('standby (held by')),
      );
    }
  } catch (e) {
    for (const w of workers) console.error(`--- ${w.name}\n${w.stderr()}`);
    throw e;
  } finally {
    clearInterval(appender);
    for (const w of workers) w.proc.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return times;
}

// ---- 2. steady-state cost -------------------------------------------------------------------------

interface SteadyRun {
  readonly catchUpMs: number;
  readonly p99: number;
}

/** One run on a fresh table file over its own copy of the log: catch-up, then live events appended to the copy. */
async function steadyRun(baseLog: string, dir: string, n: number, leased: boolean): Promise<SteadyRun> {
  const copy = join(dir, `log-${n}.sqlite`);
  copyFileSync(baseLog, copy);
  const log = new EmbeddedLog(copy, { foreignWritePollMs: 0 });
  const db = new SqliteDatabase({ filename: join(dir, `views-${n}.sqlite`) });
  let onCommit: ((offsets: OffsetMap) => void) | null = null;
  const listener: DataflowListener = {
    status: () => undefined,
    error: (id, message) => console.error(`  ! ${id}: ${message}`),
    committed: (id, changes) => {
      if (id === 'dashboard-sink' && changes.offsets) onCommit?.(changes.offsets);
    },
    log: (level, message) => {
      if (level === 'warn') console.error(`  ! ${message}`);
    },
  };
  const t0 = performance.now();
  const run: RunningDataflow = startDataflow(
    {
      source: log,
      members: drillMembers(log, db),
      settings: SETTINGS,
      ...(leased ? { lease: { name: `bench-${n}`, instance: 'bench', leaseMs: LEASE_MS } } : {}),
    },
    listener,
  );
  try {
    await Promise.race([
      run.live,
      run.finished.then(() => Promise.reject(new Error(run.stats().error ?? 'dataflow ended'))),
    ]);
    const catchUpMs = performance.now() - t0;
    // Live: events at 1,000/s, each timed from its append to the commit that covers it.
    const pending: { stream: string; offset: number; t: number }[] = [];
    const latencies: number[] = [];
    onCommit = (offsets) => {
      const now = performance.now();
      while (pending.length > 0) {
        const p = pending[0] as { stream: string; offset: number; t: number };
        if ((offsets[p.stream] ?? -1) < p.offset) break;
        latencies.push(now - p.t);
        pending.shift();
      }
    };
    const start = performance.now();
    for (let i = 0; i < LIVE_EVENTS; i++) {
      const wait = start + i - performance.now();
      if (wait > 0) await sleep(wait);
      const m = (i % MACHINES) + 1;
      const t = performance.now();
      const [published] = log.appendSync(`drill${m}-0`, [
        {
          tags: ['machine', `machine:Drill${m}`],
          payload: { type: i % 2 === 0 ? 'started' : 'stopped', order: `live-${n}-${i}` },
        },
      ]);
      if (published) pending.push({ stream: published.stream, offset: published.offset, t });
    }
    const present = await log.presentOffsets();
    const end = performance.now() + 30_000;
    while (!covers(run.stats().committedOffsets, present) && performance.now() < end) await sleep(5);
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? NaN;
    return { catchUpMs, p99 };
  } finally {
    await run.stop();
    await db.close();
    await log.close();
    rmSync(copy, { force: true });
    rmSync(join(dir, `views-${n}.sqlite`), { force: true });
  }
}

async function steadyState(): Promise<{ off: SteadyRun[]; on: SteadyRun[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-bench-fencing-'));
  const baseLog = join(dir, 'log.sqlite');
  const log = new EmbeddedLog(baseLog, { foreignWritePollMs: 0 });
  const off: SteadyRun[] = [];
  const on: SteadyRun[] = [];
  try {
    const events = generateDrillEvents({ count: EVENTS, machines: MACHINES });
    for (let i = 0; i < events.length; i += 10_000) {
      const byStream = new Map<string, DrillEvent[]>();
      for (const e of events.slice(i, i + 10_000)) {
        const list = byStream.get(e.stream) ?? [];
        list.push(e);
        byStream.set(e.stream, list);
      }
      for (const [stream, list] of byStream)
        log.appendSync(
          stream,
          list.map((e) => ({
            tags: e.tags,
            payload: e.payload,
            lamport: e.lamport,
            timestamp: e.timestamp,
            appId: e.appId,
          })),
        );
    }
    await log.close();
    let n = 0;
    // A warm-up run (not counted): the log's pages in the cache, the code compiled.
    await steadyRun(baseLog, dir, n++, false);
    for (let r = 0; r < ROUNDS; r++) {
      const a = await steadyRun(baseLog, dir, n++, false);
      const b = await steadyRun(baseLog, dir, n++, true);
      off.push(a);
      on.push(b);
      line(
        `round ${r + 1}: off / on`,
        `catch-up ${(a.catchUpMs / 1000).toFixed(2)} / ${(b.catchUpMs / 1000).toFixed(2)} s, live p99 ${a.p99.toFixed(1)} / ${b.p99.toFixed(1)} ms (load ${loadavg()[0]?.toFixed(1)})`,
      );
    }
  } finally {
    await log.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  return { off, on };
}

async function main(): Promise<void> {
  console.log(
    `bench:fencing — issue 14's bars (load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; default lease ${DEFAULT_LEASE_SECONDS} s)`,
  );
  let failed = false;
  if (ONLY !== 'steady') {
    console.log(`\nTakeover time, SQLite, 2 worker processes, lease ${LEASE_MS / 1000} s, events at 100/s`);
    const times = await takeoverTimes();
    const worst = Math.max(...times);
    line(
      'takeover (median, max) — bar: every one ≤ 10 s',
      `${median(times).toFixed(2)} s, ${worst.toFixed(2)} s  ${verdict(worst <= 10)}`,
    );
    failed ||= worst > 10;
  }
  if (ONLY !== 'takeover') {
    console.log(
      `\nSteady state, leases off vs on (SQLite; ${EVENTS.toLocaleString('en-US')} events catch-up, ${LIVE_EVENTS} live at 1,000/s), ${ROUNDS} paired rounds`,
    );
    const { off, on } = await steadyState();
    const catchUp = median(on.map((b, i) => b.catchUpMs / (off[i] as SteadyRun).catchUpMs));
    const p99 = median(on.map((b, i) => b.p99 / (off[i] as SteadyRun).p99));
    line(
      'floor: leases off (median catch-up, live p99)',
      `${(median(off.map((r) => r.catchUpMs)) / 1000).toFixed(2)} s, ${median(off.map((r) => r.p99)).toFixed(1)} ms`,
    );
    line(
      'leases on (median catch-up, live p99)',
      `${(median(on.map((r) => r.catchUpMs)) / 1000).toFixed(2)} s, ${median(on.map((r) => r.p99)).toFixed(1)} ms`,
    );
    line('catch-up on/off (median of per-round ratios) ≤ 1.05', `${catchUp.toFixed(3)}  ${verdict(catchUp <= 1.05)}`);
    line('live p99 on/off (median of per-round ratios) ≤ 1.05', `${p99.toFixed(3)}  ${verdict(p99 <= 1.05)}`);
    failed ||= catchUp > 1.05 || p99 > 1.05;
  }
  console.log(failed ? '\nFAIL' : '\nPASS');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
