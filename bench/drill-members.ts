/**
 * What the benchmarks share: the drill views as hand-written dataflow members (source, dashboard and
 * usage operators, their db-sinks), and the generated event log that bench:e2e caches between runs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataflowMember, Stage } from '../src/dataflow/types';
import type { Collection } from '../src/engine';
import type { SinkDatabase } from '../src/sinks/types';
import type { EmbeddedLog } from '../src/sources/embedded-log';
import type { DrillEvent } from './drill-data';
import { dashboardPipeline, usagePipeline, usageScanPipeline } from './drill-pipelines';
import { dashboardTable, usageTable } from './drill-tables';

/** Set (to the file) in the child process of bench:e2e that only generates the log. */
export const GENERATE_ONLY = 'BENCH_GENERATE_ONLY';

export interface DrillMemberOptions {
  /** Prefix of the table names (a schema-less database shared by several runs). */
  readonly prefix?: string;
  /** The usage view: an incremental `scan` (dd-scan, the default) or the seed's `reduce`. */
  readonly usage?: 'scan' | 'reduce';
  /** Without the usage view and its sink (the dashboard alone). */
  readonly withUsage?: boolean;
}

function collection(s: Stage | undefined): Collection<DrillEvent> {
  if (s?.kind !== 'collection') throw new Error('expected ungrouped input');
  return s.collection as unknown as Collection<DrillEvent>;
}

/**
 * The drill views over `log` into `db`, as in a flow where only the dashboard's db-sink has its
 * output wired (it reports its changes; the usage sink's output is not wired).
 */
export function drillMembers(log: EmbeddedLog, db: SinkDatabase, options: DrillMemberOptions = {}): DataflowMember[] {
  const { prefix = '', usage = 'scan', withUsage = true } = options;
  const op = (id: string, build: (c: Collection<DrillEvent>) => Collection): DataflowMember => ({
    role: 'operator',
    id,
    type: 'dd-bench',
    label: id,
    inputs: ['src'],
    definition: { pipeline: id },
    tap: false,
    build: ([s]) => ({ kind: 'collection', collection: build(collection(s)) as Collection }),
  });
  const sink = (id: string, input: string, table: ReturnType<typeof usageTable>, report: boolean): DataflowMember => ({
    role: 'sink',
    id,
    type: 'db-sink',
    label: input,
    inputs: [input],
    definition: null,
    database: db,
    table,
    version: '',
    ...(report ? {} : { reportChanges: false }),
  });
  const usageView = usage === 'scan' ? usageScanPipeline : usagePipeline;
  return [
    {
      role: 'source',
      id: 'src',
      type: 'actyx-subscribe',
      label: 'src',
      inputs: [],
      definition: null,
      query: "'machine'",
      source: log,
      sourceId: 'log',
    },
    op('dashboard', dashboardPipeline as (c: Collection<DrillEvent>) => Collection),
    ...(withUsage ? [op('usage', usageView as (c: Collection<DrillEvent>) => Collection)] : []),
    sink('dashboard-sink', 'dashboard', dashboardTable(`${prefix}dashboard`), true),
    ...(withUsage ? [sink('usage-sink', 'usage', usageTable(`${prefix}usage`), false)] : []),
  ];
}

/**
 * bench:e2e's generated log of `events` events of `machines` machines (on `streams` streams, default
 * one per machine: see DrillOptions.streams), cached between runs in
 * BENCH_LOG_DIR (default: the temporary directory's deltaflow-bench). When missing it is generated
 * in a child process (`e2e.js` with BENCH_GENERATE_ONLY): the generator's million event objects would
 * otherwise leave this process a grown heap and a peak RSS that the first catch-up is charged with.
 */
export function cachedDrillLog(events: number, machines: number, streams = machines): string {
  const dir = process.env.BENCH_LOG_DIR ?? join(tmpdir(), 'deltaflow-bench');
  mkdirSync(dir, { recursive: true });
  const shared = streams < machines ? `-${streams}-streams` : '';
  const file = join(dir, `drill-${events}-${machines}${shared}.sqlite`);
  if (!existsSync(file))
    // The generator holds every event object at once: about 2.5 GB for 10 million, more than V8's default heap.
    execFileSync(process.execPath, ['--max-old-space-size=12288', join(__dirname, 'e2e.js')], {
      env: {
        ...process.env,
        [GENERATE_ONLY]: file,
        BENCH_EVENTS: String(events),
        BENCH_MACHINES: String(machines),
        BENCH_STREAMS: String(streams),
      },
      stdio: 'inherit',
    });
  return file;
}
