/**
 * The seed's two views as engine pipelines over drill events (see drill-data.ts), shared by the
 * engine benchmark and the engine tests:
 * - dashboard: machine events → `{machine, status, order, since}` → group by machine → max by
 *   `since` → one row per machine;
 * - usage: machine events → excerpt `{lamport, machine, payload, timestamp}` → group by machine →
 *   reduce pairing started/stopped per order (inputs in causal order: the input's order keys, or
 *   without them the value order, where `lamport` sorts first) → one row per completed
 *   `(machine, order)` span;
 * - usage as a scan: the same pairing as an incremental fold, event by event.
 */
import type { Collection, Multiset } from '../src/engine';
import { machineOf, type DrillEvent, type MachinePayload } from './drill-data';

export type DashboardRow = {
  readonly machine: string;
  readonly status: 'working' | 'idle';
  readonly order: string | null;
  readonly since: number;
};

export type Excerpt = {
  readonly lamport: number;
  readonly machine: string;
  readonly payload: MachinePayload;
  readonly timestamp: number;
};

export type UsageRow = {
  readonly machine: string;
  readonly order: string;
  readonly started: number;
  readonly durationMicros: number;
};

export function isMachineEvent(e: DrillEvent): boolean {
  return e.tags.includes('machine');
}

export function toDashboardRow(e: DrillEvent): DashboardRow {
  const p = e.payload as MachinePayload;
  const machine = machineOf(e)!;
  return p.type === 'started'
    ? { machine, status: 'working', order: p.order, since: e.timestamp }
    : { machine, status: 'idle', order: null, since: e.timestamp };
}

export function toExcerpt(e: DrillEvent): Excerpt {
  return { lamport: e.lamport, machine: machineOf(e)!, payload: e.payload as MachinePayload, timestamp: e.timestamp };
}

/** The seed's usage reducer: inputs in causal order, each stop closes the open start of its order. */
export function pairStartStop(machine: string, inputs: Multiset<Excerpt>, outputs: [UsageRow, number][]): void {
  const open = new Map<string, number>();
  for (const [ex] of inputs) {
    if (ex.payload.type === 'started') open.set(ex.payload.order, ex.timestamp);
    else {
      const started = open.get(ex.payload.order);
      if (started === undefined) continue;
      open.delete(ex.payload.order);
      outputs.push([{ machine, order: ex.payload.order, started, durationMicros: ex.timestamp - started }, 1]);
    }
  }
}

/** Open starts of a machine: [order, started timestamp] pairs (the scan's state; rarely more than one). */
export type OpenStarts = [order: string, started: number][];

/**
 * The same pairing as one step of a fold (for `scan`): a start opens its order, a stop closes it
 * and emits the span. Event by event, so appending events costs O(1) instead of the whole group.
 */
export function pairStep(open: OpenStarts, ex: Excerpt, emit: (row: UsageRow) => void, machine: string): OpenStarts {
  const order = ex.payload.order;
  let at = 0;
  while (at < open.length && open[at]![0] !== order) at++;
  if (ex.payload.type === 'started') open[at] = [order, ex.timestamp];
  else if (at < open.length) {
    const started = open[at]![1];
    open[at] = open[open.length - 1]!; // remove without allocating (the order of open starts does not matter)
    open.pop();
    emit({ machine, order, started, durationMicros: ex.timestamp - started });
  }
  return open;
}

export function dashboardPipeline(events: Collection<DrillEvent>): Collection<DashboardRow> {
  return events
    .filter(isMachineEvent)
    .map((e) => toDashboardRow(e))
    .groupBy((r) => r.machine)
    .maxBy((r) => r.since)
    .ungroup();
}

export function usagePipeline(events: Collection<DrillEvent>): Collection<UsageRow> {
  return events
    .filter(isMachineEvent)
    .map((e) => toExcerpt(e))
    .groupBy((x) => x.machine)
    .reduce<UsageRow>(pairStartStop)
    .ungroup();
}

/** The usage view with the pairing as an incremental fold (`scan`) instead of the seed's `reduce`. */
export function usageScanPipeline(events: Collection<DrillEvent>): Collection<UsageRow> {
  return events
    .filter(isMachineEvent)
    .map((e) => toExcerpt(e))
    .groupBy((x) => x.machine)
    .scan<OpenStarts, UsageRow>([], pairStep)
    .ungroup();
}
