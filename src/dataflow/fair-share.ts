/**
 * Dataflows spread across instances (issue 14, point 3). The leased dataflows one instance runs
 * on one database form a pool; the instance announces itself with a heartbeat row beside the
 * leases (`deltaflow_instance`: pool, instance, expires_at, renewed every third of the lease time
 * and expiring after it, by the database's clock), so each instance knows how many are alive.
 * It takes leases up to its fair share, ceil(dataflows / live instances): when one dies, its
 * heartbeat and leases expire and the others' shares grow; when one joins, an instance over its
 * share gives leases up cleanly (its work committed, then released) and the joiner takes them.
 * Never two writers: the lease's epoch, checked in every commit, still decides (lease-keeper.ts).
 *
 * The pool's name is a hash of its dataflows' lease names, so only instances running the same
 * dataflows count each other. An instance counted wrongly can only make a share larger (an
 * instance running other flows is not counted), never leave a dataflow without a holder.
 *
 * @example
 * const ticket = FairShare.join(db, 'host-a:4711', 10_000, { name: 'df1', giveUp: () => … }, log);
 * if (ticket.reserve()) { const held = …take the lease…; ticket.settle(held); }
 * // …later: ticket.released() after giving the lease up, ticket.leave() on a clean stop
 */
import { createHash } from 'node:crypto';
import { errorText } from '../core/message-text';
import type { SinkDatabase } from '../sinks/types';

/** A leased dataflow in a pool. */
export interface ShareMember {
  /** Its lease name. */
  readonly name: string;
  /** Gives its lease up cleanly (commit, release): the instance is over its share. */
  giveUp(): void;
}

/** How long after the last dataflow joined the first heartbeat is written (they start together). */
const SETTLE_MS = 20;

interface MemberState {
  readonly member: ShareMember;
  /** Holds its lease (counted in the share). */
  holding: boolean;
  /** Is taking it now (counted, so two members cannot both take the last place). */
  reserved: boolean;
  /** Was asked to give it up and has not yet. */
  yielding: boolean;
}

class Pool {
  readonly members = new Set<MemberState>();
  /** Live instances of this pool, itself included (null: not announced yet: nothing is taken). */
  live: number | null = null;
  private leaseMs: number;
  private timer: NodeJS.Timeout | null = null;
  /** The heartbeat transaction in flight, if any (a clean stop waits for it: see remove). */
  private announcing: Promise<void> | null = null;
  /** The pool name last announced (deleted when the dataflows change). */
  private announced: string | null = null;
  /** Settles after the first heartbeat was attempted. */
  readonly firstTick: Promise<void>;
  private firstTicked!: () => void;

  constructor(
    /** The database of the dataflow that joined last (a redeployed db-config brings a new one). */
    private db: SinkDatabase,
    readonly instance: string,
    leaseMs: number,
    private readonly log: (message: string) => void,
  ) {
    this.leaseMs = leaseMs;
    this.firstTick = new Promise((resolve) => (this.firstTicked = resolve));
  }

  add(state: MemberState, leaseMs: number, db: SinkDatabase): void {
    this.members.add(state);
    this.db = db;
    this.leaseMs = Math.min(this.leaseMs, leaseMs);
    // The first heartbeat waits until the dataflows that start together have joined.
    if (this.live === null) this.schedule(SETTLE_MS);
  }

  private schedule(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    // The first heartbeat is awaited by the dataflows' start (a short wait that keeps the process
    // alive); the renewals after it keep no process alive.
    if (this.live !== null) this.timer.unref();
  }

  /** The pool's name: a hash of its dataflows' lease names. */
  name(): string {
    const names = [...this.members].map((s) => s.member.name).sort();
    return createHash('sha256').update(names.join('\n')).digest('hex').slice(0, 32);
  }

  get holders(): number {
    let n = 0;
    for (const s of this.members) if (s.holding || s.reserved) n++;
    return n;
  }

  /** ceil(dataflows / live instances); 0 before the first heartbeat. */
  get share(): number {
    return this.live === null ? 0 : Math.ceil(this.members.size / Math.max(1, this.live));
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (this.members.size === 0) return;
    if (this.announcing === null) {
      let done!: () => void;
      this.announcing = new Promise((resolve) => (done = resolve));
      const pool = this.name();
      const previous = this.announced;
      try {
        this.live = await this.db.transaction(async (tx) => {
          if (previous !== null && previous !== pool) await tx.leaveInstance(previous, this.instance);
          return tx.announceInstance({ pool, instance: this.instance, leaseMs: this.leaseMs });
        });
        this.announced = pool;
        this.rebalance();
      } catch (e) {
        this.log(`could not write the heartbeat of instance ${this.instance} in ${this.db.label}: ${errorText(e)}`);
      } finally {
        this.announcing = null;
        done();
        this.firstTicked();
      }
    }
    if (this.members.size > 0) this.schedule(Math.max(10, Math.floor(this.leaseMs / 3)));
  }

  /** Over the share (an instance joined): gives the excess up, once the last ones given up are gone. */
  private rebalance(): void {
    const holding = [...this.members].filter((s) => s.holding);
    if (holding.some((s) => s.yielding)) return;
    const excess = holding.length - this.share;
    if (excess <= 0) return;
    // NB: the ones given up are then refused by reserve() (holders ≥ share) until the share
    // grows: the instance does not take them back before the joiner (test/dataflow/spread.test.ts).
    const chosen = holding.sort((a, b) => (a.member.name < b.member.name ? 1 : -1)).slice(0, excess);
    this.log(
      `instance ${this.instance} runs ${holding.length} of ${this.members.size} dataflows, its fair share with ${this.live} instances is ${this.share}: giving ${chosen.map((s) => s.member.name).join(', ')} up`,
    );
    for (const s of chosen) {
      s.yielding = true;
      s.member.giveUp();
    }
  }

  async remove(state: MemberState): Promise<void> {
    this.members.delete(state);
    if (this.members.size > 0) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // NB: a heartbeat may be in flight (a renewal, or the first one); deleting before it commits
    // would leave its row behind for a whole lease time, so the others would count this instance
    // as live. Wait for it, then delete what it announced.
    while (this.announcing !== null) await this.announcing;
    if (this.members.size > 0) return; // a dataflow joined again meanwhile (a redeploy)
    const announced = this.announced;
    this.announced = null;
    if (announced === null) return;
    // A clean stop: the others count one instance less at once.
    await this.db
      .transaction((tx) => tx.leaveInstance(announced, this.instance))
      .catch((e: unknown) => {
        this.log(`could not delete the heartbeat of instance ${this.instance} in ${this.db.label}: ${errorText(e)}`);
      });
  }
}

/** A member's place in its pool. */
export class ShareTicket {
  constructor(
    private readonly pool: Pool,
    private readonly state: MemberState,
    private readonly onLeave: () => void,
  ) {}

  /** May this member take its lease now (below the share)? If so it counts as held until `settle`. */
  reserve(): boolean {
    if (this.state.holding) return true;
    if (this.pool.holders >= this.pool.share) return false;
    this.state.reserved = true;
    return true;
  }

  /** Resolves once the instance has counted the live instances (its first heartbeat), or `signal` aborts. */
  async counted(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    let onAbort!: () => void;
    await Promise.race([
      this.pool.firstTick,
      new Promise<void>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve()), { once: true })),
    ]);
    signal.removeEventListener('abort', onAbort);
  }

  /** The outcome of the attempt `reserve` allowed. */
  settle(held: boolean): void {
    this.state.reserved = false;
    if (held) this.state.holding = true;
  }

  /** The lease was given up or lost. */
  released(): void {
    this.state.holding = false;
    this.state.yielding = false;
  }

  /** For the status: e.g. `fair share: 2 of 6 dataflows on 3 instances`. */
  describe(): string {
    const p = this.pool;
    return p.live === null
      ? 'counting the instances'
      : `fair share: ${p.share} of ${p.members.size} dataflows on ${p.live} instance${p.live === 1 ? '' : 's'}`;
  }

  /** Leaves the pool (a clean stop); the last one deletes the instance's heartbeat. */
  async leave(): Promise<void> {
    this.onLeave();
    await this.pool.remove(this.state);
  }
}

/** The pools of this process, by database label and instance (several instances may share a process in tests). */
const pools = new Map<string, Pool>();

export const FairShare = {
  join(
    db: SinkDatabase,
    instance: string,
    leaseMs: number,
    member: ShareMember,
    log: (message: string) => void,
  ): ShareTicket {
    const key = `${db.label}\u0000${instance}`;
    let pool = pools.get(key);
    if (pool === undefined) pools.set(key, (pool = new Pool(db, instance, leaseMs, log)));
    const state: MemberState = { member, holding: false, reserved: false, yielding: false };
    pool.add(state, leaseMs, db);
    const joined = pool;
    return new ShareTicket(joined, state, () => {
      if (joined.members.size === 1 && joined.members.has(state) && pools.get(key) === joined) pools.delete(key);
    });
  },
};
