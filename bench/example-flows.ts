/**
 * The example flows as users deploy them, for the benchmarks: `examples/drill-dashboard.json` and
 * `examples/machine-usage.json` loaded into an in-process Node-RED (node-red-node-test-helper, the
 * real runtime) with the package's own node modules, so every dd-* node compiles its JavaScript,
 * JSONata and paths exactly as in a deployment. Only the surroundings change: the actyx-config
 * nodes read the benchmark's embedded log, the db-config nodes write to the benchmark's SQLite
 * file (or, given db-config fields, to the benchmark's MariaDB database), and every node that is not a dataflow member (debug, function, http, websocket, …) becomes
 * a node that drops its input — a db-sink whose output was wired stays wired, so it still reports
 * its changes as in the example.
 *
 * `runExampleFlows` resolves once every db-sink shows `live` (its dataflow caught up with the log
 * and committed it), with the time from loading the flows.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NodeAPI } from '../src/nodes/red';

interface FlowNode {
  id: string;
  type: string;
  wires?: string[][];
  [key: string]: unknown;
}

interface Helper {
  init(runtimePath: string, settings?: Record<string, unknown>): void;
  load(nodes: ((RED: NodeAPI) => void)[], flow: FlowNode[]): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): { status(s: unknown): void; error(e: unknown): void } | null;
}

/** The example flows this benchmark runs (the two views of issue 13's measurements). */
export const EXAMPLES = ['drill-dashboard', 'machine-usage'] as const;

/** Where the db-config nodes point: a SQLite file's path, or the db-config fields of another database. */
export type BenchDatabase = string | { readonly kind: 'mariadb'; readonly [field: string]: string };

const MEMBER_MODULES = [
  'actyx-config',
  'actyx-subscribe',
  'db-config',
  'db-sink',
  'dd-dataflow',
  'dd-filter',
  'dd-map',
  'dd-groupby',
  'dd-maxby',
  'dd-minby',
  'dd-reduce',
  'dd-scan',
  'dd-join',
  'dd-aggregate',
  'dd-flatmap',
  'dd-distinct',
  'dd-window',
  'dd-topk',
];

/** A node type that takes any input and does nothing (stands in for the examples' non-dataflow nodes). */
function drainNode(RED: NodeAPI): void {
  function Drain(this: { on(e: string, f: (m: unknown, s: unknown, d: () => void) => void): void }, config: object) {
    (RED.nodes.createNode as (n: unknown, c: object) => void)(this, config);
    this.on('input', (_m, _s, done) => done());
  }
  (RED.nodes.registerType as (t: string, c: unknown) => void)('bench-drain', Drain);
}

let helper: Helper | null = null;
function nodeRedHelper(): Helper {
  if (helper === null) {
    helper = require('node-red-node-test-helper') as Helper;
    helper.init(require.resolve('node-red'), { logging: { console: { level: 'off' } } });
  }
  return helper;
}

/**
 * The example flows with the benchmark's log and database, non-members replaced by drains;
 * `dataflow` overrides fields of every dd-dataflow node (e.g. `operatorState: 'database'`).
 * `tables`: only the db-sinks of these tables and the dataflow members they read from (all when null).
 */
export function exampleFlows(
  root: string,
  logFile: string,
  db: BenchDatabase,
  examples: readonly string[] = EXAMPLES,
  dataflow: Readonly<Record<string, string>> = {},
  tables: readonly string[] | null = null,
): FlowNode[] {
  const out: FlowNode[] = [];
  const seen = new Set<string>();
  const dbConfig = typeof db === 'string' ? { kind: 'sqlite', filename: db } : db;
  for (const name of examples) {
    const nodes = JSON.parse(readFileSync(join(root, 'examples', `${name}.json`), 'utf8')) as FlowNode[];
    for (const n of nodes) {
      if (seen.has(n.id)) continue; // config nodes shared by both examples
      seen.add(n.id);
      if (n.type === 'actyx-config') out.push({ id: n.id, type: n.type, kind: 'embedded', file: logFile });
      else if (n.type === 'db-config') out.push({ ...dbConfig, id: n.id, type: n.type });
      else if (n.type === 'dd-dataflow') out.push({ ...n, ...dataflow });
      else if (n.type === 'tab' || MEMBER_MODULES.includes(n.type)) out.push(n);
      else out.push({ id: n.id, type: 'bench-drain', z: n.z, wires: [] });
    }
  }
  return tables === null ? out : onlyTables(out, tables);
}

/** Config node types (kept whatever they feed). */
const CONFIG_TYPES = ['actyx-config', 'db-config', 'dd-dataflow', 'tab'];

/** The flow without the dataflow members that no db-sink of `tables` reads from (wires to them dropped). */
function onlyTables(flow: FlowNode[], tables: readonly string[]): FlowNode[] {
  const kept = new Set(flow.filter((n) => n.type === 'db-sink' && tables.includes(String(n.table))).map((n) => n.id));
  if (kept.size !== tables.length)
    throw new Error(`BENCH_FLOWS_TABLES: not every table of ${tables.join(', ')} has a db-sink`);
  for (let grew = true; grew;) {
    grew = false;
    for (const n of flow)
      if (!kept.has(n.id) && (n.wires ?? []).some((port) => port.some((id) => kept.has(id)))) {
        kept.add(n.id);
        grew = true;
      }
  }
  const drop = (n: FlowNode): boolean =>
    MEMBER_MODULES.includes(n.type) && !CONFIG_TYPES.includes(n.type) && !kept.has(n.id);
  const dropped = new Set(flow.filter(drop).map((n) => n.id));
  return flow
    .filter((n) => !dropped.has(n.id))
    .map((n) => (n.wires ? { ...n, wires: n.wires.map((port) => port.filter((id) => !dropped.has(id))) } : n));
}

export interface FlowsRun {
  /** From loading the flows to every db-sink live. */
  readonly ms: number;
  readonly sinks: number;
  /** Stops the flows (Node-RED closes every node). */
  stop(): Promise<void>;
}

/** Loads the example flows and waits until every db-sink is live; rejects on a node error. */
export async function runExampleFlows(
  root: string,
  logFile: string,
  db: BenchDatabase,
  examples: readonly string[] = EXAMPLES,
  dataflow: Readonly<Record<string, string>> = {},
  tables: readonly string[] | null = null,
): Promise<FlowsRun> {
  const h = nodeRedHelper();
  const flow = exampleFlows(root, logFile, db, examples, dataflow, tables);
  const sinkIds = flow.filter((n) => n.type === 'db-sink').map((n) => n.id);
  const modules = MEMBER_MODULES.map(
    (m) => (require(join(root, 'dist', 'src', 'nodes', `${m}.js`)) as { default: (RED: NodeAPI) => void }).default,
  );
  const live = new Set<string>();
  let failed: string | null = null;
  let wake: () => void = () => undefined;
  const t0 = performance.now();
  await h.load([...modules, drainNode], flow);
  // NB: node-red-node-test-helper spies on every node's send, status and log (and RED.log) and
  // keeps each call — its message, with an Error for its stack — until unload: over a catch-up
  // that is every committed row message, so the heap grew with the history (the durable-state
  // probe of BENCHMARKS.md found the stopped dataflows held through the spies). A deployment
  // keeps none of it: the calls are forgotten every second. `_sandbox` is the helper's sinon
  // sandbox (its own field; checked here so that a helper without it fails loudly).
  const sandbox = (h as unknown as { _sandbox?: { resetHistory?: () => void } })._sandbox;
  if (typeof sandbox?.resetHistory !== 'function')
    throw new Error('node-red-node-test-helper: no sinon sandbox to forget the recorded calls of');
  const forget = setInterval(() => sandbox.resetHistory!(), 1000);
  forget.unref();
  // Each node's own status and error (what dd-dataflow calls on its members); the dataflows start
  // after the flows have started, so nothing is missed between load and here.
  for (const n of flow) {
    const node = h.getNode(n.id);
    if (node === null || n.type === 'bench-drain' || n.type === 'tab') continue;
    const { status, error } = node;
    node.status = (s: unknown) => {
      const text = (s as { text?: unknown } | null)?.text;
      if (sinkIds.includes(n.id) && typeof text === 'string' && text.startsWith('live')) {
        live.add(n.id);
        wake();
      }
      status.call(node, s);
    };
    node.error = (e: unknown) => {
      failed ??= `${n.type} ${n.id}: ${e instanceof Error ? e.message : String(e)}`;
      wake();
      error.call(node, e);
    };
  }
  while (live.size < sinkIds.length && failed === null) await new Promise<void>((r) => (wake = r));
  const ms = performance.now() - t0;
  const stop = async (): Promise<void> => {
    clearInterval(forget);
    await h.unload();
    // unload restores the spies, so the sandbox no longer reaches the log spy: its calls (while
    // stopping) would keep the stopped dataflows alive until the next load.
    (h as unknown as { _logSpy?: { resetHistory?: () => void } })._logSpy?.resetHistory?.();
  };
  if (failed !== null) {
    await stop();
    throw new Error(`example flows failed: ${failed}`);
  }
  return { ms, sinks: sinkIds.length, stop };
}
