/**
 * Engine benchmark (`npm run bench:engine`): the seed's dashboard and usage pipelines over
 * synthetic drill events (bench/drill-data.ts), run side by side in one process on our engine,
 * @electric-sql/d2mini and @electric-sql/d2ts doing the same work. Prints events/s, the state our
 * engine retains (its own count of state entries, `Graph.stateSize()`; the heap difference after GC
 * beside it is only indicative), output diff counts next to the real number of changes, the ratios
 * and PASS/FAIL against each bar.
 *
 * The peers have no insert-only max and no sorted reduce, so they run a keyed `reduce` that scans
 * (dashboard) or sorts and pairs (usage) each touched key's values. Work that grows with the
 * history (a reduce sees its whole group every time) makes rates fall as runs get longer, so
 * ratios are only taken between runs over the same events (the same prefix).
 *
 * Environment: BENCH_EVENTS (1,000,000), BENCH_BATCH (1,000), BENCH_MACHINES (50),
 * BENCH_USAGE_EVENTS (prefix for the three-way usage comparison), BENCH_D2MINI_DASHBOARD_EVENTS,
 * BENCH_D2TS_DASHBOARD_EVENTS, BENCH_D2TS_USAGE_EVENTS (prefixes for the slower peers),
 * BENCH_FULL_USAGE=1 to also run our usage pipeline over all events (minutes: see BENCHMARKS.md), BENCH_JOIN_EVENTS
 * (400,000) and BENCH_JOIN_ROUNDS (7) for the join against d2ts's (BENCH_JOIN=0 skips it, BENCH_ONLY=join runs only it), BENCH_ROUNDS (3: every ratio
 * against a peer is the median of that many paired rounds — ours, peer, ours, peer … over the same events in this
 * process — so that both sides of a ratio ran at the same moment of a shared machine), BENCH_CLOCK=cpu
 * (rates per CPU second of the process instead of per wall-clock second: for a machine that other
 * processes keep busy).
 */
import * as os from 'node:os';
import * as d2mini from '@electric-sql/d2mini';
import * as d2ts from '@electric-sql/d2ts';
import { compareValues, createGraph, type Collection, type Multiset, type Update } from '../src/engine';
import { eventOrderKey } from '../src/sources/event-order';
import { generateDrillEvents, machineOf, type DrillEvent } from './drill-data';
import {
  dashboardPipeline,
  isMachineEvent,
  pairStartStop,
  toDashboardRow,
  toExcerpt,
  usagePipeline,
  type DashboardRow,
  type Excerpt,
  type UsageRow,
} from './drill-pipelines';

const EVENTS = intEnv('BENCH_EVENTS', 1_000_000);
const BATCH = intEnv('BENCH_BATCH', 1_000);
const MACHINES = intEnv('BENCH_MACHINES', 50);
const USAGE_EVENTS = Math.min(EVENTS, intEnv('BENCH_USAGE_EVENTS', 100_000));
const D2MINI_DASHBOARD_EVENTS = Math.min(EVENTS, intEnv('BENCH_D2MINI_DASHBOARD_EVENTS', 200_000));
const D2TS_DASHBOARD_EVENTS = Math.min(EVENTS, intEnv('BENCH_D2TS_DASHBOARD_EVENTS', 100_000));
const D2TS_USAGE_EVENTS = Math.min(USAGE_EVENTS, intEnv('BENCH_D2TS_USAGE_EVENTS', USAGE_EVENTS));
const FULL_USAGE = process.env.BENCH_FULL_USAGE === '1';
const ROUNDS = intEnv('BENCH_ROUNDS', 3);
const CPU_TIME = process.env.BENCH_CLOCK === 'cpu';
const WARM_UP_BATCHES = 20;

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Math.max(1, Math.floor(Number(v)));
}

type Pipeline = 'dashboard' | 'usage';
type EngineName = 'deltaflow' | 'd2mini' | 'd2ts';

interface Result {
  readonly pipeline: Pipeline;
  readonly engine: EngineName;
  readonly events: number;
  /** Wall-clock time. */
  readonly ms: number;
  /** CPU time of the whole process (all threads, GC helpers included) during the run. */
  readonly cpuMs: number;
  readonly heapBytes: number;
  /** The engine's own count of retained state entries (ours only). */
  readonly stateEntries: number | null;
  readonly diffs: number;
  readonly realChanges: number;
}

/** A prepared run: `feed(i)` processes batch i; `diffs()` is the number of output diffs so far. */
interface Runner {
  feed(batch: number): void | Promise<void>;
  diffs(): number;
  /** State entries the engine retains (ours only). */
  stateEntries?(): number;
}

const gc = (globalThis as { gc?: () => void }).gc;
function heapAfterGc(): number {
  if (gc) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

// ---------------------------------------------------------------------------------------------
// The three engines doing the same work

function ours(pipeline: Pipeline, batches: readonly Update<DrillEvent>[][]): Runner {
  const g = createGraph();
  // As the dataflow feeds events: with their causal order (computed only where a reduce reads it).
  const input = g.input<DrillEvent>('events', { insertOnly: true, order: eventOrderKey });
  const build: (c: Collection<DrillEvent>) => Collection = pipeline === 'dashboard' ? dashboardPipeline : usagePipeline;
  g.output('rows', build(input));
  let diffs = 0;
  return {
    async feed(i) {
      const r = await g.step({ events: batches[i] });
      diffs += r.outputs.get('rows')?.length ?? 0;
    },
    diffs: () => diffs,
    stateEntries: () => g.stateSize(),
  };
}

/** The dashboard reducer for the peers: the row with the greatest `since` (ties by value order) among present values. */
function latestRow(values: [DashboardRow, number][]): [DashboardRow, number][] {
  let best: DashboardRow | null = null;
  for (const [row, m] of values) {
    if (m <= 0) continue;
    if (best === null || row.since > best.since || (row.since === best.since && compareValues(row, best) > 0))
      best = row;
  }
  return best === null ? [] : [[best, 1]];
}

/** The usage reducer for the peers: they hand over values unsorted, so sort by Lamport, then pair as the seed does. */
function usageRows(values: [Excerpt, number][]): [UsageRow, number][] {
  const present = values.filter(([, m]) => m > 0).sort((a, b) => a[0].lamport - b[0].lamport);
  const outputs: [UsageRow, number][] = [];
  if (present.length > 0) pairStartStop(present[0][0].machine, present as unknown as Multiset<Excerpt>, outputs);
  return outputs;
}

/** The keyed reduce function the peers run for a pipeline (their values are `[key, row]` pairs). */
function peerReducer(pipeline: Pipeline): (values: [DashboardRow | Excerpt, number][]) => [unknown, number][] {
  return (pipeline === 'dashboard' ? latestRow : usageRows) as unknown as (
    values: [DashboardRow | Excerpt, number][],
  ) => [unknown, number][];
}

function keyed(pipeline: Pipeline, e: DrillEvent): [string, DashboardRow | Excerpt] {
  return [machineOf(e)!, pipeline === 'dashboard' ? toDashboardRow(e) : toExcerpt(e)];
}

function d2miniRunner(pipeline: Pipeline, batches: readonly [DrillEvent, number][][]): Runner {
  const { D2, MultiSet, filter, map, reduce, output } = d2mini;
  const graph = new D2();
  const input = graph.newInput<DrillEvent>();
  let diffs = 0;
  input.pipe(
    filter(isMachineEvent),
    map((e: DrillEvent) => keyed(pipeline, e)),
    reduce(peerReducer(pipeline)),
    output((data) => {
      diffs += data.getInner().length;
    }),
  );
  graph.finalize();
  return {
    feed(i) {
      input.sendData(new MultiSet(batches[i]));
      graph.run();
    },
    diffs: () => diffs,
  };
}

function d2tsRunner(pipeline: Pipeline, batches: readonly [DrillEvent, number][][]): Runner {
  const { D2, MultiSet, MessageType, filter, map, reduce, output } = d2ts;
  const graph = new D2({ initialFrontier: 0 });
  const input = graph.newInput<DrillEvent>();
  let diffs = 0;
  input.pipe(
    filter(isMachineEvent),
    map((e: DrillEvent) => keyed(pipeline, e)),
    reduce(peerReducer(pipeline)),
    output((message) => {
      if (message.type === MessageType.DATA) diffs += message.data.collection.getInner().length;
    }),
  );
  graph.finalize();
  return {
    feed(i) {
      input.sendData(i, new MultiSet(batches[i]));
      input.sendFrontier(i + 1);
      graph.run();
    },
    diffs: () => diffs,
  };
}

// ---------------------------------------------------------------------------------------------
// Real changes, computed naively: how many diffs a minimal output must contain

function realChanges(pipeline: Pipeline, events: readonly DrillEvent[], count: number): number {
  let changes = 0;
  if (pipeline === 'dashboard') {
    const latest = new Map<string, DashboardRow>();
    for (let from = 0; from < count; from += BATCH) {
      const before = new Map(latest);
      for (let i = from; i < Math.min(count, from + BATCH); i++) {
        if (!isMachineEvent(events[i])) continue;
        const row = toDashboardRow(events[i]);
        const cur = latest.get(row.machine);
        if (cur === undefined || row.since > cur.since || (row.since === cur.since && compareValues(row, cur) > 0))
          latest.set(row.machine, row);
      }
      for (const [machine, row] of latest) {
        const old = before.get(machine);
        if (old === undefined) changes += 1;
        else if (compareValues(old, row) !== 0) changes += 2;
      }
    }
    return changes;
  }
  // usage: events come in causal order and are never retracted, so every stop that closes an
  // open start adds exactly one row, and no row ever changes
  const open = new Map<string, Set<string>>();
  for (let i = 0; i < count; i++) {
    const e = events[i];
    if (!isMachineEvent(e)) continue;
    const x = toExcerpt(e);
    let starts = open.get(x.machine);
    if (!starts) open.set(x.machine, (starts = new Set()));
    if (x.payload.type === 'started') starts.add(x.payload.order);
    else if (starts.delete(x.payload.order)) changes++;
  }
  return changes;
}

// ---------------------------------------------------------------------------------------------

async function measure(
  pipeline: Pipeline,
  engine: EngineName,
  count: number,
  events: readonly DrillEvent[],
  make: () => Runner,
): Promise<Result> {
  const batches = Math.ceil(count / BATCH);
  const base = heapAfterGc();
  // The forced GCs leave sweeping to helper threads: let it finish so it is not charged to the run.
  await new Promise((resolve) => setTimeout(resolve, 300));
  let runner: Runner | null = make();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    const r = runner.feed(i);
    if (r) await r;
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const heapBytes = heapAfterGc() - base;
  const stateEntries = runner.stateEntries?.() ?? null;
  const diffs = runner.diffs();
  runner = null;
  heapAfterGc();
  const result: Result = {
    pipeline,
    engine,
    events: count,
    ms,
    cpuMs,
    heapBytes,
    stateEntries,
    diffs,
    realChanges: realChanges(pipeline, events, count),
  };
  print(result);
  return result;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(2)} MB`;
}

/** Events per second of wall-clock time, or per CPU second (robust when other processes share the cores). */
function rate(r: Result): number {
  return (r.events / (CPU_TIME ? r.cpuMs : r.ms)) * 1000;
}

function print(r: Result): void {
  const excess = r.diffs / Math.max(1, r.realChanges);
  console.log(
    `${r.pipeline.padEnd(9)} ${r.engine.padEnd(9)} ${fmt(r.events).padStart(9)} events  ${fmt(rate(r)).padStart(10)} events/s  wall ${(r.ms / 1000).toFixed(2).padStart(7)} s  cpu ${(r.cpuMs / 1000).toFixed(2).padStart(7)} s  state ${r.stateEntries === null ? '-' : fmt(r.stateEntries)} entries (heap ${mb(r.heapBytes)})  diffs ${fmt(r.diffs).padStart(11)}  real ${fmt(r.realChanges).padStart(9)}  (${excess.toFixed(2)}×)`,
  );
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function runnerFor(pipeline: Pipeline, engine: EngineName, data: Dataset): Runner {
  return engine === 'deltaflow'
    ? ours(pipeline, data.ours)
    : engine === 'd2mini'
      ? d2miniRunner(pipeline, data.peers)
      : d2tsRunner(pipeline, data.peers);
}

const warmed = new Set<string>();

/** Runs an engine once over the first batches (thrown away) so that measured runs start with optimised code. */
async function warmUp(pipeline: Pipeline, engine: EngineName, data: Dataset): Promise<void> {
  if (warmed.has(`${pipeline}/${engine}`)) return;
  warmed.add(`${pipeline}/${engine}`);
  const runner = runnerFor(pipeline, engine, data);
  for (let i = 0; i < Math.min(WARM_UP_BATCHES, data.ours.length); i++) {
    const r = runner.feed(i);
    if (r) await r;
  }
}

interface Dataset {
  readonly events: readonly DrillEvent[];
  readonly ours: Update<DrillEvent>[][];
  readonly peers: [DrillEvent, number][][];
}

/** The first `count` events (the generator is deterministic, so smaller counts are prefixes of larger ones). */
function dataset(count: number): Dataset {
  const events = generateDrillEvents({ count, machines: MACHINES, seed: 1 });
  const ours: Update<DrillEvent>[][] = [];
  const peers: [DrillEvent, number][][] = [];
  for (let from = 0; from < count; from += BATCH) {
    const slice = events.slice(from, from + BATCH);
    ours.push(slice.map((e): Update<DrillEvent> => [e, 1, e.timestamp]));
    peers.push(slice.map((e): [DrillEvent, number] => [e, 1]));
  }
  return { events, ours, peers };
}

// ---------------------------------------------------------------------------------------------
// Join: worker events ⋈ machine events by order (what the ERP booking combines), with retractions

// Why these defaults: a round of 200,000 events took ~0.2 s of ours on a shared 2-core machine, and single rounds swung
// 2.4–5.2×; 400,000 events and 7 rounds (GC before each side) keep one side's noise from deciding the median.
const JOIN_EVENTS = intEnv('BENCH_JOIN_EVENTS', 400_000);
const JOIN_ROUNDS = intEnv('BENCH_JOIN_ROUNDS', 7);
/** Every n-th batch also retracts all events of the batch five before it. */
const RETRACT_EVERY = 10;

interface JoinDataset {
  readonly count: number;
  readonly ours: Update<DrillEvent>[][];
  readonly peers: [DrillEvent, number][][];
  /** Output diffs a minimal join emits, computed naively. */
  readonly realChanges: number;
}

const orderOfEvent = (e: DrillEvent): string => (e.payload as { order: string }).order;
const isWorkerEvent = (e: DrillEvent): boolean => e.tags.includes('worker');

function joinDataset(count: number): JoinDataset {
  const events = generateDrillEvents({ count, machines: MACHINES, workers: MACHINES, seed: 2 });
  const ours: Update<DrillEvent>[][] = [];
  const peers: [DrillEvent, number][][] = [];
  const slices: DrillEvent[][] = [];
  for (let from = 0; from < count; from += BATCH) slices.push(events.slice(from, from + BATCH));
  slices.forEach((slice, i) => {
    const updates: Update<DrillEvent>[] = slice.map((e) => [e, 1, e.timestamp]);
    if (i % RETRACT_EVERY === RETRACT_EVERY - 1 && i >= 5)
      for (const e of slices[i - 5]!) updates.push([e, -1, e.timestamp]);
    ours.push(updates);
    peers.push(updates.map(([e, d]): [DrillEvent, number] => [e, d]));
  });
  return { count, ours, peers, realChanges: joinRealChanges(ours) };
}

/** The rows a minimal join output changes per batch: per touched order, pairs before and after. */
function joinRealChanges(batches: readonly Update<DrillEvent>[][]): number {
  const sides = { l: new Map<string, Map<DrillEvent, number>>(), r: new Map<string, Map<DrillEvent, number>>() };
  const rows = (order: string): Map<string, number> => {
    const out = new Map<string, number>();
    for (const [a, ma] of sides.l.get(order) ?? [])
      for (const [b, mb] of sides.r.get(order) ?? []) out.set(`${a.lamport}/${b.lamport}`, ma * mb);
    return out;
  };
  let changes = 0;
  for (const batch of batches) {
    const touched = new Set(batch.map(([e]) => orderOfEvent(e)));
    const before = new Map([...touched].map((o) => [o, rows(o)]));
    for (const [e, d] of batch) {
      const side = isWorkerEvent(e) ? sides.l : sides.r;
      const order = orderOfEvent(e);
      const records = side.get(order) ?? new Map<DrillEvent, number>();
      side.set(order, records);
      const m = (records.get(e) ?? 0) + d;
      if (m === 0) records.delete(e);
      else records.set(e, m);
    }
    for (const o of touched) {
      const after = rows(o);
      const old = before.get(o)!;
      for (const [k, m] of after) if (old.get(k) !== m) changes++;
      for (const k of old.keys()) if (!after.has(k)) changes++;
    }
  }
  return changes;
}

function ourJoin(data: JoinDataset): Runner {
  const g = createGraph();
  const input = g.input<DrillEvent>('events', { order: eventOrderKey });
  const steps = input.filter(isWorkerEvent).groupBy(orderOfEvent);
  const machines = input.filter(isMachineEvent).groupBy(orderOfEvent);
  g.output('rows', steps.join(machines).ungroup());
  let diffs = 0;
  return {
    async feed(i) {
      const r = await g.step({ events: data.ours[i] });
      diffs += r.outputs.get('rows')?.length ?? 0;
    },
    diffs: () => diffs,
  };
}

function d2tsJoin(data: JoinDataset): Runner {
  const { D2, MultiSet, MessageType, filter, map, join, output } = d2ts;
  const graph = new D2({ initialFrontier: 0 });
  const input = graph.newInput<DrillEvent>();
  const keyed = (e: DrillEvent): [string, DrillEvent] => [orderOfEvent(e), e];
  const machines = input.pipe(filter(isMachineEvent), map(keyed));
  let diffs = 0;
  input.pipe(
    filter(isWorkerEvent),
    map(keyed),
    join(machines),
    output((message) => {
      if (message.type === MessageType.DATA) diffs += message.data.collection.getInner().length;
    }),
  );
  graph.finalize();
  return {
    feed(i) {
      input.sendData(i, new MultiSet(data.peers[i]));
      input.sendFrontier(i + 1);
      graph.run();
    },
    diffs: () => diffs,
  };
}

/** One timed run over all batches: events per second (wall or CPU, see BENCH_CLOCK) and diffs. */
async function timedJoin(make: () => Runner, data: JoinDataset): Promise<{ rate: number; diffs: number }> {
  // The previous side's garbage is collected before this side's clock starts, not charged to it.
  heapAfterGc();
  const runner = make();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < data.ours.length; i++) {
    const r = runner.feed(i);
    if (r) await r;
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const elapsed = CPU_TIME ? (cpu.user + cpu.system) / 1000 : ms;
  return { rate: (data.count / elapsed) * 1000, diffs: runner.diffs() };
}

/** Paired rounds (ours, d2ts, ours, d2ts, …): the median of the per-round ratios. */
async function joinComparison(): Promise<{ ratio: number; ourDiffs: number; real: number; rate: number }> {
  const data = joinDataset(JOIN_EVENTS);
  console.log(
    `\n## Join: worker events ⋈ machine events by order (inner), every ${RETRACT_EVERY}th batch retracts an earlier batch; ${fmt(JOIN_EVENTS)} events, ${JOIN_ROUNDS} paired rounds`,
  );
  // One whole run of each first (discarded): both engines' code optimised before the measured rounds.
  for (const make of [() => ourJoin(data), () => d2tsJoin(data)]) await timedJoin(make, data);
  const ratios: number[] = [];
  let ourDiffs = 0;
  let rate = 0;
  for (let round = 0; round < JOIN_ROUNDS; round++) {
    const a = await timedJoin(() => ourJoin(data), data);
    const b = await timedJoin(() => d2tsJoin(data), data);
    ratios.push(a.rate / b.rate);
    ourDiffs = Math.max(ourDiffs, a.diffs);
    rate = Math.max(rate, a.rate);
    console.log(
      `round ${round + 1}: deltaflow ${fmt(a.rate)} events/s (${fmt(a.diffs)} diffs), d2ts ${fmt(b.rate)} events/s (${fmt(b.diffs)} diffs), ratio ${(a.rate / b.rate).toFixed(2)}×; real changes ${fmt(data.realChanges)}`,
    );
  }
  console.log(
    `load average after the rounds ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  return { ratio: median(ratios), ourDiffs, real: data.realChanges, rate };
}

/** A bar's verdict line. */
function bar(ok: boolean, text: string): void {
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
}

/** The join's two bars: ≥ 5× d2ts (median of paired rounds), output diffs never more than the real changes. */
function joinBars(joined: { ratio: number; ourDiffs: number; real: number; rate: number }): void {
  bar(
    joined.ratio >= 5,
    `join ≥ 5× d2ts (median of paired rounds): ${joined.ratio.toFixed(2)}× (${fmt(joined.rate)} events/s)`,
  );
  bar(
    joined.ourDiffs <= joined.real,
    `join output diffs never exceed the real changes: ${fmt(joined.ourDiffs)}/${fmt(joined.real)}`,
  );
}

async function main(): Promise<void> {
  if (!gc) console.log('warning: run with --expose-gc for retained-heap figures');
  console.log(
    `# Engine benchmark: ${fmt(EVENTS)} drill events, ${MACHINES} machines, batches of ${fmt(BATCH)}, ${ROUNDS} paired rounds per comparison; rates per ${CPU_TIME ? 'CPU' : 'wall-clock'} second`,
  );
  console.log(
    `# Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}, ${new Date().toISOString()}`,
  );
  if (process.env.BENCH_ONLY === 'join') {
    joinBars(await joinComparison());
    return;
  }
  const results: Result[] = [];
  const measured = async (pipeline: Pipeline, engine: EngineName, count: number, data: Dataset): Promise<Result> => {
    const r = await measure(pipeline, engine, count, data.events, () => runnerFor(pipeline, engine, data));
    results.push(r);
    return r;
  };
  /**
   * Ours against a peer over the same `count` events in ROUNDS paired rounds (ours, peer, ours, peer, …):
   * the median of the per-round ratios of events/s.
   */
  const paired = async (pipeline: Pipeline, data: Dataset, peer: EngineName, count: number): Promise<number> => {
    await warmUp(pipeline, 'deltaflow', data);
    await warmUp(pipeline, peer, data);
    const ratios: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = await measured(pipeline, 'deltaflow', count, data);
      const b = await measured(pipeline, peer, count, data);
      ratios.push(rate(a) / rate(b));
    }
    console.log(
      `  ${pipeline} vs ${peer} over ${fmt(count)} events, per round: ${ratios.map((x) => `${x.toFixed(2)}×`).join(', ')} → median ${median(ratios).toFixed(2)}×`,
    );
    return median(ratios);
  };

  console.log('\n## Dashboard: filter → map → groupBy machine → maxBy since → ungroup');
  let data: Dataset | null = dataset(EVENTS);
  await warmUp('dashboard', 'deltaflow', data);
  const dashRuns: Result[] = [];
  for (let r = 0; r < ROUNDS; r++) dashRuns.push(await measured('dashboard', 'deltaflow', EVENTS, data));
  const dashVsMini = await paired('dashboard', data, 'd2mini', D2MINI_DASHBOARD_EVENTS);
  const dashVsTs = await paired('dashboard', data, 'd2ts', D2TS_DASHBOARD_EVENTS);
  data = null;

  console.log('\n## Usage: filter → map to excerpt → groupBy machine → reduce pairing started/stopped → ungroup');
  data = dataset(USAGE_EVENTS);
  const usageVsMini = await paired('usage', data, 'd2mini', USAGE_EVENTS);
  const usageVsTs = await paired('usage', data, 'd2ts', D2TS_USAGE_EVENTS);
  data = null;
  if (FULL_USAGE && USAGE_EVENTS !== EVENTS) {
    data = dataset(EVENTS);
    await measured('usage', 'deltaflow', EVENTS, data);
    data = null;
  }

  const joined = JOIN_ROUNDS > 0 && process.env.BENCH_JOIN !== '0' ? await joinComparison() : null;

  console.log(
    `\n## Ratios (events/s, same events, median of ${ROUNDS} paired rounds) and bars (load average now ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')})`,
  );
  const dashRate = median(dashRuns.map(rate));
  const dashState = Math.max(...dashRuns.map((r) => r.stateEntries ?? Infinity));
  console.log(`dashboard vs d2mini (${fmt(D2MINI_DASHBOARD_EVENTS)} events): ${dashVsMini.toFixed(2)}×`);
  console.log(`dashboard vs d2ts   (${fmt(D2TS_DASHBOARD_EVENTS)} events): ${dashVsTs.toFixed(2)}×`);
  console.log(`usage vs d2mini     (${fmt(USAGE_EVENTS)} events): ${usageVsMini.toFixed(2)}×`);
  console.log(`usage vs d2ts       (${fmt(D2TS_USAGE_EVENTS)} events): ${usageVsTs.toFixed(2)}×`);
  bar(dashRate >= 2_000_000, `dashboard ≥ 2,000,000 events/s (median of ${ROUNDS} runs): ${fmt(dashRate)}`);
  bar(
    dashState <= MACHINES,
    `dashboard state ≤ one entry per machine after ${fmt(EVENTS)} events (the engine's count): ${fmt(dashState)} entries for ${MACHINES} machines`,
  );
  bar(usageVsTs >= 5, `usage ≥ 5× d2ts: ${usageVsTs.toFixed(2)}×`);
  bar(usageVsMini >= 1.5, `usage ≥ 1.5× d2mini: ${usageVsMini.toFixed(2)}×`);
  const ourRuns = results.filter((r) => r.engine === 'deltaflow');
  bar(
    ourRuns.every((r) => r.diffs <= r.realChanges),
    `our output diffs never exceed the real changes: ${ourRuns.map((r) => `${r.pipeline}@${fmt(r.events)} ${fmt(r.diffs)}/${fmt(r.realChanges)}`).join(', ')}`,
  );
  if (joined !== null) joinBars(joined);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
