/**
 * A factory simulator for the demo and tests: workers set up free drills for new orders, drill,
 * report parts and finish the step, publishing the events of the event model
 * (`event-model.ts`) as their devices — one stream per worker tablet and per machine controller.
 *
 * One machine can be taken offline for a while: its controller keeps recording events with its
 * own (then stale) Lamport clock and delivers them when it reconnects, so they arrive late with
 * Lamport stamps older than events published meanwhile — as with Actyx replication.
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
import { seededRandom } from './seeded-random';

export interface FactoryOptions {
  readonly log: DeviceLog;
  readonly machines?: readonly string[];
  readonly workers?: readonly string[];
  /** Milliseconds of real time per simulated minute of work (default 1000: a 10-minute step takes 10 s). */
  readonly msPerMinute?: number;
  /** Random numbers in [0, 1); default a seeded generator, so runs are repeatable. */
  readonly random?: () => number;
  /**
   * Take a machine offline `afterMs` after start for `forMs`: `machine`, or (without it) one that is
   * working at that moment, so that it surely records events while offline. Default: after 15 and for
   * 20 simulated minutes, a working machine. Null: never.
   */
  readonly offline?: { readonly machine?: string; readonly afterMs: number; readonly forMs: number } | null;
  /** First order number (default 4800). */
  readonly firstOrder?: number;
  /** Called for every published or buffered event (for logs and tests). */
  readonly onEvent?: (e: { device: string; event: DeviceEvent; delivered: boolean }) => void;
  /** Called when a machine goes offline (true) and comes back (false). */
  readonly onOffline?: (machine: string, offline: boolean) => void;
  /** Called when publishing fails (the simulator keeps going). */
  readonly onError?: (err: unknown) => void;
}

const STEPS: readonly { step: string; part: string }[] = [
  { step: 'hole drilling', part: 'chair leg' },
  { step: 'countersinking', part: 'table leg' },
  { step: 'dowel drilling', part: 'backrest' },
];

/** A device (tablet or machine controller) that publishes on its own stream. */
class Device {
  private offline = false;
  private buffered: DeviceEvent[] = [];
  /** The Lamport stamp this device last saw (its clock while offline). */
  private lamport = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly factory: FactorySimulator,
  ) {}

  get isOffline(): boolean {
    return this.offline;
  }

  record(tags: readonly string[], payload: MachineEvent | WorkerEvent): Promise<void> {
    const timestamp = this.factory.nowMicros();
    if (this.offline) {
      this.lamport += 1;
      const event: DeviceEvent = { tags, payload, lamport: this.lamport, timestamp };
      this.buffered.push(event);
      this.factory.notify(this.name, event, false);
      return this.queue;
    }
    return this.enqueue([{ tags, payload, timestamp }]);
  }

  goOffline(): void {
    this.offline = true;
    this.lamport = Math.max(this.lamport, this.factory.lastLamport);
  }

  /** Reconnects and delivers what was recorded offline, with its old stamps. */
  goOnline(): Promise<void> {
    this.offline = false;
    const late = this.buffered;
    this.buffered = [];
    return late.length > 0 ? this.enqueue(late) : this.queue;
  }

  private enqueue(events: DeviceEvent[]): Promise<void> {
    this.queue = this.queue.then(async () => {
      try {
        const published = await this.factory.log.publishAs(deviceStream(this.name), events);
        for (const p of published) this.factory.saw(p.lamport);
        this.lamport = Math.max(this.lamport, ...published.map((p) => p.lamport));
        for (const event of events) this.factory.notify(this.name, event, true);
      } catch (err) {
        this.factory.reportError(err);
      }
    });
    return this.queue;
  }
}

export class FactorySimulator {
  readonly log: DeviceLog;
  private readonly machines: readonly string[];
  private readonly workers: readonly string[];
  private readonly msPerMinute: number;
  private readonly random: () => number;
  private readonly options: FactoryOptions;
  private readonly devices = new Map<string, Device>();
  private readonly busy = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly loops: Promise<void>[] = [];
  private nextOrder: number;
  private running = false;
  /** Highest Lamport stamp published so far. */
  lastLamport = 0;

  constructor(options: FactoryOptions) {
    this.options = options;
    this.log = options.log;
    this.machines = options.machines ?? ['Drill1', 'Drill2', 'Drill3', 'Drill4'];
    this.workers = options.workers ?? ['Fred', 'Alice', 'Bob'];
    this.msPerMinute = options.msPerMinute ?? 1000;
    this.random = options.random ?? seededRandom(4711);
    this.nextOrder = options.firstOrder ?? 4800;
    for (const name of [...this.machines, ...this.workers]) this.devices.set(name, new Device(name, this));
  }

  nowMicros(): number {
    return Date.now() * 1000;
  }

  saw(lamport: number): void {
    this.lastLamport = Math.max(this.lastLamport, lamport);
  }

  notify(device: string, event: DeviceEvent, delivered: boolean): void {
    this.options.onEvent?.({ device, event, delivered });
  }

  reportError(err: unknown): void {
    if (this.options.onError) this.options.onError(err);
    else console.error('factory simulator:', err);
  }

  /** Starts one work loop per worker and the offline episode. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.workers.forEach((worker, i) => this.loops.push(this.workerLoop(worker, i)));
    const offline =
      this.options.offline === undefined
        ? { afterMs: 15 * this.msPerMinute, forMs: 20 * this.msPerMinute }
        : this.options.offline;
    if (offline) {
      if (offline.machine !== undefined && !this.devices.has(offline.machine)) {
        throw new Error(`factory simulator: unknown machine ${offline.machine} to take offline`);
      }
      this.later(offline.afterMs, () => {
        const name =
          offline.machine ?? this.machines.find((m) => this.busy.has(m)) ?? this.machines[this.machines.length - 1]!;
        const device = this.devices.get(name)!;
        device.goOffline();
        this.options.onOffline?.(name, true);
        this.later(offline.forMs, () => {
          this.options.onOffline?.(name, false);
          void device.goOnline();
        });
      });
    }
  }

  /** Stops the loops; events recorded offline are delivered before it resolves. */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const wake of this.sleepers) wake();
    this.sleepers.clear();
    await Promise.all(this.loops);
    await Promise.all([...this.devices.values()].map((d) => (d.isOffline ? d.goOnline() : Promise.resolve())));
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private readonly sleepers = new Set<() => void>();

  /** Waits `minutes` simulated minutes; false when the simulator was stopped meanwhile. */
  private sleep(minutes: number): Promise<boolean> {
    if (!this.running) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleepers.delete(wake);
        clearTimeout(t);
        resolve(this.running);
      };
      const t = setTimeout(wake, minutes * this.msPerMinute);
      this.sleepers.add(wake);
    });
  }

  private between(lo: number, hi: number): number {
    return lo + this.random() * (hi - lo);
  }

  private async workerLoop(worker: string, index: number): Promise<void> {
    const tablet = this.devices.get(worker)!;
    if (!(await this.sleep(index * 0.7))) return;
    while (this.running) {
      const free = this.machines.filter((m) => !this.busy.has(m));
      if (free.length === 0) {
        if (!(await this.sleep(1))) return;
        continue;
      }
      const machine = free[Math.floor(this.random() * free.length)]!;
      this.busy.add(machine);
      try {
        await this.workOrder(worker, tablet, machine);
      } finally {
        this.busy.delete(machine);
      }
      if (!(await this.sleep(this.between(1, 4)))) return;
    }
  }

  /** One order on one machine: setup, work with parts reports, stop, step finished. */
  private async workOrder(worker: string, tablet: Device, machine: string): Promise<void> {
    const controller = this.devices.get(machine)!;
    const order = String(this.nextOrder++);
    const { step, part } = STEPS[Math.floor(this.random() * STEPS.length)]!;
    const w = (payload: WorkerEvent) => tablet.record(workerTags(worker, order), payload);
    const m = (payload: MachineEvent) => controller.record(machineTags(machine), payload);

    await w({ type: 'setupStarted', machine, order });
    // Once begun, an order runs to its end even when the simulator stops (sleeps then end at once),
    // so the log never holds half a work cycle.
    await this.sleep(this.between(2, 5));
    await w({ type: 'setupFinished', machine, order });
    await m({ type: 'started', order });
    await w({ type: 'workStarted', machine, order, step });
    const reports = 1 + Math.floor(this.random() * 3);
    let stopped = false;
    for (let i = 0; i < reports && !stopped; i++) {
      stopped = !(await this.sleep(this.between(3, 8)));
      await w({ type: 'partsReported', order, count: 5 + Math.floor(this.random() * 25), part });
    }
    await w({ type: 'workStopped', machine, order, step });
    await m({ type: 'stopped', order });
    await w({ type: 'stepFinished', order, step });
  }
}
