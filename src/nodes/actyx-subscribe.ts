/**
 * actyx-subscribe: the events matching a query (AQL `FROM …` or a plain tag expression).
 * With a dataflow set, it is a source of that dataflow (the coordinator reads the events).
 * Without one it works standalone: one message per event, from the present or from the
 * beginning of the log, reconnecting by itself.
 */
import { errorText, shortStatus } from '../core/message-text';
import { formatRfc3339Micros, parseQuery, printExpr, type ParsedQuery } from '../sources/aql';
import { Backoff } from '../sources/backoff';
import { sleep, yieldToEventLoop } from '../sources/batches';
import type { OffsetMap } from '../core/offset-map';
import type { EventSource, SourceDiagnostic } from '../sources/types';
import { findActyxConfig, getEventSource, type EventSourceLease } from './actyx-connection';
import { findDataflow, leaveDataflow, problemReporter, type DataflowConfigNode } from './dataflow-membership';
import { memberLabel } from './dd-operator';
import type { Node, NodeAPI, NodeDef, NodeStatus } from './red';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** The "only events newer than" window in seconds, 0 = none; throws for a bad setting. */
export function windowSeconds(config: NodeDef): number {
  const raw = config.newerThan;
  if (raw === undefined || raw === null || raw === '' || Number(raw) === 0) return 0;
  const n = Number(raw);
  const unit = typeof config.newerThanUnit === 'string' ? config.newerThanUnit : 'h';
  if (!Number.isFinite(n) || n < 0 || UNIT_SECONDS[unit] === undefined)
    throw new Error(`"only events newer than" must be a positive number of s, m, h or d, got ${String(raw)} ${unit}`);
  return n * UNIT_SECONDS[unit]!;
}

/** The query restricted to events newer than `seconds` before now (at deploy). */
export function withWindow(parsed: ParsedQuery, seconds: number, nowMicros: number): string {
  if (seconds <= 0) return parsed.aql;
  const cutoff = formatRfc3339Micros(Math.floor(nowMicros - seconds * 1_000_000));
  const inner = parsed.expr.kind === 'or' ? `(${printExpr(parsed.expr)})` : printExpr(parsed.expr);
  return `FROM ${inner} & TIME > ${cutoff}`;
}

export default function (RED: NodeAPI): void {
  function ActyxSubscribe(this: Node, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const name = memberLabel(config);
    const fail = problemReporter(node);

    const dataflowSet = typeof config.dataflow === 'string' && config.dataflow !== '';
    const dataflow: DataflowConfigNode | null = dataflowSet ? findDataflow(RED, config.dataflow) : null;
    let query: string | null = null;
    let seconds = 0;
    try {
      const text = typeof config.query === 'string' ? config.query : '';
      seconds = windowSeconds(config);
      query = withWindow(parseQuery(text), seconds, Date.now() * 1000);
    } catch (err) {
      fail('invalid query', `invalid query: ${errorText(err)}`);
    }
    if (dataflowSet && !dataflow)
      fail('dataflow missing', `the selected dataflow ${String(config.dataflow)} is not deployed`);

    let lease: EventSourceLease | null = null;
    try {
      lease = getEventSource(RED, config.actyx);
    } catch (err) {
      fail(findActyxConfig(RED, config.actyx) ? 'cannot open source' : 'no event source', errorText(err));
    }
    const source: EventSource | null = query !== null && (dataflow || !dataflowSet) ? (lease?.source ?? null) : null;

    const abort = new AbortController();
    const failedInDataflow = dataflow !== null && !(source && lease && query !== null);
    if (failedInDataflow) dataflow.sourceFailed?.(node, name);
    if (dataflow && source && lease && query !== null) {
      dataflow.join(node, {
        role: 'source',
        id: config.id,
        type: 'actyx-subscribe',
        label: name,
        definition: { query: typeof config.query === 'string' ? config.query : '', newerThanSeconds: seconds },
        query,
        source,
        sourceId: lease.config.id,
      });
    } else if (!dataflowSet && source && query !== null) {
      void runStandalone(node, source, query, config.start === 'beginning', abort.signal);
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      abort.abort();
      const leaving = dataflow && (source || failedInDataflow) ? leaveDataflow(dataflow, node) : Promise.resolve();
      leaving
        .then(() => lease?.release())
        .catch((err: unknown) => node.warn(`releasing the event source failed: ${errorText(err)}`))
        .finally(done);
    });
  }
  RED.nodes.registerType('actyx-subscribe', ActyxSubscribe);
}

/** Status updates at most every 250 ms: a catch-up of a million events must not flood the editor. */
class StatusThrottle {
  private pending: NodeStatus | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last = 0;
  constructor(private readonly node: Node) {}

  set(status: NodeStatus, urgent = false): void {
    this.pending = status;
    const wait = 250 - (Date.now() - this.last);
    if (urgent || wait <= 0) return this.flush();
    this.timer ??= setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending) return;
    this.last = Date.now();
    this.node.status(this.pending);
    this.pending = null;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Standalone mode: one message per event, until the node closes; never crashes the runtime. */
async function runStandalone(
  node: Node,
  source: EventSource,
  query: string,
  fromBeginning: boolean,
  signal: AbortSignal,
): Promise<void> {
  const status = new StatusThrottle(node);
  let lastError = '';
  let count = 0;
  let live = false;
  const progress = (): NodeStatus =>
    live
      ? { fill: 'green', shape: 'dot', text: `live: ${count} events` }
      : { fill: 'blue', shape: 'dot', text: `catching up: ${count}` };
  const onDiagnostic = (d: SourceDiagnostic): void => {
    if (d.severity === 'error') {
      status.set(
        {
          fill: 'red',
          shape: 'ring',
          text: shortStatus(d.detail ? `error: ${d.detail}` : d.message.replace(/^subscription: /, '')),
        },
        true,
      );
      // One log line per distinct problem, not one per retry.
      if (d.message !== lastError) node.error(d.message);
      lastError = d.message;
    } else if (d.severity === 'warning') {
      node.warn(`${d.message}${d.detail !== undefined ? `: ${d.detail}` : ''}`);
    } else {
      lastError = '';
      status.set(progress(), true);
      node.log(d.message);
    }
  };
  status.set({ fill: 'yellow', shape: 'ring', text: 'connecting' }, true);
  try {
    let lower: OffsetMap = {};
    if (!fromBeginning) {
      const backoff = new Backoff();
      for (;;) {
        try {
          lower = await source.presentOffsets();
          break;
        } catch (err) {
          if (signal.aborted) return;
          const cause = /: ([A-Z][A-Z_]+)$/.exec(errorText(err))?.[1];
          onDiagnostic({ severity: 'error', message: errorText(err), ...(cause ? { detail: cause } : {}) });
          await sleep(backoff.next(), signal);
          if (signal.aborted) return;
        }
      }
    }
    status.set(progress());
    for await (const item of source.subscribe(query, lower, { signal, onDiagnostic })) {
      if (item.type === 'caughtUp') {
        live = true;
        status.set(progress(), true);
        continue;
      }
      count++;
      const { payload, ...meta } = item.event;
      node.send({ payload, event: meta });
      status.set(progress());
      // Let Node-RED deliver what was sent (and the editor stay responsive) during a long catch-up.
      if (count % 500 === 0) await yieldToEventLoop();
    }
  } catch (err) {
    if (signal.aborted) return;
    node.error(`the subscription ended: ${errorText(err)}`);
    status.set({ fill: 'red', shape: 'ring', text: shortStatus(`error: ${errorText(err)}`) }, true);
  } finally {
    status.stop();
  }
}
