/**
 * `dd-dataflow`: the config node that the actyx-subscribe, dd-* and db-sink nodes of one dataflow
 * share. It collects them as members, derives each member's inputs from the deployed wires, and on
 * every (full or partial) deploy stops the running coordinator and starts a new one. It maps what
 * the coordinator reports onto the nodes: status, `node.error` (Catch nodes) and after-commit
 * messages. The work itself is in `src/dataflow` (no Node-RED there).
 */
import { hostname } from 'node:os';
import { errorText } from '../core/message-text';
import { startDataflow, type RunningDataflow } from '../dataflow/coordinator';
import { DEFAULT_CLOCK_AHEAD_MICROS, windowMicros } from '../dataflow/retention';
import type {
  DataflowLease,
  DataflowListener,
  DataflowMember,
  DataflowSettings,
  MemberStatus,
} from '../dataflow/types';
import { DEFAULT_STATE_CACHE_BYTES, WARM_UP_MS } from '../dataflow/durable-state';
import type { DataflowConfigNode, MemberDescription } from './dataflow-membership';
import { DATAFLOW_MESSAGE_MARKER, isDataflowMemberType, memberLabel } from './dd-operator';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './red';
import { reportToCatchNodes } from './catch-only';
import { registerMetricsEndpoint } from './metrics-endpoint';
import type { DataflowMetricsRow } from '../dataflow/metrics';

/** Defaults: live batches close after 5 ms (latency); catch-up steps are 10× `batchSize`, at most 2,500 (see `catchUpBatchSize`). */
export const DEFAULT_SETTINGS: DataflowSettings = {
  batchSize: 10000,
  batchMs: 5,
  maxInFlight: 16,
  retentionMicros: null,
  onError: 'skip',
};

const UNITS = ['seconds', 'minutes', 'hours', 'days'] as const;
type Unit = (typeof UNITS)[number];

function intField(
  config: NodeDef,
  key: string,
  min: number,
  max: number,
  fallback: number,
  problems: string[],
): number {
  const raw = config[key];
  if (raw === undefined || raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(
      `${key} must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)}); using ${fallback}`,
    );
    return fallback;
  }
  return n;
}

/** The settings of a dd-dataflow node's config, with a message for every value that was not usable. */
export function parseDataflowSettings(config: NodeDef): { settings: DataflowSettings; problems: string[] } {
  const problems: string[] = [];
  const batchSize = intField(config, 'batchSize', 1, 100000, DEFAULT_SETTINGS.batchSize, problems);
  const batchMs = intField(config, 'batchMs', 0, 60000, DEFAULT_SETTINGS.batchMs, problems);
  const maxInFlight = intField(config, 'maxInFlight', 1, 64, DEFAULT_SETTINGS.maxInFlight, problems);
  let retentionMicros: number | null = null;
  const amount = config.retention;
  if (amount !== undefined && amount !== null && amount !== '') {
    const n = Number(amount);
    const unit = (UNITS as readonly string[]).includes(String(config.retentionUnit))
      ? (config.retentionUnit as Unit)
      : 'days';
    if (!Number.isFinite(n) || n < 0)
      problems.push(`retention must be a positive number (got ${JSON.stringify(amount)}); keeping all events`);
    else retentionMicros = windowMicros(n, unit);
  }
  const onError = config.onError === 'stop' ? 'stop' : 'skip';
  // Minutes an event may be ahead of the wall clock and still move the retention watermark.
  const clockAhead = intField(config, 'clockAhead', 0, 525600, DEFAULT_CLOCK_AHEAD_MICROS / 60e6, problems);
  // Operator state: 'database' (durable state; the editor's default for a new node) or 'memory'
  // (replayed at every start). NB: a node saved without the field (before it existed, or written by
  // hand) keeps 'memory', so an upgrade never moves a running dataflow's state by itself.
  const durableState = config.operatorState === 'database';
  const stateCacheMb = intField(config, 'stateCache', 0, 65536, DEFAULT_STATE_CACHE_BYTES / 1048576, problems);
  // How long a start warms the state cache at most (ms; a node saved before the setting: the default).
  const warmUpMs = intField(config, 'warmUp', 0, 60000, WARM_UP_MS, problems);
  const settings: DataflowSettings = {
    batchSize,
    batchMs,
    maxInFlight,
    retentionMicros,
    clockAheadMicros: clockAhead * 60e6,
    onError,
    durableState,
    stateCacheBytes: stateCacheMb * 1048576,
    warmUpMs,
  };
  // Empty: automatic (catchUpBatchSize of the batch size).
  const catchUp = config.catchUpBatchSize;
  if (catchUp === undefined || catchUp === null || catchUp === '') return { settings, problems };
  const n = Number(catchUp);
  if (Number.isInteger(n) && n >= 1 && n <= 100000) return { settings: { ...settings, catchUpBatchSize: n }, problems };
  problems.push(
    `catchUpBatchSize must be a whole number from 1 to 100000 or empty (got ${JSON.stringify(catchUp)}); using the automatic size`,
  );
  return { settings, problems };
}

/** This instance's name unless set: hostname:pid. */
export function defaultInstance(): string {
  return `${hostname()}:${process.pid}`;
}

/**
 * Default lease time (s). A standby takes over this long after the holder died, plus its start-up
 * (the takeover ends with its first commit).
 * NB: 8, not 10: issue 14 asks for a takeover within 10 s by default, and the lease time alone
 * already takes that long (bench/fencing.ts measured 10.2 s with 10; `npm run bench:fencing`
 * checks the bar with this default).
 */
export const DEFAULT_LEASE_SECONDS = 8;

/**
 * The lease of a dd-dataflow (issue 14): named after the node's id (instances running the same
 * flows share it) unless `leaseName` is set, held as `instance` (default hostname:pid), lasting
 * `leaseSeconds` (default 8; 0 = no lease, a single instance). Null when there is no lease.
 */
export function parseDataflowLease(config: NodeDef, problems: string[]): DataflowLease | null {
  const seconds = intField(config, 'leaseSeconds', 0, 3600, DEFAULT_LEASE_SECONDS, problems);
  if (seconds === 0) return null;
  const text = (key: string, fallback: string): string => {
    const raw = config[key];
    if (raw === undefined || raw === null || String(raw).trim() === '') return fallback;
    const v = String(raw).trim();
    if (v.length <= 200) return v;
    problems.push(`${key} must be at most 200 characters (got ${v.length}); using ${JSON.stringify(fallback)}`);
    return fallback;
  };
  return {
    name: text('leaseName', config.id),
    instance: text('instance', defaultInstance()),
    leaseMs: seconds * 1000,
  };
}

interface Joined {
  readonly node: Node;
  readonly description: MemberDescription;
}

interface DeployedNode {
  readonly id: string;
  readonly type: string;
  readonly label: string;
  readonly dataflow: unknown;
  readonly wires: readonly (readonly string[])[];
}

/**
 * Inputs of every member from the deployed wires (a member's first output port feeds the nodes it
 * lists), and the wires into members that cannot be dataflow edges, by target member id.
 */
export function wireInputs(
  dataflowId: string,
  members: ReadonlyMap<string, unknown>,
  deployed: readonly DeployedNode[],
): { inputs: Map<string, string[]>; badWires: Map<string, string[]> } {
  const inputs = new Map<string, string[]>();
  const badWires = new Map<string, string[]>();
  for (const id of members.keys()) inputs.set(id, []);
  for (const from of deployed) {
    from.wires.forEach((port, index) => {
      for (const to of port) {
        if (!members.has(to)) continue;
        const fromMember = members.has(from.id);
        if (fromMember && index === 0 && from.type !== 'db-sink') {
          (inputs.get(to) as string[]).push(from.id);
          continue;
        }
        const why = fromMember
          ? `${from.label} (${from.type}) sends committed rows, not dataflow input`
          : isDataflowMemberType(from.type) && from.dataflow !== dataflowId
            ? `${from.label} (${from.type}) belongs to a different dataflow`
            : `${from.label} (${from.type}) is not part of this dataflow`;
        const list = badWires.get(to) ?? [];
        list.push(why);
        badWires.set(to, list);
      }
    });
  }
  return { inputs, badWires };
}

export default function (RED: NodeAPI): void {
  const metrics = registerMetricsEndpoint(RED);
  function DataflowNode(this: DataflowConfigNode, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const { settings, problems } = parseDataflowSettings(config);
    const lease = parseDataflowLease(config, problems);
    for (const p of problems) node.error(p); // Node-RED prefixes [dd-dataflow:name]

    const members = new Map<string, Joined>();
    /** Sources that could not join (an invalid query…), by id: their labels. */
    const failedSources = new Map<string, string>();
    const badWireMembers = new Set<string>();
    let running: RunningDataflow | null = null;
    /** Errors reported to the nodes (metrics). */
    let errors = 0;
    const metricsRow = (): DataflowMetricsRow => ({
      dataflow: node.id,
      name: typeof config.name === 'string' && config.name !== '' ? config.name : node.id,
      instance: lease?.instance ?? defaultInstance(),
      running,
      errors,
    });
    metrics.add(node.id, metricsRow);
    let dirty = true;
    let closed = false;
    /** Start/stop steps run one after the other. */
    let lifecycle: Promise<void> = Promise.resolve();
    const serially = (fn: () => Promise<void>): Promise<void> => {
      lifecycle = lifecycle.then(fn).catch((e: unknown) => node.error(errorText(e)));
      return lifecycle;
    };

    const stopRunning = async (): Promise<void> => {
      const r = running;
      running = null;
      if (r) await r.stop();
    };

    const listener: DataflowListener = {
      status(id: string, status: MemberStatus) {
        if (badWireMembers.has(id)) return;
        members.get(id)?.node.status(status);
      },
      error(id, message, context, options) {
        errors++;
        const m = members.get(id);
        // NB: `message` does not name the member: Node-RED prefixes the member's log lines with its
        // type and name. Only when the member is gone does the dataflow's own line name it.
        const text = m ? message : `${id}: ${message}`;
        // Node-RED sets msg.error ({message, source: {id, type, name, count}}) for the Catch nodes.
        const msg: NodeMessage = { payload: context?.event ?? context?.value ?? null };
        if (context?.event) msg.event = context.event;
        const target = m?.node ?? node;
        // A repeat is summarised in the log by the dataflow: Catch nodes still get each one.
        if (options?.repeat === true) reportToCatchNodes(target, text, msg);
        else target.error(text, msg);
      },
      committed(id, changes) {
        const m = members.get(id);
        if (!m) return;
        const marker = { dataflow: node.id };
        if (changes.rows && m.description.role === 'sink') {
          m.node.send({
            payload: changes.rows,
            offsets: changes.offsets,
            table: m.description.table.name,
            [DATAFLOW_MESSAGE_MARKER]: marker,
          });
        } else if (changes.operators) {
          m.node.send({
            payload: changes.operators.map(([value, diff]) => ({ value, diff })),
            offsets: changes.offsets,
            [DATAFLOW_MESSAGE_MARKER]: marker,
          });
        }
      },
      log(level, message) {
        if (level === 'warn') node.warn(message);
        else node.log(message);
      },
    };

    /** Deployed nodes that run: disabled nodes and nodes on disabled flows send nothing. */
    const deployedNodes = (): DeployedNode[] => {
      const defs: NodeDef[] = [];
      RED.nodes.eachNode((def) => defs.push(def));
      const disabledTabs = new Set(defs.filter((d) => d.type === 'tab' && d.disabled === true).map((d) => d.id));
      return defs
        .filter((d) => d.d !== true && !(d.z !== undefined && disabledTabs.has(d.z)))
        .map((def) => ({
          id: def.id,
          type: def.type,
          label: memberLabel(def),
          dataflow: def.dataflow,
          wires: def.wires ?? [],
        }));
    };

    const start = async (): Promise<void> => {
      const { inputs, badWires } = wireInputs(node.id, members, deployedNodes());
      // dd-* nodes check their own input wires when they start; report the others here.
      badWireMembers.clear();
      for (const [id, reasons] of badWires) {
        const m = members.get(id);
        if (!m || m.description.role === 'operator') continue;
        badWireMembers.add(id);
        m.node.error(
          `${m.description.label}: input wired from ${reasons.join('; ')}; that wire is ignored. Only actyx-subscribe and dd-* nodes of the same dataflow can feed it.`,
        );
        m.node.status({ fill: 'red', shape: 'ring', text: 'bad input wire' });
      }
      // Unchanged members and a healthy dataflow: keep it running (no replay on unrelated deploys).
      if (!dirty && running && running.stats().phase !== 'error') return;
      await stopRunning();
      if (closed || members.size === 0) return;
      dirty = false;
      const list: DataflowMember[] = [...members.values()].map(
        ({ description }) => ({ ...description, inputs: inputs.get(description.id) ?? [] }) as DataflowMember,
      );
      const source = list.find((m) => m.role === 'source');
      if ((!source || source.role !== 'source') && failedSources.size > 0) {
        // The source reported its own error (once): the others point at it instead of saying there is none.
        const text = `source failed: ${[...failedSources.values()].join(', ')}`;
        for (const m of list) listener.status(m.id, { fill: 'red', shape: 'ring', text });
        return;
      }
      if (!source || source.role !== 'source') {
        for (const m of list) listener.status(m.id, { fill: 'red', shape: 'ring', text: 'no actyx-subscribe' });
        node.warn('no actyx-subscribe node uses this dataflow, so there are no events to compute from');
        return;
      }
      running = startDataflow(
        { id: node.id, source: source.source, members: list, settings, ...(lease !== null ? { lease } : {}) },
        listener,
      );
    };

    node.join = (member: Node, description: MemberDescription): void => {
      members.set(member.id, { node: member, description });
      dirty = true;
    };
    node.sourceFailed = (member: Node, label: string): void => {
      failedSources.set(member.id, label);
      dirty = true;
    };
    node.leave = (member: Node): Promise<void> => {
      if (failedSources.delete(member.id)) dirty = true;
      if (!members.has(member.id)) return lifecycle;
      return serially(async () => {
        await stopRunning();
        members.delete(member.id);
        dirty = true;
      });
    };

    const onFlowsStarted = (): void => void serially(start);
    RED.events.on('flows:started', onFlowsStarted);
    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      metrics.remove(node.id, metricsRow);
      RED.events.removeListener('flows:started', onFlowsStarted);
      void serially(stopRunning).then(done);
    });
  }
  RED.nodes.registerType('dd-dataflow', DataflowNode as unknown as (this: Node, def: NodeDef) => void);
}
