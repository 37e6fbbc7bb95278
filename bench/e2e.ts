/**
 * End-to-end benchmark (`npm run bench:e2e`): embedded log → engine → SQLite / PostgreSQL with the
 * offsets committed per batch, the seed's dashboard (keyed) and usage (multiset, retention window)
 * pipelines over 1,000,000 drill events of 50 machines. Beside each figure it prints the floors
 * measured in the same run: reading and parsing the events alone, the engine alone, and writing the
 * same rows (same batches, same transactions with offsets) alone. Then live latency (events
 * published one at a time at 1,000/s → committed row), RSS after catch-up, and the dashboard's
 * engine state at growing history lengths.
 *
 * Environment: BENCH_USAGE (scan: the pairing as dd-scan's incremental fold; reduce: the seed's
 * reduce — the other one is run once more for comparison), BENCH_EVENTS (1,000,000), BENCH_MACHINES (50), BENCH_RETENTION_DAYS (2), BENCH_BATCH
 * (10,000), BENCH_CATCH_UP_BATCH (the coordinator's default: 2,500), BENCH_BATCH_MS (5),
 * BENCH_LIVE_EVENTS (3,000), BENCH_PG=0 to skip PostgreSQL (PG* env, else 127.0.0.1:5432 user
 * postgres database test), BENCH_LOG_DIR (where the generated log is cached between runs).
 */
import Database from 'better-sqlite3';
import { closeSync, copyFileSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDataflow, type RunningDataflow } from '../src/dataflow/coordinator';
import { catchUpBatchSize } from '../src/dataflow/batcher';
import { covers, type OffsetMap } from '../src/core/offset-map';
import { retentionSegments } from '../src/dataflow/retention';
import type { DataflowListener, DataflowSettings } from '../src/dataflow/types';
import { createGraph, type Batch, type Update } from '../src/engine';
import { PostgresDatabase } from '../src/sinks/postgres-database';
import { SqliteDatabase } from '../src/sinks/sqlite-database';
import type { SinkDatabase } from '../src/sinks/types';
import { EmbeddedLog } from '../src/sources/embedded-log';
import type { ActyxEvent } from '../src/sources/types';
import { generateDrillEvents, type DrillEvent } from './drill-data';
import { dashboardPipeline, usagePipeline, usageScanPipeline } from './drill-pipelines';
import { dashboardTable, usageTable } from './drill-tables';
import { cachedDrillLog, drillMembers, GENERATE_ONLY } from './drill-members';
import { EXAMPLES, runExampleFlows } from './example-flows';

const EVENTS = intEnv('BENCH_EVENTS', 1_000_000);
const MACHINES = intEnv('BENCH_MACHINES', 50);
const RETENTION_DAYS = Number(process.env.BENCH_RETENTION_DAYS ?? 2);
const LIVE_EVENTS = intEnv('BENCH_LIVE_EVENTS', 3_000);
const WITH_PG = process.env.BENCH_PG !== '0';
/** Paired rounds of the example flows and the plain-JS views (flows, views, flows, views, …). */
const ROUNDS = intEnv('BENCH_ROUNDS', 3);
/** Machines of the many-keys comparison (BENCH_KEYS=0 skips it) and its events. */
const MANY_KEYS = Number(process.env.BENCH_KEYS ?? 100_000);
const KEYS_EVENTS = intEnv('BENCH_KEYS_EVENTS', 200_000);
/**
 * BENCH_KEYS_STREAMS: the many-keys rounds also run the BENCH_KEYS machines on this many streams
 * (the drill log gives every machine its own stream: 100,000 machines are 100,000 streams), to
 * tell the cost per key from the cost per stream. The bar stays defined on one stream per machine.
 */
const KEYS_STREAMS = process.env.BENCH_KEYS_STREAMS ? intEnv('BENCH_KEYS_STREAMS', MACHINES) : null;
/** BENCH_ONLY=flows: only the example flows' rounds (no floors, so no share of the tightest floor). */
const FLOWS_ONLY = process.env.BENCH_ONLY === 'flows' || process.env.BENCH_ONLY === 'keys';
/**
 * BENCH_FLOWS_TABLES (e.g. `dashboard,machine_usage`): the example flows reduced to the db-sinks of
 * these tables and the members they read from — with those two, the logic of the plain-JS views, for
 * a like-for-like ratio. The bars are defined on the whole flows, so such a run is not their measure.
 */
const FLOWS_TABLES = process.env.BENCH_FLOWS_TABLES
  ? process.env.BENCH_FLOWS_TABLES.split(',').map((t) => t.trim())
  : null;
/** BENCH_ONLY=keys: only the many-keys rounds of the example flows. */
const KEYS_ONLY = process.env.BENCH_ONLY === 'keys';
/** The repository (dist/bench/e2e.js is two levels below). */
const ROOT = join(__dirname, '..', '..');
/** The usage view as the seed's `reduce` (recomputes a touched machine's window per batch) or as an incremental `scan` (dd-scan). */
const USAGE = process.env.BENCH_USAGE === 'reduce' ? 'reduce' : 'scan';
const usageOf = (kind: 'scan' | 'reduce') => (kind === 'scan' ? usageScanPipeline : usagePipeline);
const BATCH = intEnv('BENCH_BATCH', 10_000);
/** Catch-up steps: the coordinator's default (10× the live batch size, at most 2,500) unless BENCH_CATCH_UP_BATCH is set. */
const CATCH_UP_BATCH = intEnv('BENCH_CATCH_UP_BATCH', catchUpBatchSize(BATCH));
const SETTINGS: DataflowSettings = {
  batchSize: BATCH,
  catchUpBatchSize: CATCH_UP_BATCH,
  batchMs: intEnv('BENCH_BATCH_MS', 5),
  maxInFlight: 16,
  retentionMicros: RETENTION_DAYS * 86_400e6,
  onError: 'skip',
};

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Math.max(1, Math.floor(Number(v)));
}

const gc = (globalThis as { gc?: () => void }).gc;
function rssAfterGc(): number {
  if (gc) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().rss;
}
const mb = (b: number): string => `${(b / 1048576).toFixed(0)} MB`;
const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')} events/s`;
const line = (label: string, text: string): void => console.log(`  ${label.padEnd(44)} ${text}`);

// ---- the dataflow --------------------------------------------------------------------------

/** A listener that records commit times per sink (for latency) and prints problems. */
function benchListener(): DataflowListener & { onCommit: ((offsets: OffsetMap) => void) | null } {
  const l: DataflowListener & { onCommit: ((offsets: OffsetMap) => void) | null } = {
    onCommit: null,
    status: () => undefined,
    error: (id, message) => console.error(`  ! ${id}: ${message}`),
    committed: (id, changes) => {
      if (id === 'dashboard-sink' && changes.offsets) l.onCommit?.(changes.offsets);
    },
    log: (level, message) => {
      if (level === 'warn') console.error(`  ! ${message}`);
    },
  };
  return l;
}

// ---- the log -------------------------------------------------------------------------------

/** Writes the generated history to `file` (run in a child process, see openLog). */
async function generateLog(file: string, count: number, machines: number, streams = machines): Promise<void> {
  const log = new EmbeddedLog(`${file}.tmp`, { foreignWritePollMs: 0 });
  const t0 = performance.now();
  const events = generateDrillEvents({ count, machines, streams });
  // The WAL's size after each append: its peak is the disk the appends took beside the file.
  let peakWal = 0;
  // Per window of 10,000 events (in Lamport order) one append per stream: arrival order follows
  // Lamport order at that granularity, with few transactions.
  for (let i = 0; i < events.length; i += 10_000) {
    const byStream = new Map<string, DrillEvent[]>();
    for (const e of events.slice(i, i + 10_000)) {
      const list = byStream.get(e.stream) ?? [];
      list.push(e);
      byStream.set(e.stream, list);
    }
    for (const [stream, list] of byStream) {
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
      peakWal = Math.max(peakWal, statSync(`${file}.tmp-wal`, { throwIfNoEntry: false })?.size ?? 0);
    }
  }
  await log.close();
  renameSync(`${file}.tmp`, file);
  console.log(
    `  generated ${count.toLocaleString('en-US')} events of ${machines} machines (${streams} streams) into ${file} in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak WAL ${(peakWal / 1048576).toFixed(0)} MB`,
  );
}

/** The generated log of `count` events of `machines` machines, cached between runs (generated when missing). */
const cachedLog = (count = EVENTS, machines = MACHINES, streams = machines): string =>
  cachedDrillLog(count, machines, streams);

/** A copy of the cached log in `workDir` (a run may append to it), its pages on disk before anything is timed. */
async function copyOfLog(
  workDir: string,
  name: string,
  count = EVENTS,
  machines = MACHINES,
  streams = machines,
): Promise<string> {
  const file = cachedLog(count, machines, streams);
  // Opening the cached log brings its schema up to date once (a log from an older version gets
  // its time index here, not in every copy).
  await new EmbeddedLog(file, { foreignWritePollMs: 0 }).close();
  const copy = join(workDir, name);
  copyFileSync(file, copy);
  // The copy's 200 MB of dirty pages would otherwise be written back during the first run, and
  // the sink's first fsync waits for them: setup I/O, not catch-up (≈ 0.3–2 s of noise).
  const fd = openSync(copy, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  return copy;
}

/** The generated log, cached between runs; the benchmark works on a copy (the live part appends to it). */
async function openLog(workDir: string): Promise<EmbeddedLog> {
  return new EmbeddedLog(await copyOfLog(workDir, 'log.sqlite'), { foreignWritePollMs: 0 });
}

// ---- floors ----------------------------------------------------------------------------------

async function readFloor(log: EmbeddedLog, present: OffsetMap): Promise<{ ms: number; events: ActyxEvent[][] }> {
  const batches: ActyxEvent[][] = [];
  const t0 = performance.now();
  let n = 0;
  for await (const chunk of log.queryBatches("'machine'", {}, present)) {
    batches.push(chunk as ActyxEvent[]);
    n += chunk.length;
  }
  const ms = performance.now() - t0;
  if (n !== EVENTS) throw new Error(`read ${n} events, expected ${EVENTS}`);
  return { ms, events: batches };
}

interface EngineBatch {
  readonly dashboard: Batch;
  readonly usage: Batch;
  readonly offsets: OffsetMap;
}

/** The engine alone over the same events in the dataflow's catch-up batches (retention as in the dataflow); keeps the outputs. */
async function engineFloor(chunks: readonly ActyxEvent[][]): Promise<{ ms: number; batches: EngineBatch[] }> {
  const all = chunks.flat();
  const g = createGraph();
  const input = g.input<DrillEvent>('events', { insertOnly: true });
  g.output('dashboard', dashboardPipeline(input));
  g.output('usage', usageOf(USAGE)(input));
  const out: EngineBatch[] = [];
  const offsets: Record<string, number> = {};
  let watermark: number | null = null;
  let cutoff: number | null = null;
  const t0 = performance.now();
  for (let i = 0; i < all.length; i += CATCH_UP_BATCH) {
    const slice = all.slice(i, i + CATCH_UP_BATCH);
    // As the coordinator does: one step per cutoff the batch reaches, compacted before it.
    for (const { from, to, compactTo } of retentionSegments(slice, watermark, cutoff, SETTINGS.retentionMicros)) {
      if (compactTo !== null) g.compact((cutoff = compactTo) + 1); // times ≤ the cutoff are outside the window
      const updates: Update[] = [];
      for (const e of slice.slice(from, to)) {
        offsets[e.stream] = e.offset;
        if (watermark === null || e.timestamp > watermark) watermark = e.timestamp;
        if (cutoff !== null && e.timestamp <= cutoff) continue;
        updates.push([
          {
            lamport: e.lamport,
            stream: e.stream,
            offset: e.offset,
            timestamp: e.timestamp,
            tags: e.tags,
            appId: e.appId,
            payload: e.payload,
          } as never,
          1,
          e.timestamp,
        ]);
      }
      const r = await g.step({ events: updates });
      out.push({
        dashboard: r.outputs.get('dashboard') ?? [],
        usage: r.outputs.get('usage') ?? [],
        offsets: { ...offsets },
      });
    }
  }
  return { ms: performance.now() - t0, batches: out };
}

/** Writing the same rows alone: the same batches and transactions (rows + offsets + meta) without reading or computing. */
async function writeFloor(db: SinkDatabase, prefix: string, batches: readonly EngineBatch[]): Promise<number> {
  const dash = dashboardTable(`${prefix}dashboard`);
  const usage = usageTable(`${prefix}usage`);
  await db.transaction(async (tx) => {
    await tx.ensureTable(dash);
    await tx.ensureTable(usage);
  });
  const t0 = performance.now();
  let pending: Promise<void>[] = [];
  for (const b of batches) {
    pending.push(
      db.transaction(async (tx) => {
        if (b.dashboard.length > 0) await tx.apply(dash, b.dashboard);
        await tx.writeState(dash, { offsets: b.offsets, fingerprint: 'floor', watermark: 0 });
        if (b.usage.length > 0) await tx.apply(usage, b.usage, false);
        await tx.writeState(usage, { offsets: b.offsets, fingerprint: 'floor', watermark: 0 });
      }),
    );
    if (pending.length >= SETTINGS.maxInFlight) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  return performance.now() - t0;
}

// ---- end to end --------------------------------------------------------------------------------

async function endToEnd(
  log: EmbeddedLog,
  db: SinkDatabase,
  prefix: string,
  withUsage = true,
  usage: 'scan' | 'reduce' = USAGE,
): Promise<{ ms: number; run: RunningDataflow; listener: ReturnType<typeof benchListener> }> {
  const listener = benchListener();
  const t0 = performance.now();
  const run = startDataflow(
    { source: log, members: drillMembers(log, db, { prefix, withUsage, usage }), settings: SETTINGS },
    listener,
  );
  await Promise.race([
    run.live,
    run.finished.then(() => Promise.reject(new Error(run.stats().error ?? 'dataflow ended'))),
  ]);
  return { ms: performance.now() - t0, run, listener };
}

async function liveLatency(
  log: EmbeddedLog,
  run: RunningDataflow,
  listener: ReturnType<typeof benchListener>,
): Promise<number[]> {
  const pending: { stream: string; offset: number; t: number }[] = [];
  const latencies: number[] = [];
  listener.onCommit = (offsets) => {
    const now = performance.now();
    while (pending.length > 0) {
      const p = pending[0] as { stream: string; offset: number; t: number };
      if ((offsets[p.stream] ?? -1) < p.offset) break;
      latencies.push(now - p.t);
      pending.shift();
    }
  };
  let ts = (run.stats().watermark ?? 0) + 1_000_000;
  const t0 = performance.now();
  for (let i = 0; i < LIVE_EVENTS; i++) {
    const due = t0 + i; // 1,000 events per second
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const m = (i % MACHINES) + 1;
    ts += 1000;
    const started = performance.now();
    const [published] = log.appendSync(`drill${m}-0`, [
      {
        tags: ['machine', `machine:Drill${m}`],
        payload: { type: i % 2 === 0 ? 'started' : 'stopped', order: `live-${i}` },
        timestamp: ts,
      },
    ]);
    if (published) pending.push({ stream: published.stream, offset: published.offset, t: started });
  }
  const present = await log.presentOffsets();
  const until = performance.now() + 10_000;
  while (!covers(run.stats().committedOffsets, present) && performance.now() < until)
    await new Promise((r) => setTimeout(r, 5));
  return latencies.sort((a, b) => a - b);
}

const pct = (sorted: readonly number[], p: number): string =>
  `${(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN).toFixed(1)} ms`;

/** The dashboard pipeline's engine state after growing prefixes of the history. */
async function dashboardState(log: EmbeddedLog, present: OffsetMap): Promise<string> {
  const g = createGraph();
  const input = g.input<DrillEvent>('events', { insertOnly: true });
  g.output('dashboard', dashboardPipeline(input));
  const marks: string[] = [];
  let n = 0;
  let next = 1000;
  for await (const chunk of log.queryBatches("'machine'", {}, present)) {
    await g.step({ events: chunk.map((e) => [e as unknown as DrillEvent, 1, e.timestamp] as Update<DrillEvent>) });
    n += chunk.length;
    if (n >= next) {
      marks.push(`${n.toLocaleString('en-US')} events: ${g.stateSize()}`);
      next *= 10;
    }
  }
  marks.push(`${n.toLocaleString('en-US')} events: ${g.stateSize()}`);
  return marks.join(', ');
}

// ---- the example flows, as the nodes compile them ------------------------------------------------

interface Timed {
  readonly ms: number;
  /** CPU time of the whole process (all threads) during the run. */
  readonly cpuMs: number;
  /** Rows in the tables after the run, and in their offsets tables (see writtenRows). */
  readonly rows?: number;
  readonly offsetRows?: number;
}

function removeSqlite(...files: string[]): void {
  for (const f of files) for (const suffix of ['', '-wal', '-shm']) rmSync(f + suffix, { force: true });
}

/** The example flows (bench/example-flows.ts) catching up with a fresh copy of the log into a fresh SQLite file. */
async function flowsCatchUp(
  dir: string,
  round: string,
  count = EVENTS,
  machines = MACHINES,
  streams = machines,
): Promise<Timed> {
  const logFile = await copyOfLog(dir, `flows-log-${round}.sqlite`, count, machines, streams);
  const dbFile = join(dir, `flows-${round}.sqlite`);
  rssAfterGc();
  const cpu0 = process.cpuUsage();
  const run = await runExampleFlows(ROOT, logFile, dbFile, EXAMPLES, {}, FLOWS_TABLES);
  const cpu = process.cpuUsage(cpu0);
  await run.stop();
  const written = writtenRows(dbFile);
  removeSqlite(logFile, dbFile);
  return { ms: run.ms, cpuMs: (cpu.user + cpu.system) / 1000, ...written };
}

/**
 * The rows a catch-up left in the tables and in their offsets tables (one per stream and table),
 * counted afterwards: the output's size, not every write (a keyed row updated twice counts once).
 */
function writtenRows(dbFile: string): { rows: number; offsetRows: number } {
  const db = new Database(dbFile, { readonly: true });
  try {
    let rows = 0;
    let offsetRows = 0;
    const tables = db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'deltaflow%'`)
      .all();
    for (const { name } of tables as { name: string }[]) {
      const n = (db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n;
      if (name.endsWith('_offsets')) offsetRows += n;
      else rows += n;
    }
    return { rows, offsetRows };
  } finally {
    db.close();
  }
}

/** The plain-JS views (dashboard + usage, bench/drill-pipelines.ts) the same way: fresh log copy, fresh SQLite file. */
async function viewsCatchUp(dir: string, round: string): Promise<Timed> {
  const logFile = await copyOfLog(dir, `views-log-${round}.sqlite`);
  const dbFile = join(dir, `views-${round}.sqlite`);
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 0 });
  const db = new SqliteDatabase({ filename: dbFile });
  rssAfterGc();
  const cpu0 = process.cpuUsage();
  const r = await endToEnd(log, db, '');
  const cpu = process.cpuUsage(cpu0);
  await r.run.stop();
  await db.close();
  await log.close();
  removeSqlite(logFile, dbFile);
  return { ms: r.ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
const perSecond = (n: number, ms: number): number => (n / ms) * 1000;

interface FlowRounds {
  readonly flows: Timed[];
  readonly views: Timed[];
  readonly keys: { few: Timed; many: Timed; fewStreams: Timed | null }[];
}

/** The example flows as users deploy them beside the plain-JS views, then few against many keys: paired rounds. */
async function flowsRounds(dir: string): Promise<FlowRounds> {
  const flows: Timed[] = [];
  const views: Timed[] = [];
  for (let r = 0; r < (KEYS_ONLY ? 0 : ROUNDS); r++) {
    flows.push(await flowsCatchUp(dir, `${r}`));
    views.push(await viewsCatchUp(dir, `${r}`));
  }
  // Many keys: CPU per event of the flows with MANY_KEYS machines against MACHINES.
  const keys: { few: Timed; many: Timed; fewStreams: Timed | null }[] = [];
  if (MANY_KEYS > 0)
    for (let r = 0; r < ROUNDS; r++)
      keys.push({
        few: await flowsCatchUp(dir, `few-${r}`, KEYS_EVENTS, MACHINES),
        many: await flowsCatchUp(dir, `many-${r}`, KEYS_EVENTS, MANY_KEYS),
        fewStreams:
          KEYS_STREAMS === null
            ? null
            : await flowsCatchUp(dir, `many-streams-${r}`, KEYS_EVENTS, MANY_KEYS, KEYS_STREAMS),
      });
  return { flows, views, keys };
}

/** Prints the flows' figures with PASS/FAIL against issue 13's bars; `floors` (name, events/s) measured in the same run, if any. */
function reportFlows(
  { flows: flowRounds, views: viewRounds, keys: keyRounds }: FlowRounds,
  floors: [string, number][],
): void {
  const [tightName, tightRate] =
    floors.length > 0 ? floors.reduce((a, b) => (b[1] < a[1] ? b : a)) : ['not measured', NaN];
  const flowRates = flowRounds.map((t) => perSecond(EVENTS, t.ms));
  const flowRate = median(flowRates);
  const flowShare = flowRate / tightRate;
  console.log(
    FLOWS_TABLES === null
      ? `\nExample flows as the nodes compile them (${EXAMPLES.join(' + ')}: 2 dataflows, 10 tables; SQLite), ${ROUNDS} paired rounds`
      : `\nExample flows reduced to the tables ${FLOWS_TABLES.join(', ')} (BENCH_FLOWS_TABLES; the bars are defined on the whole flows), ${ROUNDS} paired rounds`,
  );
  if (flowRounds.length > 0) {
    line(
      'flows: catch-up, per round',
      flowRounds.map((t) => `${rate(EVENTS, t.ms)} (CPU ${(t.cpuMs / 1000).toFixed(1)} s)`).join('; '),
    );
    line(
      'plain-JS views: catch-up, per round',
      viewRounds.map((t) => `${rate(EVENTS, t.ms)} (CPU ${(t.cpuMs / 1000).toFixed(1)} s)`).join('; '),
    );
    line(
      'views / flows (median of per-round ratios)',
      `${median(flowRounds.map((f, i) => f.ms / viewRounds[i]!.ms)).toFixed(2)}×`,
    );
    line(
      'flows: catch-up (median)',
      `${Math.round(flowRate).toLocaleString('en-US')} events/s  bar ≥ 200,000 events/s: ${verdict(flowRate >= 200_000)}`,
    );
    line(`flows / tightest floor (${tightName})`, `${flowShare.toFixed(2)}  bar ≥ 0.45: ${verdict(flowShare >= 0.45)}`);
  }
  if (keyRounds.length > 0) {
    const ratios = keyRounds.map(({ few, many }) => many.cpuMs / few.cpuMs);
    const ratio = median(ratios);
    line(
      `flows: CPU per event, ${MANY_KEYS.toLocaleString('en-US')} vs ${MACHINES} machines`,
      `${keyRounds
        .map(
          ({ few, many }) =>
            `${((many.cpuMs * 1000) / KEYS_EVENTS).toFixed(1)} vs ${((few.cpuMs * 1000) / KEYS_EVENTS).toFixed(1)} µs`,
        )
        .join('; ')} (${KEYS_EVENTS.toLocaleString('en-US')} events)`,
    );
    line(
      '  ratio (median of per-round ratios)',
      `${ratios.map((r) => r.toFixed(2)).join(', ')} → ${ratio.toFixed(2)}×  bar ≤ 2×: ${verdict(ratio <= 2)}`,
    );
    line(
      '  load average after the rounds',
      loadavg()
        .map((l) => l.toFixed(1))
        .join(' '),
    );
    const stored = (t: Timed): string =>
      `${t.rows?.toLocaleString('en-US')} rows + ${t.offsetRows?.toLocaleString('en-US')} offsets rows`;
    const first = keyRounds[0]!;
    line('  rows in the tables after the catch-up', `${stored(first.many)} vs ${stored(first.few)}`);
    if (first.fewStreams !== null) {
      const spread = keyRounds.map(({ few, fewStreams }) => fewStreams!.cpuMs / few.cpuMs);
      line(
        `  ${MANY_KEYS.toLocaleString('en-US')} machines on ${KEYS_STREAMS} streams`,
        `${keyRounds.map(({ fewStreams }) => `${((fewStreams!.cpuMs * 1000) / KEYS_EVENTS).toFixed(1)} µs`).join('; ')} per event; vs ${MACHINES} machines ${spread.map((r) => r.toFixed(2)).join(', ')} → ${median(spread).toFixed(2)}× (not the bar's measure); ${stored(first.fewStreams)}`,
      );
    }
  }
}

async function main(): Promise<void> {
  console.log(
    `End-to-end benchmark: ${EVENTS.toLocaleString('en-US')} events, ${MACHINES} machines, batch ${SETTINGS.batchSize} / ${SETTINGS.batchMs} ms (catch-up ${CATCH_UP_BATCH}), ${SETTINGS.maxInFlight} in flight, usage as ${USAGE} with retention ${RETENTION_DAYS} days, Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-e2e-'));
  if (FLOWS_ONLY) {
    try {
      reportFlows(await flowsRounds(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return;
  }
  const log = await openLog(dir);
  const history = await log.presentOffsets();
  const pgDb = (): PostgresDatabase =>
    new PostgresDatabase(
      process.env.PGHOST || process.env.DATABASE_URL
        ? {}
        : { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' },
    );
  const prefix = `bench_${process.pid}_`;
  try {
    // End to end first, on a fresh heap (the floors below keep all events in memory).
    const db = new SqliteDatabase({ filename: join(dir, 'views.sqlite') });
    const e2e = await endToEnd(log, db, '');
    const peakRss = process.resourceUsage().maxRSS * 1024; // the process's peak so far: log open + catch-up
    const rss = rssAfterGc();
    const state = e2e.run.stats().stateSize;
    const commits = e2e.run.stats().batchesCommitted;
    const lat = await liveLatency(log, e2e.run, e2e.listener);
    await e2e.run.stop();
    // Restart after a clean stop: operator state rebuilt by replaying the retention window, no writes.
    const restart = await endToEnd(log, db, '');
    const replayed = restart.run.stats().eventsReplayed;
    await restart.run.stop();
    await db.close();
    let pg: { ms: number; commits: number; lat: number[] } | null = null;
    if (WITH_PG) {
      const pgE2eDb = pgDb();
      const run = await endToEnd(log, pgE2eDb, prefix);
      const commitsPg = run.run.stats().batchesCommitted;
      pg = { ms: run.ms, commits: commitsPg, lat: await liveLatency(log, run.run, run.listener) };
      await run.run.stop();
      await pgE2eDb.close();
    }

    // The dashboard alone (O(1) state per machine): what the coordinator and the sink cost without
    // the usage reduce, which recomputes a touched machine's whole window on every batch.
    const dashDb = new SqliteDatabase({ filename: join(dir, 'dashboard-only.sqlite') });
    const dashRun = await endToEnd(log, dashDb, '', false);
    const dashLat = await liveLatency(log, dashRun.run, dashRun.listener);
    await dashRun.run.stop();
    await dashDb.close();

    // The usage view written the other way (the seed's reduce vs. the incremental scan), for comparison.
    const otherKind = USAGE === 'scan' ? 'reduce' : 'scan';
    const otherDb = new SqliteDatabase({ filename: join(dir, 'other-usage.sqlite') });
    const otherRun = await endToEnd(log, otherDb, '', true, otherKind);
    const otherLat = await liveLatency(log, otherRun.run, otherRun.listener);
    await otherRun.run.stop();
    await otherDb.close();

    // Floors over the same events (the live events above are not part of them).
    const read = await readFloor(log, history);
    const engine = await engineFloor(read.events);
    read.events = [];
    const floorDb = new SqliteDatabase({ filename: join(dir, 'floor.sqlite') });
    const sqliteWrite = await writeFloor(floorDb, '', engine.batches);
    await floorDb.close();
    let pgWrite = 0;
    if (WITH_PG) {
      const floor = pgDb();
      pgWrite = await writeFloor(floor, `${prefix}floor_`, engine.batches);
      await floor.transaction(async (tx) => {
        for (const p of [`${prefix}floor_`, prefix]) {
          await tx.dropTable(dashboardTable(`${p}dashboard`));
          await tx.dropTable(usageTable(`${p}usage`));
        }
      });
      await floor.close();
    }

    // Once more on SQLite, now that the floors have warmed up the same code: the fair ratio.
    engine.batches.length = 0; // the floors' data must not weigh on the heap of the run below
    rssAfterGc();
    const againDb = new SqliteDatabase({ filename: join(dir, 'views-again.sqlite') });
    const again = await endToEnd(log, againDb, '');
    await again.run.stop();
    await againDb.close();

    const flows = await flowsRounds(dir);

    console.log('\nSQLite (WAL, synchronous=NORMAL)');
    line(
      'end to end (catch-up, commits per batch)',
      `${rate(EVENTS, e2e.ms)}  (${(e2e.ms / 1000).toFixed(2)} s, ${commits} commits; first run, cold)`,
    );
    line('end to end again (after the floors)', `${rate(EVENTS, again.ms)}  (${(again.ms / 1000).toFixed(2)} s)`);
    line('floor: reading + parsing the events alone', `${rate(EVENTS, read.ms)}  (${(read.ms / 1000).toFixed(2)} s)`);
    line('floor: engine alone (same batches)', `${rate(EVENTS, engine.ms)}  (${(engine.ms / 1000).toFixed(2)} s)`);
    line('floor: writing the same rows alone', `${rate(EVENTS, sqliteWrite)}  (${(sqliteWrite / 1000).toFixed(2)} s)`);
    line('sum of the three floors', rate(EVENTS, read.ms + engine.ms + sqliteWrite));
    line(
      'restart after a clean stop → live',
      `${(restart.ms / 1000).toFixed(2)} s  (${replayed.toLocaleString('en-US')} events of the window replayed, nothing written)`,
    );
    line(
      'RSS after catch-up',
      `${mb(rss)}, peak during catch-up ${mb(peakRss)}  (engine state entries: ${state.toLocaleString('en-US')})`,
    );
    line(
      `live: ${lat.length} events at 1,000/s → committed row`,
      `p50 ${pct(lat, 0.5)}, p99 ${pct(lat, 0.99)}, max ${pct(lat, 1)}`,
    );
    line('dashboard alone: end to end', `${rate(EVENTS, dashRun.ms)}  (${(dashRun.ms / 1000).toFixed(2)} s)`);
    line(
      `dashboard alone: live, ${dashLat.length} events at 1,000/s`,
      `p50 ${pct(dashLat, 0.5)}, p99 ${pct(dashLat, 0.99)}, max ${pct(dashLat, 1)}`,
    );
    line(`usage as ${otherKind}: end to end`, `${rate(EVENTS, otherRun.ms)}  (${(otherRun.ms / 1000).toFixed(2)} s)`);
    line(
      `usage as ${otherKind}: live, ${otherLat.length} events at 1,000/s`,
      `p50 ${pct(otherLat, 0.5)}, p99 ${pct(otherLat, 0.99)}, max ${pct(otherLat, 1)}`,
    );
    if (pg) {
      console.log('\nPostgreSQL');
      line(
        'end to end (catch-up, commits per batch)',
        `${rate(EVENTS, pg.ms)}  (${(pg.ms / 1000).toFixed(2)} s, ${pg.commits} commits)`,
      );
      line('floor: writing the same rows alone', `${rate(EVENTS, pgWrite)}  (${(pgWrite / 1000).toFixed(2)} s)`);
      line('sum of the three floors', rate(EVENTS, read.ms + engine.ms + pgWrite));
      line(
        `live: ${pg.lat.length} events at 1,000/s → committed row`,
        `p50 ${pct(pg.lat, 0.5)}, p99 ${pct(pg.lat, 0.99)}, max ${pct(pg.lat, 1)}`,
      );
    }
    reportFlows(flows, [
      ['reading + parsing', perSecond(EVENTS, read.ms)],
      ['engine alone', perSecond(EVENTS, engine.ms)],
      ['writing the rows alone', perSecond(EVENTS, sqliteWrite)],
    ]);

    console.log('\nDashboard engine state (entries) as the history grows');
    line('dashboard pipeline alone', await dashboardState(log, history));
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const generateOnly = process.env[GENERATE_ONLY];
(generateOnly ? generateLog(generateOnly, EVENTS, MACHINES, intEnv('BENCH_STREAMS', MACHINES)) : main()).catch(
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
