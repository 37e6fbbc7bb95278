/**
 * The seed's audit trail: Fred sets up Drill1 for order 4711 at 8:52, drills holes from 8:56,
 * reports 27 and then 13 chair legs, stops at 9:27 and reports the step finished. Tests and the
 * demo publish exactly these events; the examples must turn them into
 * - dashboard: Drill1 idle since 9:27;
 * - usage: Drill1 | 4711 | 8:56 | 31 min;
 * - booking: 4711 | hole drilling | Fred 35 min | Drill1 31 min | 40 chair legs.
 */
import {
  deviceStream,
  machineTags,
  workerTags,
  type DeviceEvent,
  type DeviceLog,
  type MachineEvent,
  type WorkerEvent,
} from './event-model';

/** The day of the audit trail (UTC). */
export const AUDIT_DAY = '2020-06-24';

/** Microseconds since the epoch of `hh:mm` on AUDIT_DAY (UTC). */
export function auditTime(hhmm: string): number {
  return Date.parse(`${AUDIT_DAY}T${hhmm.padStart(5, '0')}:00.000Z`) * 1000;
}

export interface AuditEntry {
  /** The device that records it: Fred's tablet or Drill1's controller. */
  readonly device: 'Fred' | 'Drill1';
  readonly time: string;
  readonly tags: readonly string[];
  readonly payload: MachineEvent | WorkerEvent;
}

const ORDER = '4711';
const STEP = 'hole drilling';
const fred = (time: string, payload: WorkerEvent): AuditEntry => ({
  device: 'Fred',
  time,
  tags: workerTags('Fred', ORDER),
  payload,
});
const drill1 = (time: string, payload: MachineEvent): AuditEntry => ({
  device: 'Drill1',
  time,
  tags: machineTags('Drill1'),
  payload,
});

/** The audit trail in the seed's order (which is also causal order). */
export const AUDIT_TRAIL: readonly AuditEntry[] = [
  fred('8:52', { type: 'setupStarted', machine: 'Drill1', order: ORDER }),
  fred('8:56', { type: 'setupFinished', machine: 'Drill1', order: ORDER }),
  drill1('8:56', { type: 'started', order: ORDER }),
  fred('8:56', { type: 'workStarted', machine: 'Drill1', order: ORDER, step: STEP }),
  fred('9:12', { type: 'partsReported', order: ORDER, count: 27, part: 'chair leg' }),
  fred('9:26', { type: 'partsReported', order: ORDER, count: 13, part: 'chair leg' }),
  fred('9:27', { type: 'workStopped', machine: 'Drill1', order: ORDER, step: STEP }),
  drill1('9:27', { type: 'stopped', order: ORDER }),
  fred('9:27', { type: 'stepFinished', order: ORDER, step: STEP }),
];

/** The audit trail as device events with Lamport stamps 1…9 and the seed's times. */
export function auditTrailEvents(): { stream: string; event: DeviceEvent }[] {
  return AUDIT_TRAIL.map((e, i) => ({
    stream: deviceStream(e.device),
    event: { tags: e.tags, payload: e.payload, lamport: i + 1, timestamp: auditTime(e.time) },
  }));
}

/**
 * Publishes the audit trail, one event at a time, each on its device's stream. `firstLamport`
 * shifts the stamps (an existing log's clock may already be higher).
 */
export async function publishAuditTrail(log: DeviceLog, firstLamport = 1): Promise<void> {
  for (const { stream, event } of auditTrailEvents()) {
    await log.publishAs(stream, [{ ...event, lamport: (event.lamport ?? 0) + firstLamport - 1 }]);
  }
}

/** What the examples must produce from the audit trail (from the issue text, not computed). */
export const AUDIT_EXPECTED = {
  dashboard: { machine: 'Drill1', doing: 'idle', since: '2020-06-24T09:27:00.000Z' },
  usage: { machine: 'Drill1', order: '4711', started: '2020-06-24T08:56:00.000Z', durationMinutes: 31 },
  booking: {
    order: '4711',
    step: 'hole drilling',
    worker: 'Fred',
    workerMinutes: 35,
    machine: 'Drill1',
    machineMinutes: 31,
    parts: 40,
    part: 'chair leg',
  },
} as const;
