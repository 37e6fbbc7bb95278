/**
 * Deterministic synthetic drill-factory events, shaped as Actyx v2 delivers them, for benchmarks
 * and tests. Event model (issue 5):
 * - machine events, tags `machine`, `machine:<name>`: `{type: 'started', order}`, `{type: 'stopped', order}`;
 * - worker events (only with `workers > 0`), tags `worker`, `worker:<name>`, `order:<order>`:
 *   `setupStarted`, `setupFinished`, `workStarted`, `partsReported`, `workStopped`, `stepFinished`.
 * Every machine alternates started/stopped on fresh orders (with workers, each cycle is a worker's
 * setup, work, parts and step-finished report around the machine's start and stop). Events come in
 * Lamport order with increasing timestamps; each device (machine or worker tablet) has its own
 * stream with offsets 0, 1, 2, …
 */

import { seededRandom } from '../src/simulator/seeded-random';
import type { ActyxEvent } from '../src/sources/types';

/**
 * An Actyx event with a drill payload. Built from `Omit` (a type alias, not the interface) so that it
 * stays assignable to the engine's `Value`.
 */
export type DrillEvent = Omit<ActyxEvent, 'payload'> & { readonly payload: DrillPayload };

export type MachinePayload =
  { readonly type: 'started'; readonly order: string } | { readonly type: 'stopped'; readonly order: string };

export type WorkerPayload =
  | { readonly type: 'setupStarted'; readonly machine: string; readonly order: string }
  | { readonly type: 'setupFinished'; readonly machine: string; readonly order: string }
  | { readonly type: 'workStarted'; readonly machine: string; readonly order: string; readonly step: string }
  | { readonly type: 'partsReported'; readonly order: string; readonly count: number; readonly part: string }
  | { readonly type: 'workStopped'; readonly machine: string; readonly order: string; readonly step: string }
  | { readonly type: 'stepFinished'; readonly order: string; readonly step: string };

export type DrillPayload = MachinePayload | WorkerPayload;

export interface DrillOptions {
  /** Number of events to generate. */
  readonly count: number;
  /** Machines `Drill1` … `DrillN` (default 50). */
  readonly machines?: number;
  /**
   * Streams the machines write to (default: one per machine, `drill<m>-0`). Fewer: machine m writes
   * to stream `drill<((m - 1) mod streams) + 1>-0`, shared with the other machines of that stream
   * (many keys over few streams; the offsets count the stream's events).
   */
  readonly streams?: number;
  /** Workers `Worker1` … `WorkerN` (default 0: machine events only). */
  readonly workers?: number;
  /** PRNG seed (default 1): the same options always give the same events. */
  readonly seed?: number;
  /** Timestamp of the first event, µs (default 2026-01-05T06:00:00Z). */
  readonly startMicros?: number;
  /** Mean gap between consecutive events of the whole factory, µs (default 2 s). */
  readonly meanGapMicros?: number;
  /** First Lamport timestamp (default 1). */
  readonly firstLamport?: number;
  readonly appId?: string;
}

export const DEFAULT_APP_ID = 'com.example.drill-factory';
const STEPS = ['hole drilling', 'countersinking', 'reaming'];
const PARTS = ['chair leg', 'table leg', 'shelf board'];

interface Device {
  readonly stream: string;
  readonly tags: readonly string[];
  offset: number;
}

interface Cycle {
  /** Remaining events of the machine's current cycle, produced lazily. */
  readonly steps: (() => { device: Device; payload: DrillPayload; extraTags?: readonly string[] })[];
}

/** Generates `count` drill events (see the module comment for the model). */
export function generateDrillEvents(options: DrillOptions): DrillEvent[] {
  const machines = options.machines ?? 50;
  const workers = options.workers ?? 0;
  const random = seededRandom(options.seed ?? 1);
  const appId = options.appId ?? DEFAULT_APP_ID;
  const meanGap = options.meanGapMicros ?? 2_000_000;
  let timestamp = options.startMicros ?? Date.UTC(2026, 0, 5, 6, 0, 0) * 1000;
  let lamport = options.firstLamport ?? 1;
  let nextOrder = 4711;
  if (machines < 1) throw new RangeError('machines must be at least 1');

  const streams = Math.min(options.streams ?? machines, machines);
  if (streams < 1) throw new RangeError('streams must be at least 1');
  // Machines of one stream share its offset counter.
  const streamOffsets: { offset: number }[] = [];
  for (let s = 0; s < streams; s++) streamOffsets.push({ offset: 0 });
  const machineDevices: Device[] = [];
  for (let m = 1; m <= machines; m++) {
    const shared = streamOffsets[(m - 1) % streams] as { offset: number };
    machineDevices.push({
      stream: `drill${((m - 1) % streams) + 1}-0`,
      tags: ['machine', `machine:Drill${m}`],
      get offset() {
        return shared.offset;
      },
      set offset(o: number) {
        shared.offset = o;
      },
    });
  }
  const workerDevices: Device[] = [];
  for (let w = 1; w <= workers; w++)
    workerDevices.push({ stream: `tablet${w}-0`, tags: ['worker', `worker:Worker${w}`], offset: 0 });
  const cycles: (Cycle | null)[] = new Array(machines).fill(null);

  const newCycle = (m: number): Cycle => {
    const machine = machineDevices[m];
    const name = `Drill${m + 1}`;
    const order = String(nextOrder++);
    if (workers === 0) {
      return {
        steps: [
          () => ({ device: machine, payload: { type: 'started', order } }),
          () => ({ device: machine, payload: { type: 'stopped', order } }),
        ],
      };
    }
    const worker = workerDevices[Math.floor(random() * workers)];
    const step = STEPS[Math.floor(random() * STEPS.length)];
    const part = PARTS[Math.floor(random() * PARTS.length)];
    const orderTag = [`order:${order}`];
    const w = (payload: WorkerPayload) => () => ({ device: worker, payload, extraTags: orderTag });
    return {
      steps: [
        w({ type: 'setupStarted', machine: name, order }),
        w({ type: 'setupFinished', machine: name, order }),
        () => ({ device: machine, payload: { type: 'started', order } }),
        w({ type: 'workStarted', machine: name, order, step }),
        w({ type: 'partsReported', order, count: 1 + Math.floor(random() * 30), part }),
        () => ({ device: machine, payload: { type: 'stopped', order } }),
        w({ type: 'workStopped', machine: name, order, step }),
        w({ type: 'stepFinished', order, step }),
      ],
    };
  };

  const events: DrillEvent[] = new Array(options.count);
  for (let i = 0; i < options.count; i++) {
    const m = Math.floor(random() * machines);
    let cycle = cycles[m];
    if (cycle === null || cycle.steps.length === 0) cycle = cycles[m] = newCycle(m);
    const { device, payload, extraTags } = cycle.steps.shift()!();
    timestamp += 1 + Math.floor(random() * 2 * meanGap);
    events[i] = {
      lamport: lamport++,
      stream: device.stream,
      offset: device.offset++,
      timestamp,
      tags: extraTags ? [...device.tags, ...extraTags] : device.tags,
      appId,
      payload,
    };
  }
  return events;
}

/** The machine name of a machine event (`machine:<name>` tag), or null. */
export function machineOf(event: { readonly tags: readonly string[] }): string | null {
  for (const t of event.tags) if (t.startsWith('machine:')) return t.slice(8);
  return null;
}
