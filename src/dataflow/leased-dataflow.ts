/**
 * One writer per dataflow, hot standby (issue 14). Several instances may run the same dataflow
 * (FlowFuse HA replicas, a pair of Node-RED services): each asks for the dataflow's lease in every
 * database its sinks write (lease-keeper.ts). The holder runs the dataflow; every one of its
 * transactions checks its epoch first, so once another instance has taken the lease over, a late
 * commit of the old holder (a paused "zombie", or one cut off from the database) fails and writes
 * nothing. The others show `standby (held by <instance>)` and take over when the lease ends: the
 * holder stopped cleanly (released), died, or could not renew it. The new holder starts like a
 * restart: from the committed offsets of the tables. A holder that loses its lease stops writing
 * and becomes a standby.
 */
import type { LeaseLostError } from '../sinks/lease-sql';
import type { Fencing } from './context';
import { LeaseKeeper } from './lease-keeper';
import { FairShare, type ShareTicket } from './fair-share';
import type { SinkDatabase } from '../sinks/types';
import type {
  DataflowDefinition,
  DataflowLag,
  DataflowLease,
  DataflowListener,
  DataflowStats,
  RunningDataflow,
} from './types';

/** What runs while the lease is held (the coordinator, given the fencing it commits under). */
export type StartHolder = (fencing: Fencing) => RunningDataflow & { leaseLost(e: LeaseLostError): void };

export class LeasedDataflow implements RunningDataflow {
  readonly finished: Promise<void>;
  readonly live: Promise<void>;
  private resolveLive!: () => void;
  private readonly abort = new AbortController();
  private readonly keeper: LeaseKeeper;
  private holder: ReturnType<StartHolder> | null = null;
  private stopping = false;
  /** The lease was lost while holding it (set by the keeper or a transaction), for the current holder run. */
  private lostSignal: ((e: LeaseLostError) => void) | null = null;
  private shownStandby: string | null = null;
  /** This dataflow's place among the ones this instance runs on its first database (fair-share.ts). */
  private share: ShareTicket | null = null;
  /** Asks the current holder run to give the lease up (the instance is over its fair share). */
  private giveUpSignal: (() => void) | null = null;
  private giveUpPending = false;
  private heldBy: string | null = null;
  private takeovers = 0;

  constructor(
    private readonly definition: DataflowDefinition,
    private readonly lease: DataflowLease,
    private readonly listener: DataflowListener,
    private readonly start: StartHolder,
  ) {
    const databases: SinkDatabase[] = [];
    for (const m of definition.members) if (m.role === 'sink') databases.push(m.database);
    this.keeper = new LeaseKeeper(databases, lease, {
      standby: (holder, problem, waiting) => this.showStandby(holder, problem, waiting),
      lost: (e) => this.lostSignal?.(e),
      log: (level, message) => listener.log(level, message),
    });
    const home = this.keeper.home;
    if (home !== undefined) {
      this.share = FairShare.join(
        home,
        lease.instance,
        lease.leaseMs,
        {
          name: lease.name,
          giveUp: () => {
            // Asked between taking the lease and starting the holder run: that run gives it up at once.
            if (this.giveUpSignal !== null) this.giveUpSignal();
            else this.giveUpPending = true;
          },
        },
        (message) => listener.log('info', message),
      );
      this.keeper.shareIn(this.share);
    }
    this.live = new Promise((resolve) => (this.resolveLive = resolve));
    this.finished = this.run();
  }

  stats(): DataflowStats {
    const base = this.holder?.stats();
    if (base !== undefined) return { ...base, leaseHolder: this.lease.instance, takeovers: this.takeovers };
    return {
      phase: this.stopping ? 'stopped' : 'standby',
      eventsRead: 0,
      eventsReplayed: 0,
      eventsOutsideWindow: 0,
      eventsAheadOfClock: 0,
      batchesComputed: 0,
      batchesCommitted: 0,
      skipped: new Map(),
      committedOffsets: {},
      watermark: null,
      rebuilt: [],
      error: null,
      stateSize: 0,
      durableState: false,
      stateBytes: 0,
      stateLoads: 0,
      leaseHolder: this.heldBy,
      takeovers: this.takeovers,
    };
  }

  lag(): DataflowLag | null {
    return this.holder?.lag() ?? null;
  }

  /** Stops the dataflow (its computed work is committed, see RunningDataflow.stop) and gives the lease up. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    await this.holder?.stop();
    await this.finished;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (!(await this.keeper.acquire(this.abort.signal))) break;
      this.takeovers++;
      this.shownStandby = null;
      this.heldBy = this.lease.instance;
      let lost: LeaseLostError | null = null;
      let givenUp = false;
      const ended = new Promise<void>((resolve) => {
        this.lostSignal = (e) => {
          lost ??= e;
          resolve();
        };
        this.giveUpSignal = () => {
          givenUp = true;
          resolve();
        };
        this.abort.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      if (this.giveUpPending) {
        this.giveUpPending = false;
        this.giveUpSignal?.();
      }
      const holder = this.start({
        token: (db) => this.keeper.token(db),
        lost: (e) => this.lostSignal?.(e),
        confirmed: (db, startedMs) => this.keeper.confirmed(db, startedMs),
      });
      this.holder = holder;
      void holder.live.then(() => this.resolveLive());
      // A dataflow that ends by itself (halted on an error, nothing to run) keeps the lease until
      // stopped: a standby would only meet the same error.
      await ended;
      this.lostSignal = null;
      this.giveUpSignal = null;
      // Set by lostSignal while awaiting (the compiler still narrows `lost` to its initial null).
      const lostError = lost as LeaseLostError | null;
      if (lostError !== null) {
        holder.leaseLost(lostError);
        this.listener.log('warn', lostError.message);
      }
      await holder.stop();
      this.holder = null;
      // Leases still held in other databases are given up, so the new holder need not wait for them.
      if (lostError !== null) {
        this.heldBy = lostError.holder;
        await this.keeper.release();
      } else if (givenUp && !this.stopping) {
        // Its work committed (stop above): another instance takes it from the committed offsets.
        this.heldBy = null;
        await this.keeper.release();
        this.listener.log('info', `gave the lease of dataflow ${this.lease.name} up for another instance (fair share)`);
      }
    }
    await this.keeper.release();
    await this.share?.leave();
    this.holder = null;
  }

  /** Every member shows who holds the lease (only when that changes: status is not throttled here). */
  private showStandby(holder: string | null, problem?: string, waiting?: string): void {
    if (this.stopping) return;
    if (holder !== null) this.heldBy = holder;
    const text =
      holder !== null
        ? `standby (held by ${holder})`
        : `standby (${problem !== undefined ? `lease unknown: ${problem}` : (waiting ?? 'waiting for the lease')})`;
    if (text === this.shownStandby) return;
    this.shownStandby = text;
    for (const m of this.definition.members)
      this.listener.status(m.id, {
        fill: 'grey',
        shape: 'ring',
        text: text.length > 60 ? text.slice(0, 57) + '…' : text,
      });
  }
}
