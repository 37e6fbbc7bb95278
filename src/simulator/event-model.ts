/**
 * The factory's event model, as Actyx v2 apps write it, shared by the simulator, the audit trail
 * and the examples:
 * - machine events, tags `machine`, `machine:<name>`: `{type: 'started' | 'stopped', order}`;
 * - worker events, tags `worker`, `worker:<name>`, `order:<order>`: setupStarted/setupFinished
 *   `{machine, order}`, workStarted/workStopped `{machine, order, step}`, partsReported
 *   `{order, count, part}`, stepFinished `{order, step}`.
 */
import type { PublishedEvent, PublishRequest } from '../sources/types';

export type MachineEvent = { readonly type: 'started' | 'stopped'; readonly order: string };

export type WorkerEvent =
  | { readonly type: 'setupStarted' | 'setupFinished'; readonly machine: string; readonly order: string }
  | {
      readonly type: 'workStarted' | 'workStopped';
      readonly machine: string;
      readonly order: string;
      readonly step: string;
    }
  | { readonly type: 'partsReported'; readonly order: string; readonly count: number; readonly part: string }
  | { readonly type: 'stepFinished'; readonly order: string; readonly step: string };

export function machineTags(machine: string): string[] {
  return ['machine', `machine:${machine}`];
}

export function workerTags(worker: string, order: string): string[] {
  return ['worker', `worker:${worker}`, `order:${order}`];
}

/** An event to publish as one device, with the stamps that device gives it. */
export interface DeviceEvent extends PublishRequest {
  readonly lamport?: number;
  readonly timestamp?: number;
}

/**
 * Where the simulator publishes: the embedded log's `publishAs` (one stream per device, explicit
 * Lamport stamps and timestamps, so an offline device can deliver old events late).
 */
export interface DeviceLog {
  publishAs(stream: string, events: readonly DeviceEvent[]): Promise<readonly PublishedEvent[]>;
}

/** The stream id of a simulated device (Actyx streams are `<node id>-<n>`). */
export function deviceStream(device: string): string {
  return `${device.toLowerCase().replace(/[^a-z0-9]+/g, '')}-0`;
}
