/**
 * Shared pieces of the dataflow tests, the crash worker and the end-to-end benchmark: a drill event
 * generator, the seed's dashboard and usage pipelines as dataflow members (built directly with the
 * engine API), a from-scratch computation over all events in one batch, and table readers.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { consolidate, createGraph, type Graph } from '../../src/engine';
import type { Batch, Collection, Grouped, Update, Value } from '../../src/engine/types';
import type {
  DataflowListener,
  DataflowMember,
  MemberStatus,
  OperatorMember,
  SinkMember,
  SourceMember,
  Stage,
} from '../../src/dataflow/types';
import { eventValue } from '../../src/dataflow/coordinator';
import { eventOrderKey } from '../../src/sources/event-order';
import { compileTable } from '../../src/sinks/table-spec';
import { seededRandom } from '../../src/simulator/seeded-random';
import { dashboardTable, usageTable } from '../../bench/drill-tables';

export { dashboardTable, usageTable };
import type { RowChange, SinkDatabase, TableSpec } from '../../src/sinks/types';
import type { EmbeddedLog } from '../../src/sources/embedded-log';
import { type OffsetMap, setOffset } from '../../src/core/offset-map';
import type { ActyxEvent, EventSource } from '../../src/sources/types';

export function tempDir(prefix = 'deltaflow-dataflow-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A deterministic pseudo-random generator (the simulator's mulberry32). */
export const seeded = seededRandom;

export interface DrillEvent {
  readonly stream: string;
  readonly lamport: number;
  readonly timestamp: number;
  readonly tags: readonly string[];
  readonly payload: { readonly type: 'started' | 'stopped'; readonly order: string };
}

export interface DrillOptions {
  readonly machines: number;
  readonly events: number;
  readonly seed?: number;
  /** Timestamp of the first event (µs). */
  readonly start?: number;
  /** Mean gap between consecutive events (µs). */
  readonly gapMicros?: number;
}

export const machineName = (i: number): string => `Drill${i + 1}`;
export const machineStream = (i: number): string => `drill${i + 1}-0`;

/**
 * Drill events in Lamport order: machines alternate started/stopped of an order; each machine
 * writes its own stream; timestamps and Lamport stamps grow together.
 */
export function drillEvents(options: DrillOptions): DrillEvent[] {
  const rnd = seeded(options.seed ?? 1);
  const gap = options.gapMicros ?? 1_000_000;
  let ts = options.start ?? Date.UTC(2024, 0, 1) * 1000;
  const running: (string | null)[] = Array.from({ length: options.machines }, () => null);
  const orderNo: number[] = Array.from({ length: options.machines }, () => 0);
  const out: DrillEvent[] = [];
  for (let i = 0; i < options.events; i++) {
    const m = Math.floor(rnd() * options.machines);
    ts += 1 + Math.floor(rnd() * gap * 2);
    const current = running[m];
    let payload: DrillEvent['payload'];
    if (current === null) {
      orderNo[m] = (orderNo[m] as number) + 1;
      const order = `${machineName(m)}-order-${orderNo[m]}`;
      running[m] = order;
      payload = { type: 'started', order };
    } else {
      running[m] = null;
      payload = { type: 'stopped', order: current };
    }
    out.push({
      stream: machineStream(m),
      lamport: i + 1,
      timestamp: ts,
      tags: ['machine', `machine:${machineName(m)}`],
      payload,
    });
  }
  return out;
}

/** Appends events to the log stream by stream in chunks (keeping each stream's order). */
export function appendEvents(log: EmbeddedLog, events: readonly DrillEvent[], chunk = 5000): void {
  const byStream = new Map<string, DrillEvent[]>();
  for (const e of events) {
    const list = byStream.get(e.stream) ?? [];
    list.push(e);
    byStream.set(e.stream, list);
  }
  for (const [stream, list] of byStream) {
    for (let i = 0; i < list.length; i += chunk) {
      log.appendSync(
        stream,
        list
          .slice(i, i + chunk)
          .map((e) => ({ tags: e.tags, payload: e.payload, lamport: e.lamport, timestamp: e.timestamp })),
      );
    }
  }
}

/** Appends events in global (Lamport) order, a few at a time per stream as they come. */
export function appendInOrder(log: EmbeddedLog, events: readonly DrillEvent[]): void {
  let i = 0;
  while (i < events.length) {
    const stream = (events[i] as DrillEvent).stream;
    let j = i;
    while (j < events.length && (events[j] as DrillEvent).stream === stream) j++;
    log.appendSync(
      stream,
      events.slice(i, j).map((e) => ({ tags: e.tags, payload: e.payload, lamport: e.lamport, timestamp: e.timestamp })),
    );
    i = j;
  }
}

// ---- members ---------------------------------------------------------------------------------

export function sourceMember(id: string, query: string, source: EventSource, sourceId = 'log'): SourceMember {
  return {
    role: 'source',
    id,
    type: 'actyx-subscribe',
    label: id,
    inputs: [],
    definition: { query },
    query,
    source,
    sourceId,
  };
}

export function operatorMember(
  id: string,
  inputs: readonly string[],
  definition: Value,
  build: (inputs: readonly Stage[], inputIds: readonly string[]) => Stage,
  tap = false,
): OperatorMember {
  return { role: 'operator', id, type: 'dd-test', label: id, inputs, definition, build, tap };
}

export function sinkMember(
  id: string,
  inputs: readonly string[],
  database: SinkDatabase,
  table: TableSpec,
  version = '',
): SinkMember {
  return {
    role: 'sink',
    id,
    type: 'db-sink',
    label: id,
    inputs,
    definition: { table: table.name },
    database,
    table,
    version,
  };
}

const col = (s: Stage): Collection => {
  if (s.kind !== 'collection') throw new Error('expected an ungrouped input');
  return s.collection;
};
const grp = (s: Stage): Grouped => {
  if (s.kind !== 'grouped') throw new Error('expected a grouped input');
  return s.grouped;
};

type Rec = { readonly [k: string]: Value };

function machineOf(ev: Rec): string {
  const tag = (ev.tags as readonly string[]).find((t) => t.startsWith('machine:'));
  return tag === undefined ? '?' : tag.slice('machine:'.length);
}

export interface PipelineOptions {
  /** Prefix of the member ids (several pipelines in one dataflow). */
  readonly prefix?: string;
  /** A user function that throws for some records (to test skipping). */
  readonly failOn?: (ev: Rec) => boolean;
  /** Extra definition text (a "changed expression"). */
  readonly variant?: string;
  readonly version?: string;
}

/** source → map to status → group by machine → max by (since, lamport) → keyed sink. */
export function dashboardMembers(
  sourceId: string,
  database: SinkDatabase,
  table: string,
  options: PipelineOptions = {},
): DataflowMember[] {
  const p = options.prefix ?? 'dash';
  const failOn = options.failOn;
  return [
    operatorMember(`${p}-map`, [sourceId], { fn: 'status', variant: options.variant ?? '' }, ([s]) => ({
      kind: 'collection',
      collection: col(s as Stage).map(
        (v) => {
          const ev = v as Rec;
          if (failOn?.(ev)) throw new Error(`cannot handle ${JSON.stringify((ev.payload as Rec).order)}`);
          const payload = ev.payload as Rec;
          return {
            machine: machineOf(ev),
            status: payload.type === 'started' ? 'working' : 'idle',
            order: payload.order ?? null,
            since: ev.timestamp as number,
            lamport: ev.lamport as number,
          };
        },
        { name: `${p}-map` },
      ),
    })),
    operatorMember(`${p}-group`, [`${p}-map`], { by: 'machine' }, ([s]) => ({
      kind: 'grouped',
      grouped: col(s as Stage).groupBy((v) => (v as Rec).machine as string, { name: `${p}-group` }),
    })),
    operatorMember(`${p}-max`, [`${p}-group`], { by: '[since, lamport]' }, ([s]) => ({
      kind: 'collection',
      collection: grp(s as Stage)
        .maxBy((v) => [(v as Rec).since as number, (v as Rec).lamport as number], { name: `${p}-max` })
        .ungroup({ name: `${p}-max` }),
    })),
    sinkMember(`${p}-sink`, [`${p}-max`], database, dashboardTable(table), options.version ?? ''),
  ];
}

/** source → group by machine → reduce pairing started/stopped per order → multiset sink. */
export function usageMembers(
  sourceId: string,
  database: SinkDatabase,
  table: string,
  options: PipelineOptions = {},
): DataflowMember[] {
  const p = options.prefix ?? 'usage';
  const variant = options.variant ?? '';
  return [
    operatorMember(`${p}-group`, [sourceId], { by: 'machine' }, ([s]) => ({
      kind: 'grouped',
      grouped: col(s as Stage).groupBy((v) => machineOf(v as Rec), { name: `${p}-group` }),
    })),
    operatorMember(`${p}-reduce`, [`${p}-group`], { fn: 'pair started/stopped', variant }, ([s]) => ({
      kind: 'collection',
      collection: grp(s as Stage)
        .reduce(
          (key, inputs, outputs) => {
            // Inputs arrive sorted by the values' total order: for events that is by appId, then Lamport.
            const open = new Map<string, number>();
            for (const [value] of inputs) {
              const ev = value as Rec;
              const payload = ev.payload as Rec;
              const order = payload.order as string;
              if (payload.type === 'started') open.set(order, ev.timestamp as number);
              else if (open.has(order)) {
                const started = open.get(order) as number;
                open.delete(order);
                const duration = (ev.timestamp as number) - started + (variant === '' ? 0 : 1);
                outputs.push([{ machine: key as string, order, started, durationMicros: duration }, 1]);
              }
            }
          },
          { name: `${p}-reduce` },
        )
        .ungroup({ name: `${p}-reduce` }),
    })),
    sinkMember(`${p}-sink`, [`${p}-reduce`], database, usageTable(table), options.version ?? ''),
  ];
}

// ---- from scratch ----------------------------------------------------------------------------

/** Stands in for the database where members only serve a from-scratch computation. */
export const unusedDatabase: SinkDatabase = {
  kind: 'sqlite',
  label: 'unused',
  transaction: () => Promise.reject(new Error('unused')),
  close: () => Promise.resolve(),
};

/** The engine graph of a dataflow's members, outside the coordinator: its sources and sinks. */
function buildGraph(members: readonly DataflowMember[]): {
  graph: Graph;
  sources: SourceMember[];
  sinks: SinkMember[];
} {
  const graph = createGraph();
  const stages = new Map<string, Stage>();
  const sinks: SinkMember[] = [];
  const sources = members.filter((m): m is SourceMember => m.role === 'source');
  const pending = [...members];
  while (pending.length > 0) {
    const i = pending.findIndex((m) => m.role === 'source' || m.inputs.every((x) => stages.has(x)));
    if (i < 0) throw new Error('fromScratch: unresolvable members');
    const m = pending.splice(i, 1)[0] as DataflowMember;
    if (m.role === 'source')
      stages.set(m.id, {
        kind: 'collection',
        collection: graph.input(m.id, { insertOnly: true, order: eventOrderKey }),
      });
    else if (m.role === 'operator')
      stages.set(
        m.id,
        m.build(
          m.inputs.map((x) => stages.get(x) as Stage),
          m.inputs,
        ),
      );
    else {
      const cols = m.inputs.map((x) => col(stages.get(x) as Stage));
      graph.output(m.id, cols.length === 1 ? (cols[0] as Collection) : (cols[0] as Collection).concat(cols.slice(1)));
      sinks.push(m);
    }
  }
  return { graph, sources, sinks };
}

/** Every sink's rows computed by the engine over `events` in one batch (sorted JSON row texts). */
export async function fromScratch(
  members: readonly DataflowMember[],
  events: readonly ActyxEvent[],
  options: { retentionCutoff?: number } = {},
): Promise<Map<string, string[]>> {
  const { graph, sources, sinks } = buildGraph(members);
  const { parseQuery, matchesEvent } = await import('../../src/sources/aql');
  const inputs: Record<string, Update[]> = {};
  for (const s of sources) {
    const parsed = parseQuery(s.query);
    inputs[s.id] = events
      .filter(
        (e) =>
          (options.retentionCutoff === undefined || e.timestamp > options.retentionCutoff) && matchesEvent(parsed, e),
      )
      .map((e) => [eventValue(e), 1, e.timestamp] as Update);
  }
  const { outputs } = await graph.step(inputs, { onError: 'skip' });
  const result = new Map<string, string[]>();
  for (const s of sinks) result.set(s.id, rowsOfBatch(s.table, outputs.get(s.id) ?? []));
  return result;
}

/**
 * Every sink's rows with a retention window, computed by the engine one event per step in the
 * given order: before an event that moves the cutoff the state is compacted to it, and an event
 * at or below the cutoff is left out (the window's meaning, without any batching).
 */
export async function oneByOne(
  members: readonly DataflowMember[],
  events: readonly ActyxEvent[],
  windowMicros: number,
): Promise<Map<string, string[]>> {
  const { graph, sources, sinks } = buildGraph(members);
  const { parseQuery, matchesEvent } = await import('../../src/sources/aql');
  const { retentionCutoff } = await import('../../src/dataflow/retention');
  const parsed = sources.map((s) => [s.id, parseQuery(s.query)] as const);
  const changes = new Map<string, Update[]>(sinks.map((s) => [s.id, []]));
  let watermark: number | null = null;
  let cutoff: number | null = null;
  for (const e of events) {
    if (watermark === null || e.timestamp > watermark) {
      watermark = e.timestamp;
      const next = retentionCutoff(watermark, windowMicros) as number;
      if (cutoff === null || next > cutoff) graph.compact((cutoff = next) + 1); // (the engine forgets times below its argument)
    }
    if (cutoff !== null && e.timestamp <= cutoff) continue;
    const inputs: Record<string, Update[]> = {};
    for (const [id, q] of parsed) if (matchesEvent(q, e)) inputs[id] = [[eventValue(e), 1, e.timestamp]];
    const { outputs } = await graph.step(inputs, { onError: 'skip' });
    for (const [id, batch] of outputs) changes.get(id)?.push(...batch);
  }
  const result = new Map<string, string[]>();
  for (const s of sinks) result.set(s.id, rowsOfBatch(s.table, consolidate(changes.get(s.id) ?? [])));
  return result;
}

/** The table rows a consolidated batch of records stands for (all multiplicities must be positive). */
export function rowsOfBatch(table: TableSpec, batch: Batch): string[] {
  const compiled = compileTable(table);
  const rows: string[] = [];
  for (const [value, diff] of batch) {
    if (diff < 0) throw new Error(`negative multiplicity ${diff} for ${JSON.stringify(value)}`);
    const text = rowText(compiled.rowObject(compiled.cells(value)));
    for (let i = 0; i < diff; i++) rows.push(text);
  }
  return rows.sort();
}

/** A row as comparable text: columns in name order, every non-null cell as a string (drivers differ in types). */
export function rowText(row: Readonly<Record<string, unknown>>): string {
  const keys = Object.keys(row).sort();
  return JSON.stringify(keys.map((k) => [k, row[k] === null || row[k] === undefined ? null : String(row[k])]));
}

// ---- reading tables --------------------------------------------------------------------------

export function sqliteRows(file: string, table: TableSpec): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const cols = table.columns
      .filter((c) => !c.exclude)
      .map((c) => `"${c.name}"`)
      .join(', ');
    return (db.prepare(`select ${cols} from "${table.name}"`).all() as Record<string, unknown>[]).map(rowText).sort();
  } finally {
    db.close();
  }
}

export function sqliteOffsets(file: string, table: string): OffsetMap {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`select * from "${table}_offsets"`).all() as Record<string, unknown>[];
    return offsetRows(rows);
  } finally {
    db.close();
  }
}

export function offsetRows(rows: readonly Record<string, unknown>[]): OffsetMap {
  const out: Record<string, number> = {};
  for (const r of rows) {
    const vals = Object.values(r);
    setOffset(out, String(vals[0]), Number(vals[1]));
  }
  return out;
}

/**
 * A client of the tests' PostgreSQL (PG* variables) with an `error` listener: a server that dies
 * under it (the chaos tests kill theirs) fails the pending call, never the test process.
 */
export async function pgClient(config: pg.ClientConfig = {}): Promise<pg.Client> {
  const client = new pg.Client(config);
  client.on('error', () => undefined); // the pending query, or the next one, fails with the error
  await client.connect();
  return client;
}

export async function pgRows(table: TableSpec, config: pg.ClientConfig = {}): Promise<string[]> {
  const client = await pgClient(config);
  try {
    const cols = table.columns
      .filter((c) => !c.exclude)
      .map((c) => `"${c.name}"`)
      .join(', ');
    const r = await client.query(`select ${cols} from "${table.name}"`);
    return (r.rows as Record<string, unknown>[]).map(rowText).sort();
  } finally {
    await client.end();
  }
}

export async function pgOffsets(table: string, config: pg.ClientConfig = {}): Promise<OffsetMap> {
  const client = await pgClient(config);
  try {
    const r = await client.query(`select * from "${table}_offsets"`);
    return offsetRows(r.rows as Record<string, unknown>[]);
  } finally {
    await client.end();
  }
}

export async function pgExec(sql: string, config: pg.ClientConfig = {}): Promise<void> {
  const client = await pgClient(config);
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The test MariaDB from the MYSQL_* variables (scripts/test.mjs sets them; a server of its own when none are given). */
export function mariadbSettings(): mysql.ConnectionOptions {
  return {
    host: process.env.MYSQL_HOST ?? '127.0.0.1',
    port: Number(process.env.MYSQL_PORT ?? 3306),
    user: process.env.MYSQL_USER ?? 'root',
    password: process.env.MYSQL_PASSWORD ?? '',
    database: process.env.MYSQL_DATABASE ?? 'deltaflow_test',
    supportBigNumbers: true,
    timezone: 'Z',
  };
}

/** Runs `fn` on a connection of its own to the test MariaDB. */
export async function withMariadb<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const c = await mysql.createConnection(mariadbSettings());
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function mariadbRows(table: TableSpec): Promise<string[]> {
  return withMariadb(async (c) => {
    const cols = table.columns
      .filter((x) => !x.exclude)
      .map((x) => `\`${x.name}\``)
      .join(', ');
    const [rows] = await c.query(`select ${cols} from \`${table.name}\``);
    return (rows as Record<string, unknown>[]).map(rowText).sort();
  });
}

export async function mariadbOffsets(table: string): Promise<OffsetMap> {
  return withMariadb(async (c) => {
    const [rows] = await c.query(`select * from \`${table}_offsets\``);
    return offsetRows(rows as Record<string, unknown>[]);
  });
}

/** Runs one statement on the test MariaDB. */
export async function mariadbExec(sql: string): Promise<void> {
  await withMariadb((c) => c.query(sql));
}

/** Drops a test's tables and their meta rows from the test MariaDB (tables named `<name>` and `<name>_offsets`). */
export async function mariadbDrop(names: readonly string[]): Promise<void> {
  await withMariadb(async (c) => {
    for (const n of names) {
      await c.query(`drop table if exists \`${n}\``);
      await c.query(`drop table if exists \`${n}_offsets\``);
      await c.query('delete from deltaflow_meta where table_name = ?', [n]).catch(() => undefined);
    }
  });
}

/** A unique lower-case suffix for table names (PostgreSQL is shared between test files). */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e9).toString(36)}`;
}

// ---- listener ----------------------------------------------------------------------------------

export interface Recorded {
  readonly statuses: { id: string; status: MemberStatus }[];
  readonly errors: { id: string; message: string; event?: ActyxEvent; repeat?: boolean }[];
  readonly commits: {
    id: string;
    rows?: readonly RowChange[];
    operators?: readonly (readonly [Value, number])[];
    offsets?: OffsetMap;
  }[];
  readonly logs: { level: string; message: string }[];
}

export function recordingListener(onCommit?: (id: string) => void): DataflowListener & { recorded: Recorded } {
  const recorded: Recorded = { statuses: [], errors: [], commits: [], logs: [] };
  return {
    recorded,
    status: (id, status) => recorded.statuses.push({ id, status }),
    error: (id, message, context, options) =>
      recorded.errors.push({ id, message, event: context?.event, ...(options?.repeat ? { repeat: true } : {}) }),
    committed: (id, changes) => {
      recorded.commits.push({ id, ...changes });
      onCommit?.(id);
    },
    log: (level, message) => recorded.logs.push({ level, message }),
  };
}

/** All events of a log (for from-scratch comparisons). */
export async function allEvents(source: EventSource): Promise<ActyxEvent[]> {
  const present = await source.presentOffsets();
  const out: ActyxEvent[] = [];
  for await (const e of source.query('allEvents', {}, present)) out.push(e);
  return out;
}

/** Waits until the dataflow has committed offsets covering `target` (or fails after `ms`). */
export async function waitCommitted(
  run: { stats(): { committedOffsets: OffsetMap } },
  target: OffsetMap,
  ms = 10_000,
): Promise<void> {
  const { covers } = await import('../../src/core/offset-map');
  const until = Date.now() + ms;
  while (!covers(run.stats().committedOffsets, target)) {
    if (Date.now() > until)
      throw new Error(
        `not committed within ${ms} ms: ${JSON.stringify(run.stats().committedOffsets)} vs ${JSON.stringify(target)}`,
      );
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Asserts that two lists of row texts are equal as multisets, naming the first rows that differ.
 * (assert.deepEqual's diff of two large arrays can take minutes to print.)
 */
export function assertSameRows(actual: readonly string[], expected: readonly string[] | undefined, what: string): void {
  const count = new Map<string, number>();
  for (const r of actual) count.set(r, (count.get(r) ?? 0) + 1);
  for (const r of expected ?? []) count.set(r, (count.get(r) ?? 0) - 1);
  const extra: string[] = [];
  const missing: string[] = [];
  for (const [r, n] of count) {
    if (n > 0) extra.push(`${n}× ${r}`);
    if (n < 0) missing.push(`${-n}× ${r}`);
  }
  if (extra.length === 0 && missing.length === 0) return;
  throw new Error(
    `${what}: ${actual.length} rows against ${expected?.length ?? 0} expected; ${extra.length} extra (${extra.slice(0, 3).join('; ')}), ${missing.length} missing (${missing.slice(0, 3).join('; ')})`,
  );
}
